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
from nipad.runs import checkpoint, integrity, trained_images
from nipad.engine.calibration import calibrate
from nipad.engine.distributed import Context, barrier, native_bf16
from nipad.runs.feature_cache import FeatureCache
from nipad.engine.features import (
    DecodedImages, SyntheticImages, default_cache_dir, feature_bank, synthetic_pool, texture_source,
)
from nipad.runs.run_info import CONFIG, RunInfo, load_weights, refuse_finished
from nipad.engine.train_config import TrainConfig
from nipad.errors import ConfigError, DataError, TrainingError
from nipad.models.onenip.model_config import ModelConfig
from nipad.models.onenip.detector import Detector
from nipad.models.onenip.fusion import MAPS, auroc, fit_fusion
from nipad.models.onenip.matching import coreset_tokens
from nipad.models.onenip.objective import Objective
from nipad.models.prompt_pool import neighbours, spread
from nipad.synth import PseudoAnomaly
from nipad.utils.progress import progress


REFINER_STALLED = 0.98  # last-epoch Dice / all-zero-map Dice above this: the refiner marks (almost) nothing
FUSION_SEED = 2_000_003  # the pseudo anomalies that set the fusion constant: a seed apart from the training draws
SERVED_MIN_AUROC = 0.6  # a finished run's score must tell held-out normals from pseudo anomalies better than this
MIN_VALIDATION = 10  # held-out normal images needed before a near-chance validation AUROC refuses the run
FEW_STEPS = 500  # fewer steps left the cpu preset barely trained: ELPV demo 180 steps image AUROC 57%, 720 steps 79%


def refiner_stalled(epoch_means: dict[str, float]) -> bool:
    """Whether an epoch's mean Dice loss is at the level of an all-zero refiner map: a refiner stuck predicting nothing,
    as seen with the cpu preset widened to hidden 256 (Dice loss 0.49-0.50 for 16 epochs, about 0.50 for an empty map)."""
    return "dice_empty" in epoch_means and epoch_means["dice"] > REFINER_STALLED * epoch_means["dice_empty"]


def lr_factor(step: int, warmup: int, drop: int, gamma: float) -> float:
    """The lr multiplier at optimiser step `step`: linear warmup over the first `warmup` steps, then x`gamma` from
    step `drop` on (the authors' single drop)."""
    return min(1.0, (step + 1) / warmup if warmup > 0 else 1.0) * (gamma if step >= drop else 1.0)


