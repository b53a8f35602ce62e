"""`nipad export --format onnx`: the detector as one ONNX graph plus a JSON sidecar with what the graph cannot say.

OneNIP, UniAD, PatchCore, PaDiM and kNN runs export; AnomalySD runs do not (`ANOMALYSD_REFUSAL`). The graph (see
nipad.export.graph and nipad.export.baseline_graph) maps `images` uint8 (batch, 3, height, width), NCHW RGB, batch
and size dynamic, to `pred_score` (batch,), `anomaly_map` (batch, 1, S, S) and `prompt_index` (batch,) int64 (for
the baselines: the index of the nearest class-mean descriptor). The sidecar (`model.json` next to `model.onnx`) holds
the class of every index, the image size, the run's calibration (so labels need no run directory), the export's own
check against PyTorch and the sha256 of the .onnx file, which the runner checks before loading it. The graph's
metadata records the sha256 of the sidecar's classes, image size and calibration (`sidecar.sealed_digest`), so an
edited threshold in the sidecar is refused too.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import onnx
import torch
from torch import nn

from nipad import __version__
from nipad.engine.calibration import Calibration
from nipad.errors import CheckpointError, ConfigError
from nipad.export import DEFAULT_OPSET, check_opset
from nipad.export.baseline_graph import BaselineGraph, baseline_graph
from nipad.export.graph import InferenceGraph
from nipad.export.sidecar import FORMAT, INPUT, OUTPUTS, SEAL_KEY, sealed_digest, sidecar_path
from nipad.models.anomalysd.config import MODEL as ANOMALYSD
from nipad.models.baselines.template import PatchBaseline
from nipad.models.onenip.detector import Detector
from nipad.models.output import AnomalyModel
from nipad.runs import integrity
from nipad.runs.file_names import CALIBRATION
from nipad.utils.io import atomic_write, atomic_write_json


@dataclass(frozen=True)
class ExportReport:
    onnx_path: Path
    sidecar_path: Path
    max_score_diff: float
    max_map_diff: float
    same_prompts: bool
    max_score: float  # the largest |score| of the check: float32 agreement is relative to it


ANOMALYSD_REFUSAL = (
    "AnomalySD runs cannot be exported to ONNX: each image is scored by an iterative diffusion sampler (a scheduler "
    "loop of UNet steps for every multi-scale mask) over a multi-GB Stable Diffusion inpainting model, which is no "
    "single graph of a deployable size. Fix: run it with `nipad predict RUN_DIR` or `nipad serve RUN_DIR`, or export "
    "a PatchCore, PaDiM, kNN, OneNIP or UniAD run trained on the same data")


def onenip_graph(detector: Detector) -> InferenceGraph:
    """The graph of a OneNIP or UniAD run; ConfigError for a OneNIP run without prompts."""
    if detector.config.uses_prompt and len(detector.prompts) == 0:
        raise ConfigError("this OneNIP run has an empty prompt pool, so it cannot score images. Fix: add prompts "
                          "with `nipad prompt add RUN_DIR --class NAME IMAGES...`")
    return InferenceGraph(detector.cpu().eval()).eval()


def patch_graph(model: PatchBaseline) -> BaselineGraph:
    """The graph of a PatchCore, PaDiM or kNN run."""
    return baseline_graph(model.cpu().eval())


Graph = InferenceGraph | BaselineGraph  # what a model exports as: one traceable module

GRAPHS: dict[str, Callable[[Any], Graph]] = {
    "onenip": onenip_graph, "uniad": onenip_graph, "patchcore": patch_graph, "padim": patch_graph, "knn": patch_graph}
"""The graph builder of each exportable `--model` (AnomalyModel.model_name)."""


def inference_graph(model: AnomalyModel) -> Graph:
    """The model as one traceable graph on the CPU (its `class_names`, `image_size` and `model_name` go to the
    sidecar); ConfigError for a model that cannot be one."""
    name = getattr(model, "model_name", "")  # an API caller may pass any module: one without a name has no graph
    if name == ANOMALYSD:
        raise ConfigError(ANOMALYSD_REFUSAL)
    build = GRAPHS.get(name)
    if build is None:
        raise ConfigError(f"ONNX export supports PatchCore, PaDiM, kNN, OneNIP and UniAD runs; this run's model is a "
                          f"{type(model).__name__}. Fix: export a run trained with one of those --model choices")
    return build(model)


def export_onnx(model: AnomalyModel, out: str | Path, run_dir: str | Path | None = None, opset: int = DEFAULT_OPSET,
                check_images: np.ndarray | None = None) -> ExportReport:
    """Write `out` (.onnx) and its sidecar atomically, after checking onnxruntime against PyTorch on
    `check_images` (uint8 B x 3 x H x W; default: 2 random images at the model size)."""
    out = Path(out)
    if out.suffix != ".onnx":
        raise ConfigError(f"--out {out} must end in .onnx (the sidecar JSON is written next to it)")
    check_opset(opset)
    graph = inference_graph(model)
    size = graph.image_size
    meta = sidecar(graph, run_dir, opset, {})
    atomic_write(out, lambda tmp: trace_to_onnx(graph, tmp, size, opset, {SEAL_KEY: sealed_digest(meta)}))
    if check_images is None:
        check_images = np.random.default_rng(0).integers(0, 256, (2, 3, size, size), dtype=np.uint8)
    diffs = compare(graph, out, check_images)
    atomic_write_json(sidecar_path(out), {**meta, "check": diffs, "onnx_sha256": integrity.digest(out)})
    return ExportReport(out, sidecar_path(out), diffs["max_score_diff"], diffs["max_map_diff"], diffs["same_prompts"],
                        diffs["max_score"])


def trace_to_onnx(graph: nn.Module, path: Path, size: int, opset: int,
                  metadata: dict[str, str] | None = None) -> None:
    """Trace `graph` on a batch of 2 model-size images into `path`, batch size and image size dynamic, with
    `metadata` in the model's metadata_props; validate it.

    The TorchScript-tracing exporter: it converts this graph in seconds where the dynamo exporter takes minutes on
    a 2-core machine; the graph has no data-dependent control flow, so the trace is exact for every input shape.
    """
    example = torch.zeros(2, 3, size, size, dtype=torch.uint8)
    batch = {0: "batch"}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # tracer warnings about shapes read as Python values: checked by `compare`
        torch.onnx.export(
            graph, (example,), str(path), dynamo=False, opset_version=opset, input_names=[INPUT],
            output_names=list(OUTPUTS), do_constant_folding=True,
            dynamic_axes={INPUT: {0: "batch", 2: "height", 3: "width"}, **{name: batch for name in OUTPUTS}},
        )
    if metadata:
        proto = onnx.load(str(path))
        for key, value in metadata.items():
            entry = proto.metadata_props.add()
            entry.key, entry.value = key, value
        onnx.save(proto, str(path))
    try:
        onnx.checker.check_model(str(path), full_check=True)
    except onnx.checker.ValidationError as err:
        raise CheckpointError(f"the exported graph failed ONNX validation ({err}); try another --opset") from err


def compare(graph: nn.Module, onnx_path: Path, images: np.ndarray) -> dict[str, Any]:
    """Largest absolute differences between onnxruntime and PyTorch on `images`, the largest |score|, and whether
    prompts agree."""
    from nipad.export.onnx_runner import session

    score, amap, index = session(onnx_path).run(None, {INPUT: images})
    ref_score, ref_map, ref_index = (t.numpy() for t in graph(torch.from_numpy(images)))
    return {"max_score_diff": float(np.abs(score - ref_score).max()), "max_score": float(np.abs(ref_score).max()),
            "max_map_diff": float(np.abs(amap - ref_map).max()),
            "same_prompts": bool((index == ref_index).all()), "check_batch": len(images)}


def sidecar(graph: Any, run_dir: str | Path | None, opset: int, diffs: dict[str, Any]) -> dict[str, Any]:
    size = graph.image_size
    calibration = None
    if run_dir is not None and (Path(run_dir) / CALIBRATION).is_file():
        calibration = Calibration.load(run_dir).to_dict()
    return {
        "format": FORMAT, "nipad_version": __version__, "model": graph.model_name, "image_size": size,
        "opset": opset, "run_dir": str(run_dir) if run_dir is not None else None,
        "input": {"name": INPUT, "dtype": "uint8", "layout": "NCHW", "channels": "RGB",
                  "shape": ["batch", 3, "height", "width"],
                  "resize": "inside the graph to image_size x image_size (antialiased bilinear, as PIL)"},
        "outputs": {"pred_score": ["batch"], "anomaly_map": ["batch", 1, size, size], "prompt_index": ["batch"]},
        "prompt_classes": graph.class_names,
        "calibration": calibration,
        "check": diffs,
    }
