"""Training features: decoded images kept once within their budget; pseudo anomalies drawn the same with or without
them; the pseudo-anomaly validation set."""

from __future__ import annotations

import numpy as np
from PIL import Image

from nipad.data import load_image, open_dataset
from nipad.engine.features import DecodedImages, SyntheticImages, texture_source
from nipad.engine.validation import pseudo_validation_set
from nipad.synth import PseudoAnomaly


def test_decoded_images_equal_load_image_and_keep_only_what_fits(tiny_mvtec, monkeypatch):
    paths = [s.image_path for s in open_dataset(tiny_mvtec).train[:3]]
    images = DecodedImages(paths, 32, max_bytes=2 * 32 * 32 * 3)
    first = [images[i] for i in range(3)]
    for path, image in zip(paths, first, strict=True):
        np.testing.assert_array_equal(image, load_image(path, 32))
    calls = []
    monkeypatch.setattr("nipad.engine.features.load_image", lambda p, s: calls.append(p) or load_image(p, s))
    assert images[0] is first[0] and images[1] is first[1]  # kept: no second decode
    images[2]
    assert calls == [paths[2]]  # over the budget: decoded again


def test_pseudo_anomalies_do_not_change_the_kept_images(tiny_mvtec):
    paths = [s.image_path for s in open_dataset(tiny_mvtec).train[:4]]
    images = DecodedImages(paths, 32)
    synthetic = SyntheticImages(images, PseudoAnomaly(texture_source(None, images)), seed=0)
    before = [images[i].copy() for i in range(4)]
    drawn = [synthetic[i] for i in range(4)]
    assert all(np.array_equal(images[i], before[i]) for i in range(4))
    again = [synthetic[i] for i in range(4)]
    assert all(bool((a[1] == b[1]).all()) and bool((a[2] == b[2]).all()) for a, b in zip(drawn, again, strict=True))
    assert any(bool(mask.any()) for _, _, mask in drawn)


def test_validation_set_pairs_each_held_out_image_with_a_masked_pseudo_anomaly(tiny_mvtec, tmp_path):
    data = open_dataset(tiny_mvtec)
    held, train = data.train[:2], data.train[2:]
    samples = pseudo_validation_set(held, train, 32, tmp_path)
    assert [s.label for s in samples] == [0, 1, 0, 1]
    assert [s.class_name for s in samples[::2]] == [s.class_name for s in held]
    for normal, anomalous in zip(samples[::2], samples[1::2], strict=True):
        np.testing.assert_array_equal(np.asarray(Image.open(normal.image_path).convert("RGB")),
                                      load_image(held[samples.index(normal) // 2].image_path, 32))
        mask = np.asarray(Image.open(anomalous.mask_path)) > 0
        assert mask.any()
        changed = np.abs(np.asarray(Image.open(anomalous.image_path), dtype=int)
                         - np.asarray(Image.open(normal.image_path), dtype=int)).sum(axis=2) > 0
        assert not changed[~mask].any()  # the image changes inside its mask only
