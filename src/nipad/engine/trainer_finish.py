"""The end of a OneNIP / UniAD training, before its run is finished (nipad.runs.lifecycle): the matching bank, the
fusion of the maps (validated weights, or the constant c of the fixed fusion) and the check that the served score
tells held-out normal images from a pseudo-anomalous copy of each. The maps of those images are computed once: the
fusion is fitted on them and the served score is then fused from them."""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import torch
from torch import Tensor

from nipad.data.sample import Sample
from nipad.engine.features import DecodedImages, SyntheticImages, synthetic_pool, texture_source
from nipad.engine.training_set import TrainingSet
from nipad.errors import TrainingError
from nipad.models.onenip.detector import Detector
from nipad.models.onenip.fusion import MAPS, auroc, fit_fusion
from nipad.models.onenip.matching import coreset_tokens
from nipad.runs.run_info import RunInfo
from nipad.synth import PseudoAnomaly

REFINER_STALLED = 0.98  # last-epoch Dice / all-zero-map Dice above this: the refiner marks (almost) nothing
FUSION_SEED = 2_000_003  # the pseudo anomalies that set the fusion constant: a seed apart from the training draws
SERVED_MIN_AUROC = 0.6  # a finished run's score must tell held-out normals from pseudo anomalies better than this
MIN_VALIDATION = 10  # held-out normal images needed before a near-chance validation AUROC refuses the run
MAP_KEYS = tuple(f"{name}_map" for name in MAPS)  # the detector's outputs the fusion combines
BATCH = 32

Maps = dict[str, Tensor | None]


def refiner_stalled(epoch_means: dict[str, float]) -> bool:
    """Whether an epoch's mean Dice loss is at the level of an all-zero refiner map: a refiner stuck predicting
    nothing, as seen with the cpu preset widened to hidden 256 (Dice loss 0.49-0.50 for 16 epochs, about 0.50 for an
    empty map)."""
    return "dice_empty" in epoch_means and epoch_means["dice"] > REFINER_STALLED * epoch_means["dice_empty"]


def warn_stalled_refiner(history: list[dict[str, float]], validated: bool, log: Callable[[str], None]) -> None:
    """Say so when the last epoch's refiner marks nothing (`refiner_stalled`), and what to do about it."""
    last = history[-1] if history else {}
    if refiner_stalled(last):
        log(f"nipad: warning: the refiner has not learned to mark the pseudo anomalies (Dice loss "
            f"{last['dice']:.4f}, {last['dice_empty']:.4f} for an empty map)"
            + ("; the validated fusion decides whether its map is used" if validated
               else ", so its map adds little to the anomaly map; train longer (--epochs), with a lower --lr "
                    "or with --fusion validated"))


def half_range(rec_maps: Tensor) -> float:
    """The authors' c = (max + min) / 2 of the reconstruction maps (the trainer's are of held-out normal images and a
    pseudo-anomalous copy of each: the authors take it over a test set that holds anomalies)."""
    return (rec_maps.min().item() + rec_maps.max().item()) / 2


@torch.no_grad()
def detector_outputs(detector: Detector, features: Tensor, device: torch.device, keys: Sequence[str] = MAP_KEYS
                     ) -> Maps:
    """The detector's outputs `keys` over `features` (run in batches of BATCH, kept on the CPU; None where it has
    no such map)."""
    parts: dict[str, list[Tensor]] = defaultdict(list)
    for start in range(0, len(features), BATCH):
        out: Mapping[str, object] = detector.maps(features[start:start + BATCH].to(device).float())
        for key in keys:
            value = out.get(key)
            if isinstance(value, Tensor):
                parts[key].append(value.float().cpu())
    return {key: torch.cat(parts[key]) if parts[key] else None for key in keys}


def _rows(maps: Tensor | None, start: int, device: torch.device) -> Tensor | None:
    return None if maps is None else maps[start:start + BATCH].to(device)


@torch.no_grad()
def fused_scores(detector: Detector, maps: Maps, device: torch.device) -> Tensor:
    """The image scores the detector serves (with its fusion as now set) from maps `detector_outputs` gave."""
    rec = maps["rec_map"]
    assert rec is not None, "every detector has a reconstruction map"
    scores = []
    for start in range(0, len(rec), BATCH):
        out = detector.fuse_maps(rec[start:start + BATCH].to(device), _rows(maps["ref_map"], start, device),
                                 _rows(maps["match_map"], start, device))
        scores.append(out["pred_score"].float().cpu())
    return torch.cat(scores)


def served_scores(detector: Detector, features: Tensor, device: torch.device) -> Tensor:
    """The image scores the detector serves for `features`, by a detector pass (batches of BATCH)."""
    scores = detector_outputs(detector, features, device, ("pred_score",))["pred_score"]
    assert scores is not None, "every detector scores its images"
    return scores


