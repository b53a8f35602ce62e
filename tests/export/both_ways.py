"""`nipad predict` with a run and with its ONNX export on the same images: the rows each writes."""

import json

from nipad.cli.main import main


def predictions_both_ways(run, onnx_path, images, out) -> list[list[dict]]:
    """[rows of `nipad predict RUN`, rows of `nipad predict --onnx`] from predictions.jsonl, in input order."""
    assert main(["predict", str(run), *images, "--out", str(out / "torch")]) == 0
    assert main(["predict", "--onnx", str(onnx_path), *images, "--out", str(out / "onnx")]) == 0
    return [[json.loads(line) for line in (out / name / "predictions.jsonl").read_text().splitlines()]
            for name in ("torch", "onnx")]
