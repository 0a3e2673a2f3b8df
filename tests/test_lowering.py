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
    (helper.make_node("ReduceMax", ["y"], ["out"], name="max", axes=[-1], keepdims=0), "ReduceMax"),
    (helper.make_node("Erf", ["y"], ["out"], name="erf"), "Erf"),
    (helper.make_node("Max", ["y", "g"], ["out"], name="max_const"), "Max"),
    (helper.make_node("PRelu", ["y", "g"], ["out"], name="prelu"), "PRelu"),
    (helper.make_node("GlobalAveragePool", ["y"], ["out"], name="gap"), "GlobalAveragePool"),
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


BIG = np.iinfo(np.int64).max


@pytest.mark.parametrize("nodes", [
    [helper.make_node("Slice", ["y", "m1", "big", "zero"], ["out"], name="last")],
    [helper.make_node("Gather", ["y", "m1s"], ["out"], name="last", axis=0)],
    # tf2onnx's strided_slice: the whole batch axis and the last step of time in one Slice
    [helper.make_node("Slice", ["y", "starts", "ends", "axes"], ["last"], name="last"),
     helper.make_node("Squeeze", ["last", "zero"], ["out"], name="sq")],
], ids=["slice", "gather", "slice_two_axes"])
def test_last_frame_streams_as_a_final_state_value(nodes):
    """y[-1] (Keras return_sequences=False after a GRU node): each chunk gives the last frame so far."""
    inits = [("m1", np.array([-1], np.int64)), ("big", np.array([BIG], np.int64)),
             ("zero", np.array([0], np.int64)), ("m1s", np.array(-1, np.int64)),
             ("starts", np.array([0, -1], np.int64)), ("ends", np.array([BIG, BIG], np.int64)),
             ("axes", np.array([1, 0], np.int64))]
    sess = gruinfer.InferenceSession(gru_head(nodes, inits))
    info = sess.plan_info()
    assert info["streamable"] and info["lowered"] and info["steps"] == ["gru"]
    x = x_data()
    stream = sess.stream(N)
    for a, b in ((0, 1), (1, 4), (4, T)):
        got = stream.run(None, {"X": x[a:b]})
        want = sess.run(None, {"X": x[:b]})
        for g, w in zip(got, want):
            assert g.shape == w.shape and np.abs(g - w).max() <= 1e-5
    stream.reset()
    for t in range(T):
        want = sess.run(None, {"X": x[:t + 1]})[0]
        assert np.abs(stream.step(x[t]).reshape(want.shape) - want).max() <= 1e-5


@pytest.mark.parametrize("case", ["add_state", "mul_state", "tanh_of_state", "times_last_frame"])
def test_final_state_with_per_frame_values_not_streamable(case):
    """y + Y_h, y + tanh(Y_h), y * y[-1:]: every frame combined with the end of the sequence."""
    sq = helper.make_node("Squeeze", ["Y_h", "zero"], ["h"], name="sq")
    nodes = {"add_state": [sq, helper.make_node("Add", ["y", "h"], ["out"], name="mix")],
             "mul_state": [sq, helper.make_node("Mul", ["h", "y"], ["out"], name="mix")],
             "tanh_of_state": [sq, helper.make_node("Tanh", ["h"], ["th"], name="th"),
                               helper.make_node("Add", ["y", "th"], ["out"], name="mix")],
             "times_last_frame": [helper.make_node("Slice", ["y", "m1", "big", "zero"], ["yl"], name="yl"),
                                  helper.make_node("Mul", ["y", "yl"], ["out"], name="mix")]}[case]
    inits = [("zero", np.array([0], np.int64)), ("m1", np.array([-1], np.int64)),
             ("big", np.array([BIG], np.int64))]
    sess = gruinfer.InferenceSession(gru_head(nodes, inits))
    sess.run(None, {"X": x_data()})
    with pytest.raises(gruinfer.NotStreamable, match="'mix'.*per-frame values"):
        sess.stream(N)


def _feature_scale(axis):
    """y * Cast(Shape(y)[axis]) ** -0.5 (attention-style scaling by a size)."""
    return [helper.make_node("Shape", ["y"], ["shp"], name="shape"),
            helper.make_node("Gather", ["shp", f"ax{axis}"], ["size"], name="size", axis=0),
            helper.make_node("Cast", ["size"], ["fsize"], name="cast", to=TensorProto.FLOAT),
            helper.make_node("Pow", ["fsize", "mhalf"], ["scale"], name="pow"),
            helper.make_node("Mul", ["y", "scale"], ["out"], name="scaled")]


