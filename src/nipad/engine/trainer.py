"""Training of OneNIP and UniAD on precomputed backbone features, resumable, single process or DDP (torchrun)."""

from __future__ import annotations

import functools
import math
import time
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import Tensor, nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler

from nipad.data.sample import Sample
from nipad.engine.distributed import Context, barrier, native_bf16
from nipad.engine.features import (
    DecodedImages,
    SyntheticImages,
    default_cache_dir,
    feature_bank,
    synthetic_pool,
    texture_source,
)
from nipad.engine.train_config import TrainConfig, lr_factor, schedule_steps, step_budget
from nipad.engine.trainer_finish import (
    MIN_VALIDATION,
    build_token_bank,
    check_served,
    pseudo_anomalous,
    set_fusion,
    warn_stalled_refiner,
)
from nipad.engine.training_set import TrainingSet, build_prompts, prompt_candidates, prompt_indices
from nipad.errors import ConfigError
from nipad.models.onenip.detector import Detector
from nipad.models.onenip.model_config import ModelConfig
from nipad.models.onenip.objective import Objective
from nipad.runs import checkpoint, integrity, lifecycle
from nipad.runs.feature_cache import FeatureCache
from nipad.runs.run_info import CONFIG, RunInfo, load_weights
from nipad.synth import PseudoAnomaly
from nipad.utils.progress import progress

FEW_STEPS = 300  # below, a refiner may not have learned yet (the demo's 360 steps: Dice 0.38, 0.50 for an empty map)


@dataclass
class Optimisation:
    """The loss module (DDP-wrapped when distributed), the trained parameters, AdamW and its step schedule."""

    objective: nn.Module
    params: list[nn.Parameter]
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler


