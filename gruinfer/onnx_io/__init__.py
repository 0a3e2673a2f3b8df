"""onnx_io: the ONNX-facing room: loading models, reading attributes and opset forms, structure checks, GRU specs, and what each ONNX op computes in NumPy."""