def _scale_inits():
    return [("mhalf", np.float32(-0.5))] + [(f"ax{a}", np.array(a, np.int64)) for a in range(3)]


def test_normalize_expands_a_per_frame_norm_back_over_features():
    """F.normalize: y / Expand(Clip(ReduceL2(y, -1)), Shape(y)) streams (on the Python path)."""
    nodes = [helper.make_node("ReduceL2", ["y", "last"], ["norm"], name="l2", keepdims=1),
             helper.make_node("Clip", ["norm", "eps"], ["clipped"], name="clip"),
             helper.make_node("Shape", ["y"], ["shp"], name="shape"),
             helper.make_node("Expand", ["clipped", "shp"], ["wide"], name="expand"),
             helper.make_node("Div", ["y", "wide"], ["out"], name="div")]
    inits = [("last", np.array([-1], np.int64)), ("eps", np.float32(1e-12))]
    sess = gruinfer.InferenceSession(gru_head(nodes, inits, opset=18))
    info = sess.plan_info()
    assert info["streamable"] and ("expand", "Expand") in [(n, o) for n, o, _ in info["not_lowered"]]
    stream_matches_run(sess)


def test_expand_along_time_not_streamable():
    nodes = [helper.make_node("Slice", ["y", "m1", "big", "zero"], ["last"], name="yl"),
             helper.make_node("Shape", ["y"], ["shp"], name="shape"),
             helper.make_node("Expand", ["Y_h", "shp"], ["out"], name="spread")]
    inits = [("zero", np.array([0], np.int64)), ("m1", np.array([-1], np.int64)),
             ("big", np.array([BIG], np.int64))]
    sess = gruinfer.InferenceSession(gru_head(nodes, inits))
    sess.run(None, {"X": x_data()})
    with pytest.raises(gruinfer.NotStreamable):
        sess.stream(N)


def test_scale_by_a_feature_size_streams_in_c():
    sess = gruinfer.InferenceSession(gru_head(_feature_scale(2), _scale_inits()))
    info = sess.plan_info()
    assert info["lowered"] and info["steps"] == ["gru", "binary"], info
    stream_matches_run(sess)


def test_scale_by_the_sequence_length_not_streamable():
    sess = gruinfer.InferenceSession(gru_head(_feature_scale(0), _scale_inits()))
    sess.run(None, {"X": x_data()})
    with pytest.raises(gruinfer.NotStreamable, match="'scaled'.*sequence length"):
        sess.stream(N)


def test_weights_listed_as_inputs_are_packed():
    """keep_initializers_as_inputs=True: a Linear weight that is also a graph input."""
    rng = np.random.default_rng(3)
    m = gru_head([helper.make_node("MatMul", ["y", "w"], ["m"], name="mm"),
                  helper.make_node("Add", ["m", "b"], ["out"], name="bias")],
                 [("w", rng.standard_normal((H, 5)).astype(np.float32)),
                  ("b", rng.standard_normal(5).astype(np.float32))])
    for t in m.graph.initializer:
        m.graph.input.append(helper.make_tensor_value_info(t.name, t.data_type, list(t.dims)))
    sess = gruinfer.InferenceSession(m)
    assert sess.plan_info()["lowered"] and sess.plan_info()["steps"] == ["gru", "dense"]
    stream_matches_run(sess)
    with pytest.raises(gruinfer.InvalidArgument, match="'w' is a weight"):
        sess.stream(N).run(None, {"X": x_data(), "w": np.zeros((H, 5), np.float32)})


