"""FeatureCache: hits and misses, invalidation, memory and disk bounds, corrupt files and atomic writes."""

from pathlib import Path

import numpy as np
import pytest
import torch

from nipad.runs.feature_cache import FeatureCache

FEATURE_SHAPE = (4, 3, 3)
FEATURE_BYTES = 4 * 3 * 3 * 2  # float16


def make_cache(directory: Path | None, fingerprint: str = "bb-1", memory: int = 10**6, disk: int = 10**6):
    return FeatureCache(directory, fingerprint, 224, max_memory_bytes=memory, max_disk_bytes=disk)


def feature(seed: int) -> torch.Tensor:
    return torch.randn(FEATURE_SHAPE, generator=torch.Generator().manual_seed(seed))


def test_miss_then_hit_returns_float16_rounded_float32():
    cache = make_cache(None)
    assert cache.get("k") is None
    value = feature(0)
    cache.put("k", value)
    got = cache.get("k")
    assert got.dtype == torch.float32
    torch.testing.assert_close(got, value.half().float())
    assert (cache.hits, cache.misses) == (1, 1)


def test_file_key_changes_with_contents_fingerprint_and_size(tmp_path):
    image = tmp_path / "a.png"
    image.write_bytes(b"first image bytes")
    cache = make_cache(None)
    key = cache.key_for_file(image)
    assert key == cache.key_for_file(image)
    image.write_bytes(b"other image bytes")
    assert cache.key_for_file(image) != key
    image.write_bytes(b"first image bytes")
    assert make_cache(None, fingerprint="bb-2").key_for_file(image) != key
    assert FeatureCache(None, "bb-1", 256, 10**6, 10**6).key_for_file(image) != key


def test_array_key_depends_on_values_dtype_and_shape():
    cache = make_cache(None)
    arr = np.arange(12, dtype=np.uint8).reshape(2, 2, 3)
    key = cache.key_for_array(arr)
    assert key == cache.key_for_array(arr.copy())
    changed = arr.copy()
    changed[0, 0, 0] = 99
    assert cache.key_for_array(changed) != key
    assert cache.key_for_array(arr.reshape(2, 3, 2)) != key
    assert cache.key_for_array(arr.astype(np.uint16)) != key
    assert make_cache(None, fingerprint="bb-2").key_for_array(arr) != key


def test_disk_store_survives_a_new_cache_and_another_fingerprint_misses(tmp_path):
    image = tmp_path / "img.png"
    image.write_bytes(b"pixels")
    first = make_cache(tmp_path / "cache")
    first.put(first.key_for_file(image), feature(1))
    reopened = make_cache(tmp_path / "cache")
    torch.testing.assert_close(reopened.get(reopened.key_for_file(image)), feature(1).half().float())
    other = make_cache(tmp_path / "cache", fingerprint="bb-2")
    assert other.get(other.key_for_file(image)) is None


def test_memory_bound_evicts_least_recently_used():
    cache = make_cache(None, memory=2 * FEATURE_BYTES)
    cache.put("a", feature(0))
    cache.put("b", feature(1))
    assert cache.get("a") is not None  # "b" is now the least recently used
    cache.put("c", feature(2))
    assert cache.memory_bytes <= 2 * FEATURE_BYTES
    assert cache.get("b") is None
    assert cache.get("a") is not None and cache.get("c") is not None
    cache.put("huge", torch.zeros(100, 100))
    assert cache.get("huge") is None and cache.memory_bytes <= 2 * FEATURE_BYTES


def test_disk_bound_evicts_oldest_files(tmp_path):
    directory = tmp_path / "cache"
    one_file = _file_size(tmp_path)
    cache = make_cache(directory, memory=0, disk=2 * one_file)
    for i, key in enumerate(["a", "b", "c"]):
        cache.put(key, feature(i))
    files = sorted(p.stem for p in directory.glob("*.npy"))
    assert files == ["b", "c"]
    assert sum(p.stat().st_size for p in directory.glob("*.npy")) <= 2 * one_file == cache.disk_bytes
    assert cache.get("a") is None
    assert make_cache(directory, disk=one_file).disk_bytes <= one_file  # a smaller bound prunes existing files


def _file_size(tmp_path: Path) -> int:
    probe = make_cache(tmp_path / "probe")
    probe.put("x", feature(0))
    return probe.disk_bytes


@pytest.mark.parametrize("damage", ["garbage", "truncated"])
def test_corrupt_file_is_a_miss_and_is_replaced(tmp_path, damage):
    directory = tmp_path / "cache"
    make_cache(directory).put("k", feature(0))
    path = directory / "k.npy"
    path.write_bytes(b"\x93NUMPY garbage" if damage == "garbage" else path.read_bytes()[:-10])
    cache = make_cache(directory)
    assert cache.get("k") is None
    assert not (directory / "k.npy").exists()
    out = cache.get_or_compute(["k"], torch.zeros(1, 3, 8, 8), lambda batch: feature(5).unsqueeze(0))
    torch.testing.assert_close(out[0], feature(5).half().float())
    torch.testing.assert_close(make_cache(directory).get("k"), feature(5).half().float())


def test_a_bit_flip_that_still_parses_is_a_miss_not_wrong_features(tmp_path):
    directory = tmp_path / "cache"
    make_cache(directory).put("k", feature(0))
    path = directory / "k.npy"
    data = bytearray(path.read_bytes())
    data[-40] ^= 0x10  # inside the float16 values: np.load still reads it, the values are wrong
    path.write_bytes(bytes(data))
    assert np.load(path).shape == FEATURE_SHAPE
    cache = make_cache(directory)
    assert cache.get("k") is None and not path.exists()
    assert cache.misses == 1


def test_interrupted_write_leaves_no_partial_file(tmp_path, monkeypatch):
    directory = tmp_path / "cache"
    cache = make_cache(directory)
    cache.put("k", feature(0))

    def crash(file, arr, allow_pickle=False):
        file.write(b"\x93NUMPY partial")
        raise OSError("disk full")

    monkeypatch.setattr(np, "save", crash)
    with pytest.raises(OSError, match="disk full"):
        cache.put("k", feature(1))
    monkeypatch.undo()
    assert sorted(p.name for p in directory.iterdir()) == ["k.npy"]
    torch.testing.assert_close(make_cache(directory).get("k"), feature(0).half().float())


def test_get_or_compute_batches_only_the_misses():
    cache = make_cache(None)
    images = torch.arange(4, dtype=torch.float32).view(4, 1, 1, 1)
    cache.put("k1", torch.full(FEATURE_SHAPE, 1.0))
    calls = []

    def fn(batch):
        calls.append(batch.flatten().tolist())
        return batch.view(-1, 1, 1, 1).expand(-1, *FEATURE_SHAPE) * 10

    out = cache.get_or_compute(["k0", "k1", "k2", "k3"], images, fn)
    assert calls == [[0.0, 2.0, 3.0]]
    assert out.shape == (4, *FEATURE_SHAPE)
    assert out[:, 0, 0, 0].tolist() == [0.0, 1.0, 20.0, 30.0]
    cache.get_or_compute(["k0", "k1", "k2", "k3"], images, fn)
    assert len(calls) == 1
