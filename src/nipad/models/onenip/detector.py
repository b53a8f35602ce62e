"""The detector a user trains and runs: frozen features + reconstruction network + prompt pool + score fusion."""

from __future__ import annotations

from typing import ClassVar, TypedDict

import torch
import torch.nn.functional as F
from torch import Tensor

from nipad.models.backbone import create_backbone
from nipad.models.neck import FeatureExtractor, create_neck
from nipad.models.onenip.fusion import MAPS, fuse, image_score
from nipad.models.onenip.matching import TokenBank, match_map, prompt_tokens
from nipad.models.onenip.model_config import ModelConfig
from nipad.models.onenip.network import ReconstructionNet
from nipad.models.output import ModelModule, ModelOutput
from nipad.models.prompt_pool import PromptPool


def upsample(maps: Tensor, size: int) -> Tensor:
    """Bilinear (align_corners=True) upsampling of (B, 1, h, w) maps, as the authors' UpsamplingBilinear2d."""
    return F.interpolate(maps, size=(size, size), mode="bilinear", align_corners=True)


class FusedMaps(TypedDict):
    anomaly_map: Tensor  # (B, 1, S, S)
    pred_score: Tensor  # (B,)


class ScoreMaps(FusedMaps):
    rec_map: Tensor
    ref_map: Tensor | None  # None: no refiner
    match_map: Tensor | None  # None: no prompt-token matching


