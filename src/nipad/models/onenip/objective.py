"""One training step's loss on precomputed neck features, as a module so DDP can wrap it.

OneNIP: MSE(reconstruction, clean features) over the normal stream (reconstruction) and the pseudo-anomalous
stream (restoration), + dice_weight * Dice(refiner, [0; pseudo-anomaly masks]). UniAD: the MSE of the normal
stream alone. `bce_weight` > 0 (nipad's preset) adds a binary cross-entropy term on the same logits: its gradient
at a pixel is p - t, which does not vanish when the sigmoid saturates, so a refiner pushed to an all-zero map is
pulled back by the pseudo-anomaly pixels (the authors' Dice alone leaves it stuck there). Jitter touches every
input token (query, synthetic, prompt) for OneNIP, query tokens for UniAD.
`dice_empty` (not trained on) is the Dice loss an all-zero refiner map would get on the same batch: the level a
refiner that has not learned sits at.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from nipad.models.onenip.losses import dice_loss
from nipad.models.onenip.network import ReconstructionNet


class Objective(nn.Module):
    def __init__(self, net: ReconstructionNet) -> None:
        super().__init__()
        self.net = net

    def forward(
        self,
        clean: Tensor,
        prompt: Tensor | None = None,
        synthetic: Tensor | None = None,
        synthetic_mask: Tensor | None = None,
    ) -> dict[str, Tensor]:
        config = self.net.config
        inputs, target = clean, clean
        if config.uses_restoration and synthetic is not None:
            inputs, target = torch.cat([clean, synthetic]), torch.cat([clean, clean])
        query = self.net.encode(inputs, jitter=True)
        encoded_prompt = None
        if config.uses_prompt:
            if prompt is None:
                raise ValueError("OneNIP's objective needs the prompt features")
            encoded_prompt = self.net.encode(prompt, jitter=True)
        rec = self.net.decode(query, encoded_prompt)
        losses = {"mse": F.mse_loss(rec, target)}
        logits = self.net.refine((rec - inputs).abs())
        if logits is not None:
            masks = torch.zeros_like(logits)
            if inputs.shape[0] > clean.shape[0]:
                if synthetic_mask is None:
                    raise ValueError("the pseudo-anomalous features need their synthetic_mask")
                masks[clean.shape[0]:] = synthetic_mask.to(logits)
            losses["dice"] = dice_loss(logits, masks)
            losses["dice_empty"] = dice_loss(torch.full_like(masks, -torch.inf), masks)
            if config.bce_weight > 0:
                losses["bce"] = F.binary_cross_entropy_with_logits(logits.float(), masks.float())
        losses["loss"] = (losses["mse"] + config.dice_weight * losses.get("dice", torch.zeros(()))
                          + config.bce_weight * losses.get("bce", torch.zeros(())))
        return losses