class Trainer:
    """Trains one detector for all classes of `samples` into `run_dir`.

    `fit` runs these steps in order: refuse a finished run and hold out calibration images (nipad.runs.lifecycle),
    find where an unfinished run stopped, compute the feature banks and pseudo anomalies, set up the optimiser, train
    and checkpoint epoch by epoch, then set the prompts, the matching bank and the fusion, validate
    (nipad.engine.trainer_finish) and finish the run: thresholds, saved, marked finished (nipad.runs.lifecycle).
    """

    def __init__(self, model_config: ModelConfig, train_config: TrainConfig, run_dir: str | Path, ctx: Context,
                 overwrite: bool = False, cache: FeatureCache | None = None, log=print,
                 preset: str | None = None) -> None:
        self.mcfg, self.tcfg, self.run_dir, self.ctx = model_config, train_config, Path(run_dir), ctx
        self.preset = preset  # the preset's name, kept in the run record so a user can see what ran
        self.overwrite, self.log = overwrite, log if ctx.is_main else (lambda *a, **k: None)
        self.bf16 = train_config.amp and native_bf16(ctx.device)  # decided once, not at every step
        torch.manual_seed(train_config.seed)
        self.detector = Detector(model_config).to(ctx.device)
        self.cache = cache if cache is not None else FeatureCache(
            default_cache_dir(), self.detector.extractor.fingerprint, model_config.image_size,
            max_memory_bytes=0, max_disk_bytes=2 << 30,
        )

    def fit(self, samples: Sequence[Sample], data_roots: Sequence[str]) -> Detector:
        train, held = lifecycle.start(self.run_dir, samples, self.tcfg.calibration_fraction, self.tcfg.seed,
                                      self.overwrite)
        classes = sorted({s.class_name for s in train})
        self._fit_budget(len(train))
        start_epoch, state = self._resume_point(classes)
        info = RunInfo(self.mcfg, self.tcfg.to_dict(), classes, list(map(str, data_roots)), start_epoch,
                       extra={"preset": self.preset, "n_train": len(train), "n_calibration": len(held),
                              "history": state.get("history", []) if state else []})
        self.log(f"nipad: {len(train)} training images in {len(classes)} classes, {len(held)} held out for "
                 f"calibration; device {self.ctx.device}, {self.ctx.world_size} process(es)")
        bank, held_bank = self._feature_banks(train, held)
        data = self._training_set(train, classes, bank, epochs_left=self.tcfg.epochs - start_epoch)
        sampler = self._sampler(len(train))
        opt = self._optimisation(state, start_epoch, math.ceil(len(sampler) / self.tcfg.batch_size))
        started = time.time()
        for epoch in range(start_epoch, self.tcfg.epochs):
            means = self._train_epoch(epoch, data, opt, sampler)
            self._end_epoch(epoch, means, info, data, opt, started)
        self._finish(info, data, held_bank, train, held, started)
        return self.detector

    def _fit_budget(self, n_train: int) -> None:
        """Fewer epochs where the preset's step budget is smaller than its epochs over `n_train` images."""
        budget = step_budget(self.tcfg, n_train, self.ctx.world_size)
        if budget.epochs < self.tcfg.epochs:
            self.log(f"nipad: {budget.epochs} epochs instead of {self.tcfg.epochs}: they reach the budget of "
                     f"{self.tcfg.max_steps} optimiser steps (--max-steps; given --epochs train all)")
        self.tcfg = budget

    def _resume_point(self, classes: list[str]) -> tuple[int, dict | None]:
        """Epochs already done in run_dir (0 for a new run) and the saved training state; the run's weights so far
        are loaded into the detector."""
        if self.overwrite or not (self.run_dir / CONFIG).exists():
            return 0, None
        info = checkpoint.read_info(self.run_dir)
        if info.model != self.mcfg or info.classes != classes:
            raise ConfigError(f"{self.run_dir} holds an unfinished run of another model or data set; "
                              "choose another --out or pass --overwrite")
        state = checkpoint.load_train_state(self.run_dir)
        if state is None or info.epochs_done == 0:
            return 0, None
        weights = load_weights(self.run_dir)
        self.detector.load_state_dict({k: v for k, v in weights.items() if k.startswith("net.")}, strict=False)
        return info.epochs_done, state

    def _progress(self, total: int, desc: str) -> Any:
        return progress(total=total, desc=desc, unit="img", enabled=self.ctx.is_main)

    def _feature_banks(self, train: Sequence[Sample], held: Sequence[Sample]) -> tuple[Tensor, Tensor]:
        """Backbone features of the clean training and held-out images, computed once (and cached)."""
        extractor, size, device = self.detector.extractor, self.mcfg.image_size, self.ctx.device
        with self._progress(len(train) + len(held), "backbone features (clean images)") as bar:
            bank = feature_bank(extractor, train, size, device, cache=self.cache, progress=bar.update)
            held_bank = feature_bank(extractor, held, size, device, cache=self.cache, progress=bar.update)
        return bank, held_bank

    def _training_set(self, train: Sequence[Sample], classes: list[str], bank: Tensor, epochs_left: int
                      ) -> TrainingSet:
        """The bank with each image's class, and the pseudo anomalies of the restoration stream (OneNIP); the fixed
        pool only when epochs are left to train (a run resumed after its last epoch only finishes)."""
        tcfg = self.tcfg
        owner = np.array([classes.index(s.class_name) for s in train])
        members = [np.flatnonzero(owner == c) for c in range(len(classes))]
        synthetic = pool = None
        if self.mcfg.uses_restoration:
            images = DecodedImages([s.image_path for s in train], self.mcfg.image_size)
            synthetic = SyntheticImages(images, PseudoAnomaly(texture_source(tcfg.texture_dir, images)), tcfg.seed)
            if tcfg.synthetic_pool > 0 and epochs_left > 0:
                with self._progress(len(train) * tcfg.synthetic_pool, "pseudo anomalies (fixed pool)") as bar:
                    pool = synthetic_pool(self.detector.extractor, synthetic, tcfg.synthetic_pool, self.ctx.device,
                                          workers=tcfg.workers, progress=bar.update)
        prompts = prompt_candidates(bank, members, owner, tcfg.prompt_neighbours) if self.mcfg.uses_prompt else []
        return TrainingSet(bank, owner, prompts, synthetic, pool)

    def _optimisation(self, state: dict | None, start_epoch: int, steps_per_epoch: int) -> Optimisation:
        """Loss module (DDP with synchronised batch norm on several GPUs), AdamW (restored from `state` when
        resuming) and its per-step lr schedule (`lr_factor`), which resumes from the epochs done: it has no state."""
        tcfg, ctx, device = self.tcfg, self.ctx, self.ctx.device
        objective: nn.Module = Objective(self.detector.net)
        if ctx.distributed:
            if device.type == "cuda":
                objective = nn.SyncBatchNorm.convert_sync_batchnorm(objective)
            objective = DistributedDataParallel(objective, device_ids=[device.index] if device.type == "cuda" else None)
        params = [p for p in self.detector.net.parameters() if p.requires_grad]
        optimizer = torch.optim.AdamW(params, lr=tcfg.lr, weight_decay=tcfg.weight_decay)
        warmup, drop_step = schedule_steps(tcfg, steps_per_epoch)
        if state:
            optimizer.load_state_dict(state["optimizer"])
            self.log(f"nipad: resuming {self.run_dir} after epoch {start_epoch}")
        for group in optimizer.param_groups:
            group["initial_lr"] = tcfg.lr
        scheduler = torch.optim.lr_scheduler.LambdaLR(
            optimizer, functools.partial(lr_factor, warmup=warmup, drop=drop_step, gamma=tcfg.lr_gamma),
            last_epoch=start_epoch * steps_per_epoch - 1)
        return Optimisation(objective, params, optimizer, scheduler)

    def _sampler(self, n_train: int) -> DistributedSampler:
        """This process's share of each epoch's shuffled images; says when the schedule is too short to learn."""
        tcfg, ctx = self.tcfg, self.ctx
        # the sampler and the loaders read only len() and items: a range of indices is a data set to them (torch's
        # annotations ask for a Dataset)
        indices: Any = range(n_train)
        sampler: DistributedSampler[int] = DistributedSampler(indices, num_replicas=ctx.world_size, rank=ctx.rank,
                                                              shuffle=True, seed=tcfg.seed)
        steps = tcfg.epochs * math.ceil(len(sampler) / tcfg.batch_size)
        if steps < FEW_STEPS:
            self.log(f"nipad: note: only {steps} optimizer steps ({tcfg.epochs} epochs of {n_train} images); "
                     f"a small training set needs more --epochs to learn (the demo takes 360: 20 epochs of 18)")
        return sampler

    def _train_epoch(self, epoch: int, data: TrainingSet, opt: Optimisation, sampler: DistributedSampler
                     ) -> dict[str, float]:
        """One pass over this process's images; the epoch's mean of each loss."""
        tcfg = self.tcfg
        sampler.set_epoch(epoch)
        torch.manual_seed(tcfg.seed * 100_003 + self.ctx.rank * 1009 + epoch)  # jitter and dropout: resumable
        self.detector.net.train()
        if data.fresh and data.synthetic is not None:  # fresh: synthetic images and no pool
            data.synthetic.round = epoch
            loader = DataLoader(data.synthetic, batch_size=tcfg.batch_size, sampler=sampler, num_workers=tcfg.workers)
        else:
            indices: Any = range(len(data.bank))  # a data set of indices (see _sampler)
            loader = DataLoader(indices, batch_size=tcfg.batch_size, sampler=sampler)
        sums: dict[str, float] = defaultdict(float)
        bar = progress(loader, desc=f"epoch {epoch + 1}/{tcfg.epochs}", unit="batch", enabled=self.ctx.is_main,
                       line=False)  # _end_epoch logs the epoch's line
        for batch in bar:
            losses = self._step(self._batch_inputs(batch, epoch, data), opt)
            for k, v in losses.items():
                sums[k] += v.item()
            bar.set_postfix({k: f"{v.item():.4f}" for k, v in losses.items()})
        return {k: v / max(1, len(loader)) for k, v in sums.items()}

    def _batch_inputs(self, batch, epoch: int, data: TrainingSet) -> tuple[Tensor, Tensor | None, Tensor | None,
                                                                         Tensor | None]:
        """(clean features, prompt features or None, pseudo-anomalous features and their masks, or None) of a batch:
        each image's prompt drawn from its candidates, its pseudo anomaly fresh or drawn from the pool."""
        tcfg, device = self.tcfg, self.ctx.device
        index = batch[0] if data.fresh else batch
        clean = data.bank[index].to(device).float()
        prompt = (data.bank[prompt_indices(index, data.prompts, tcfg.seed, epoch)].to(device).float()
                  if self.mcfg.uses_prompt else None)
        if data.fresh:
            return clean, prompt, self.detector.extractor(batch[1].to(device)).float(), batch[2].to(device)
        if data.pool is not None:
            variant = torch.tensor([np.random.default_rng([tcfg.seed, epoch, i, 2]).integers(tcfg.synthetic_pool)
                                    for i in index.tolist()])
            rows = variant * len(data.bank) + index
            return clean, prompt, data.pool[0][rows].to(device).float(), data.pool[1][rows].to(device)
        return clean, prompt, None, None

    def _step(self, inputs: tuple[Tensor, Tensor | None, Tensor | None, Tensor | None], opt: Optimisation
              ) -> dict[str, Tensor]:
        """One optimiser step (bfloat16 autocast where the device runs it natively, gradient-norm clipping); the
        step's losses."""
        device = self.ctx.device
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=self.bf16):
            losses = opt.objective(*inputs)
        opt.optimizer.zero_grad(set_to_none=True)
        losses["loss"].backward()
        if self.tcfg.clip_grad > 0:
            nn.utils.clip_grad_norm_(opt.params, self.tcfg.clip_grad)
        opt.optimizer.step()
        opt.scheduler.step()
        return losses

    def _end_epoch(self, epoch: int, means: dict[str, float], info: RunInfo, data: TrainingSet, opt: Optimisation,
                   started: float) -> None:
        """Record the epoch's losses and write the checkpoint (weights with this epoch's prompts, training state)."""
        info.extra["history"].append({"epoch": epoch + 1, **means})
        info.epochs_done = epoch + 1
        self.log(f"epoch {epoch + 1}/{self.tcfg.epochs}  " + "  ".join(f"{k} {v:.4f}" for k, v in means.items())
                 + f"  ({time.time() - started:.0f} s)")
        if self.ctx.is_main:
            build_prompts(self.detector, data, info.classes, self.tcfg.prompts_per_class, self.ctx.device)
            with integrity.update(self.run_dir, create=True):  # weights, config and state: all or none
                checkpoint.save_model(self.run_dir, self.detector, info)
                checkpoint.save_train_state(self.run_dir, {
                    "optimizer": opt.optimizer.state_dict(),
                    "history": info.extra["history"],
                })
        barrier(self.ctx)

    def _finish(self, info: RunInfo, data: TrainingSet, held_bank: Tensor, train: Sequence[Sample],
                held: Sequence[Sample], started: float) -> None:
        """Prompts, matching bank, fusion and validation, all from training images (nipad.engine.trainer_finish);
        then the run is finished (nipad.runs.lifecycle) if its served score told its held-out normals from their
        pseudo-anomalous copies."""
        device, run_dir = self.ctx.device, self.run_dir
        self.detector.eval()
        build_prompts(self.detector, data, info.classes, self.tcfg.prompts_per_class, device)
        build_token_bank(self.detector, data, len(info.classes), self.tcfg.seed, device, self.log)
        warn_stalled_refiner(info.extra["history"], self.mcfg.fusion == "validated", self.log)
        normal = held_bank if len(held_bank) else data.bank
        pseudo = pseudo_anomalous(self.detector, held or train, train, data.synthetic, self.tcfg.texture_dir, device,
                                  self.tcfg.workers)
        scores, fusion = set_fusion(self.detector, normal, pseudo, device, self.log)
        if fusion is not None:
            info.extra["fusion"] = fusion
        info.extra["validation_auroc"] = check_served(
            run_dir, scores, info, len(held) >= MIN_VALIDATION, self.log,
            save_refused=lambda: self._save_unfinished(info))
        info.extra["train_seconds"] = round(time.time() - started, 1)
        if self.ctx.is_main:
            lifecycle.finish(run_dir, self.detector, info, self._save, train, held, self.tcfg.false_alarm_rate)
        barrier(self.ctx)

    def _save(self, info: RunInfo) -> None:
        checkpoint.save_model(self.run_dir, self.detector, info)

    def _save_unfinished(self, info: RunInfo) -> None:
        if self.ctx.is_main:
            self._save(info)
