"""Which images a run trained on, kept so that `nipad calibrate` can refuse to set thresholds on them.

A model scores the images it was fitted on lower than new normal images (a memory bank holds their very patches),
so thresholds set on them flag far more good parts than the target false alarm rate. At training time every family
writes RUN_DIR/trained_images.json: the content fingerprints (sha256 of the file's bytes, the first 16 hex digits)
of the images it fitted on, sorted, not the held-out images it calibrated on:

    {"format": "nipad-trained-images/1", "fingerprint": "sha256 of the file bytes, first 16 hex digits",
     "count": N, "images": ["03af...", ...]}

about 19 bytes an image, and its hash is recorded in the run's manifest. Content, not paths: a copy or a moved
folder of the training images is still recognised. Runs trained before this file existed have none
(`fingerprints` gives None) and cannot be checked.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Sequence
from pathlib import Path

from nipad.data.sample import Sample
from nipad.errors import CheckpointError
from nipad.runs import integrity
from nipad.runs.file_names import TRAINED_IMAGES as FILE
from nipad.utils.io import read_json

FORMAT = "nipad-trained-images/1"
DIGITS = 16


def fingerprint(path: str | Path) -> str | None:
    """The first DIGITS hex digits of the sha256 of the file's bytes; None if it cannot be read."""
    try:
        with open(path, "rb") as fh:
            return hashlib.file_digest(fh, "sha256").hexdigest()[:DIGITS]
    except OSError:
        return None


def record(run_dir: str | Path, samples: Iterable[Sample]) -> None:
    """Write RUN_DIR/trained_images.json for the images in `samples` (unreadable files, which no model saw, are
    left out)."""
    prints = sorted({p for p in (fingerprint(s.image_path) for s in samples) if p is not None})
    integrity.write_json(run_dir, FILE, {"format": FORMAT, "fingerprint": f"sha256 of the file bytes, first "
                                         f"{DIGITS} hex digits", "count": len(prints), "images": prints})


def fingerprints(run_dir: str | Path) -> set[str] | None:
    """The recorded fingerprints of a run's training images; None for a run that records none (an older nipad);
    CheckpointError if the file is damaged."""
    path = Path(run_dir) / FILE
    if not path.is_file():
        return None
    integrity.verify(run_dir, FILE)
    try:
        data = read_json(path)
        if data.get("format") != FORMAT:
            raise ValueError(f"format {data.get('format')!r}, expected {FORMAT!r}")
        images = {str(p) for p in data["images"]}
    except (OSError, json.JSONDecodeError, KeyError, TypeError, ValueError, AttributeError) as err:
        raise CheckpointError(f"{path} is corrupt ({err}). Fix: restore the run from a backup or retrain it") from err
    return images


def trained_among(run_dir: str | Path, samples: Sequence[Sample]) -> list[Sample] | None:
    """The `samples` whose image the run trained on, in order; None when the run records no training images."""
    known = fingerprints(run_dir)
    if known is None:
        return None
    return [s for s in samples if fingerprint(s.image_path) in known]
