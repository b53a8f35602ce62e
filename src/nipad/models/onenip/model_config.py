"""Typed model configuration and the named presets (`paper` for a GPU, `cpu` for a 2-core machine)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from nipad.errors import ConfigError
from nipad.models.image_size import check_image_size
from nipad.models.names import NECKS
from nipad.settings_base import Settings

MODELS = ("onenip", "uniad")
DECODERS = ("dynamic", "static")
FUSIONS = ("fixed", "validated")
SCORE_MAPS = ("anomaly", "match")


@dataclass(frozen=True)
class ModelConfig(Settings):
    """Everything needed to rebuild a reconstruction model; saved with every checkpoint.

    `decoder` picks OneNIP's prompt decoder: `dynamic` (bidirectional, default) or `static` (the unidirectional
    ablation); it is ignored for `uniad`. `neighbour_size` None means the authors' rule feature_size // 2
    (a 7x7 window at 224). `neck` is how the backbone's maps become tokens (nipad.models.neck: `mfcn`, the
authors', or `pooled`). `restoration` and `refiner` switch OneNIP's two extra streams (the ablation rows).
    `mask_final_attention` neighbour-masks the decoder's final prompt -> image attention (the authors leave it open).
    `fusion` `fixed` is the authors' anomaly map, (1 - fusion_weight) x the reconstruction map + fusion_weight x c x
    the refiner's; `validated` (nipad's) standardises each map on held-out normal images and averages those that
    detect the run's own validation pseudo anomalies, chosen at the end of training (`nipad.engine.fusion`).
    `bce_weight` adds a binary cross-entropy term to the refiner's Dice loss (nipad.models.onenip.objective).
    `prompt_matching` adds a third map: each token's distance to the nearest token of its class's prompt images
    (`nipad.models.onenip.matching`; OneNIP only, with `validated` fusion). `match_coreset` above 0 matches against a
    greedy coreset of that share of each class's training tokens instead (a PatchCore-like bank per class).
    `score_map` is where the image score is taken: the peak of the `anomaly` map, or of the `match` map when it
    passes validation (the anomaly map otherwise).
    """

    settings_name = "model"
    model: str = "onenip"
    decoder: str = "dynamic"
    backbone: str = "lite0"
    backbone_weights: str | None = None
    neck: str = "mfcn"
    image_size: int = 224
    hidden_dim: int = 256
    heads: int = 8
    encoder_layers: int = 4
    decoder_layers: int = 4
    ffn_dim: int = 1024
    dropout: float = 0.1
    neighbour_size: int | None = None
    mask_final_attention: bool = False
    jitter_scale: float = 20.0
    jitter_prob: float = 1.0
    restoration: bool = True
    refiner: bool = True
    refiner_channels: int = 128
    dice_weight: float = 0.5
    bce_weight: float = 0.0
    fusion_weight: float = 0.5
    fusion: str = "fixed"
    prompt_matching: bool = False
    match_coreset: float = 0.0
    score_map: str = "anomaly"
    score_pool: int = 16

    def __post_init__(self) -> None:
        if self.model not in MODELS:
            raise ConfigError(f"unknown model {self.model!r}; choose one of {', '.join(MODELS)}")
        if self.neck not in NECKS:
            raise ConfigError(f"unknown neck {self.neck!r}; choose one of {', '.join(NECKS)}")
        if self.decoder not in DECODERS:
            raise ConfigError(f"unknown decoder {self.decoder!r}; choose one of {', '.join(DECODERS)}")
        check_image_size(self.image_size)
        if not 0.0 <= self.fusion_weight <= 1.0:
            raise ConfigError(f"--fusion-weight must be in [0, 1], got {self.fusion_weight}")
        if self.fusion not in FUSIONS:
            raise ConfigError(f"unknown fusion {self.fusion!r}; choose one of {', '.join(FUSIONS)}")
        if self.prompt_matching and (self.model != "onenip" or self.fusion != "validated"):
            raise ConfigError("prompt matching needs --model onenip and --fusion validated")
        if not 0.0 <= self.match_coreset <= 1.0:
            raise ConfigError(f"--match-coreset must be in [0, 1], got {self.match_coreset}")
        if self.score_map not in SCORE_MAPS:
            raise ConfigError(f"unknown score map {self.score_map!r}; choose one of {', '.join(SCORE_MAPS)}")
        if (self.match_coreset > 0 or self.score_map == "match") and not self.prompt_matching:
            raise ConfigError("--match-coreset and --score-map match need prompt matching (--prompt-matching)")
        if self.hidden_dim % self.heads:
            raise ConfigError(f"hidden size {self.hidden_dim} is not divisible by {self.heads} heads")

    @property
    def feature_size(self) -> int:
        return self.image_size // 16

    @property
    def window(self) -> int:
        return self.neighbour_size if self.neighbour_size is not None else self.feature_size // 2

    @property
    def uses_prompt(self) -> bool:
        return self.model == "onenip"

    @property
    def uses_refiner(self) -> bool:
        return self.model == "onenip" and self.refiner

    @property
    def uses_restoration(self) -> bool:
        return self.model == "onenip" and self.restoration


CPU_NETWORK: dict[str, Any] = {"hidden_dim": 128, "heads": 4, "encoder_layers": 2, "decoder_layers": 2,
                                "ffn_dim": 512, "refiner_channels": 64, "dropout": 0.0, "neck": "pooled"}
"""The network for a 2-core machine: smaller, no dropout, the `pooled` neck (how each was chosen:
docs/decisions.md)."""

PRESETS: dict[str, dict[str, Any]] = {
    "paper": {},
    "cpu": {**CPU_NETWORK},
    "nipad": {**CPU_NETWORK, "fusion": "validated", "prompt_matching": True, "match_coreset": 0.1,
              "score_map": "match"},
}
"""`paper`: the authors' OneNIP (for a GPU); `cpu`: their method on the CPU network; `nipad`: nipad's own model, the
default without a GPU (docs/decisions.md, docs/nipad-model.md)."""


def preset(name: str, model: str = "onenip", **overrides: Any) -> ModelConfig:
    """The named preset for `model`, with overrides (None values are ignored); UniAD has no prompt to match, and
    turning matching off turns off what builds on it."""
    if name not in PRESETS:
        raise ConfigError(f"unknown preset {name!r}; choose one of {', '.join(PRESETS)}")
    no_matching = {"prompt_matching": False, "match_coreset": 0.0, "score_map": "anomaly"}
    off = model != "onenip" or overrides.get("prompt_matching") is False
    settings = {**PRESETS[name], **(no_matching if off else {})}
    return ModelConfig(model=model, **settings).with_overrides(**overrides)
