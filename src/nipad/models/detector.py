"""The detector a user trains and runs: frozen features + reconstruction network + prompt pool + score fusion."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nipad.models.backbone import create_backbone
from nipad.models.config import ModelConfig
from nipad.models.neck import FeatureExtractor, create_neck
from nipad.models.output import ModelOutput
from nipad.models.prompt_pool import PromptPool
from nipad.models.reconstruction import ReconstructionNet


def upsample(maps: Tensor, size: int) -> Tensor:
    """Bilinear (align_corners=True) upsampling of (B, 1, h, w) maps, as the authors' UpsamplingBilinear2d."""
    return F.interpolate(maps, size=(size, size), mode="bilinear", align_corners=True)


def image_score(anomaly_map: Tensor, pool: int) -> Tensor:
    """Max of the `pool` x `pool` average-pooled map (stride 1), the authors' image score; (B, 1, H, W) -> (B,)."""
    k = min(pool, anomaly_map.shape[-1])
    return F.avg_pool2d(anomaly_map, k, stride=1).flatten(1).max(dim=1).values


class Detector(nn.Module):
    """OneNIP or UniAD, end to end from uint8 images.

    `fusion_scale` is the authors' c = (max + min) / 2 of the reconstruction maps. The authors measure it on the
    test set, anomalies included (transductive); here it is measured at the end of training on held-out normal
    training images and a pseudo-anomalous copy of each.
    """

    def __init__(self, config: ModelConfig, extractor: FeatureExtractor | None = None) -> None:
        super().__init__()
        self.config = config
        self.extractor = extractor or FeatureExtractor(
            create_backbone(config.backbone, config.backbone_weights), create_neck(config.neck)
        )
        self.net = ReconstructionNet(config, self.extractor.out_channels)
        self.prompts = PromptPool()
        self.register_buffer("fusion_scale", torch.tensor(1.0))

    def features(self, images: Tensor) -> Tensor:
        with torch.no_grad():
            return self.extractor(images)

    def reconstruct(self, features: Tensor) -> tuple[Tensor, list[str] | None]:
        """Reconstruction of `features`, with the class of the most similar prompt in the pool (UniAD uses the pool
        only to name the class)."""
        query = self.net.encode(features)
        if not self.config.uses_prompt:
            classes = self.prompts.class_of(self.prompts.select(features)) if len(self.prompts) else None
            return self.net.decode(query), classes
        index = self.prompts.select(features)
        unique, inverse = index.unique(return_inverse=True)
        prompt = self.net.encode(self.prompts.features[unique].to(features))[inverse]
        return self.net.decode(query, prompt), self.prompts.class_of(index)

    def maps(self, features: Tensor) -> ModelOutput:
        """Reconstruction map, refiner map (or None), fused anomaly map (B, 1, S, S), image score (B,) and the
        class of each image's prompt."""
        rec, classes = self.reconstruct(features)
        return ModelOutput(**self.score_maps(features, rec), prompt_class=classes)

    def score_maps(self, features: Tensor, rec: Tensor) -> dict[str, Tensor | None]:
        """The maps and image score from the features and their reconstruction (also the exported graph's tail)."""
        size = self.config.image_size
        rec_map = upsample((rec - features).norm(dim=1, keepdim=True), size)
        logits = self.net.refine((rec - features).abs())
        if logits is None:
            ref_map, anomaly_map = None, rec_map
        else:
            ref_map = torch.sigmoid(logits)
            w = self.config.fusion_weight
            anomaly_map = (1 - w) * rec_map + w * self.fusion_scale * ref_map
        return {
            "rec_map": rec_map,
            "ref_map": ref_map,
            "anomaly_map": anomaly_map,
            "pred_score": image_score(anomaly_map, self.config.score_pool),
        }

    @torch.no_grad()
    def forward(self, images: Tensor) -> ModelOutput:
        return self.maps(self.features(images))
