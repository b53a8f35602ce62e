"""Deployment formats: the detector as one ONNX graph (`onnx_export.export_onnx`) and its onnxruntime runner
(`onnx_runner.OnnxDetector`, which needs no PyTorch model code)."""

DEFAULT_OPSET = 18  # here rather than in onnx_export so that `nipad export --help` needs no torch or onnx
MIN_OPSET, MAX_OPSET = 14, 20
"""The opsets `nipad export` writes: 20 is the newest the TorchScript exporter writes; below 14 there is no ONNX form
of the attention of OneNIP and UniAD (scaled_dot_product_attention), and below 11 none of their padding."""


def check_opset(opset: int) -> int:
    """`opset` if nipad can export to it, else a ConfigError naming the supported range."""
    from nipad.errors import ConfigError

    if not MIN_OPSET <= opset <= MAX_OPSET:
        raise ConfigError(f"--opset {opset} is not supported: nipad exports ONNX opsets {MIN_OPSET} to {MAX_OPSET} "
                          f"(default {DEFAULT_OPSET}). Fix: leave --opset out, or give one in that range")
    return opset
