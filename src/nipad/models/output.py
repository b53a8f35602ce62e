"""What every nipad model answers, so evaluation, prediction, calibration, the report and the service take any family.

A model is called on uint8 images (B, 3, S, S), S = `model.config.image_size`, and returns a `ModelOutput`. Families
whose maps depend on the class (separate-mode baselines) set `takes_class` and take `classes=` as well.
"""

from __future__ import annotations

from typing import NotRequired, Protocol, TypedDict

from torch import Tensor


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

    def __call__(self, images: Tensor) -> ModelOutput: ...
