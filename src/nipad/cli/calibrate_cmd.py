"""`nipad calibrate RUN_DIR --data ROOT`: redo a run's thresholds on new NORMAL images (the data sets' train split).

`--method f1` instead sets each class's image threshold to the F1-maximising one on the test split's labelled
normal and defect images (pixel thresholds and score normalisation stay those of the normal images).
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nipad.cli.common import add_data_args, open_data
from nipad.errors import ConfigError

if TYPE_CHECKING:
    from nipad.data.sample import Sample
    from nipad.engine.calibration import Calibration


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("calibrate", help="set a run's thresholds again from normal images")
    p.add_argument("run_dir", metavar="RUN_DIR")
    add_data_args(p)
    p.add_argument("--method", choices=("rate", "f1"), default="rate",
                   help="rate (default): image thresholds for a false alarm rate on the train split's normal images; "
                        "f1: the F1-maximising image threshold on the test split's labelled defect and normal images "
                        "(every class needs defect images)")
    p.add_argument("--false-alarm-rate", type=float, help="target false alarm rate (default: the run's)")
    p.add_argument("--skip-trained", action="store_true",
                   help="leave out the images the run trained on (recognised by content) and calibrate on the rest, "
                        "e.g. the held-out ones, instead of refusing")
    p.add_argument("--device", help="cpu, cuda, cuda:1 ... (default: CUDA when present)")
    p.set_defaults(run=run)


def run(args: argparse.Namespace) -> int:
    """Under the run's writer lock (nipad.runs.integrity.update), so the thresholds are merged into the
    calibration on disk as it is now, and written with the model as it is now."""
    from nipad.engine.train_config import check_rate
    from nipad.runs import integrity

    check_rate(args.false_alarm_rate)  # 0 is refused, never read as "the run's rate"
    with integrity.update(args.run_dir):
        return _calibrate(args)


def _calibrate(args: argparse.Namespace) -> int:
    import torch

    from nipad.engine.calibration import ALL, Calibration, calibrate
    from nipad.engine.distributed import pick_device
    from nipad.families import load_run
    from nipad.runs.file_names import CALIBRATION

    model, info = load_run(args.run_dir, pick_device(args.device))
    has_old = (Path(args.run_dir) / CALIBRATION).is_file()  # a run without normal images (0-shot) has none yet
    old = Calibration.load(args.run_dir) if has_old else None
    data = open_data(args.data, args.classes)
    samples = data.test if args.method == "f1" else data.train
    known = set(info.classes) | set(info.prompt_classes) | (set(old.classes) - {ALL} if old else set())
    unknown = sorted({s.class_name for s in samples} - known)
    if unknown:
        raise ConfigError(f"the run in {args.run_dir} has no class {', '.join(unknown)} "
                          f"(it has {', '.join(sorted(known))}), so thresholds for it would never be used. Fix: pick "
                          f"its classes with --classes, or add a new class first with `nipad prompt add`")
    samples = _not_trained_on(args, info, samples)
    rate = args.false_alarm_rate if args.false_alarm_rate is not None else (old.rate if old else 0.01)
    if args.method == "f1":
        return _run_f1(args, model, samples, old, rate)
    with torch.inference_mode():
        new = calibrate(model, samples, rate, f"{len(samples)} normal images of {', '.join(args.data)}")
    (old.merged(new) if old else new).save(args.run_dir)
    for name, t in _shown(new, keep_pooled=old is None):
        print(f"  {name}: image threshold {t.image_threshold:.4g} set by a {100 * rate:g}% false alarm rate on "
              f"{t.n_images} normal images, pixel threshold {t.pixel_threshold:.4g}")
    print(f"nipad: thresholds for a {100 * rate:g}% false alarm rate (method rate) written to "
          f"{args.run_dir}/calibration.json")
    return 0


def _not_trained_on(args: argparse.Namespace, info: Any, samples: list[Sample]) -> list[Sample]:
    """`samples` when none is an image the run trained on; with --skip-trained, those that are not; else a
    DataError naming how many are and one of them. A run that records no training images (an older nipad) cannot
    be checked: a warning says so."""
    import warnings

    from nipad.errors import DataError
    from nipad.runs import trained_images

    trained = trained_images.trained_among(args.run_dir, samples)
    if trained is None:
        if info.extra.get("n_train", 1):  # a 0-shot run trained on no image at all
            warnings.warn(f"{args.run_dir} does not record the images it trained on (trained by an older nipad), so "
                          f"calibrate cannot check that these are other images. Thresholds set on training images "
                          f"are too low: use normal images the model did not train on", stacklevel=2)
        return samples
    if not trained:
        return samples
    seen = {id(s) for s in trained}
    rest = [s for s in samples if id(s) not in seen]
    split = "test" if args.method == "f1" else "train"
    if not args.skip_trained:
        raise DataError(f"{len(trained)} of the {len(samples)} {split}-split images of {', '.join(args.data)} are "
                        f"images the run in {args.run_dir} trained on (e.g. {trained[0].image_path}). The model "
                        f"scores its own training images lower than new ones, so thresholds set on them would flag "
                        f"far more good parts than intended. Fix: calibrate on normal images it did not train on "
                        f"(new ones, or the held-out ones: add --skip-trained to leave the {len(trained)} out and use "
                        f"the other {len(rest)})")
    if not rest:
        raise DataError(f"all {len(samples)} {split}-split images of {', '.join(args.data)} are images the run in "
                        f"{args.run_dir} trained on, so none is left to calibrate on. Fix: give normal images it did "
                        f"not train on, e.g. new ones from the line")
    print(f"nipad: left out {len(trained)} image(s) the run trained on (--skip-trained); calibrating on the other "
          f"{len(rest)}")
    return rest


def _shown(calibration: Calibration, keep_pooled: bool) -> list[tuple[str, Any]]:
    """(name a user reads, thresholds) of what was written: the classes in order, then the pooled entry (only
    when written: merging into an existing calibration keeps its pooled entry), said in words."""
    from nipad.engine.calibration import ALL, shown_class

    rows = [(name, t) for name, t in sorted(calibration.classes.items()) if name != ALL]
    if keep_pooled and ALL in calibration.classes:
        rows.append((f"{shown_class(ALL)}, for classes without their own", calibration.classes[ALL]))
    return rows


def _run_f1(args: argparse.Namespace, model: Any, samples: Sequence[Sample], old: Calibration | None,
            rate: float) -> int:
    """Image thresholds at the F1 maximum of each class's labelled test images; the rest of each class's
    thresholds (pixel threshold, normalisation span) kept from the run's calibration, or fitted on the test
    split's normal images at `rate` for a class it lacks."""
    import numpy as np
    import torch

    from nipad.engine.calibration import ALL, Calibration, above, fit_thresholds, shown_class
    from nipad.engine.evaluate import infer
    from nipad.engine.threshold_methods import f1_threshold

    defects = {s.class_name for s in samples if s.label == 1}
    lacking = sorted({s.class_name for s in samples} - defects)
    if not samples or lacking:
        raise ConfigError(f"--method f1 needs labelled defect images in the test split of {', '.join(args.data)}, and "
                          f"{'class ' + ', '.join(lacking) + ' has' if lacking else 'it has'} none. Fix: add defect "
                          f"images to the test split, pick classes that have them with --classes, or calibrate on "
                          f"normal images with --method rate")
    with torch.inference_mode():
        outputs = infer(model, samples)
    if outputs.skipped:
        print(f"nipad: skipped {len(outputs.skipped)} unreadable image(s), first: {outputs.skipped[0][0]}")
    groups = {name: (np.asarray(outputs.scores[name]), np.asarray(outputs.labels[name]), outputs.maps[name])
              for name in sorted(outputs.scores)}
    if old is None:  # the pooled entry is needed for classes without their own
        parts = list(groups.values())
        groups[ALL] = (np.concatenate([p[0] for p in parts]), np.concatenate([p[1] for p in parts]),
                       [m for p in parts for m in p[2]])
    classes, lines = {}, []
    for name, (scores, labels, maps) in groups.items():
        if not labels.any():
            raise ConfigError(f"--method f1: no defect image of class {name} could be read; see the skipped files")
        threshold, f1 = f1_threshold(scores, labels)
        base = old.classes.get(name) if old else None
        if base is None:
            normal = labels == 0
            if not normal.any():
                raise ConfigError(f"--method f1: class {name} has no calibrated thresholds yet and no normal test "
                                  f"image to set its pixel threshold from. Fix: run `nipad calibrate "
                                  f"{args.run_dir} --data ROOT` on normal images first")
            base = fit_thresholds(scores[normal], np.stack([m for m, n in zip(maps, normal) if n]), rate)
        classes[name] = replace(base, image_threshold=threshold, method="f1")
        caught = int((above(scores, threshold) & (labels == 1)).sum())
        alarms = int((above(scores, threshold) & (labels == 0)).sum())
        lines.append(f"  {shown_class(name)}: image threshold {threshold:.4g} set by F1-max (F1 {f1:.3f} on "
                     f"{int(labels.sum())} defect and {int((labels == 0).sum())} normal test images: {caught} defects "
                     f"caught, {alarms} false alarms); pixel threshold {base.pixel_threshold:.4g} set by the false "
                     f"alarm rate")
    source = f"F1-max on {len(samples)} labelled test images of {', '.join(args.data)}"
    new = Calibration(old.rate if old else rate, classes, source)
    (old.merged(new) if old else new).save(args.run_dir)
    print("\n".join(lines))
    print(f"nipad: F1-maximising image thresholds (method f1) written to {args.run_dir}/calibration.json. They were "
          f"chosen on these test images, so `nipad test` on the same images shows an optimistic operating point")
    return 0
