"""Backbone features for training: a bank of the clean images' features and the pseudo-anomaly stream.

The backbone is frozen, so the clean images' neck features never change: they are computed once (through the
FeatureCache, so a second run on the same images and backbone skips them) and training runs on the bank.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import cast

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import DataLoader, Dataset

from nipad.data.image_io import load_image
from nipad.data.sample import Sample
from nipad.data.torch_dataset import ImageDataset, collate_skip_bad
from nipad.models.neck import FeatureExtractor
from nipad.runs.feature_cache import FeatureCache
from nipad.synth import FolderTextures, ImageBankTextures, PseudoAnomaly

BANK_DTYPE = torch.float16


def default_cache_dir() -> Path:
    return Path(os.environ.get("NIPAD_CACHE", Path.home() / ".cache" / "nipad" / "features"))


@torch.no_grad()
def feature_bank(
    extractor: FeatureExtractor,
    samples: Sequence[Sample],
    image_size: int,
    device: torch.device,
    batch_size: int = 16,
    cache: FeatureCache | None = None,
    progress: Callable[[int], None] | None = None,
) -> Tensor:
    """Neck features (N, C, h, w) of the samples' images, on the CPU in float16 (an empty tensor for no samples)."""
    if not samples:
        return torch.empty(0, dtype=BANK_DTYPE)
    keys = [cache.key_for_file(s.image_path) for s in samples] if cache else []
    found: list[Tensor | None] = [cache.get(k) for k in keys] if cache else [None] * len(samples)
    missing = [i for i, f in enumerate(found) if f is None]
    dataset = ImageDataset([samples[i] for i in missing], image_size, skip_bad=False)
    pos = 0
    for batch in DataLoader(dataset, batch_size=batch_size, collate_fn=collate_skip_bad):
        images = batch["image"]
        feats = extractor(images.to(device)).float().cpu()
        for row in feats:
            found[missing[pos]] = row
            if cache:
                cache.put(keys[missing[pos]], row)
            pos += 1
        if progress:
            progress(len(images))
    if progress and len(samples) > len(missing):
        progress(len(samples) - len(missing))
    return torch.stack([cast(Tensor, f).to(BANK_DTYPE) for f in found])  # every missing one is filled above


class DecodedImages:
    """The images at `paths` as uint8 HxWx3 arrays at `size`, each decoded once and kept while they fit in
    `max_bytes`: the pseudo-anomaly pool reads every training image once per variant and again as a texture, and
    decoding and resizing was a third of the time it spent making an anomaly. Treat returned arrays as read-only."""

    def __init__(self, paths: Sequence[Path], size: int, max_bytes: int = 1 << 30) -> None:
        self.paths, self.size, self.max_bytes = list(paths), size, max_bytes
        self._kept: dict[int, np.ndarray] = {}
        self._bytes = 0

    def __len__(self) -> int:
        return len(self.paths)

    def __getitem__(self, i: int) -> np.ndarray:
        image = self._kept.get(i)
        if image is None:
            image = load_image(self.paths[i], self.size)
            if self._bytes + image.nbytes <= self.max_bytes:
                self._kept[i] = image
                self._bytes += image.nbytes
        return image


def texture_source(texture_dir: str | None, images: DecodedImages):
    """DTD-like texture folder when given, else patches of random training images (nothing to download)."""
    if texture_dir:
        return FolderTextures(texture_dir)
    return ImageBankTextures(lambda rng: images[int(rng.integers(len(images)))])


class SyntheticImages(Dataset):
    """Pseudo-anomalous versions of the training images: item i -> (i, uint8 3xHxW image, bool 1xHxW mask).

    The draw for (seed, round, i) is deterministic, so every process and every resume sees the same anomalies;
    `round` is the epoch (fresh anomalies each epoch) or the variant number of a fixed pool.
    """

    def __init__(self, images: DecodedImages, pseudo: PseudoAnomaly, seed: int) -> None:
        self.images, self.pseudo, self.seed = images, pseudo, seed
        self.round = 0

    def __len__(self) -> int:
        return len(self.images)

    def __getitem__(self, i: int) -> tuple[int, Tensor, Tensor]:
        rng = np.random.default_rng([self.seed, self.round, i])
        synthetic, mask = self.pseudo(self.images[i].copy(), rng)
        return i, torch.from_numpy(np.ascontiguousarray(synthetic)).permute(2, 0, 1), torch.from_numpy(mask)[None]


@torch.no_grad()
def synthetic_pool(
    extractor: FeatureExtractor,
    images: SyntheticImages,
    variants: int,
    device: torch.device,
    batch_size: int = 16,
    workers: int = 0,
    progress: Callable[[int], None] | None = None,
) -> tuple[Tensor, Tensor]:
    """Features (V*N, C, h, w) float16 and masks (V*N, 1, H, W) bool of V fixed pseudo-anomaly variants per image;
    row v*N + i is variant v of image i."""
    feats, masks = [], []
    for v in range(variants):
        images.round = v
        for _, synthetic, mask in DataLoader(images, batch_size=batch_size, num_workers=workers):
            feats.append(extractor(synthetic.to(device)).to("cpu", BANK_DTYPE))
            masks.append(mask)
            if progress:
                progress(len(mask))
    return torch.cat(feats), torch.cat(masks)
