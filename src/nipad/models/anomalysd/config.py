"""AnomalySD settings: inference (saved in the run's config.json) and fine-tuning (saved beside them).

Defaults are the paper's: 512 x 512 inputs, 50 denoising steps started at lambda * T with lambda = 0.4, k x k mask
grids for k in {1, 2, 4, 8}, alpha = 0.1 for the prototype map, a Gaussian blur of sigma 4, LPIPS (AlexNet) as the
perceptual distance; fine-tuning with Adam at
1e-4, batch 8, 4000 epochs for the denoising UNet and (optionally) 200 for the VAE decoder, training-mask IoU
thresholds gamma drawn from {0, 0.2, 0.5}.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any, Self

from nipad.errors import ConfigError
from nipad.models.names import SEED
from nipad.settings_base import Settings

MODEL = "anomalysd"
PERCEPTUAL = ("lpips", "lite0")


@dataclass(frozen=True)
class AnomalySDConfig(Settings):
    """How a run infers. `strength` is the paper's lambda (denoising starts at step lambda * T of `steps`);
    `class_strength` overrides it per class. `mask_batch` inpaintings share one UNet batch. `perceptual` is the
    distance of the maps and of the decoder loss: "lpips" (the paper's) or "lite0" (the stand-in)."""

    settings_name = MODEL
    recorded_keys = frozenset({"model"})
    sd_model: str
    shots: int
    image_size: int = 512
    steps: int = 50
    strength: float = 0.4
    class_strength: Mapping[str, float] = field(default_factory=dict)
    scales: tuple[int, ...] = (1, 2, 4, 8)
    alpha: float = 0.1
    blur_sigma: float = 4.0
    mask_batch: int = 8
    rotations: tuple[int, ...] = (0, 90, 180, 270)
    backbone: str = "lite0"
    backbone_weights: str | None = None
    prompts_file: str | None = None
    perceptual: str = "lpips"
    seed: int = SEED

    def __post_init__(self) -> None:
        object.__setattr__(self, "scales", tuple(int(k) for k in self.scales))
        object.__setattr__(self, "rotations", tuple(int(r) for r in self.rotations))
        object.__setattr__(self, "class_strength", {str(k): float(v) for k, v in self.class_strength.items()})
        if self.shots < 0:
            raise ConfigError(f"--shots must be 0 or more, got {self.shots}")
        if self.image_size < 32:
            raise ConfigError(f"--image-size must be at least 32, got {self.image_size}")
        if self.steps < 1:
            raise ConfigError(f"--sd-steps must be at least 1, got {self.steps}")
        for name, value in [("default", self.strength), *self.class_strength.items()]:
            if not 0.0 < value <= 1.0 or int(self.steps * value) < 1:
                raise ConfigError(f"--sd-lambda {name}={value}: lambda must be in (0, 1] and leave at least one of "
                                  f"the {self.steps} denoising steps (lambda * steps >= 1)")
        if not self.scales or any(k < 1 or k > self.image_size for k in self.scales) or len(set(self.scales)) < len(
                self.scales):
            raise ConfigError(
                f"--sd-scales must be distinct grid sizes between 1 and the image size, got {self.scales}"
            )
        if not 0.0 <= self.alpha <= 1.0:
            raise ConfigError(f"alpha must be in [0, 1], got {self.alpha}")
        if self.mask_batch < 1:
            raise ConfigError(f"--sd-mask-batch must be at least 1, got {self.mask_batch}")
        if self.perceptual not in PERCEPTUAL:
            raise ConfigError(f"--perceptual must be one of {', '.join(PERCEPTUAL)}, got {self.perceptual!r}")
        if any(r % 90 for r in self.rotations) or not self.rotations:
            raise ConfigError(f"prototype rotations must be multiples of 90 degrees, got {self.rotations}")

    def strength_of(self, class_name: str | None) -> float:
        return self.class_strength.get(class_name or "", self.strength)

    def to_dict(self) -> dict[str, Any]:
        return {"model": MODEL, **super().to_dict()}

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """Runs saved before `perceptual` existed used the Lite0 stand-in."""
        return super().from_dict({"perceptual": "lite0", **data})


@dataclass(frozen=True)
class FinetuneConfig(Settings):
    """How the shots fine-tune the model. Augmentations (paper: contrast, brightness, scale, rotation): brightness
    and contrast factors drawn from [1 - x, 1 + x], scale from `scale`, rotation from [-rotation, rotation] degrees."""

    settings_name = MODEL
    epochs: int = 4000
    decoder_epochs: int = 0
    batch_size: int = 8
    lr: float = 1e-4
    gammas: tuple[float, ...] = (0.0, 0.2, 0.5)
    brightness: float = 0.1
    contrast: float = 0.1
    scale: tuple[float, float] = (0.9, 1.1)
    rotation: float = 15.0
    perceptual_weight: float = 0.1
    seed: int = SEED

    def __post_init__(self) -> None:
        object.__setattr__(self, "gammas", tuple(float(g) for g in self.gammas))
        object.__setattr__(self, "scale", tuple(float(s) for s in self.scale))
        if self.epochs < 0 or self.decoder_epochs < 0:
            raise ConfigError(f"epochs must be 0 or more, got {self.epochs} and {self.decoder_epochs}")
        if self.batch_size < 1 or self.lr <= 0:
            raise ConfigError(f"--batch-size must be >= 1 and --lr > 0, got {self.batch_size} and {self.lr}")
        if not self.gammas or any(not 0.0 <= g < 1.0 for g in self.gammas):
            raise ConfigError(f"training-mask IoU thresholds must be in [0, 1), got {self.gammas}")
