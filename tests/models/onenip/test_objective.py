"""The training loss under bfloat16 autocast (what CPU training uses where the CPU has bf16) matches float32."""

import torch

from nipad.models.onenip.model_config import preset
from nipad.models.onenip.network import ReconstructionNet
from nipad.models.onenip.objective import Objective


def test_bf16_autocast_loss_and_gradients_match_float32():
    torch.manual_seed(0)
    config = preset("cpu", "onenip", image_size=64, jitter_scale=0.0)
    net = ReconstructionNet(config, 24).train()
    clean = torch.rand(4, 24, 4, 4)
    synthetic = clean + torch.rand(4, 24, 4, 4) * (torch.rand(4, 1, 4, 4) > 0.7)
    mask = (torch.rand(4, 1, 64, 64) > 0.8).float()
    results = []
    for enabled in (False, True):
        net.zero_grad()
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=enabled):
            losses = Objective(net)(clean, clean.flip(0), synthetic, mask)
        losses["loss"].backward()
        grad = torch.cat([p.grad.flatten() for p in net.parameters() if p.grad is not None])
        results.append((losses["loss"].detach().float(), losses["mse"].detach().float(), grad))
    (loss32, mse32, grad32), (loss16, mse16, grad16) = results
    assert loss16.dtype == torch.float32 and mse16.dtype == torch.float32
    assert torch.allclose(loss16, loss32, rtol=0.02) and torch.allclose(mse16, mse32, rtol=0.02)
    assert torch.nn.functional.cosine_similarity(grad16, grad32, dim=0) > 0.99
