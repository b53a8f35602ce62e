"""Deployment formats: the detector as one ONNX graph (`onnx_export.export_onnx`) and its onnxruntime runner
(`onnx_runner.OnnxDetector`, which needs no PyTorch model code)."""
