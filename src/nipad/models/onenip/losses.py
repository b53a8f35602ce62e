"""The refiner's Dice loss, as the authors' BinaryDiceLoss (the feature MSE losses are in objective.py)."""

from __future__ import annotations

import torch
from torch import Tensor


def dice_loss(logits: Tensor, target: Tensor, smooth: float = 1.0) -> Tensor:
    """Mean over samples of 1 - (sum(p t) + s) / (sum(p^2) + sum(t^2) + s), p = sigmoid(logits) (authors' p = 2).

    This is the authors' BinaryDiceLoss (no factor 2 in the numerator): for an anomalous sample its minimum,
    reached at p = t, is 1 - (T + 1)/(2T + 1) with T = sum(t), about 0.5. For an all-normal target it is
    1 - 1/(sum p^2 + 1), which pushes the whole map to 0.
    """
    p = torch.sigmoid(logits).flatten(1)
    t = target.flatten(1).to(p.dtype)
    return (1 - ((p * t).sum(1) + smooth) / ((p * p).sum(1) + (t * t).sum(1) + smooth)).mean()
