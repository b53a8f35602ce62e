"""DDP on PyTorch's own engine: torchrun with two CPU processes (gloo) trains the same model as one process."""

import json
import subprocess
import sys
import textwrap

import torch
from safetensors.torch import load_file

TINY = dict(image_size=64, hidden_dim=32, heads=4, encoder_layers=1, decoder_layers=1, ffn_dim=64, dropout=0.0,
            jitter_scale=0.0, refiner=False)
SCRIPT = textwrap.dedent(f"""
    import sys, torch
    from nipad.data import open_dataset
    from nipad.engine import distributed
    from nipad.engine.train_config import TrainConfig
    from nipad.engine.trainer import Trainer
    from nipad.models.onenip.model_config import ModelConfig

    torch.set_num_threads(1)
    data_root, run_dir, batch = sys.argv[1], sys.argv[2], int(sys.argv[3])
    ctx = distributed.setup("cpu")
    # Per-rank randomness (jitter, dropout) and per-rank BatchNorm statistics (refiner) differ by design between
    # 1 and 2 processes, so they are off here, as is bf16 autocast (its rounding depends on the batch split);
    # everything else (data order, prompts, pseudo anomalies) must agree.
    mcfg = ModelConfig(**{TINY!r})
    tcfg = TrainConfig(epochs=2, batch_size=batch, lr=1e-3, synthetic_pool=1, calibration_fraction=0.0, amp=False)
    data = open_dataset(data_root)
    Trainer(mcfg, tcfg, run_dir, ctx, log=lambda *a: None).fit(data.train, [data_root])
    distributed.teardown(ctx)
""")


def _torchrun(script, nproc, data, run_dir, batch, port):
    cmd = [sys.executable, "-m", "torch.distributed.run", f"--nproc_per_node={nproc}", "--master_addr=127.0.0.1",
           f"--master_port={port}", str(script), str(data), str(run_dir), str(batch)]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=240)
    assert done.returncode == 0, done.stderr[-3000:]


def test_two_process_ddp_matches_one_process(tiny_mvtec, tmp_path):
    script = tmp_path / "train_ddp.py"
    script.write_text(SCRIPT)
    _torchrun(script, 1, tiny_mvtec, tmp_path / "one", 8, 29511)
    _torchrun(script, 2, tiny_mvtec, tmp_path / "two", 4, 29512)
    one = load_file(str(tmp_path / "one" / "model.safetensors"))
    two = load_file(str(tmp_path / "two" / "model.safetensors"))
    assert one.keys() == two.keys()
    for key in one:
        assert torch.allclose(one[key], two[key], atol=2e-4), key
    info = json.loads((tmp_path / "two" / "config.json").read_text())
    assert info["finished"] and info["epochs_done"] == 2
    for run in ("one", "two"):  # 24 images, global batch 8, 2 epochs: 6 optimiser steps in either case
        state = torch.load(tmp_path / run / "train_state.pt", weights_only=True)
        assert int(state["optimizer"]["state"][0]["step"]) == 6


def test_native_bf16_only_where_the_hardware_has_it():
    from nipad.engine.distributed import native_bf16

    assert native_bf16(torch.device("cuda"))
    assert not native_bf16(torch.device("meta"))
    assert native_bf16(torch.device("cpu")) == torch.ops.mkldnn._is_mkldnn_bf16_supported()