@pytest.mark.parametrize("batch", ["N", 1])
def test_reshape_back_with_the_fixed_length_baked_in_streams_in_c(batch):
    """torch.export fixes the time axis of a batch-first GRU (5 here): the Linear head's
    reshape(-1, H) -> Gemm -> reshape(-1, 5, O) carries that 5 (and the batch too when it is
    fixed at 1: reshape(1, 5, O)); in C the plan is row-wise, so the stream takes chunks of any
    length."""
    rng = np.random.default_rng(8)
    Tf, O = 5, 4
    n = N if batch == "N" else 1
    W = (rng.standard_normal((1, 3 * H, I)) * 0.5).astype(np.float32)
    R = (rng.standard_normal((1, 3 * H, H)) * 0.5).astype(np.float32)
    nodes = [helper.make_node("Transpose", ["X"], ["Xt"], name="tin", perm=[1, 0, 2]),
             helper.make_node("GRU", ["Xt", "W", "R"], ["Y"], name="gru", hidden_size=H,
                              linear_before_reset=1),
             helper.make_node("Squeeze", ["Y", "one"], ["y"], name="sq"),
             helper.make_node("Transpose", ["y"], ["yb"], name="tout", perm=[1, 0, 2]),
             helper.make_node("Reshape", ["yb", "rows"], ["r"], name="merge"),
             helper.make_node("Gemm", ["r", "w", "b"], ["g"], name="linear", transB=1),
             helper.make_node("Reshape", ["g", "back"], ["out"], name="split")]
    inits = [("W", W), ("R", R), ("one", np.array([1], np.int64)), ("rows", np.array([-1, H], np.int64)),
             ("w", rng.standard_normal((O, H)).astype(np.float32)),
             ("b", rng.standard_normal(O).astype(np.float32)),
             ("back", np.array([-1 if batch == "N" else 1, Tf, O], np.int64))]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("X", TensorProto.FLOAT, [batch, Tf, I])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(a, n) for n, a in inits])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    sess = gruinfer.InferenceSession(m)
    assert sess.plan_info()["lowered"], sess.plan_info()
    x = rng.standard_normal((n, Tf, I)).astype(np.float32)
    (whole,) = sess.run(None, {"X": x})
    stream = sess.stream(n)
    got = np.concatenate([stream.run(None, {"X": x[:, a:b]})[0] for a, b in ((0, 2), (2, 3), (3, 5))], axis=1)
    assert np.abs(got - whole).max() <= 1e-5
    stream.reset()
    for t in range(Tf):
        assert np.abs(stream.step(x[:, t]) - whole[:, t]).max() <= 1e-5


def test_learned_initial_state_broadcast_over_the_batch_streams():
    """h0 = param.expand(-1, N, -1) (a learned initial state, dynamo's Expand to Concat([1], N, [1]))
    sliced per layer: every slot starts from it, after reset too."""
    rng = np.random.default_rng(11)
    W = (rng.standard_normal((1, 3 * H, I)) * 0.5).astype(np.float32)
    R = (rng.standard_normal((1, 3 * H, H)) * 0.5).astype(np.float32)
    h0p = rng.standard_normal((1, 1, H)).astype(np.float32)
    nodes = [helper.make_node("Shape", ["X"], ["n"], name="shape", start=1, end=2),
             helper.make_node("Concat", ["one", "n", "one"], ["tgt"], name="cat", axis=0),
             helper.make_node("Expand", ["h0p", "tgt"], ["h0"], name="expand"),
             helper.make_node("Slice", ["h0", "zero", "one", "zero"], ["h0_0"], name="layer0"),
             helper.make_node("GRU", ["X", "W", "R", "", "", "h0_0"], ["Y", "Y_h"], name="gru",
                              hidden_size=H, linear_before_reset=1)]
    inits = [("W", W), ("R", R), ("h0p", h0p), ("one", np.array([1], np.int64)),
             ("zero", np.array([0], np.int64))]
    graph = helper.make_graph(nodes, "g", [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["T", "N", I])],
                              [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None),
                               helper.make_tensor_value_info("Y_h", TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(a, n) for n, a in inits])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    sess = gruinfer.InferenceSession(m)
    assert sess.plan_info()["lowered"], sess.plan_info()
    stream = stream_matches_run(sess)
    stream.reset()
    assert np.allclose(stream.get_state()["gru"], np.broadcast_to(h0p[0], (N, H)))


def test_opset9_slices_of_states_stream():
    """Slice takes its bounds as attributes before opset 10: per-layer h0[l:l+1] and hn[-1:]."""
    rng = np.random.default_rng(9)
    layers = []
    for l in range(2):
        W = (rng.standard_normal((1, 3 * H, I if l == 0 else H)) * 0.5).astype(np.float32)
        R = (rng.standard_normal((1, 3 * H, H)) * 0.5).astype(np.float32)
        layers += [(f"W{l}", W), (f"R{l}", R)]
    nodes = [helper.make_node("Slice", ["h0"], ["h0_0"], name="h0_0", starts=[0], ends=[1], axes=[0]),
             helper.make_node("Slice", ["h0"], ["h0_1"], name="h0_1", starts=[1], ends=[2], axes=[0]),
             helper.make_node("GRU", ["X", "W0", "R0", "", "", "h0_0"], ["Y0", "Yh0"], name="gru0",
                              hidden_size=H, linear_before_reset=1),
             helper.make_node("Squeeze", ["Y0"], ["y0"], name="sq0", axes=[1]),
             helper.make_node("GRU", ["y0", "W1", "R1", "", "", "h0_1"], ["Y1", "Yh1"], name="gru1",
                              hidden_size=H, linear_before_reset=1),
             helper.make_node("Concat", ["Yh0", "Yh1"], ["hn"], name="cat", axis=0),
             helper.make_node("Slice", ["hn"], ["last"], name="last", starts=[-1], ends=[BIG], axes=[0])]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["T", "N", I]),
                     helper.make_tensor_value_info("h0", TensorProto.FLOAT, [2, "N", H])],
        [helper.make_tensor_value_info("last", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(a, n) for n, a in layers])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 9)])
    m.ir_version = 8
    sess = gruinfer.InferenceSession(m)
    assert sess.plan_info()["lowered"], sess.plan_info()
    x, h0 = x_data(), rng.standard_normal((2, N, H)).astype(np.float32)
    stream = sess.stream(N)
    for a, b in ((0, 3), (3, T)):
        got = stream.run(None, {"X": x[a:b], **({"h0": h0} if a == 0 else {})})[0]
    assert np.abs(got - sess.run(None, {"X": x, "h0": h0})[0]).max() <= 1e-5