def schedule_steps(config: TrainConfig, steps_per_epoch: int) -> tuple[int, int]:
    """(warmup steps, step of the lr drop): the warmup takes at most a tenth of the schedule, so a short one is not
    all warmup; the drop comes at the start of epoch int(lr_drop_at * epochs)."""
    warmup = min(config.warmup_steps, config.epochs * steps_per_epoch // 10)
    return warmup, max(1, int(config.lr_drop_at * config.epochs)) * steps_per_epoch


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


def prompt_candidates(bank: Tensor, members: list[np.ndarray], owner: np.ndarray, k: int) -> list[np.ndarray]:
    """Each training image's possible prompts: every image of its class (k = 0, the authors' way) or its k most
    cosine-similar other images of its class."""
    if k == 0:
        return [members[c] for c in owner]
    candidates: list[np.ndarray] = [np.empty(0, dtype=np.int64)] * len(owner)
    for m in members:
        for i, near in zip(m, neighbours(bank[m], k).numpy()):
            candidates[i] = m[near]
    return candidates


def prompt_indices(index: Tensor, candidates: list[np.ndarray], seed: int, epoch: int) -> Tensor:
    """One of its candidates as each query's prompt, uniformly at random, deterministic per (seed, epoch, image)."""
    picks = []
    for i in index.tolist():
        options = candidates[i]
        picks.append(int(options[np.random.default_rng([seed, epoch, i, 1]).integers(len(options))]))
    return torch.tensor(picks)


@torch.no_grad()
def fusion_scale(detector: Detector, features: Tensor, device: torch.device, batch_size: int = 32) -> float:
    """The authors' c = (max + min) / 2 of the reconstruction maps over `features` (the trainer passes held-out
    normal images and a pseudo-anomalous copy of each: the authors take it over a test set that holds anomalies)."""
    lo, hi = math.inf, -math.inf
    for start in range(0, len(features), batch_size):
        rec = detector.maps(features[start:start + batch_size].to(device).float())["rec_map"]
        lo, hi = min(lo, rec.min().item()), max(hi, rec.max().item())
    return (lo + hi) / 2


@dataclass
class TrainingSet:
    """What the epochs draw from: the clean images' features (`bank`, CPU float16), each image's class index
    (`owner`), each image's possible prompts (`prompts`, from `prompt_candidates`), and the pseudo anomalies: a
    fixed `pool` of (features, masks) of V variants per image, or `synthetic` images made fresh at every step (pool
    None), or neither (no restoration)."""

    bank: Tensor
    owner: np.ndarray
    prompts: list[np.ndarray]
    synthetic: SyntheticImages | None
    pool: tuple[Tensor, Tensor] | None

    @property
    def fresh(self) -> bool:
        return self.synthetic is not None and self.pool is None


@dataclass
class Optimisation:
    """The loss module (DDP-wrapped when distributed), the trained parameters, AdamW and its step schedule."""

    objective: nn.Module
    params: list[nn.Parameter]
    optimizer: torch.optim.Optimizer
    scheduler: torch.optim.lr_scheduler.LRScheduler


class Trainer:
    """Trains one detector for all classes of `samples` into `run_dir`.

    `fit` runs these steps in order: hold out calibration images, find where an unfinished run stopped, compute
    the feature banks and pseudo anomalies, set up the optimiser, train and checkpoint epoch by epoch, then set the
    prompts, the fusion constant and the thresholds and mark the run finished.
    """

    def __init__(self, model_config: ModelConfig, train_config: TrainConfig, run_dir: str | Path, ctx: Context,
                 overwrite: bool = False, cache: FeatureCache | None = None, log=print, preset: str | None = None) -> None:
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
        if not samples:
            raise DataError("no training images: every class given is empty")
        train, held = split_calibration(samples, self.tcfg.calibration_fraction, self.tcfg.seed)
        classes = sorted({s.class_name for s in train})
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

    def _resume_point(self, classes: list[str]) -> tuple[int, dict | None]:
        """Epochs already done in run_dir (0 for a new run) and the saved training state; the run's weights so far
        are loaded into the detector."""
        refuse_finished(self.run_dir, self.overwrite)
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
        sampler = DistributedSampler(range(n_train), num_replicas=ctx.world_size, rank=ctx.rank, shuffle=True,
                                     seed=tcfg.seed)
        steps = tcfg.epochs * math.ceil(len(sampler) / tcfg.batch_size)
        if steps < FEW_STEPS:
            self.log(f"nipad: note: only {steps} optimizer steps ({tcfg.epochs} epochs of {n_train} images); "
                     f"a small training set needs more --epochs to learn (the demo takes 540: 30 epochs of 18)")
        return sampler

    def _train_epoch(self, epoch: int, data: TrainingSet, opt: Optimisation, sampler: DistributedSampler
                     ) -> dict[str, float]:
        """One pass over this process's images; the epoch's mean of each loss."""
        tcfg = self.tcfg
        sampler.set_epoch(epoch)
        torch.manual_seed(tcfg.seed * 100_003 + self.ctx.rank * 1009 + epoch)  # jitter and dropout: resumable
        self.detector.net.train()
        if data.fresh:
            data.synthetic.round = epoch
            loader = DataLoader(data.synthetic, batch_size=tcfg.batch_size, sampler=sampler, num_workers=tcfg.workers)
        else:
            loader = DataLoader(range(len(data.bank)), batch_size=tcfg.batch_size, sampler=sampler)
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
            self._build_prompts(data.bank, data.owner, info.classes)
            with integrity.update(self.run_dir, create=True):  # weights, config and state: all or none
                checkpoint.save_model(self.run_dir, self.detector, info)
                checkpoint.save_train_state(self.run_dir, {
                    "optimizer": opt.optimizer.state_dict(),
                    "history": info.extra["history"],
                })
        barrier(self.ctx)

    def _finish(self, info: RunInfo, data: TrainingSet, held_bank: Tensor, train: Sequence[Sample],
                held: Sequence[Sample], started: float) -> None:
        """Prompts, the fusion (constant or validated weights) and the thresholds, all from training images; the run
        is marked finished only when its anomaly map tells its held-out normals from their pseudo-anomalous copies."""
        self.detector.eval()
        self._build_prompts(data.bank, data.owner, info.classes)
        self._build_token_bank(data.bank, data.owner, info.classes)
        last = info.extra["history"][-1] if info.extra["history"] else {}
        if refiner_stalled(last):
            self.log(f"nipad: warning: the refiner has not learned to mark the pseudo anomalies (Dice loss "
                     f"{last['dice']:.4f}, {last['dice_empty']:.4f} for an empty map)"
                     + ("; the validated fusion decides whether its map is used" if self.mcfg.fusion == "validated"
                        else ", so its map adds little to the anomaly map; train longer (--epochs), with a lower --lr "
                             "or with --fusion validated"))
        normal = held_bank if len(held_bank) else data.bank
        pseudo = self._pseudo_anomalous(held or train, train, data)
        if self.mcfg.fusion == "validated":
            fit = fit_fusion(self._maps(normal), self._maps(pseudo), self.mcfg.score_pool,
                             score_from_match=self.mcfg.score_map == "match")
            for name, value in (("map_weights", fit.weights), ("map_shift", fit.shift), ("map_scale", fit.scale),
                                ("score_weights", fit.score_weights)):
                if hasattr(self.detector, name):
                    getattr(self.detector, name).copy_(value)
            self.log(f"nipad: fusion: {fit.describe()}")
            info.extra["fusion"] = {"weights": dict(zip(MAPS, fit.weights.tolist())),
                                    "score_weights": dict(zip(MAPS, fit.score_weights.tolist())),
                                    "auroc": {k: None if math.isnan(v) else v for k, v in fit.auroc.items()}}
        elif self.mcfg.uses_refiner:
            self.detector.fusion_scale.fill_(fusion_scale(self.detector, torch.cat([normal, pseudo]), self.ctx.device))
        info.extra["validation_auroc"] = self._check_served_map(normal, pseudo, info, judged=len(held) >= MIN_VALIDATION)
        info.finished = True
        info.extra["train_seconds"] = round(time.time() - started, 1)
        if self.ctx.is_main:
            trained_images.record(self.run_dir, train)  # what `nipad calibrate` must not set thresholds on
            source = (f"{len(held)} held-out normal training images" if held else
                      "the training images themselves (none held out: thresholds may be too low)")
            calibrate(self.detector, held or train, self.tcfg.false_alarm_rate, source).save(self.run_dir)
            checkpoint.save_model(self.run_dir, self.detector, info)
        barrier(self.ctx)

    def _check_served_map(self, normal: Tensor, pseudo: Tensor, info: RunInfo, judged: bool) -> float:
        """The served image score's AUROC on held-out normals against their pseudo-anomalous copies; below
        `SERVED_MIN_AUROC` the weights are saved, the run stays unfinished and TrainingError says so. Not `judged`
        (fewer than `MIN_VALIDATION` held-out images, or none: the training images stand in), the figure is only
        reported."""
        scores = [self._maps(f, keys=("pred_score",))[0] for f in (normal, pseudo)]
        value = auroc(*scores)
        self.log(f"nipad: validation ({len(normal)} normal images + a pseudo anomaly of each): image AUROC "
                 f"{100 * value:.1f}" + ("" if judged else " (too few held-out images to judge the run)"))
        if value < SERVED_MIN_AUROC and judged:
            info.extra["validation_auroc"] = value
            info.extra["refused"] = (
                f"its anomaly score tells held-out normal images from pseudo anomalies no better than chance "
                f"(validation image AUROC {100 * value:.1f} < {100 * SERVED_MIN_AUROC:.0f}), so predict, test, serve "
                f"and export refuse it. Train again with the default preset (nipad), more --epochs or a lower --lr")
            if self.ctx.is_main:
                checkpoint.save_model(self.run_dir, self.detector, info)
            raise TrainingError(f"{self.run_dir} is not marked finished: {info.extra['refused']}")
        return value

    @torch.no_grad()
    def _maps(self, features: Tensor, keys: Sequence[str] = ("rec_map", "ref_map", "match_map"),
              batch_size: int = 32) -> list[Tensor | None]:
        """The detector's outputs `keys` over `features` (run in batches, kept on the CPU; None where it has no
        such map)."""
        parts: dict[str, list[Tensor]] = defaultdict(list)
        for start in range(0, len(features), batch_size):
            out = self.detector.maps(features[start:start + batch_size].to(self.ctx.device).float())
            for key in keys:
                if out.get(key) is not None:
                    parts[key].append(out[key].float().cpu())
        return [torch.cat(parts[key]) if parts[key] else None for key in keys]

    def _pseudo_anomalous(self, samples: Sequence[Sample], train: Sequence[Sample], data: TrainingSet) -> Tensor:
        """Features of one pseudo-anomalous copy of each of `samples`, drawn with a seed no training draw uses, by
        the training's own generator (textures from the training images) or, without restoration, one like it."""
        size = self.mcfg.image_size
        pseudo = data.synthetic.pseudo if data.synthetic is not None else PseudoAnomaly(
            texture_source(self.tcfg.texture_dir, DecodedImages([s.image_path for s in train], size)))
        copies = SyntheticImages(DecodedImages([s.image_path for s in samples], size), pseudo, FUSION_SEED)
        return synthetic_pool(self.detector.extractor, copies, 1, self.ctx.device, workers=self.tcfg.workers)[0]

    def _build_token_bank(self, bank: Tensor, owner: np.ndarray, classes: list[str]) -> None:
        """Each class's matching bank: a greedy coreset of `match_coreset` of its training images' tokens."""
        if self.detector.bank is None:
            return
        parts = [coreset_tokens(bank[np.flatnonzero(owner == c)], self.mcfg.match_coreset, self.tcfg.seed)
                 for c in range(len(classes))]
        owners = torch.cat([torch.full((len(p),), c, dtype=torch.long) for c, p in enumerate(parts)])
        self.detector.bank.load(torch.cat(parts).to(self.ctx.device), owners.to(self.ctx.device))
        self.log(f"nipad: matching bank: {len(owners)} tokens ({100 * self.mcfg.match_coreset:g}% coreset per class)")

    def _build_prompts(self, bank: Tensor, owner: np.ndarray, classes: list[str]) -> None:
        """Each class's prompt pool: its most typical normal training image, so a test image's nearest prompt is of
        its class more often than with a random one (ELPV: 95% vs 88%), then `prompts_per_class` - 1 more that cover
        the class (`spread`); UniAD keeps them only to name the class."""
        self.detector.prompts.load([], torch.empty(0), torch.empty(0, dtype=torch.long))
        for c, name in enumerate(classes):
            members = np.flatnonzero(owner == c)
            picks = members[spread(bank[members], self.tcfg.prompts_per_class)]
            self.detector.prompts.add(name, bank[torch.as_tensor(picks)].float().to(self.ctx.device))
