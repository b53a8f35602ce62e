"""`nipad train`'s parser: each model gets the common flags and its own, so a flag it does not take, or a value out
of its range, is refused by the parser (exit 2, naming the flag) before any work; `--help` lists the model's flags."""

from __future__ import annotations

import pytest

from nipad.cli.main import build_parser, main
from nipad.cli.train_cmd import chosen_model

COMMON = {"--data", "--classes", "--model", "--out", "--overwrite", "--image-size", "--backbone", "--backbone-weights",
          "--batch-size", "--shots", "--seed", "--device", "--false-alarm-rate", "--help", "-h"}
UNIAD = {"--preset", "--epochs", "--lr", "--warmup-steps", "--max-steps", "--neck", "--fp32", "--fusion"}
OWN = {  # the flags each model read before they were made from its options (the table `READS` of nipad 0.x)
    "onenip": UNIAD | {"--decoder", "--no-restoration", "--no-refiner", "--texture-dir", "--synthetic-pool",
                       "--workers", "--prompt-neighbours", "--prompts-per-class", "--fusion-weight",
                       "--prompt-matching", "--no-prompt-matching", "--match-coreset", "--score-map",
                       "--mask-final-attention"},
    "uniad": UNIAD,
    "patchcore": {"--mode", "--coreset-ratio"},
    "padim": {"--mode", "--padim-dims"},
    "knn": {"--mode"},
    "anomalysd": {"--epochs", "--lr", "--sd-model", "--sd-steps", "--sd-lambda", "--sd-scales", "--sd-mask-batch",
                  "--sd-prompts", "--sd-decoder-epochs", "--perceptual", "--sd-save-minutes"},
}


def _train_flags(model: str) -> set[str]:
    parser = build_parser()
    parser.parse_args(["train", "--data", "d", "--out", "o", "--model", model])  # adds the model's flags
    sub = next(a for a in parser._actions if a.dest == "command")
    return {flag for action in sub.choices["train"]._actions for flag in action.option_strings}


@pytest.mark.parametrize("model", sorted(OWN))
def test_each_model_takes_the_common_flags_and_exactly_the_ones_it_reads(model):
    assert _train_flags(model) == COMMON | OWN[model]


@pytest.mark.parametrize("argv, flag", [
    (["--model", "onenip", "--coreset-ratio", "0.1"], "--coreset-ratio"),
    (["--model", "uniad", "--no-refiner"], "--no-refiner"),
    (["--model", "patchcore", "--epochs", "3"], "--epochs"),
    (["--model", "patchcore", "--lr", "1"], "--lr"),
    (["--model", "padim", "--fp32"], "--fp32"),
    (["--model", "padim", "--coreset-ratio", "0.1"], "--coreset-ratio"),
    (["--model", "knn", "--sd-save-minutes", "0"], "--sd-save-minutes"),
    (["--model", "anomalysd", "--shots", "1", "--mode", "separate"], "--mode"),
])
def test_a_flag_the_model_does_not_take_is_refused(tmp_path, capsys, argv, flag):
    with pytest.raises(SystemExit) as end:
        main(["train", "--data", str(tmp_path), "--out", str(tmp_path / "r"), *argv])
    assert end.value.code == 2
    err = capsys.readouterr().err
    assert f"unrecognized arguments: {flag}" in err and f"--model {argv[1]} takes no such flag" in err
    assert not (tmp_path / "r").exists()


@pytest.mark.parametrize("argv, expected", [
    (["--model", "onenip", "--fusion-weight", "1.5"], "argument --fusion-weight: must be in [0, 1], got 1.5"),
    (["--model", "onenip", "--match-coreset", "nan"], "argument --match-coreset: must be in [0, 1], got nan"),
    (["--model", "onenip", "--synthetic-pool", "-1"], "argument --synthetic-pool: must be at least 0, got -1"),
    (["--model", "onenip", "--prompts-per-class", "0"], "argument --prompts-per-class: must be at least 1, got 0"),
    (["--model", "uniad", "--epochs", "0"], "argument --epochs: must be at least 1, got 0"),
    (["--model", "uniad", "--lr", "inf"], "argument --lr: must be in (0, inf), got inf"),
    (["--model", "anomalysd", "--epochs", "-1"], "argument --epochs: must be at least 0, got -1"),
    (["--model", "anomalysd", "--sd-steps", "0"], "argument --sd-steps: must be at least 1, got 0"),
    (["--model", "patchcore", "--coreset-ratio", "0"], "argument --coreset-ratio: must be in (0, 1], got 0"),
    (["--model", "padim", "--padim-dims", "0"], "argument --padim-dims: must be at least 1, got 0"),
    (["--model", "knn", "--false-alarm-rate", "1"], "argument --false-alarm-rate: must be in (0, 1), got 1"),
    (["--model", "knn", "--batch-size", "0"], "argument --batch-size: must be at least 1, got 0"),
])
def test_an_out_of_range_value_is_refused_by_the_parser(tmp_path, capsys, argv, expected):
    with pytest.raises(SystemExit) as end:
        main(["train", "--data", str(tmp_path), "--out", str(tmp_path / "r"), *argv])
    assert end.value.code == 2 and expected in capsys.readouterr().err


@pytest.mark.parametrize("model, shown, absent", [
    ("patchcore", ["--coreset-ratio R", "fraction of the training patches kept", "--mode"], ["--lr", "--sd-model"]),
    ("anomalysd", ["--sd-lambda [CLASS=]VALUE", "denoising starts at step lambda*T"], ["--mode {", "--preset"]),
    ("onenip", ["--preset {cpu,nipad,paper}", "--prompt-matching, --no-prompt-matching"], ["--padim-dims"]),
])
def test_help_lists_the_model_s_flags_only(capsys, model, shown, absent):
    with pytest.raises(SystemExit) as end:
        main(["train", "--model", model, "--help"])
    out = capsys.readouterr().out
    assert end.value.code == 0 and "--false-alarm-rate RATE" in out
    assert all(text in out for text in shown) and not any(flag in out for flag in absent)


def test_without_model_the_help_is_onenip_s():
    with pytest.raises(SystemExit):
        main(["train", "--help"])
    assert chosen_model([]) == "onenip"


def test_the_model_is_the_last_one_given_before_a_double_dash():
    assert chosen_model(["--data", "d", "--model", "knn", "--model=padim"]) == "padim"
    assert chosen_model(["--model", "knn", "--", "--model", "padim"]) == "knn"
    assert chosen_model(["--mode", "separate"]) == "onenip"


def test_an_unknown_model_is_refused_with_the_choices(tmp_path, capsys):
    with pytest.raises(SystemExit):
        main(["train", "--data", str(tmp_path), "--out", str(tmp_path / "r"), "--model", "vae", "--lr", "1"])
    assert "invalid choice: 'vae'" in capsys.readouterr().err
