"""Training of OneNIP and UniAD on precomputed backbone features, resumable, single process or DDP (torchrun)."""

from __future__ import annotations

import math
import time
from collections import defaultdict
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler
from tqdm import tqdm

from nipad.data.sample import Sample
from nipad.engine import checkpoint
from nipad.engine.calibration import calibrate
from nipad.engine.distributed import Context, barrier, native_bf16
from nipad.engine.feature_cache import FeatureCache
from nipad.engine.features import (
    DecodedImages, SyntheticImages, default_cache_dir, feature_bank, synthetic_pool, texture_source,
)
from nipad.engine.train_config import TrainConfig
from nipad.errors import ConfigError, DataError
from nipad.models.config import ModelConfig
from nipad.models.detector import Detector
from nipad.models.objective import Objective
from nipad.models.prompt_pool import central
from nipad.synth import PseudoAnomaly


REFINER_STALLED = 0.98  # last-epoch Dice / all-zero-map Dice above this: the refiner marks (almost) nothing
FEW_STEPS = 500  # fewer steps left the cpu preset barely trained: ELPV demo 180 steps image AUROC 57%, 720 steps 79%


def refiner_stalled(epoch_means: dict[str, float]) -> bool:
    """Whether an epoch's mean Dice loss is at the level of an all-zero refiner map: a refiner stuck predicting nothing,
    as seen with the cpu preset widened to hidden 256 (Dice loss 0.49-0.50 for 16 epochs, about 0.50 for an empty map)."""
    return "dice_empty" in epoch_means and epoch_means["dice"] > REFINER_STALLED * epoch_means["dice_empty"]


def split_calibration(samples: Sequence[Sample], fraction: float, seed: int) -> tuple[list[Sample], list[Sample]]:
    """Hold out `fraction` of each class's normal training images (at least one where the class has 5 or more)."""
    by_class: dict[str, list[Sample]] = defaultdict(list)
    for s in samples:
        by_class[s.class_name].append(s)
    train, held = [], []
    for name in sorted(by_class):
        items = by_class[name]
        n_held = 0 if fraction <= 0 or len(items) < 5 else max(1, round(fraction * len(items)))
        order = np.random.default_rng([seed, len(items)]).permutation(len(items))
        held += [items[i] for i in sorted(order[:n_held])]
        train += [items[i] for i in sorted(order[n_held:])]
    return train, held


def prompt_indices(index: Tensor, class_members: list[np.ndarray], owner: np.ndarray, seed: int, epoch: int) -> Tensor:
    """A random normal image of the same class as each query, deterministic per (seed, epoch, image)."""
    picks = []
    for i in index.tolist():
        members = class_members[owner[i]]
        picks.append(int(members[np.random.default_rng([seed, epoch, i, 1]).integers(len(members))]))
    return torch.tensor(picks)


@torch.no_grad()
def fusion_scale(detector: Detector, features: Tensor, device: torch.device, batch_size: int = 32) -> float:
    """The authors' c = (max + min) / 2 of the reconstruction maps, measured on held-out normal images."""
    lo, hi = math.inf, -math.inf
    for start in range(0, len(features), batch_size):
        rec = detector.maps(features[start:start + batch_size].to(device).float())["rec_map"]
        lo, hi = min(lo, rec.min().item()), max(hi, rec.max().item())
    return (lo + hi) / 2


