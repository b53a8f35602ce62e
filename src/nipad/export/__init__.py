"""Deployment formats: the detector as one ONNX graph (`onnx_export.export_onnx`) and its onnxruntime runner
(`onnx_runner.OnnxDetector`, which needs no PyTorch model code)."""

DEFAULT_OPSET = 18  # here rather than in onnx_export so that `nipad export --help` needs no torch or onnx