def test_softmax_before_opset_13_flattens_from_axis():
    """Softmax-11 axis=1 on [T, N, H] normalises over N and H together: causal, not over time."""
    head = helper.make_node("Softmax", ["y"], ["out"], name="sm11", axis=1)
    sess = gruinfer.InferenceSession(gru_head([head], opset=11))
    assert sess.plan_info()["streamable"]
    stream_matches_run(sess)
    head = helper.make_node("Softmax", ["y"], ["out"], name="sm11_t", axis=0)
    assert not gruinfer.InferenceSession(gru_head([head], opset=11)).plan_info()["streamable"]


# ----------------------------------------------------------------------------- initial state [N, H]

def gru_h0(h0_nodes, layout=0, opset=17, inits=()):
    """X -> GRU with initial_h = "h0_3d" built from the graph input h0 [N, H] by h0_nodes; outputs Y, Y_h.
    layout 0: X [T, N, I]; layout 1: X [N, T, I] (lift_loop's Unsqueeze and tf2onnx Keras feed the
    state this way)."""
    rng = np.random.default_rng(7)
    W = (rng.standard_normal((1, 3 * H, I)) * 0.5).astype(np.float32)
    R = (rng.standard_normal((1, 3 * H, H)) * 0.5).astype(np.float32)
    B = (rng.standard_normal((1, 6 * H)) * 0.5).astype(np.float32)
    nodes = list(h0_nodes) + [helper.make_node(
        "GRU", ["X", "W", "R", "B", "", "h0_3d"], ["Y", "Y_h"], name="gru", hidden_size=H,
        linear_before_reset=1, **({"layout": 1} if layout else {}))]
    x_shape = ["N", "T", I] if layout else ["T", "N", I]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("X", TensorProto.FLOAT, x_shape),
                     helper.make_tensor_value_info("h0", TensorProto.FLOAT, ["N", H])],
        [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None),
         helper.make_tensor_value_info("Y_h", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(a, n) for n, a in [("W", W), ("R", R), ("B", B)] + list(inits)])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    return m


H0_FORMS = {
    "unsqueeze_input": ([helper.make_node("Unsqueeze", ["h0", "ax"], ["h0_3d"], name="unsq")], 0, 17,
                        [("ax", np.array([0], np.int64))]),
    "unsqueeze_negative_axis": ([helper.make_node("Unsqueeze", ["h0", "ax"], ["h0_3d"], name="unsq")], 0,
                                17, [("ax", np.array([-3], np.int64))]),
    "unsqueeze_attribute": ([helper.make_node("Unsqueeze", ["h0"], ["h0_3d"], name="unsq", axes=[0])], 0,
                            11, []),
    "identity_then_unsqueeze": ([helper.make_node("Identity", ["h0"], ["h0_id"], name="id"),
                                 helper.make_node("Unsqueeze", ["h0_id"], ["h0_3d"], name="unsq",
                                                  axes=[0])], 0, 11, []),
    "reshape": ([helper.make_node("Reshape", ["h0", "shape"], ["h0_3d"], name="resh")], 0, 17,
                [("shape", np.array([1, -1, H], np.int64))]),
    "layout1_unsqueeze_axis1": ([helper.make_node("Unsqueeze", ["h0", "ax"], ["h0_3d"], name="unsq")], 1,
                                17, [("ax", np.array([1], np.int64))]),
    "layout1_reshape": ([helper.make_node("Reshape", ["h0", "shape"], ["h0_3d"], name="resh")], 1, 17,
                        [("shape", np.array([-1, 1, H], np.int64))]),
    # the dynamo exporter slices the whole inserted axis again (h.unsqueeze(0)[0:1])
    "unsqueeze_then_slice": ([helper.make_node("Unsqueeze", ["h0", "ax"], ["h0_u"], name="unsq"),
                              helper.make_node("Slice", ["h0_u", "s0", "s1", "ax"], ["h0_3d"], name="sl")],
                             0, 17, [("ax", np.array([0], np.int64)), ("s0", np.array([0], np.int64)),
                                     ("s1", np.array([1], np.int64))]),
}


