"""Hierarchical text prompts of AnomalySD (paper section 4.1): per class the coarse "A perfect {class}." plus
finer descriptions of its normal appearance from prompts.yaml (MVTec AD and VisA classes) and an optional user file,
and their CLIP encodings: a random one per training image, their average as the class's condition at inference."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

import torch
import yaml
from torch import Tensor

from nipad.errors import ConfigError

DEFAULT_FILE = Path(__file__).with_name("prompts.yaml")
COARSE = "A perfect {name}."


def readable_name(class_name: str) -> str:
    """`visa/pcb1` -> `pcb`, `metal_nut` -> `metal nut`: the last path part, "_" as spaces, trailing digits off."""
    name = class_name.rsplit("/", 1)[-1].replace("_", " ").strip()
    return re.sub(r"\s*\d+$", "", name) or name


def _read(path: Path) -> dict[str, dict[str, Any]]:
    """{class: {"name": str | None, "prompts": [str]}} from a prompts YAML file, checked."""
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except (OSError, yaml.YAMLError) as err:
        raise ConfigError(f"cannot read the prompts file {path}: {err}") from err
    if not isinstance(data, dict):
        raise ConfigError(f"{path} must map class names to {{name: ..., prompts: [...]}} or to a list of prompts")
    table = {}
    for cls, entry in data.items():
        entry = {"prompts": entry} if isinstance(entry, list) else entry
        prompts = entry.get("prompts", []) if isinstance(entry, dict) else None
        name = entry.get("name") if isinstance(entry, dict) else None
        if not isinstance(prompts, list) or not all(isinstance(p, str) and p.strip() for p in prompts) or not (
                name is None or isinstance(name, str)):
            raise ConfigError(f"{path}: class {cls!r} needs a list of non-empty prompt strings (and an optional "
                              "string `name`)")
        table[str(cls)] = {"name": name, "prompts": [p.strip() for p in prompts]}
    return table


def load_prompt_table(extra: str | Path | None = None) -> dict[str, dict[str, Any]]:
    """The shipped table with the user's file (if any) merged in: new classes added, prompts appended, names
    replaced."""
    table = _read(DEFAULT_FILE)
    if extra is not None:
        path = Path(extra)
        if not path.is_file():
            raise ConfigError(f"prompts file {path} does not exist; pass a YAML file like {DEFAULT_FILE.name}")
        for cls, entry in _read(path).items():
            old = table.get(cls, {"name": None, "prompts": []})
            table[cls] = {"name": entry["name"] or old["name"],
                          "prompts": old["prompts"] + [p for p in entry["prompts"] if p not in old["prompts"]]}
    return table


def class_prompts(class_name: str, table: Mapping[str, Mapping[str, Any]]) -> list[str]:
    """T_c = T_c^1 + T_c^2: the coarse prompt then the fine ones (looked up by the full name, then by the name
    without a data-set prefix); a class the table lacks gets the coarse prompt only."""
    entry = table.get(class_name) or table.get(class_name.rsplit("/", 1)[-1]) or {}
    name = entry.get("name") or readable_name(class_name)
    return [COARSE.format(name=name), *entry.get("prompts", [])]


@torch.no_grad()
def encode_prompts(text_encoder: torch.nn.Module | None, tokenizer: Any, prompts: Sequence[str]) -> Tensor:
    """CLIP text-encoder states tau(y) of each prompt, (n, L, D), padded to the tokenizer's length. `text_encoder` is
    None once a model is built from the SD parts (SDParts.text_encoder is dropped then): refused."""
    if text_encoder is None:
        raise ValueError("the SD parts' text encoder was dropped when a model was built from them: load them again")
    device = next(text_encoder.parameters()).device
    ids = tokenizer(list(prompts), padding="max_length", max_length=tokenizer.model_max_length, truncation=True,
                    return_tensors="pt").input_ids.to(device)
    return text_encoder(ids)[0].float()
