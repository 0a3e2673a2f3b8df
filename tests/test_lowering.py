"""Lowering of hand-built graphs: which ops become C steps, which take the declared Python path, which cannot stream."""
import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import gruinfer

I, H, N, T = 4, 6, 3, 11


def gru_head(head_nodes, inits=(), opset=17, out="out", seed=0):
    """X [T, N, I] -> GRU (linear_before_reset=1) -> Squeeze(axis 1) = "y" [T, N, H] -> head_nodes -> out."""
    rng = np.random.default_rng(seed)
    W = (rng.standard_normal((1, 3 * H, I)) * 0.5).astype(np.float32)
    R = (rng.standard_normal((1, 3 * H, H)) * 0.5).astype(np.float32)
    B = (rng.standard_normal((1, 6 * H)) * 0.5).astype(np.float32)
    nodes = [helper.make_node("GRU", ["X", "W", "R", "B"], ["Y", "Y_h"], name="gru", hidden_size=H,
                              linear_before_reset=1),
             helper.make_node("Squeeze", ["Y", "one"], ["y"], name="squeeze") if opset >= 13 else
             helper.make_node("Squeeze", ["Y"], ["y"], name="squeeze", axes=[1])] + list(head_nodes)
    inits = [numpy_helper.from_array(a, n) for n, a in
             [("W", W), ("R", R), ("B", B), ("one", np.array([1], np.int64))] + list(inits)]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["T", "N", I])],
                              [helper.make_tensor_value_info(out, TensorProto.FLOAT, None),
                               helper.make_tensor_value_info("Y_h", TensorProto.FLOAT, None)], inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    return m


def x_data(seed=1):
    return np.random.default_rng(seed).standard_normal((T, N, I)).astype(np.float32)


def stream_matches_run(sess):
    x = x_data()
    whole = sess.run(None, {"X": x})
    stream = sess.stream(N)
    parts = [stream.run(None, {"X": x[a:b]}) for a, b in ((0, 1), (1, 4), (4, T))]
    assert np.abs(np.concatenate([p[0] for p in parts]) - whole[0]).max() <= 1e-5
    assert np.abs(parts[-1][1] - whole[1]).max() <= 1e-5
    stream.reset()
    for t in range(T):
        assert np.abs(stream.step(x[t]) - whole[0][t]).max() <= 1e-5
    return stream


def test_dense_and_activations_lower_to_c_steps():
    rng = np.random.default_rng(3)
    w = rng.standard_normal((H, 5)).astype(np.float32)
    nodes = [helper.make_node("MatMul", ["y", "w"], ["m"], name="mm"),
             helper.make_node("Add", ["b", "m"], ["a"], name="bias"),
             helper.make_node("LeakyRelu", ["a"], ["l"], name="lrelu", alpha=0.3),
             helper.make_node("Mul", ["l", "s"], ["p"], name="scale"),
             helper.make_node("Sub", ["c", "p"], ["q"], name="flip"),
             helper.make_node("Div", ["q", "d"], ["r"], name="div"),
             helper.make_node("HardSigmoid", ["r"], ["out"], name="hs", alpha=0.3, beta=0.6)]
    inits = [("w", w), ("b", rng.standard_normal(5).astype(np.float32)),
             ("s", rng.standard_normal((1, 1, 5)).astype(np.float32)), ("c", np.float32(0.5)),
             ("d", np.full(5, 2.0, np.float32))]
    sess = gruinfer.InferenceSession(gru_head(nodes, inits))
    info = sess.plan_info()
    # MatMul + Add: one dense step; per-feature constants: binary steps with the constant copied
    assert info["lowered"] and info["steps"] == ["gru", "dense", "act", "binary", "binary", "binary", "act"]
    stream = stream_matches_run(sess)
    assert stream.lowered


@pytest.mark.parametrize("head, op", [
    (helper.make_node("Exp", ["y"], ["out"], name="exp"), "Exp"),
    (helper.make_node("Neg", ["y"], ["out"], name="neg"), "Neg"),
    (helper.make_node("ReduceMean", ["y"], ["out"], name="mean", axes=[2]), "ReduceMean"),
])
def test_python_path_is_declared_and_correct(head, op):
    sess = gruinfer.InferenceSession(gru_head([head], [("g", np.full(H, 1.5, np.float32))]))
    info = sess.plan_info()
    assert info["streamable"] and not info["lowered"]
    assert (head.name, op) in [(n, o) for n, o, _ in info["not_lowered"]]
    stream = stream_matches_run(sess)
    assert not stream.lowered
    # state API on the Python path
    x = x_data(5)
    stream.reset()
    stream.run(None, {"X": x[:4]})
    state = stream.get_state()
    assert set(state) == {"gru"} and state["gru"].shape == (N, H)
    rest = stream.run(None, {"X": x[4:]})[0]
    stream.set_state(state)
    assert np.array_equal(stream.run(None, {"X": x[4:]})[0], rest)
    stream.reset([1])
    assert not stream.get_state()["gru"][1].any() and stream.get_state()["gru"][0].any()


@pytest.mark.parametrize("head, why", [
    (helper.make_node("Softmax", ["y"], ["out"], name="over_time", axis=0), "time axis"),
    (helper.make_node("Concat", ["y", "y"], ["out"], name="cat_time", axis=0), "time or batch"),
    (helper.make_node("Slice", ["y", "s0", "s1", "s0"], ["out"], name="cut_time"), "time or batch"),
    (helper.make_node("Transpose", ["y"], ["t"], name="swap", perm=[2, 1, 0]), None),
])
def test_time_mixing_ops_not_streamable(head, why):
    nodes = [head] if head.name != "swap" else [
        head, helper.make_node("Reshape", ["t", "shape"], ["out"], name="flatten_time")]
    inits = [("s0", np.array([0], np.int64)), ("s1", np.array([2], np.int64)),
             ("shape", np.array([H, -1], np.int64))]
    sess = gruinfer.InferenceSession(gru_head(nodes, inits))
    sess.run(None, {"X": x_data()})                     # the whole sequence still runs
    with pytest.raises(gruinfer.NotStreamable) as e:
        sess.stream(N)
    name = head.name if head.name != "swap" else "flatten_time"
    assert repr(name) in str(e.value)
    if why:
        assert why in str(e.value)
    assert not sess.plan_info()["streamable"]


def test_softmax_before_opset_13_flattens_from_axis():
    """Softmax-11 axis=1 on [T, N, H] normalises over N and H together: causal, not over time."""
    head = helper.make_node("Softmax", ["y"], ["out"], name="sm11", axis=1)
    sess = gruinfer.InferenceSession(gru_head([head], opset=11))
    assert sess.plan_info()["streamable"]
    stream_matches_run(sess)
    head = helper.make_node("Softmax", ["y"], ["out"], name="sm11_t", axis=0)
    assert not gruinfer.InferenceSession(gru_head([head], opset=11)).plan_info()["streamable"]
