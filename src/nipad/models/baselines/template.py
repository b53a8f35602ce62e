"""What the feature-statistics baselines (PatchCore, PaDiM) share: the frozen backbone, one fitted state per class
(`separate` mode, the class given at test time) or one for all classes (`unified`), the class-mean descriptors that
name a test image's class when none is given, and the upsampled, Gaussian-smoothed anomaly map (sigma 4, as both
papers). The model answers every nipad model's call (nipad.models.output): images uint8 (B, 3, S, S) -> ModelOutput.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any, ClassVar

import torch
import torch.nn.functional as F
from torch import Tensor
from torchvision.transforms.functional import gaussian_blur

from nipad.errors import ConfigError, DataError
from nipad.models.backbone import Backbone, create_backbone
from nipad.models.image_size import check_image_size
from nipad.models.names import MODES, SEED
from nipad.models.output import ModelModule, ModelOutput
from nipad.models.prompt_pool import descriptor
from nipad.settings_base import Settings


@dataclass(frozen=True)
class BaselineConfig(Settings):
    """Settings every baseline has; a method's config adds its own fields. Saved in the run's config.json."""

    model: ClassVar[str] = ""
    recorded_keys = frozenset({"model"})
    mode: str = "unified"
    backbone: str = "lite0"
    backbone_weights: str | None = None
    image_size: int = 224
    seed: int = SEED
    blur_sigma: float = 4.0

    def __post_init__(self) -> None:
        if self.mode not in MODES:
            raise ConfigError(f"unknown --mode {self.mode!r}; choose one of {', '.join(MODES)}")
        check_image_size(self.image_size)

    def __init_subclass__(cls) -> None:
        super().__init_subclass__()
        cls.settings_name = cls.model

    def to_dict(self) -> dict[str, Any]:
        return {"model": self.model, **super().to_dict()}


def smooth_map(patch_scores: Tensor, size: int, sigma: float) -> Tensor:
    """(B, 1, h, w) patch scores -> (B, 1, size, size): bilinear upsampling then a Gaussian blur (truncated at
    4 sigma, as scipy's gaussian_filter the papers use)."""
    maps = F.interpolate(patch_scores, size=(size, size), mode="bilinear", align_corners=False)
    if sigma <= 0:
        return maps
    radius = min(int(4 * sigma + 0.5), size - 1)
    return gaussian_blur(maps, kernel_size=[2 * radius + 1] * 2, sigma=[sigma, sigma])


class PatchBaseline(ModelModule):
    """Base of PatchCore and PaDiM. Subclasses define `embed`, `fit_group` and `score_group`.

    Fitted tensors of group i are buffers named `<key>_<i>`; `groups` names the groups (class names, or `__all__`).
    """

    takes_class: ClassVar[bool] = True  # evaluation passes each image's ground-truth class (used in separate mode)
    # no prompt pool (ModelModule's None): the class-mean descriptors name a class, but no prompt can be added to them
    state_keys: ClassVar[tuple[str, ...]] = ()  # what `fit_group` returns

    def __init__(self, config: BaselineConfig, backbone: Backbone | None = None) -> None:
        super().__init__()
        self.config = config
        self.backbone = backbone or create_backbone(config.backbone, config.backbone_weights)
        self.groups: list[str] = []
        self.class_names: list[str] = []
        self.register_buffer("class_means", torch.empty(0))

    @property
    def model_name(self) -> str:
        return self.config.model

    def backbone_maps(self, images: Tensor, strides: Sequence[int]) -> list[Tensor]:
        """The backbone's maps at `strides` for uint8 (or [0, 1] float) images."""
        if images.dtype == torch.uint8:
            images = images.float() / 255.0
        maps = dict(zip(self.backbone.strides, self.backbone(images), strict=True))
        missing = [s for s in strides if s not in maps]
        if missing:
            raise ConfigError(f"backbone {self.config.backbone} has no feature map at stride {missing[0]}")
        return [maps[s] for s in strides]

    def embed(self, images: Tensor) -> Tensor:
        """Images -> (B, C, h, w) patch embeddings."""
        raise NotImplementedError

    def fit_group(self, embeddings: Iterator[Tensor]) -> dict[str, Tensor]:
        """The fitted tensors of one group from its (B, C, h, w) embedding batches."""
        raise NotImplementedError

    def score_group(self, group: int, embeddings: Tensor) -> tuple[Tensor, Tensor | None]:
        """Patch scores (B, 1, h, w) against group `group`, and image scores (B,) or None (max of the map)."""
        raise NotImplementedError

    def describe(self, group: int) -> str:
        """Size of the fitted state of `group`, for the training log."""
        raise NotImplementedError

    def group_state(self, group: int, key: str) -> Tensor:
        return getattr(self, f"{key}_{group}")

    @torch.no_grad()
    def fit(self, groups: Mapping[str, Iterable[tuple[Tensor, Sequence[str]]]]) -> None:
        """Fit one state per group from its batches of (uint8 images, class names); also the class-mean descriptors."""
        sums: dict[str, Tensor] = {}

        def embedded(group: str, batches: Iterable[tuple[Tensor, Sequence[str]]]) -> Iterator[Tensor]:
            count = 0
            for images, names in batches:
                if not len(images):
                    continue
                emb = self.embed(images)
                for name, d in zip(names, descriptor(emb), strict=True):
                    sums[name] = sums[name] + d if name in sums else d.clone()
                count += len(images)
                yield emb
            if count == 0:
                where = "any class" if self.config.mode == "unified" else f"class {group!r}"
                raise DataError(f"no readable training image for {where}: {self.config.model} has nothing to fit")

        self.groups = []
        for index, (name, batches) in enumerate(groups.items()):
            for key, tensor in self.fit_group(embedded(name, batches)).items():
                self.register_buffer(f"{key}_{index}", tensor)
            self.groups.append(name)
        self.class_names = sorted(sums)
        self.class_means = F.normalize(torch.stack([sums[c] for c in self.class_names]), dim=1)

    def state_tensors(self) -> dict[str, Tensor]:
        """Everything fitted (the frozen backbone is rebuilt from its weights, not stored)."""
        return {k: v.detach().cpu().contiguous() for k, v in self.state_dict().items() if not k.startswith("backbone.")}

    def load_state(self, groups: Sequence[str], class_names: Sequence[str], tensors: Mapping[str, Tensor]) -> None:
        self.groups, self.class_names = list(groups), list(class_names)
        for key, tensor in tensors.items():
            self.register_buffer(key, tensor.to(self.class_means.device))

    def nearest_class(self, embeddings: Tensor) -> list[str]:
        """The class whose mean descriptor is most cosine-similar to each image's."""
        index = (descriptor(embeddings) @ self.class_means.to(embeddings.device).T).argmax(dim=1)
        return [self.class_names[i] for i in index.tolist()]

    def _group_indices(self, classes: Sequence[str]) -> list[int]:
        if self.config.mode == "unified":
            return [0] * len(classes)
        unknown = sorted(set(classes) - set(self.groups))
        if unknown:
            raise DataError(f"class {unknown[0]!r} has no {self.config.model} model in this run (separate mode; "
                            f"trained classes: {', '.join(self.groups)}); train on it or use --mode unified")
        return [self.groups.index(c) for c in classes]

    @torch.no_grad()
    def forward(self, images: Tensor, classes: Sequence[str] | None = None) -> ModelOutput:
        """Anomaly map (B, 1, S, S) and image score (B,). In separate mode the given `classes` pick each image's
        model; without them, the nearest class-mean descriptor does (reported as prompt_class)."""
        emb = self.embed(images)
        named = self.nearest_class(emb)
        used = list(classes) if classes is not None and self.config.mode == "separate" else named
        index = torch.tensor(self._group_indices(used))
        patch = emb.new_empty(len(emb), 1, *emb.shape[-2:])
        scores: Tensor | None = emb.new_empty(len(emb))
        for group in index.unique().tolist():
            rows = (index == group).nonzero().flatten().to(emb.device)
            group_patch, group_scores = self.score_group(group, emb[rows])
            patch[rows] = group_patch
            if group_scores is None:
                scores = None
            elif scores is not None:
                scores[rows] = group_scores
        anomaly_map = smooth_map(patch, self.config.image_size, self.config.blur_sigma)
        if scores is None:
            scores = anomaly_map.flatten(1).max(dim=1).values
        return ModelOutput(pred_score=scores, anomaly_map=anomaly_map, prompt_class=used, rec_map=None, ref_map=None)
