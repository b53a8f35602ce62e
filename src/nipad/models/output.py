"""What every nipad model answers, so evaluation, prediction, calibration, the report, the service and the export
take any family without probing its class.

A model is called on uint8 images (B, 3, S, S), S = `model.config.image_size`, and returns a `ModelOutput`. Families
whose maps depend on the class (separate-mode baselines) set `takes_class` and take `classes=` as well.
"""

from __future__ import annotations

from itertools import chain
from typing import NotRequired, Protocol, TypedDict

import torch
from torch import Tensor, nn

from nipad.models.prompt_pool import PromptPool


class ModelOutput(TypedDict):
    """One batch's scores, maps and classes (a dict, so the ONNX export and older callers read it as before)."""

    pred_score: Tensor  # (B,) image scores
    anomaly_map: Tensor  # (B, 1, S, S)
    prompt_class: list[str] | list[str | None] | None  # the class each image was matched to; None: no class pool
    rec_map: NotRequired[Tensor | None]  # the family's first map before fusion (absent or None where it has none)
    ref_map: NotRequired[Tensor | None]  # its second map (OneNIP's refiner, AnomalySD's prototype map)
    match_map: NotRequired[Tensor | None]  # its third map (OneNIP's prompt-token matching)


class SizedConfig(Protocol):
    @property
    def image_size(self) -> int: ...


class AnomalyModel(Protocol):
    """A loaded model of any family, in eval mode."""

    @property
    def config(self) -> SizedConfig: ...

    @property
    def model_name(self) -> str:
        """The `--model` it was trained as (nipad.models.names.MODELS): onenip, uniad, patchcore, padim, knn, ..."""

    @property
    def device(self) -> torch.device:
        """Where its weights are: the device its input batches go to."""

    @property
    def takes_class(self) -> bool:
        """Whether evaluation passes each image's ground-truth class as `classes=` (separate-mode baselines)."""

    @property
    def prompt_pool(self) -> PromptPool | None:
        """The prompt pool `nipad prompt add` extends (OneNIP, UniAD); None for a family without one."""

    def __call__(self, images: Tensor) -> ModelOutput: ...


def module_device(module: nn.Module) -> torch.device:
    """The device of `module`'s first parameter or buffer (the CPU for a module with neither)."""
    first = next(chain(module.parameters(), module.buffers()), None)
    return torch.device("cpu") if first is None else first.device


class ModelModule(nn.Module):
    """The base of every family's model module: the protocol's `device`, and no prompt pool unless the family has
    one that `nipad prompt add` can extend (it then overrides `prompt_pool`)."""

    @property
    def device(self) -> torch.device:
        return module_device(self)

    @property
    def prompt_pool(self) -> PromptPool | None:
        return None