@pytest.mark.parametrize("form", sorted(H0_FORMS))
def test_initial_state_unsqueezed_from_n_by_h_input(form):
    """initial_h = Unsqueeze (or Reshape) of an [N, H] graph input: lowered to C; the stream's state
    feed takes [N, H] as the graph declares it; get_state / set_state as for any GRU."""
    nodes, layout, opset, inits = H0_FORMS[form]
    sess = gruinfer.InferenceSession(gru_h0(nodes, layout, opset, inits))
    info = sess.plan_info()
    assert info["lowered"] and info["steps"] == ["gru"], info
    t_ax = 1 if layout else 0
    x = x_data(2) if not layout else x_data(2).transpose(1, 0, 2).copy()
    h0 = np.random.default_rng(4).standard_normal((N, H)).astype(np.float32)
    whole = sess.run(None, {"X": x, "h0": h0})
    take = lambda a, b: x[a:b] if not layout else x[:, a:b]
    stream = sess.stream(N)
    assert stream.lowered
    parts = [stream.run(None, {"X": take(0, 2), "h0": h0})]
    parts += [stream.run(None, {"X": take(a, b)}) for a, b in ((2, 3), (3, T))]
    assert np.abs(np.concatenate([p[0] for p in parts], axis=t_ax) - whole[0]).max() <= 1e-5
    assert np.abs(parts[-1][1] - whole[1]).max() <= 1e-5
    # get_state / set_state are [N, H] per GRU node, as without the Unsqueeze
    stream.reset()
    stream.set_state({"gru": h0})
    state = stream.get_state()
    assert set(state) == {"gru"} and np.array_equal(state["gru"], h0)
    frames = [stream.step(x[t] if not layout else x[:, t]).copy() for t in range(T)]
    want = whole[0].transpose(1, 0, 2, 3) if layout else whole[0]  # [T, 1, N, H]
    assert np.abs(np.stack(frames) - want).max() <= 1e-5
    assert np.abs(stream.get_state()["gru"] - whole[1].reshape(N, H)).max() <= 1e-5
    # the feed is [N, H]: the GRU's own [1, N, H] is refused, and a failed call changes nothing
    before = stream.get_state()["gru"]
    with pytest.raises(gruinfer.InvalidArgument) as e:
        stream.run(None, {"X": take(0, 1), "h0": h0[None]})
    assert "'h0'" in str(e.value)
    with pytest.raises(gruinfer.InvalidArgument) as e:
        stream.run(None, {"X": take(0, 1), "h0": np.zeros((N + 1, H), np.float32)})
    assert "'h0'" in str(e.value) and f"[{N}, {H}]" in str(e.value)
    assert np.array_equal(stream.get_state()["gru"], before)
    # other batch sizes: the feed follows the stream's batch
    s1 = sess.stream(1)
    got = s1.run(None, {"X": take(0, T)[:, 1:2] if not layout else x[1:2], "h0": h0[1:2]})[1]
    assert np.abs(got.reshape(H) - whole[1].reshape(N, H)[1]).max() <= 1e-5


@pytest.mark.parametrize("nodes, inits, why", [
    # [N, 1, H] into a layout-0 GRU (needs [1, N, H]): not where the GRU reads num_directions
    ([helper.make_node("Unsqueeze", ["h0", "ax"], ["h0_3d"], name="unsq")],
     [("ax", np.array([1], np.int64))], "not where the GRU reads it"),
    ([helper.make_node("Reshape", ["h0", "shape"], ["h0_3d"], name="resh")],
     [("shape", np.array([-1, 1, H], np.int64))], "not where the GRU reads it"),
    # a Reshape that could move batch into the hidden axis
    ([helper.make_node("Reshape", ["h0", "shape"], ["h0_3d"], name="resh")],
     [("shape", np.array([1, H, -1], np.int64))], "[1, -1, H]"),
    # Unsqueeze of a computed value (not the input itself)
    ([helper.make_node("Relu", ["h0"], ["h0_r"], name="relu"),
      helper.make_node("Unsqueeze", ["h0_r", "ax"], ["h0_3d"], name="unsq")],
     [("ax", np.array([0], np.int64))], "'relu'"),
])
def test_initial_state_forms_not_followed(nodes, inits, why):
    sess = gruinfer.InferenceSession(gru_h0(nodes, 0, 17, inits))
    info = sess.plan_info()
    assert not info["streamable"] and why in info["reason"], info
    with pytest.raises(gruinfer.NotStreamable):
        sess.stream(N)