def set_fusion(detector: Detector, normal: Tensor, pseudo: Tensor, device: torch.device,
               log: Callable[[str], None]) -> tuple[tuple[Tensor, Tensor], dict | None]:
    """Set the fusion from the maps of the features `normal` and `pseudo` (validated: the weights `fit_fusion` finds;
    fixed with a refiner: c over both), and give both sets' served image scores and, when validated, the record of
    the fit for config.json."""
    config = detector.config
    if config.fusion == "validated":
        maps = [detector_outputs(detector, f, device) for f in (normal, pseudo)]
        fit = fit_fusion([maps[0][k] for k in MAP_KEYS], [maps[1][k] for k in MAP_KEYS], config.score_pool,
                         score_from_match=config.score_map == "match")
        for name, value in (("map_weights", fit.weights), ("map_shift", fit.shift), ("map_scale", fit.scale),
                            ("score_weights", fit.score_weights)):
            if hasattr(detector, name):
                getattr(detector, name).copy_(value)
        log(f"nipad: fusion: {fit.describe()}")
        record = {"weights": dict(zip(MAPS, fit.weights.tolist())),
                  "score_weights": dict(zip(MAPS, fit.score_weights.tolist())),
                  "auroc": {k: None if math.isnan(v) else v for k, v in fit.auroc.items()}}
        return (fused_scores(detector, maps[0], device), fused_scores(detector, maps[1], device)), record
    if config.uses_refiner:  # c spans both sets, in the batches it was always taken over
        both = detector_outputs(detector, torch.cat([normal, pseudo]), device)
        rec = both["rec_map"]
        assert rec is not None, "every detector has a reconstruction map"
        detector.get_buffer("fusion_scale").fill_(half_range(rec))
        scores = fused_scores(detector, both, device)
        return (scores[:len(normal)], scores[len(normal):]), None
    return (served_scores(detector, normal, device), served_scores(detector, pseudo, device)), None


def check_served(run_dir: Path, scores: tuple[Tensor, Tensor], info: RunInfo, judged: bool,
                 log: Callable[[str], None], save_refused: Callable[[], None]) -> float:
    """The served image score's AUROC on held-out normals against their pseudo-anomalous copies; below
    `SERVED_MIN_AUROC` the run is saved unfinished (`save_refused`) and TrainingError says so. Not `judged` (fewer
    than `MIN_VALIDATION` held-out images, or none: the training images stand in), the figure is only reported."""
    value = auroc(*scores)
    log(f"nipad: validation ({len(scores[0])} normal images + a pseudo anomaly of each): image AUROC "
        f"{100 * value:.1f}" + ("" if judged else " (too few held-out images to judge the run)"))
    if value < SERVED_MIN_AUROC and judged:
        info.extra["validation_auroc"] = value
        info.extra["refused"] = (
            f"its anomaly score tells held-out normal images from pseudo anomalies no better than chance "
            f"(validation image AUROC {100 * value:.1f} < {100 * SERVED_MIN_AUROC:.0f}), so predict, test, serve "
            f"and export refuse it. Train again with the default preset (nipad), more --epochs or a lower --lr")
        save_refused()
        raise TrainingError(f"{run_dir} is not marked finished: {info.extra['refused']}")
    return value


def pseudo_anomalous(detector: Detector, samples: Sequence[Sample], train: Sequence[Sample],
                     synthetic: SyntheticImages | None, texture_dir: str | None, device: torch.device,
                     workers: int) -> Tensor:
    """Features of one pseudo-anomalous copy of each of `samples`, drawn with a seed no training draw uses, by
    the training's own generator (`synthetic`: textures from the training images) or, without restoration, one
    like it."""
    size = detector.config.image_size
    pseudo = synthetic.pseudo if synthetic is not None else PseudoAnomaly(
        texture_source(texture_dir, DecodedImages([s.image_path for s in train], size)))
    copies = SyntheticImages(DecodedImages([s.image_path for s in samples], size), pseudo, FUSION_SEED)
    return synthetic_pool(detector.extractor, copies, 1, device, workers=workers)[0]


def build_token_bank(detector: Detector, data: TrainingSet, n_classes: int, seed: int, device: torch.device,
                     log: Callable[[str], None]) -> None:
    """Each class's matching bank: a greedy coreset of `match_coreset` of its training images' tokens."""
    if detector.bank is None:
        return
    coreset = detector.config.match_coreset
    parts = [coreset_tokens(data.bank[np.flatnonzero(data.owner == c)], coreset, seed) for c in range(n_classes)]
    owners = torch.cat([torch.full((len(p),), c, dtype=torch.long) for c, p in enumerate(parts)])
    detector.bank.load(torch.cat(parts).to(device), owners.to(device))
    log(f"nipad: matching bank: {len(owners)} tokens ({100 * coreset:g}% coreset per class)")
