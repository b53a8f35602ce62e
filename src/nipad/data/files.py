"""File-system helpers shared by the readers: folder checks, image listing, mask matching by stem."""

from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from nipad.errors import DataError

IMAGE_EXTENSIONS = frozenset({".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff"})


def require_dir(path: str | Path, what: str) -> Path:
    """`path` as a Path if it is an existing folder; otherwise a DataError naming it and `what` it should hold."""
    path = Path(path).expanduser()
    if not path.exists():
        raise DataError(f"{what} not found: {path}. Fix: check the path (it must be an existing folder).")
    if not path.is_dir():
        raise DataError(f"{what} is not a folder: {path}. Fix: give the folder that holds the images.")
    return path


def list_images(folder: Path) -> list[Path]:
    """Image files directly in `folder` (extension case-insensitive, hidden files skipped), sorted by name."""
    if not folder.is_dir():
        return []
    return sorted(
        p for p in folder.iterdir()
        if p.suffix.lower() in IMAGE_EXTENSIONS and not p.name.startswith(".") and p.is_file()
    )


def subfolders(folder: Path) -> list[Path]:
    """Visible sub-folders of `folder`, sorted by name."""
    if not folder.is_dir():
        return []
    return sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith("."))


def index_by_stem(files: list[Path]) -> dict[str, list[Path]]:
    """Files grouped by stem, to match masks to images whatever their extension."""
    index: dict[str, list[Path]] = defaultdict(list)
    for f in files:
        index[f.stem].append(f)
    return dict(index)


def match_mask(index: dict[str, list[Path]], stem: str) -> Path | None:
    """The mask of image `stem`: `<stem>_mask.*` first, else `<stem>.*`; None if neither; a DataError if ambiguous."""
    for key in (f"{stem}_mask", stem):
        hits = index.get(key, [])
        if len(hits) > 1:
            raise DataError(
                f"several masks match image {stem!r}: {', '.join(str(h) for h in hits)}. Fix: keep only one of them."
            )
        if hits:
            return hits[0]
    return None