# ----------------------------------------------------------------------------- time and batch merged

F = 5


def _flat_head(rows_from, restore_from, extra=(), gemm=True, bf=False, restore=True):
    """(nodes, inits) for y [T, N, H] (or its batch-first Transpose "v" when bf) -> Reshape(rows_from)
    -> Gemm or MatMul to F -> Relu -> Softmax (extra nodes on "s" -> "s2") -> Reshape(restore_from) = out."""
    rng = np.random.default_rng(11)
    src = "v" if bf else "y"
    nodes = ([helper.make_node("Transpose", ["y"], ["v"], name="to_bf", perm=[1, 0, 2])] if bf else []) + [
        helper.make_node("Reshape", [src, "rows_shape"], ["flat"], name="flatten"),
        helper.make_node("Gemm", ["flat", "wt", "b"], ["g"], name="gemm", transB=1) if gemm else
        helper.make_node("MatMul", ["flat", "w"], ["g"], name="matmul"),
        helper.make_node("Relu", ["g"], ["r"], name="relu"),
        helper.make_node("Softmax", ["r"], ["s"], name="softmax", axis=-1)] + list(extra)
    last = extra[-1].output[0] if extra else "s"
    if restore:
        nodes += [helper.make_node("Shape", [restore_from], ["shp"], name="shape"),
                  helper.make_node("Slice", ["shp", "z", "two"], ["lead"], name="lead"),
                  helper.make_node("Concat", ["lead", "feat"], ["back"], name="cat", axis=0),
                  helper.make_node("Reshape", [last, "back"], ["out"], name="restore")]
    else:
        nodes += [helper.make_node("Identity", [last], ["out"], name="flat_out")]
    w = rng.standard_normal((H, F)).astype(np.float32)
    inits = [("rows_shape", np.asarray(rows_from, np.int64)), ("wt", w.T.copy()), ("w", w),
             ("b", rng.standard_normal(F).astype(np.float32)), ("z", np.array([0], np.int64)),
             ("two", np.array([2], np.int64)), ("feat", np.array([F], np.int64))]
    return nodes, inits


@pytest.mark.parametrize("gemm", [True, False])
def test_time_and_batch_merged_for_a_dense_head_lowers(gemm):
    """nnx.Linear on [.., T, H]: Reshape to [-1, H] (rows = frames x slots) -> Gemm -> row-wise ops ->
    Reshape back to Shape(y)[:2] + [F]: all C steps, equal to sess.run chunk by chunk and frame by frame."""
    sess = gruinfer.InferenceSession(gru_head(*_flat_head([-1, H], "y", gemm=gemm)))
    info = sess.plan_info()
    assert info["lowered"] and info["steps"] == ["gru", "dense", "act", "softmax"], info
    stream = stream_matches_run(sess)
    assert stream.lowered
    assert stream.step(x_data()[0]).shape == (N, F)


def test_batch_first_merge_restored_from_the_pre_flatten_shape():
    """[N, T, H] -> [-1, 1, H] (N outer) -> MatMul -> Reshape to Shape(v)[:2] + [F] -> Transpose back."""
    back = helper.make_node("Transpose", ["out_bf"], ["out"], name="to_tm", perm=[1, 0, 2])
    nodes, inits = _flat_head([-1, 1, H], "v", gemm=False, bf=True)
    nodes[-1].output[0] = "out_bf"
    sess = gruinfer.InferenceSession(gru_head(nodes + [back], inits))
    info = sess.plan_info()
    assert info["lowered"] and info["steps"] == ["gru", "dense", "act", "softmax"], info
    stream_matches_run(sess)


def test_merged_rows_as_an_output():
    """The merged value itself as the first output ([T * N, F], time outer): each chunk gives its
    k * N rows, step() the frame's N rows."""
    sess = gruinfer.InferenceSession(gru_head(*_flat_head([-1, H], "y", restore=False)))
    assert sess.plan_info()["lowered"]
    x = x_data()
    whole = sess.run(None, {"X": x})
    assert whole[0].shape == (T * N, F)
    stream = sess.stream(N)
    parts = [stream.run(None, {"X": x[a:b]})[0] for a, b in ((0, 1), (1, 5), (5, T))]
    assert [p.shape for p in parts] == [(N, F), (4 * N, F), ((T - 5) * N, F)]
    assert np.abs(np.concatenate(parts) - whole[0]).max() <= 1e-5
    stream.reset()
    frames = [stream.step(x[t]).copy() for t in range(T)]
    assert np.abs(np.concatenate(frames) - whole[0]).max() <= 1e-5


