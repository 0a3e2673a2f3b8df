"""make_demo.py: writes demo.onnx, the small GRU model `gruinfer demo` runs (python gruinfer/data/make_demo.py)."""
import os

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

I, H = 8, 32


def build():
    rng = np.random.default_rng(20261123)
    W = rng.uniform(-0.3, 0.3, (1, 3 * H, I)).astype(np.float32)
    R = rng.uniform(-0.3, 0.3, (1, 3 * H, H)).astype(np.float32)
    B = rng.uniform(-0.1, 0.1, (1, 6 * H)).astype(np.float32)
    node = helper.make_node("GRU", ["x", "W", "R", "B"], ["y", "h"], name="gru",
                            hidden_size=H, linear_before_reset=1)
    graph = helper.make_graph(
        [node], "gruinfer_demo",
        [helper.make_tensor_value_info("x", TensorProto.FLOAT, ["time", "batch", I])],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, ["time", 1, "batch", H]),
         helper.make_tensor_value_info("h", TensorProto.FLOAT, [1, "batch", H])],
        [numpy_helper.from_array(W, "W"), numpy_helper.from_array(R, "R"),
         numpy_helper.from_array(B, "B")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)],
                              producer_name="gruinfer make_demo.py")
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


if __name__ == "__main__":
    out = os.path.join(os.path.dirname(os.path.abspath(__file__)), "demo.onnx")
    onnx.save(build(), out)
    print(f"wrote {out} (onnx {onnx.__version__})")
