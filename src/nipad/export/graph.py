"""The detector as one traceable graph for export: uint8 RGB images of any size -> score, anomaly map, prompt index.

Differences from `Detector.forward`, all so the graph has static control flow and no data-dependent ops:
* the resize to the model size is inside: antialiased bilinear as PIL's resize in `nipad.data.load_image`, but not
  rounded to whole grey levels (rounding would make runtimes' last-bit differences jump a level); an identity at
  the model size;
* the prompt pool is baked in already ENCODED (OneNIP's prompts go through the encoder once, at export) and each
  image's prompt is picked by argmax + gather over cosine similarities, not `unique`;
* the matching searches one static bank (all classes' normal tokens, masked to the query's class);
* the class is returned as the chosen prompt's index (its name is in the sidecar JSON); -1 for an empty pool.
"""

from __future__ import annotations

import torch
from torch import Tensor, nn

from nipad.models.onenip.detector import Detector
from nipad.models.onenip.matching import match_map
from nipad.models.prompt_pool import descriptor


def resize_weights(n_in: int | Tensor, size: int) -> Tensor:
    """(size, n_in) row-stochastic matrix of antialiased bilinear resampling from n_in to `size` samples.

    PIL's and torch's `antialias=True` filter: a triangle of half-width max(n_in / size, 1) centred on each output
    pixel's centre, renormalised at the borders. Written with plain ops (torch's antialiased kernel has no ONNX
    export in the fast exporter) so that `n_in` may stay a symbolic size of the input.
    """
    n = torch.as_tensor(n_in, dtype=torch.float32)
    scale = n / size
    centres = (torch.arange(size, dtype=torch.float32) + 0.5) * scale
    # n_in may be a 0-d tensor (the input's symbolic size in the export), which torch.arange takes; its stubs do not
    positions = torch.arange(n_in).to(torch.float32) + 0.5  # type: ignore[arg-type]
    weights = (1.0 - ((positions[None, :] - centres[:, None]) / scale.clamp(min=1.0)).abs()).clamp(min=0.0)
    return weights / weights.sum(dim=1, keepdim=True)


def resize_images(images: Tensor, size: int) -> Tensor:
    """uint8 (B, 3, H, W) -> float (B, 3, size, size) in [0, 255], antialiased bilinear; exact when H = W = size."""
    rows = resize_weights(images.shape[-2], size)
    cols = resize_weights(images.shape[-1], size)
    return rows @ images.to(torch.float32) @ cols.T


class InferenceGraph(nn.Module):
    """Wraps a loaded OneNIP/UniAD `Detector`; forward(images uint8 B x 3 x H x W, NCHW RGB) ->
    (pred_score (B,), anomaly_map (B, 1, S, S), prompt_index (B,) int64)."""

    prompt_descriptors: Tensor  # buffers (register_buffer in __init__)
    prompt_tokens: Tensor
    match_bank: Tensor
    match_owners: Tensor

    def __init__(self, detector: Detector) -> None:
        super().__init__()
        self.detector = detector.eval()
        pool = detector.prompts
        self.model_name, self.image_size = detector.config.model, detector.config.image_size
        self.class_names: list[str] = pool.class_of(torch.arange(len(pool)))  # the class of each prompt index
        self.has_pool = len(pool) > 0
        with torch.no_grad():
            self.register_buffer("prompt_descriptors", descriptor(pool.features) if self.has_pool else torch.empty(0))
            tokens = detector.net.encode(pool.features) if self.has_pool and detector.config.uses_prompt else None
        self.register_buffer("prompt_tokens", tokens if tokens is not None else torch.empty(0))
        bank, owners = detector.matching_bank() if detector.config.prompt_matching else (torch.empty(0), torch.empty(0))
        self.register_buffer("match_bank", bank.float())
        self.register_buffer("match_owners", owners.long())

    @torch.no_grad()
    def forward(self, images: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        det = self.detector
        features = det.extractor(resize_images(images, det.config.image_size) / 255.0)
        if self.has_pool:
            index = (descriptor(features) @ self.prompt_descriptors.T).argmax(dim=1)
        else:
            index = torch.full((features.shape[0],), -1, dtype=torch.long, device=features.device)
        query = det.net.encode(features)
        rec = det.net.decode(query, self.prompt_tokens[index]) if det.config.uses_prompt else det.net.decode(query)
        match = (match_map(features, self.match_bank, self.match_owners, det.prompts.owners[index])
                 if det.config.prompt_matching else None)
        out = det.score_maps(features, rec, match)
        return out["pred_score"], out["anomaly_map"], index