def test_merged_rows_on_the_python_path():
    """An op the C plan lacks (Exp) on merged rows: the declared Python path, still frame by frame."""
    exp = helper.make_node("Exp", ["s"], ["s2"], name="exp")
    sess = gruinfer.InferenceSession(gru_head(*_flat_head([-1, H], "y", extra=[exp])))
    info = sess.plan_info()
    assert info["streamable"] and not info["lowered"]
    # the Exp, and the restoring Reshape of its Python-path result
    assert [(n, o) for n, o, _ in info["not_lowered"]] == [("exp", "Exp"), ("restore", "Reshape")]
    assert not stream_matches_run(sess).lowered


@pytest.mark.parametrize("case, name, why", [
    # time mixed into features: [N, T, H] -> [N, T * H] (0 copies N)
    ("bf_time_into_features", "flatten", None),
    # rows mixed into features: [T, N, H] -> [-1, 2 * H]
    ("rows_into_features", "flatten", "do not match"),
    # merged T-outer rows split back as [N, T]: frames would be reshuffled
    ("restore_swapped", "restore", "cannot match"),
    # softmax over the merged rows normalises over time
    ("softmax_over_rows", "over_rows", "time axis"),
    # a merged value combined with a value of another layout
    ("merged_plus_unmerged", "mix", "another layout"),
])
def test_merges_that_mix_time_are_not_streamable(case, name, why):
    extra = []
    if case == "bf_time_into_features":
        nodes, inits = _flat_head([0, -1], "v", bf=True, restore=False)
        nodes = nodes[:2] + [helper.make_node("Identity", ["flat"], ["out"], name="o")]
    elif case == "rows_into_features":
        nodes, inits = _flat_head([-1, 2 * H], "y", restore=False)
        nodes = nodes[:1] + [helper.make_node("Identity", ["flat"], ["out"], name="o")]
    elif case == "restore_swapped":
        nodes, inits = _flat_head([-1, H], "v", restore=True)
        nodes.insert(0, helper.make_node("Transpose", ["y"], ["v"], name="to_bf", perm=[1, 0, 2]))
    elif case == "softmax_over_rows":
        extra = [helper.make_node("Softmax", ["s"], ["s2"], name="over_rows", axis=0)]
        nodes, inits = _flat_head([-1, H], "y", extra=extra)
    else:
        extra = [helper.make_node("Add", ["s", "y_f"], ["s2"], name="mix"),
                 helper.make_node("Identity", ["s2"], ["out"], name="o")]
        nodes, inits = _flat_head([-1, H], "y", restore=False)
        # [T * N, F] + [N, T, F] (same distance from time to the end, different rows)
        nodes = nodes[:-1] + [helper.make_node("Transpose", ["y"], ["v"], name="to_bf", perm=[1, 0, 2]),
                              helper.make_node("Slice", ["v", "z", "f5", "two"], ["y_f"], name="cut")] \
            + extra
        inits.append(("f5", np.array([F], np.int64)))
    sess = gruinfer.InferenceSession(gru_head(nodes, inits))
    info = sess.plan_info()
    assert not info["streamable"], info
    assert repr(name) in info["reason"] and (why is None or why in info["reason"]), info["reason"]
    with pytest.raises(gruinfer.NotStreamable):
        sess.stream(N)


