"""PyTorch's own distributed engine: process-group set-up from torchrun's environment, device choice."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

from nipad.errors import ConfigError


@dataclass(frozen=True)
class Context:
    """Where this process runs: rank and world size (1 without torchrun) and its device."""

    rank: int
    world_size: int
    device: torch.device

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.world_size > 1


def devices_here() -> list[str]:
    """The devices this machine can run nipad on, as `--device` takes them: cpu, then cuda, cuda:0 ... when PyTorch
    sees CUDA GPUs, and mps on Apple silicon."""
    here = ["cpu"]
    count = torch.cuda.device_count() if torch.cuda.is_available() else 0
    if count:
        here += ["cuda", *(f"cuda:{i}" for i in range(count))]
    mps = getattr(torch.backends, "mps", None)
    if mps is not None and mps.is_available():
        here.append("mps")
    return here


def pick_device(requested: str | None = None) -> torch.device:
    """`--device` (every command and the service read it here): None or "" picks CUDA when present, else CPU; any
    other value must be a device this machine has (`devices_here`), else a ConfigError that lists them."""
    if not requested:
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    here = devices_here()
    fix = f"Fix: give one of {', '.join(here)}, or leave --device out (CUDA when present, else cpu)"
    try:
        device = torch.device(requested)
    except (RuntimeError, ValueError, TypeError) as err:
        raise ConfigError(f"--device {requested!r} is not a device. {fix}") from err
    if device.type == "cpu":
        return device
    if device.type == "cuda":
        count = torch.cuda.device_count() if torch.cuda.is_available() else 0
        if not count:
            raise ConfigError(f"--device {requested}: PyTorch sees no CUDA GPU on this machine (torch "
                              f"{torch.__version__}{'' if torch.backends.cuda.is_built() else ', built without CUDA'})"
                              f". {fix}")
        if device.index is not None and device.index >= count:
            raise ConfigError(f"--device {requested}: this machine has {count} CUDA GPU(s). {fix}")
        return device
    if str(device) in here or device.type in here:
        return device
    raise ConfigError(f"--device {requested}: nipad cannot run on {device.type} here. {fix}")


def native_bf16(device: torch.device) -> bool:
    """Whether bfloat16 autocast runs natively on `device`: CUDA, or a CPU with bf16 instructions (AVX512-BF16 or
    AMX), where it made the cpu preset's training step 1.12-1.15x faster (benchmarks/train_step_variants.py);
    elsewhere the CPU would emulate it, slower than float32."""
    if device.type == "cuda":
        return True
    return device.type == "cpu" and bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def setup(requested_device: str | None = None) -> Context:
    """Join the process group when launched by torchrun (WORLD_SIZE > 1): NCCL on GPUs, gloo on CPU."""
    world = int(os.environ.get("WORLD_SIZE", "1"))
    if world <= 1:
        return Context(0, 1, pick_device(requested_device))
    rank, local_rank = int(os.environ["RANK"]), int(os.environ.get("LOCAL_RANK", "0"))
    device = pick_device(requested_device)
    if device.type == "cuda":
        device = torch.device("cuda", local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return Context(rank, world, device)


def barrier(ctx: Context) -> None:
    if ctx.distributed:
        dist.barrier()


def teardown(ctx: Context) -> None:
    if ctx.distributed and dist.is_initialized():
        dist.destroy_process_group()