class Detector(ModelModule):
    """OneNIP or UniAD, end to end from uint8 images.

    `fusion_scale` is the authors' c = (max + min) / 2 of the reconstruction maps. The authors measure it on the
    test set, anomalies included (transductive); here it is measured at the end of training on held-out normal
    training images and a pseudo-anomalous copy of each. With `fusion` `validated` the buffers `map_weights`,
    `map_shift` and `map_scale` (one entry per map of `nipad.models.onenip.fusion.MAPS`) are set there instead, and with
    `score_map` `match` also `score_weights`: the maps the image score is taken from. With `match_coreset` above 0 the
    matching searches `bank` (a coreset of each class's training tokens) instead of the prompts' tokens.
    """

    takes_class: ClassVar[bool] = False  # the prompt pool names each image's class
    fusion_scale: Tensor  # buffers (register_buffer in __init__; the last four only with their settings)
    map_weights: Tensor
    map_shift: Tensor
    map_scale: Tensor
    score_weights: Tensor

    def __init__(self, config: ModelConfig, extractor: FeatureExtractor | None = None) -> None:
        super().__init__()
        self.config = config
        self.extractor = extractor or FeatureExtractor(
            create_backbone(config.backbone, config.backbone_weights), create_neck(config.neck)
        )
        self.net = ReconstructionNet(config, self.extractor.out_channels)
        self.prompts = PromptPool()
        self.register_buffer("fusion_scale", torch.tensor(1.0))
        if config.fusion == "validated":
            self.register_buffer("map_weights", torch.full((len(MAPS),), 1.0 / len(MAPS)))
            self.register_buffer("map_shift", torch.zeros(len(MAPS)))
            self.register_buffer("map_scale", torch.ones(len(MAPS)))
        if config.score_map == "match":
            self.register_buffer("score_weights", torch.tensor([0.0, 0.0, 1.0]))
        self.bank = TokenBank() if config.match_coreset > 0 else None

    @property
    def model_name(self) -> str:
        return self.config.model

    @property
    def prompt_pool(self) -> PromptPool:
        return self.prompts

    def features(self, images: Tensor) -> Tensor:
        with torch.no_grad():
            return self.extractor(images)

    def reconstruct(self, features: Tensor) -> tuple[Tensor, Tensor | None]:
        """Reconstruction of `features`, with the index of each image's most similar prompt in the pool (None for
        an empty pool; UniAD uses the pool only to name the class)."""
        index = self.prompts.select(features) if len(self.prompts) else None
        query = self.net.encode(features)
        if not self.config.uses_prompt:
            return self.net.decode(query), index
        assert index is not None, "OneNIP is trained with prompts: its pool is never empty"
        unique, inverse = index.unique(return_inverse=True)
        prompt = self.net.encode(self.prompts.features[unique].to(features))[inverse]
        return self.net.decode(query, prompt), index

    def class_tokens(self, c: int) -> Tensor:
        """The normal tokens (M, C) the matching searches for class index `c`: its token-bank rows, or its prompts'
        tokens where the bank holds none (a class added after training, or no bank)."""
        if self.bank is not None and c in self.bank.classes():
            return self.bank.tokens[self.bank.owners == c].float()
        keep = self.prompts.owners == c
        return prompt_tokens(self.prompts.features[keep], self.prompts.owners[keep])[0]

    def matching_bank(self) -> tuple[Tensor, Tensor]:
        """Every class's `class_tokens`, concatenated, and the class index of each row (the exported graph's one
        static bank)."""
        parts = [self.class_tokens(c) for c in range(len(self.prompts.class_names))]
        owners = torch.cat([torch.full((len(p),), c, dtype=torch.long) for c, p in enumerate(parts)])
        return torch.cat(parts), owners.to(parts[0].device)

    def match(self, features: Tensor, index: Tensor) -> Tensor:
        """Token matching of each image against the normal tokens of its class, one class at a time (the cost is
        that of one class's tokens whatever the bank holds; only that class's tokens are gathered)."""
        query_class = self.prompts.owners.to(index.device)[index]
        out = features.new_empty(features.shape[0], 1, *features.shape[2:])
        for c in query_class.unique().tolist():
            rows = query_class == c
            tokens = self.class_tokens(c).to(features.device)
            out[rows] = match_map(features[rows], tokens, query_class.new_full((len(tokens),), c), query_class[rows])
        return out

    def maps(self, features: Tensor) -> ModelOutput:
        """Reconstruction map, refiner map (or None), matching map (or None), fused anomaly map (B, 1, S, S), image
        score (B,) and the class of each image's prompt."""
        rec, index = self.reconstruct(features)
        match = None
        if self.config.prompt_matching:
            assert index is not None, "prompt matching is trained with prompts: the pool is never empty"
            match = self.match(features, index)
        classes = self.prompts.class_of(index) if index is not None else None
        return ModelOutput(**self.score_maps(features, rec, match), prompt_class=classes)

    def score_maps(self, features: Tensor, rec: Tensor, match: Tensor | None = None) -> ScoreMaps:
        """The maps and image score from the features, their reconstruction and the token-level matching distances
        (also the exported graph's tail)."""
        size = self.config.image_size
        rec_map = upsample((rec - features).norm(dim=1, keepdim=True), size)
        logits = self.net.refine((rec - features).abs())
        ref_map = None if logits is None else torch.sigmoid(logits)
        matched = None if match is None else upsample(match, size)
        return {"rec_map": rec_map, "ref_map": ref_map, "match_map": matched,
                **self.fuse_maps(rec_map, ref_map, matched)}

    def fuse_maps(self, rec_map: Tensor, ref_map: Tensor | None, matched: Tensor | None) -> FusedMaps:
        """The fused anomaly map and the image score from the reconstruction, refiner and matching maps: the part of
        the output that the fusion settings (set at the end of training) change."""
        if self.config.fusion == "validated":
            anomaly_map = fuse((rec_map, ref_map, matched), self.map_weights, self.map_shift, self.map_scale)
        elif ref_map is None:
            anomaly_map = rec_map
        else:
            w = self.config.fusion_weight
            anomaly_map = (1 - w) * rec_map + w * self.fusion_scale * ref_map
        return {
            "anomaly_map": anomaly_map,
            "pred_score": image_score(self._score_map(anomaly_map, (rec_map, ref_map, matched)),
                                      self.config.score_pool),
        }

    def _score_map(self, anomaly_map: Tensor, maps: tuple[Tensor | None, ...]) -> Tensor:
        """The map the image score is the peak of: the anomaly map, or with `score_map` `match` the fusion of the
        maps chosen for scoring (the matching map where it passed validation)."""
        if self.config.score_map != "match":
            return anomaly_map
        return fuse(maps, self.score_weights, self.map_shift, self.map_scale)

    @torch.no_grad()
    def forward(self, images: Tensor) -> ModelOutput:
        return self.maps(self.features(images))
