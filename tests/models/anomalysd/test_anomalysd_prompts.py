"""AnomalySD prompts: the shipped table, user extension, lookup of prefixed classes, CLIP encoding."""

from __future__ import annotations

import pytest

from nipad.errors import ConfigError
from nipad.models.anomalysd.text_prompts import (
    class_prompts,
    encode_prompts,
    load_prompt_table,
    readable_name,
)

MVTEC = ["bottle", "cable", "capsule", "carpet", "grid", "hazelnut", "leather", "metal_nut", "pill", "screw", "tile",
         "toothbrush", "transistor", "wood", "zipper"]
VISA = ["candle", "capsules", "cashew", "chewinggum", "fryum", "macaroni1", "macaroni2", "pcb1", "pcb2", "pcb3", "pcb4",
        "pipe_fryum"]


def test_defaults_cover_mvtec_and_visa_with_fine_prompts():
    table = load_prompt_table()
    for name in MVTEC + VISA:
        prompts = class_prompts(name, table)
        assert prompts[0].startswith("A perfect ") and prompts[0].endswith(".")
        assert len(prompts) >= 3 and len(set(prompts)) == len(prompts)
    assert class_prompts("metal_nut", table)[0] == "A perfect metal nut."
    assert class_prompts("toothbrush", table)[1] == "A toothbrush with intact structure and neatly arranged bristles."


def test_readable_names_and_unknown_or_prefixed_classes():
    assert readable_name("visa/pcb1") == "pcb" and readable_name("magnetic_tile") == "magnetic tile"
    table = load_prompt_table()
    assert class_prompts("magnetic_tile", table) == ["A perfect magnetic tile."]
    assert class_prompts("mvtec/bottle", table) == class_prompts("bottle", table)


def test_a_user_file_adds_classes_and_prompts(tmp_path):
    extra = tmp_path / "mine.yaml"
    extra.write_text("magnetic_tile:\n  name: magnetic tile surface\n  prompts:\n    - A tile with an even grey "
                     "surface.\nbottle:\n  - A shiny bottle.\n", encoding="utf-8")
    table = load_prompt_table(extra)
    assert class_prompts("magnetic_tile", table) == ["A perfect magnetic tile surface.",
                                                     "A tile with an even grey surface."]
    bottle = class_prompts("bottle", table)
    assert bottle[-1] == "A shiny bottle." and bottle[:-1] == class_prompts("bottle", load_prompt_table())


@pytest.mark.parametrize("text", ["- just a list\n", "bottle:\n  prompts: [1, 2]\n", "bottle: [\n"])
def test_a_bad_prompts_file_is_a_clear_error(tmp_path, text):
    bad = tmp_path / "bad.yaml"
    bad.write_text(text, encoding="utf-8")
    with pytest.raises(ConfigError, match="bad.yaml"):
        load_prompt_table(bad)
    with pytest.raises(ConfigError, match="does not exist"):
        load_prompt_table(tmp_path / "missing.yaml")


def test_prompts_encode_to_one_state_per_token(tiny_sd):
    from nipad.models.anomalysd.pipeline import load_sd

    parts = load_sd(tiny_sd)
    states = encode_prompts(parts.text_encoder, parts.tokenizer, class_prompts("bottle", load_prompt_table()))
    assert states.shape == (3, parts.tokenizer.model_max_length, parts.text_encoder.config.hidden_size)
    assert (states[0] - states[1]).abs().max() > 0  # different prompts, different states
