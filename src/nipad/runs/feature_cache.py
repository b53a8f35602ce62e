"""Cache of the neck features of CLEAN images: the backbone is frozen, so they never change during training.

Keys hash the image (file bytes or decoded array), the backbone fingerprint and the image size, so a changed image,
other weights or another size is a miss. Features are stored as float16 (in memory and on disk, one .npy per key)
and returned as float32, so a hit and the first computation give the same values; float16 keeps about 3 significant
digits, far below the feature jitter used in training. Each file ends with the sha256 of the .npy bytes before it
(np.load ignores trailing bytes), so a damaged file, even one that still parses, is a miss: deleted and recomputed.
Not thread-safe.
"""

from __future__ import annotations

import hashlib
import io
import os
from collections import OrderedDict
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import cast

import numpy as np
import torch
from torch import Tensor

from nipad.utils.io import atomic_write

STORAGE_DTYPE = torch.float16
_SUFFIX = ".npy"
_DIGEST_BYTES = 32  # sha256 of the .npy bytes, appended to the file


class FeatureCache:
    """In-memory LRU bounded in bytes, plus an optional on-disk store bounded in bytes (oldest used evicted first)."""

    def __init__(
        self,
        dir: Path | None,
        backbone_fingerprint: str,
        image_size: int,
        max_memory_bytes: int,
        max_disk_bytes: int,
    ):
        self.dir = Path(dir) if dir is not None else None
        self.backbone_fingerprint = backbone_fingerprint
        self.image_size = image_size
        self.max_memory_bytes = max_memory_bytes
        self.max_disk_bytes = max_disk_bytes
        self.hits = 0
        self.misses = 0
        self._memory: OrderedDict[str, Tensor] = OrderedDict()
        self._memory_bytes = 0
        self._disk: OrderedDict[str, int] = OrderedDict()
        self._disk_bytes = 0
        if self.dir is not None:
            self.dir.mkdir(parents=True, exist_ok=True)
            self._disk = self._scan_disk(self.dir)
            self._disk_bytes = sum(self._disk.values())
            self._evict_disk()

    @property
    def memory_bytes(self) -> int:
        """Bytes of features held in memory."""
        return self._memory_bytes

    @property
    def disk_bytes(self) -> int:
        """Bytes of cache files on disk."""
        return self._disk_bytes

    def _salt(self) -> bytes:
        return f"|{self.backbone_fingerprint}|{self.image_size}".encode()

    def key_for_file(self, path: Path) -> str:
        """Key of an image file: sha1 of its bytes, the backbone fingerprint and the image size."""
        digest = hashlib.sha1(Path(path).read_bytes())
        digest.update(self._salt())
        return digest.hexdigest()

    def key_for_array(self, arr: np.ndarray) -> str:
        """Key of a decoded image: sha1 of its dtype, shape and values, the backbone fingerprint and the image size."""
        arr = np.ascontiguousarray(arr)
        digest = hashlib.sha1(f"{arr.dtype.str}{arr.shape}".encode())
        digest.update(arr.tobytes())
        digest.update(self._salt())
        return digest.hexdigest()

    def get(self, key: str) -> Tensor | None:
        """Features for `key` as float32, or None on a miss (an unreadable cache file is deleted and is a miss)."""
        stored = self._memory.get(key)
        if stored is not None:
            self._memory.move_to_end(key)
        else:
            stored = self._read_disk(key)
            if stored is not None:
                self._remember(key, stored)
        if stored is None:
            self.misses += 1
            return None
        self.hits += 1
        return stored.float()

    def put(self, key: str, tensor: Tensor) -> None:
        """Store the features of one image (any shape) in memory and, if a directory is set, on disk."""
        stored = tensor.detach().to("cpu", STORAGE_DTYPE).contiguous()
        self._remember(key, stored)
        if self.dir is not None:
            self._write_disk(key, stored)

    def get_or_compute(
        self, keys: Sequence[str], images: Tensor | Sequence, fn: Callable[[Tensor | Sequence], Tensor]
    ) -> Tensor:
        """Stacked features for `keys`; the misses' images go through `fn` in one batch and are cached.

        `images[i]` belongs to `keys[i]`; `fn` maps a batch of images (same type as `images`) to B x ... features.
        Results are on the CPU, float32, with the float16 rounding of the cache applied to the misses too.
        """
        found = [self.get(key) for key in keys]
        missing = [i for i, feature in enumerate(found) if feature is None]
        if missing:
            batch = images[torch.tensor(missing)] if isinstance(images, Tensor) else [images[i] for i in missing]
            computed = fn(batch)
            for row, i in enumerate(missing):
                self.put(keys[i], computed[row])
                found[i] = computed[row].detach().to("cpu", STORAGE_DTYPE).float()
        return torch.stack(cast(list[Tensor], found))  # every miss is filled above

    def _remember(self, key: str, stored: Tensor) -> None:
        """Insert into the memory LRU, evicting least recently used entries to stay within max_memory_bytes."""
        if key in self._memory:
            self._memory_bytes -= _nbytes(self._memory.pop(key))
        if _nbytes(stored) > self.max_memory_bytes:
            return
        self._memory[key] = stored
        self._memory_bytes += _nbytes(stored)
        while self._memory_bytes > self.max_memory_bytes:
            _, evicted = self._memory.popitem(last=False)
            self._memory_bytes -= _nbytes(evicted)

    def _path(self, key: str) -> Path:
        assert self.dir is not None
        return self.dir / f"{key}{_SUFFIX}"

    def _read_disk(self, key: str) -> Tensor | None:
        """Load a cache file; a missing file is None, a corrupt one (its digest does not match) is deleted and None."""
        if self.dir is None or key not in self._disk:
            return None
        path = self._path(key)
        try:
            data = path.read_bytes()
            body, digest = data[:-_DIGEST_BYTES], data[-_DIGEST_BYTES:]
            if len(data) <= _DIGEST_BYTES or hashlib.sha256(body).digest() != digest:
                raise ValueError("digest mismatch")
            array = np.load(io.BytesIO(body), allow_pickle=False)
            if array.dtype != np.float16:
                raise ValueError(f"dtype {array.dtype}")
        except (OSError, ValueError, EOFError):
            self._forget_disk(key)
            return None
        os.utime(path)
        self._disk.move_to_end(key)
        return torch.from_numpy(array)

    def _write_disk(self, key: str, stored: Tensor) -> None:
        """Write atomically (temp file in the same directory, then os.replace) and enforce max_disk_bytes."""
        assert self.dir is not None
        def save(tmp: Path) -> None:
            buffer = io.BytesIO()
            np.save(buffer, stored.numpy(), allow_pickle=False)
            body = buffer.getvalue()
            with open(tmp, "wb") as fh:
                fh.write(body + hashlib.sha256(body).digest())

        atomic_write(self._path(key), save, fsync=False)
        self._forget_size(key)
        self._disk[key] = self._path(key).stat().st_size
        self._disk_bytes += self._disk[key]
        self._evict_disk()

    def _evict_disk(self) -> None:
        while self._disk and self._disk_bytes > self.max_disk_bytes:
            self._forget_disk(next(iter(self._disk)))

    def _forget_size(self, key: str) -> None:
        self._disk_bytes -= self._disk.pop(key, 0)

    def _forget_disk(self, key: str) -> None:
        self._forget_size(key)
        self._path(key).unlink(missing_ok=True)

    @staticmethod
    def _scan_disk(directory: Path) -> OrderedDict[str, int]:
        """Existing cache files, oldest (least recently written or read) first."""
        entries = sorted((p.stat().st_mtime_ns, p.stem, p.stat().st_size) for p in directory.glob(f"*{_SUFFIX}"))
        return OrderedDict((stem, size) for _, stem, size in entries)


def _nbytes(tensor: Tensor) -> int:
    return tensor.numel() * tensor.element_size()

