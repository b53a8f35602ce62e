"""Run a model of any family over test samples and score it with the metric protocol, per class then mean."""

from __future__ import annotations

from collections import defaultdict
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import torch
from torch.utils.data import DataLoader

from nipad.data.sample import Sample
from nipad.data.torch_dataset import ImageDataset, collate_skip_bad
from nipad.engine.calibration import ALL, Calibration, above
from nipad.errors import CheckpointError, DataError
from nipad.metrics import ClassInputs, Results, evaluate
from nipad.models.output import AnomalyModel, ModelOutput
from nipad.utils.progress import progress


@dataclass
class Outputs:
    """What inference over a set of samples gave, grouped by each sample's ground-truth class."""

    scores: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    labels: dict[str, list[int]] = field(default_factory=lambda: defaultdict(list))
    maps: dict[str, list[np.ndarray]] = field(default_factory=lambda: defaultdict(list))
    masks: dict[str, list[np.ndarray]] = field(default_factory=lambda: defaultdict(list))
    paths: dict[str, list[str]] = field(default_factory=lambda: defaultdict(list))
    skipped: list[tuple[str, str]] = field(default_factory=list)

    def add(self, name: str, score: float, label: int, anomaly_map: np.ndarray, mask: np.ndarray, path: str) -> None:
        """Record one image of ground-truth class `name`."""
        self.scores[name].append(score)
        self.labels[name].append(label)
        self.maps[name].append(anomaly_map)
        self.masks[name].append(mask)
        self.paths[name].append(path)


def batches(detector: AnomalyModel, samples: Sequence[Sample], batch_size: int = 8, workers: int = 0,
            desc: str = "inference") -> Iterator[tuple[dict, ModelOutput | None]]:
    """Yield (input batch, model outputs) over `samples`, skipping unreadable images (listed in batch["skipped"];
    the outputs are None when a whole batch was unreadable)."""
    device = detector.device
    dataset = ImageDataset(samples, detector.config.image_size, skip_bad=True)
    loader = DataLoader(dataset, batch_size=batch_size, num_workers=workers, collate_fn=collate_skip_bad)
    for batch in progress(loader, desc=desc, unit="batch"):
        # families that take the class (separate-mode baselines) get each sample's own
        given = {"classes": batch["class_name"]} if detector.takes_class else {}
        outputs = detector(batch["image"].to(device), **given) if len(batch["image"]) else None
        yield batch, outputs


def infer(detector: AnomalyModel, samples: Sequence[Sample], batch_size: int = 8, workers: int = 0,
          desc: str = "testing") -> Outputs:
    """Scores, maps and masks of every readable test sample (maps and masks at the model's input size); `desc`
    names the stage in the progress bar or log line."""
    out = Outputs()
    for batch, pred in batches(detector, samples, batch_size, workers, desc=desc):
        out.skipped += batch["skipped"]
        if pred is None:
            continue
        maps = pred["anomaly_map"][:, 0].float().cpu().numpy()
        check_finite_outputs(torch.as_tensor(pred["pred_score"]).float().cpu().numpy(), maps, batch["path"])
        for j, name in enumerate(batch["class_name"]):
            out.add(name, float(pred["pred_score"][j]), int(batch["label"][j]), maps[j],
                    batch["mask"][j, 0].numpy() > 0.5, batch["path"][j])
    return out


def check_finite_outputs(scores: np.ndarray, maps: np.ndarray, paths: Sequence) -> None:
    """CheckpointError naming the first image whose score or map holds NaN or infinity: a broken model gives no
    score, rather than a NaN that every comparison calls normal."""
    bad = ~np.isfinite(scores.reshape(len(scores), -1)).all(axis=1) | ~np.isfinite(maps.reshape(len(maps), -1)).all(1)
    if bad.any():
        raise CheckpointError(f"the model gave a NaN or infinite score or anomaly map for "
                              f"{paths[int(np.argmax(bad))]}: it is broken (NaN weights or an unstable model). Fix: "
                              f"retrain the run or restore it from a backup")


