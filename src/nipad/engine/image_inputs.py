"""The image files a user names for `nipad predict` (and `nipad prompt add`): files, folders searched recursively and
glob patterns, expanded into `ImageInput`s with unique output names that mirror the input tree."""

from __future__ import annotations

import glob
import os
import warnings
from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from nipad.data import IMAGE_EXTENSIONS
from nipad.data.image_io import file_kind


@dataclass(frozen=True)
class ImageInput:
    """An image file to predict on and its path relative to the common root of the inputs (for output names).
    `keep_suffix`: another input in the same folder has the same stem, so its outputs keep the image's suffix."""

    path: Path
    relative: Path
    keep_suffix: bool = False

    @property
    def output_stem(self) -> Path:
        """Where its outputs go below DIR/heatmaps and DIR/maps, without their own suffix: `lot/part` for
        lot/part.png, or `lot/part.png` when lot/part.jpg is an input too."""
        return self.relative if self.keep_suffix else self.relative.with_suffix("")


def find_images(paths: Sequence[str], exclude: str | Path | None = None) -> list[ImageInput]:
    """Image files named by `paths` (files as given; folders recursively and glob matches, both filtered by
    IMAGE_EXTENSIONS and without hidden entries), each once, in argument order; files under `exclude` (the output
    folder) are left out of folder and glob expansion. A path that matches nothing is warned about, and so is one
    that is not a regular file (a FIFO named b.png would block its reader forever), which is left out."""
    found: list[tuple[Path, Path]] = []
    skip = Path(exclude).resolve() if exclude is not None else None
    for text in paths:
        path = Path(text).expanduser()
        if path.is_file():
            found.append((path, path.parent))
            continue
        if path.exists() and not path.is_dir():
            _warn_not_regular(path)
            continue
        if path.is_dir():
            files, root = _images_under(path), path
        elif glob.has_magic(text):
            files, root = _glob_images(str(path)), _literal_prefix(path)
        else:
            warnings.warn(f"{text}: no such file or folder, and no glob pattern", stacklevel=2)
            continue
        files = [f for f in files if skip is None or not f.resolve().is_relative_to(skip)]
        if not files:
            warnings.warn(f"{text}: no image files ({', '.join(sorted(IMAGE_EXTENSIONS))}) found", stacklevel=2)
        found += [(f, root) for f in files]
    return _unique_inputs(found)


def _images_under(folder: Path) -> list[Path]:
    out = []
    for here, dirs, files in os.walk(folder):
        dirs[:] = sorted(d for d in dirs if not d.startswith("."))
        out += [Path(here) / f for f in sorted(files) if _is_image_name(f) and _regular_or_warn(Path(here) / f)]
    return out


def _regular_or_warn(path: Path) -> bool:
    """False, with a warning, for a path that exists and is not a regular file (a broken link passes: reading it
    fails with its own message)."""
    try:
        kind = file_kind(path.stat().st_mode)
    except OSError:
        return True
    if kind is not None:
        _warn_not_regular(path, kind)
    return kind is None


def _warn_not_regular(path: Path, kind: str | None = None) -> None:
    if kind is None:
        try:
            kind = file_kind(path.stat().st_mode) or "a regular file"
        except OSError:
            kind = "unreadable"
    warnings.warn(f"skipping {path}: it is {kind}, not a regular file", stacklevel=3)


def _glob_images(pattern: str) -> list[Path]:
    out = []
    for match in sorted(glob.glob(pattern, recursive=True)):
        p = Path(match)
        if p.is_dir():
            out += _images_under(p)
        elif p.is_file() and _is_image_name(p.name):
            out.append(p)
        elif p.exists() and _is_image_name(p.name):
            _warn_not_regular(p)
    return out


def _is_image_name(name: str) -> bool:
    return not name.startswith(".") and Path(name).suffix.lower() in IMAGE_EXTENSIONS


def _literal_prefix(pattern: Path) -> Path:
    """The folder part of a glob pattern before its first wildcard: the root its matches are named relative to."""
    parts = pattern.parts
    literal = next((i for i, part in enumerate(parts) if glob.has_magic(part)), len(parts))
    return Path(*parts[:literal]) if literal else Path(".")


def _unique_inputs(found: list[tuple[Path, Path]]) -> list[ImageInput]:
    """Drop repeats of one file and name the rest relative to the common folder of their roots, so that outputs
    mirror the input tree and two inputs with the same file name never share an output."""
    seen: set[Path] = set()
    files: list[tuple[Path, Path]] = []
    for path, root in found:
        key = path.resolve()
        if key not in seen:
            seen.add(key)
            files.append((path, root))
    if not files:
        return []
    base = os.path.commonpath([os.path.abspath(root) for _, root in files])
    relative = [Path(os.path.relpath(os.path.abspath(path), base)) for path, _ in files]
    stems = Counter(r.with_suffix("") for r in relative)
    return [ImageInput(path, rel, stems[rel.with_suffix("")] > 1) for (path, _), rel in zip(files, relative)]
