"""Accuracy of each kernel's sigmoid and tanh: at most 1e-6 absolute from float64 over a dense grid, read through one-unit GRUs."""
import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import gruinfer

X = np.concatenate([np.linspace(-30, 30, 20001), np.linspace(-1, 1, 2001),
                    [-88.0, -20.0, 0.0, 1e-8, -1e-8, 20.0, 88.0]]).astype(np.float32)


def one_unit_gru(f, g, f_alpha_beta=(None, None), g_alpha_beta=(None, None), wz=0.0, wh=0.0):
    """H=1, I=1, h0=0, T=1: Y = (1 - f(wz*x)) * g(wh*x)."""
    W = np.array([[[wz], [0.0], [wh]]], np.float32)
    R = np.zeros((1, 3, 1), np.float32)
    alphas = [a for a, _ in (f_alpha_beta, g_alpha_beta) if a is not None]
    betas = [b for _, b in (f_alpha_beta, g_alpha_beta) if b is not None]
    attrs = dict(hidden_size=1, activations=[f, g])
    if alphas:
        attrs["activation_alpha"] = alphas
    if betas:
        attrs["activation_beta"] = betas
    node = helper.make_node("GRU", ["X", "W", "R"], ["Y"], **attrs)
    graph = helper.make_graph(
        [node], "act", [helper.make_tensor_value_info("X", TensorProto.FLOAT, [1, None, 1])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(W, "W"), numpy_helper.from_array(R, "R")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = 8
    return model


def run(model, kernel):
    (y,) = gruinfer.InferenceSession(model, kernel=kernel).run(None, {"X": X.reshape(1, -1, 1)})
    return y.reshape(-1).astype(np.float64)


def test_sigmoid_accuracy(kernel):
    # g = Affine(0, 1) = 1, so Y = 1 - sigmoid(x)
    y = run(one_unit_gru("Sigmoid", "Affine", g_alpha_beta=(0.0, 1.0), wz=1.0), kernel)
    want = 1.0 - 1.0 / (1.0 + np.exp(-X.astype(np.float64)))
    assert np.abs(y - want).max() <= 1e-6


def test_tanh_accuracy(kernel):
    # f = Affine(0, 0) = 0, so Y = tanh(x)
    y = run(one_unit_gru("Affine", "Tanh", f_alpha_beta=(0.0, 0.0), wh=1.0), kernel)
    assert np.abs(y - np.tanh(X.astype(np.float64))).max() <= 1e-6


@pytest.mark.parametrize("fn", ["Sigmoid", "Tanh"])
def test_nan_propagates(kernel, fn):
    model = one_unit_gru("Affine", fn, f_alpha_beta=(0.0, 0.0), wh=1.0)
    sess = gruinfer.InferenceSession(model, kernel=kernel, check_finite=False)
    (y,) = sess.run(None, {"X": np.array([[[np.nan], [1.0]]], np.float32)})
    assert np.isnan(y.reshape(-1)[0]) and np.isfinite(y.reshape(-1)[1])