def score(outputs: Outputs, samples: Sequence[Sample], image_size: int, meta: dict | None = None) -> Results:
    """The protocol per class; a class whose anomalous samples have no masks gets no pixel metrics."""
    has_masks = {s.class_name for s in samples if s.mask_path is not None}
    inputs = {}
    for name in sorted(outputs.scores):
        pixel = name in has_masks
        inputs[name] = ClassInputs(
            image_scores=np.asarray(outputs.scores[name], dtype=np.float64),
            image_labels=np.asarray(outputs.labels[name]),
            anomaly_maps=np.stack(outputs.maps[name]) if pixel else None,
            masks=np.stack(outputs.masks[name]) if pixel else None,
        )
    meta = {**(meta or {}), "skipped_images": len(outputs.skipped)}
    return evaluate(inputs, image_size=(image_size, image_size), meta=meta)


@torch.no_grad()
def run_test(detector: AnomalyModel, samples: Sequence[Sample], batch_size: int = 8, workers: int = 0,
                  meta: dict | None = None) -> tuple[Results, Outputs]:
    outputs = infer(detector, samples, batch_size, workers)
    return score(outputs, samples, detector.config.image_size, meta), outputs


def operating_point(scores: Sequence[float] | np.ndarray, labels: Sequence[int] | np.ndarray,
                    threshold: float) -> dict[str, Any]:
    """What image threshold `threshold` does on labelled images (labels 1 = defect): a score ABOVE it is called a
    defect (calibration.above). Counts of defects_caught (TP), defects_missed (FN), false_alarms (FP) and
    correct_passes (TN), which add up to the number of images; precision TP / (TP + FP) (None when nothing is
    flagged) and recall TP / (TP + FN) (None without defect images)."""
    scores = np.asarray(scores, dtype=np.float64).reshape(-1)
    defect = np.asarray(labels).reshape(-1).astype(bool)
    if scores.shape != defect.shape:
        raise DataError(f"need one score per label; got {scores.size} scores, {defect.size} labels")
    flagged = above(scores, float(threshold))
    tp, fp = int((flagged & defect).sum()), int((flagged & ~defect).sum())
    fn, tn = int((~flagged & defect).sum()), int((~flagged & ~defect).sum())
    return {"image_threshold": float(threshold), "defects_caught": tp, "defects_missed": fn, "false_alarms": fp,
            "correct_passes": tn, "precision": tp / (tp + fp) if tp + fp else None,
            "recall": tp / (tp + fn) if tp + fn else None}


def operating_points(outputs: Outputs, calibration: Calibration) -> dict[str, dict[str, Any]]:
    """`operating_point` per class of `outputs` at its image threshold in `calibration` (the pooled one where the
    class has none: threshold_from "pooled"), with the method that set it (threshold_method)."""
    points = {}
    for name in sorted(outputs.scores):
        t = calibration.for_class(name)
        point = operating_point(outputs.scores[name], outputs.labels[name], t.image_threshold)
        points[name] = {"image_threshold": point.pop("image_threshold"), "threshold_method": t.method,
                        "threshold_from": "class" if name in calibration.classes and name != ALL else "pooled",
                        **point}
    return points


def format_operating_points(points: dict[str, dict[str, Any]]) -> str:
    """Plain-text table of `operating_points`: per class the threshold, its method and the counts at it."""
    header = ["class", "threshold", "set by", "caught", "missed", "false alarms", "correct passes", "precision",
              "recall"]

    def pct(v: float | None) -> str:
        return "-" if v is None else f"{100 * v:.1f}"

    rows = [[name, f"{p['image_threshold']:.4g}", p["threshold_method"] + (" (pooled)" * (p["threshold_from"] ==
             "pooled")), *(str(p[k]) for k in ("defects_caught", "defects_missed", "false_alarms", "correct_passes")),
             pct(p["precision"]), pct(p["recall"])] for name, p in points.items()]
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    lines = ["  ".join(c.ljust(w) if i < 3 else c.rjust(w) for i, (c, w) in enumerate(zip(r, widths)))
             for r in [header, *rows]]
    return "\n".join(["At the image threshold (a score above it is a defect); precision and recall in %:", *lines])