class Trainer:
    """Trains one detector for all classes of `samples` into `run_dir`."""

    def __init__(self, model_config: ModelConfig, train_config: TrainConfig, run_dir: str | Path, ctx: Context,
                 overwrite: bool = False, cache: FeatureCache | None = None, log=print) -> None:
        self.mcfg, self.tcfg, self.run_dir, self.ctx = model_config, train_config, Path(run_dir), ctx
        self.overwrite, self.log = overwrite, log if ctx.is_main else (lambda *a, **k: None)
        torch.manual_seed(train_config.seed)
        self.detector = Detector(model_config).to(ctx.device)
        self.cache = cache if cache is not None else FeatureCache(
            default_cache_dir(), self.detector.extractor.fingerprint, model_config.image_size,
            max_memory_bytes=0, max_disk_bytes=2 << 30,
        )

    def _resume_point(self, classes: list[str]) -> tuple[int, dict | None]:
        """Epochs already done in run_dir (0 for a new run) and the saved training state."""
        if not (self.run_dir / checkpoint.CONFIG).exists() or self.overwrite:
            return 0, None
        info = checkpoint.read_info(self.run_dir)
        if info.finished:
            raise ConfigError(f"{self.run_dir} already holds a finished run; choose another --out or pass --overwrite")
        if info.model != self.mcfg or info.classes != classes:
            raise ConfigError(f"{self.run_dir} holds an unfinished run of another model or data set; "
                              "choose another --out or pass --overwrite")
        state = checkpoint.load_train_state(self.run_dir)
        if state is None or info.epochs_done == 0:
            return 0, None
        weights = checkpoint.load_weights(self.run_dir)
        self.detector.load_state_dict({k: v for k, v in weights.items() if k.startswith("net.")}, strict=False)
        return info.epochs_done, state

    def _progress(self, total: int, desc: str) -> tqdm:
        return tqdm(total=total, desc=desc, unit="img", disable=not self.ctx.is_main, leave=False, dynamic_ncols=True)

    def fit(self, samples: Sequence[Sample], data_roots: Sequence[str]) -> Detector:
        mcfg, tcfg, ctx, device = self.mcfg, self.tcfg, self.ctx, self.ctx.device
        if not samples:
            raise DataError("no training images: every class given is empty")
        train, held = split_calibration(samples, tcfg.calibration_fraction, tcfg.seed)
        classes = sorted({s.class_name for s in train})
        start_epoch, state = self._resume_point(classes)
        info = checkpoint.RunInfo(mcfg, tcfg.to_dict(), classes, list(map(str, data_roots)), start_epoch,
                                  extra={"n_train": len(train), "n_calibration": len(held), "history": []})
        if state:
            info.extra["history"] = state.get("history", [])
        self.log(f"nipad: {len(train)} training images in {len(classes)} classes, {len(held)} held out for "
                 f"calibration; device {device}, {ctx.world_size} process(es)")

        extractor = self.detector.extractor
        with self._progress(len(train) + len(held), "backbone features (clean images)") as bar:
            bank = feature_bank(extractor, train, mcfg.image_size, device, cache=self.cache, progress=bar.update)
            held_bank = feature_bank(extractor, held, mcfg.image_size, device, cache=self.cache, progress=bar.update)

        owner = np.array([classes.index(s.class_name) for s in train])
        members = [np.flatnonzero(owner == c) for c in range(len(classes))]
        synthetic = None
        pool = None
        if mcfg.uses_restoration:
            images = DecodedImages([s.image_path for s in train], mcfg.image_size)
            synthetic = SyntheticImages(images, PseudoAnomaly(texture_source(tcfg.texture_dir, images)), tcfg.seed)
            if tcfg.synthetic_pool > 0:
                with self._progress(len(train) * tcfg.synthetic_pool, "pseudo anomalies (fixed pool)") as bar:
                    pool = synthetic_pool(extractor, synthetic, tcfg.synthetic_pool, device,
                                          workers=tcfg.workers, progress=bar.update)

        objective: nn.Module = Objective(self.detector.net)
        if ctx.distributed:
            if device.type == "cuda":
                objective = nn.SyncBatchNorm.convert_sync_batchnorm(objective)
            objective = DistributedDataParallel(objective, device_ids=[device.index] if device.type == "cuda" else None)
        params = [p for p in self.detector.net.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=tcfg.lr, weight_decay=tcfg.weight_decay)
        drop = max(1, int(tcfg.lr_drop_at * tcfg.epochs))
        scheduler = torch.optim.lr_scheduler.MultiStepLR(optimizer, [drop], gamma=tcfg.lr_gamma)
        if state:
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            self.log(f"nipad: resuming {self.run_dir} after epoch {start_epoch}")

        sampler = DistributedSampler(range(len(train)), num_replicas=ctx.world_size, rank=ctx.rank,
                                     shuffle=True, seed=tcfg.seed)
        steps = tcfg.epochs * math.ceil(len(sampler) / tcfg.batch_size)
        if steps < FEW_STEPS:
            self.log(f"nipad: note: only {steps} optimizer steps ({tcfg.epochs} epochs of {len(train)} images); "
                     f"a small training set needs more --epochs to learn (the demo takes 720 steps)")
        fresh = synthetic is not None and pool is None
        amp = tcfg.amp and native_bf16(device)
        started = time.time()
        for epoch in range(start_epoch, tcfg.epochs):
            sampler.set_epoch(epoch)
            torch.manual_seed(tcfg.seed * 100_003 + ctx.rank * 1009 + epoch)  # jitter and dropout: resumable
            self.detector.net.train()
            if fresh:
                synthetic.round = epoch
                loader = DataLoader(synthetic, batch_size=tcfg.batch_size, sampler=sampler, num_workers=tcfg.workers)
            else:
                loader = DataLoader(range(len(train)), batch_size=tcfg.batch_size, sampler=sampler)
            sums: dict[str, float] = defaultdict(float)
            bar = tqdm(loader, desc=f"epoch {epoch + 1}/{tcfg.epochs}", disable=not ctx.is_main, leave=False,
                       dynamic_ncols=True)
            for batch in bar:
                index = batch[0] if fresh else batch
                clean = bank[index].to(device).float()
                prompt = (bank[prompt_indices(index, members, owner, tcfg.seed, epoch)].to(device).float()
                          if mcfg.uses_prompt else None)
                synth_feats = synth_mask = None
                if fresh:
                    synth_feats = extractor(batch[1].to(device)).float()
                    synth_mask = batch[2].to(device)
                elif pool is not None:
                    variant = torch.tensor([np.random.default_rng([tcfg.seed, epoch, i, 2]).integers(tcfg.synthetic_pool)
                                            for i in index.tolist()])
                    rows = variant * len(train) + index
                    synth_feats, synth_mask = pool[0][rows].to(device).float(), pool[1][rows].to(device)
                with torch.autocast(device.type, dtype=torch.bfloat16, enabled=amp):
                    losses = objective(clean, prompt, synth_feats, synth_mask)
                optimizer.zero_grad(set_to_none=True)
                losses["loss"].backward()
                if tcfg.clip_grad > 0:
                    nn.utils.clip_grad_norm_(params, tcfg.clip_grad)
                optimizer.step()
                for k, v in losses.items():
                    sums[k] += v.item()
                bar.set_postfix({k: f"{v.item():.4f}" for k, v in losses.items()})
            scheduler.step()
            means = {k: v / max(1, len(loader)) for k, v in sums.items()}
            info.extra["history"].append({"epoch": epoch + 1, **means})
            info.epochs_done = epoch + 1
            self.log(f"epoch {epoch + 1}/{tcfg.epochs}  " + "  ".join(f"{k} {v:.4f}" for k, v in means.items())
                     + f"  ({time.time() - started:.0f} s)")
            if ctx.is_main:
                self._build_prompts(bank, owner, classes)
                checkpoint.save_model(self.run_dir, self.detector, info)
                checkpoint.save_train_state(self.run_dir, {
                    "optimizer": optimizer.state_dict(), "scheduler": scheduler.state_dict(),
                    "history": info.extra["history"],
                })
            barrier(ctx)

        self.detector.eval()
        self._build_prompts(bank, owner, classes)
        last = info.extra["history"][-1] if info.extra["history"] else {}
        if refiner_stalled(last):
            self.log(f"nipad: warning: the refiner has not learned to mark the pseudo anomalies (Dice loss "
                     f"{last['dice']:.4f}, {last['dice_empty']:.4f} for an empty map), so its map adds little to the "
                     f"anomaly map; train longer (--epochs) or with a lower --lr")
        if self.mcfg.uses_refiner:
            calib = held_bank if len(held_bank) else bank
            self.detector.fusion_scale.fill_(fusion_scale(self.detector, calib, device))
        info.finished = True
        info.extra["train_seconds"] = round(time.time() - started, 1)
        if ctx.is_main:
            source = (f"{len(held)} held-out normal training images" if held else
                      "the training images themselves (none held out: thresholds may be too low)")
            calibrate(self.detector, held or train, tcfg.false_alarm_rate, source).save(self.run_dir)
            checkpoint.save_model(self.run_dir, self.detector, info)
        barrier(ctx)
        return self.detector

    def _build_prompts(self, bank: Tensor, owner: np.ndarray, classes: list[str]) -> None:
        """The most typical normal training image of each class as its prompt, so a test image's nearest prompt is
        of its class more often than with a random one (ELPV: 95% vs 88%); UniAD keeps them only to name the class."""
        self.detector.prompts.load([], torch.empty(0), torch.empty(0, dtype=torch.long))
        for c, name in enumerate(classes):
            members = np.flatnonzero(owner == c)
            pick = members[central(bank[members], 1)[0]]
            self.detector.prompts.add(name, bank[[int(pick)]].float().to(self.ctx.device))