@pytest.mark.parametrize("name", ["keras_gru_ra1_seq1", "keras_gru_ra0_seq1", "keras_gru_ra1_seq0"])
def test_keras_loop_started_from_a_state_input_streams(name):
    """tf2onnx Keras GRU given an initial state: the Loop's carried state starts from a graph input
    h0 [N, H] (here the exported zeros are replaced by one).  Lifted, that is Unsqueeze(h0) into
    initial_h: it streams in C with h0 fed as [N, H]."""
    import os

    import onnx
    import onnxruntime as ort

    fixtures = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")
    m = onnx.load(os.path.join(fixtures, name + ".onnx"))
    (loop,) = [n for n in m.graph.node if n.op_type == "Loop"]
    loop.input[3] = "h0"  # the carried state (after the trip count, condition and time counter)
    m.graph.input.append(helper.make_tensor_value_info("h0", TensorProto.FLOAT, ["batch", 6]))
    model = m.SerializeToString()
    sess = gruinfer.InferenceSession(model)
    info = sess.plan_info()
    assert info["lowered"] and "lifted into GRU" in info["loops"][0] and "zero" not in info["loops"][0]
    x = np.load(os.path.join(fixtures, name + ".npz"))["x_0"]
    x_name, (n, t) = sess.get_inputs()[0].name, x.shape[:2]
    h0 = np.random.default_rng(0).standard_normal((n, 6)).astype(np.float32)
    (want,) = ort.InferenceSession(model, providers=["CPUExecutionProvider"]).run(
        None, {x_name: x, "h0": h0})
    assert np.abs(sess.run(None, {x_name: x, "h0": h0})[0] - want).max() <= 1e-5
    stream = sess.stream(n)
    chunks = [stream.run(None, {x_name: x[:, :2], "h0": h0})[0]]
    chunks += [stream.run(None, {x_name: x[:, a:a + 2]})[0] for a in range(2, t, 2)]
    got = np.concatenate(chunks, axis=1) if want.ndim == 3 else chunks[-1]
    assert np.abs(got - want).max() <= 1e-5
    stream.reset()
    (gru_name,) = stream.get_state()
    stream.set_state({gru_name: h0})
    frames = [stream.step(x[:, a]).copy() for a in range(t)]
    got = np.stack(frames, axis=1) if want.ndim == 3 else frames[-1]
    assert np.abs(got.reshape(want.shape) - want).max() <= 1e-5


def test_initial_state_unsqueezed_on_the_python_path():
    """The same [N, H] state feed when an op the C plan lacks (Exp) keeps the stream in Python."""
    nodes = [helper.make_node("Unsqueeze", ["h0", "ax"], ["h0_3d"], name="unsq")]
    m = gru_h0(nodes, 0, 17, [("ax", np.array([0], np.int64))])
    m.graph.node.append(helper.make_node("Exp", ["Y"], ["E"], name="exp"))
    m.graph.output.insert(0, helper.make_tensor_value_info("E", TensorProto.FLOAT, None))
    sess = gruinfer.InferenceSession(m.SerializeToString())
    info = sess.plan_info()
    assert info["streamable"] and not info["lowered"]
    x = x_data(3)
    h0 = np.random.default_rng(5).standard_normal((N, H)).astype(np.float32)
    whole = sess.run(None, {"X": x, "h0": h0})
    stream = sess.stream(N)
    assert not stream.lowered
    parts = [stream.run(None, {"X": x[:4], "h0": h0}), stream.run(None, {"X": x[4:]})]
    for j in range(2):
        assert np.abs(np.concatenate([p[j] for p in parts]) - whole[j]).max() <= 1e-5
    assert np.abs(parts[-1][2] - whole[2]).max() <= 1e-5
    stream.reset()
    stream.set_state({"gru": h0})
    frames = [stream.step(x[t]).copy() for t in range(T)]
    assert np.abs(np.stack(frames) - whole[0]).max() <= 1e-5
    with pytest.raises(gruinfer.InvalidArgument):
        stream.run(None, {"X": x[:1], "h0": np.zeros((N + 1, H), np.float32)})


@pytest.mark.parametrize("layout", [0, 1])
def test_gru_input_without_declared_shape_streams(layout):
    """A graph input with no declared shape feeding a GRU's X directly is rank 3 by the GRU: it streams."""
    from onnx import TensorProto, helper, numpy_helper

    H = 8
    rng = np.random.default_rng(layout)
    W = rng.uniform(-.3, .3, (1, 3 * H, H)).astype(np.float32)
    R = rng.uniform(-.3, .3, (1, 3 * H, H)).astype(np.float32)
    node = helper.make_node("GRU", ["x", "W", "R"], ["y", "yh"], hidden_size=H, layout=layout)
    graph = helper.make_graph(
        [node], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, None)],
        [helper.make_tensor_value_info("y", TensorProto.FLOAT, None),
         helper.make_tensor_value_info("yh", TensorProto.FLOAT, None)],
        [numpy_helper.from_array(W, "W"), numpy_helper.from_array(R, "R")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = 8
    sess = gruinfer.InferenceSession(model)
    x = rng.standard_normal((5, 3, H) if layout == 0 else (3, 5, H)).astype(np.float32)
    y, _ = sess.run(None, {"x": x})
    stream = sess.stream(3)
    parts = [stream.run(["y"], {"x": x[t:t + 2] if layout == 0 else x[:, t:t + 2]})[0]
             for t in range(0, 5, 2)]
    assert sess.plan_info()["lowered"]
    np.testing.assert_allclose(np.concatenate(parts, axis=layout), y, rtol=0, atol=1e-5)
