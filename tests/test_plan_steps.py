"""The frame-wise C plan steps (softmax, logsoftmax, layernorm, binary, clip, embed, concat) against NumPy, their checks at plan creation, and the ONNX ops lowered to them."""
import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import gruinfer
from gruinfer import _core
from gruinfer.lower import steps as S

T, N, W = 5, 3, 7
TOL = 1e-5


def x_data(seed=0, shape=(T, N, W), scale=3.0):
    return (np.random.default_rng(seed).standard_normal(shape) * scale).astype(np.float32)


def typed(step):
    """A step written as a tuple ("layernorm", input, scale, bias, eps), ... as the typed step
    of gruinfer.lower.steps that lowering emits (its checks included)."""
    kind, inp, *args = step
    if kind == "gru":
        return S.GruStep(inp, *args)
    if kind == "dense":
        return S.DenseStep(inp, *args)
    if kind in ("softmax", "logsoftmax"):
        return S.SoftmaxStep(inp, log=kind == "logsoftmax")
    if kind == "layernorm":
        return S.LayerNormStep(inp, *args)
    if kind == "binary":
        return S.BinaryStep(inp, *args)
    if kind == "clip":
        return S.ClipStep(inp, *args)
    if kind == "concat":
        return S.ConcatStep(inp, *args)
    assert kind == "embed"
    return S.EmbedStep(*args, input=inp)


def plan_of(width, steps):
    return S.build_plan(width, [typed(s) for s in steps], None)


def run_plan(width, steps, x, check_finite=True):
    """Every step's output for frames x [T, N, width] (one chunk), as a list of [T, N, w] arrays."""
    plan = plan_of(width, steps)
    core = _core.StreamCore(plan, x.shape[1], len(steps) - 1, (x.shape[1], width),
                            (x.shape[1], plan.width(len(steps))), check_finite)
    outs = {}
    for k in range(len(steps)):
        arr = np.full((x.shape[0], x.shape[1], plan.width(k + 1)), np.nan, np.float32)
        outs[k] = (arr, x.shape[1] * arr.shape[2], arr.shape[2])
    x = np.ascontiguousarray(x, np.float32)
    core.run_chunk(x, x.shape[0], x.shape[1] * width, width, outs)
    return [outs[k][0] for k in range(len(steps))]


def test_stream_core_leaves_other_frames_to_a_subclass():
    core = _core.StreamCore(plan_of(W, [("softmax", 0)]), N, 0, (N, W), (N, W), True)
    close(core.step(np.ones((N, W), np.float32)), np.full((N, W), 1 / W, np.float32))
    with pytest.raises(TypeError, match="subclass"):
        core.step(np.ones((N, W)))  # float64: gruinfer.stream.Stream converts it


def close(a, b, tol=TOL):
    assert a.shape == b.shape, (a.shape, b.shape)
    assert np.allclose(a, b, rtol=0, atol=tol, equal_nan=True), np.nanmax(np.abs(a - b))


def np_softmax(x):
    z = x.astype(np.float64) - x.max(-1, keepdims=True)
    return np.exp(z) / np.exp(z).sum(-1, keepdims=True)


# ------------------------------------------------------------------ softmax, logsoftmax
def test_softmax_and_logsoftmax_match_numpy_and_are_stable():
    x = x_data()
    x[0, 0] += 500.0  # exp would overflow without subtracting the max
    x[1, 2] -= 500.0
    sm, lsm = run_plan(W, [("softmax", 0), ("logsoftmax", 0)], x)
    close(sm, np_softmax(x))
    z = x.astype(np.float64) - x.max(-1, keepdims=True)
    close(lsm, z - np.log(np.exp(z).sum(-1, keepdims=True)))
    assert np.isfinite(sm).all() and np.isfinite(lsm).all()
    close(sm.sum(-1), np.ones((T, N)))


def test_softmax_of_width_one_is_one():
    sm, lsm = run_plan(1, [("softmax", 0), ("logsoftmax", 0)], x_data(shape=(T, N, 1)))
    assert (sm == 1).all() and (lsm == 0).all()


# ------------------------------------------------------------------ layernorm
@pytest.mark.parametrize("with_bias", [True, False])
def test_layernorm_matches_numpy(with_bias):
    rng = np.random.default_rng(1)
    scale = rng.standard_normal(W).astype(np.float32)
    bias = rng.standard_normal(W).astype(np.float32) if with_bias else None
    x = x_data(2) + 10.0
    (y,) = run_plan(W, [("layernorm", 0, scale, bias, 1e-3)], x)
    xd = x.astype(np.float64)
    ref = (xd - xd.mean(-1, keepdims=True)) / np.sqrt(xd.var(-1, keepdims=True) + 1e-3) * scale
    close(y, ref + (bias if with_bias else 0))


def test_layernorm_copies_its_tables():
    scale, bias = np.ones(W, np.float32), np.zeros(W, np.float32)
    plan_steps = [("layernorm", 0, scale, bias, 1e-5)]
    x = x_data(3)
    before = run_plan(W, plan_steps, x)[0]
    plan = plan_of(W, plan_steps)
    scale[:] = 5.0
    core = _core.StreamCore(plan, N, 0, (N, W), (N, W), True)
    out = np.empty((1, N, W), np.float32)
    core.run_chunk(np.ascontiguousarray(x[:1]), 1, N * W, W, {0: (out, N * W, W)})
    close(out, before[:1])


@pytest.mark.parametrize("step, what", [
    (("layernorm", 0, np.ones(W - 1, np.float32), None, 1e-5), "scale and bias"),
    (("layernorm", 0, np.ones(W, np.float32), np.ones(W + 1, np.float32), 1e-5), "scale and bias"),
    (("layernorm", 0, np.full(W, np.nan, np.float32), None, 1e-5), "NaN or Inf"),
    (("layernorm", 0, np.ones(W, np.float32), np.full(W, np.inf, np.float32), 1e-5), "NaN or Inf"),
    (("layernorm", 0, np.ones(W, np.float32), None, -1.0), "attribute"),
    (("layernorm", 0, np.ones(W, np.float32), None, float("nan")), "attribute"),
])
def test_malformed_layernorm_refused(step, what):
    with pytest.raises(gruinfer.InvalidModel, match=what) as ei:
        plan_of(W, [step])
    assert ei.value.status == {"scale and bias": "size", "NaN or Inf": "nonfinite"}.get(what, "attr")


# ------------------------------------------------------------------ binary
OPS = {"add": np.add, "sub": np.subtract, "mul": np.multiply, "div": np.divide,
       "rsub": lambda a, b: b - a, "rdiv": lambda a, b: b / a}


@pytest.mark.parametrize("op", sorted(OPS))
def test_binary_of_two_buffers(op):
    rng = np.random.default_rng(4)
    Wd = rng.standard_normal((W, W)).astype(np.float32)
    x = x_data(5)
    # step 0: dense(x); step 1: x op dense(x); step 2: the same with the plan input second
    outs = run_plan(W, [("dense", 0, Wd, None), ("binary", 0, op, 1), ("binary", 1, op, 0)], x)
    d = outs[0]
    close(outs[1], OPS[op](x, d), 1e-4)
    close(outs[2], OPS[op](d, x), 1e-4)


@pytest.mark.parametrize("op", sorted(OPS))
def test_binary_with_a_constant(op):
    c = np.random.default_rng(6).uniform(0.5, 2.0, W).astype(np.float32)
    x = x_data(7)
    (y,) = run_plan(W, [("binary", 0, op, c)], x)
    close(y, OPS[op](x, c).astype(np.float32), 1e-4)


@pytest.mark.parametrize("widths", [(W, 1), (1, W), (3, 17), (16, 16)])
def test_concat_of_two_buffers(widths):
    """Rows side by side, whatever the widths (padded buffers included); the plan input joined
    to a later buffer and to itself."""
    a, b = widths
    rng = np.random.default_rng(9)
    Wa, Wb = (rng.standard_normal((w, W)).astype(np.float32) for w in (a, b))
    x = x_data(10)
    outs = run_plan(W, [("dense", 0, Wa, None), ("dense", 0, Wb, None), ("concat", 1, 2),
                        ("concat", 3, 0), ("concat", 0, 0)], x)
    np.testing.assert_array_equal(outs[2], np.concatenate([outs[0], outs[1]], -1))
    np.testing.assert_array_equal(outs[3], np.concatenate([outs[0], outs[1], x], -1))
    np.testing.assert_array_equal(outs[4], np.concatenate([x, x], -1))


@pytest.mark.parametrize("steps, what", [
    ([("concat", 0, 1)], "malformed plan step"),                   # a later buffer
    ([("concat", 0, -1)], "malformed plan step"),                  # no second buffer
    ([("dense", 0, np.ones((2**20, 1), np.float32), None), ("concat", 1, 1)], "size"),
])
def test_concat_checks(steps, what):
    with pytest.raises(gruinfer.InvalidModel, match=what):
        plan_of(W if steps[0][0] == "concat" else 1, steps)


def test_binary_reads_a_buffer_twice():
    x = x_data(8)
    (y,) = run_plan(W, [("binary", 0, "mul", 0)], x)
    close(y, x * x)


@pytest.mark.parametrize("steps, cls, what", [
    ([("dense", 0, np.ones((W + 1, W), np.float32), None), ("binary", 0, "add", 1)],
     gruinfer.InvalidModel, "does not match"),              # widths W and W + 1
    ([("binary", 0, "add", 1)], gruinfer.InvalidModel, "malformed plan step"),   # a later buffer
    ([("binary", 0, "add", -3)], gruinfer.InvalidModel, "not a buffer"),
    ([("binary", 0, "add", None)], TypeError, "constant"),
    ([("binary", 0, "add", np.ones(W - 1, np.float32))], gruinfer.InvalidModel, "input width"),
    ([("binary", 0, "add", np.array([1.0] * (W - 1) + [np.nan], np.float32))],
     gruinfer.InvalidModel, "NaN or Inf"),
    ([("binary", 0, "pow", 0)], ValueError, "unknown binary op"),
])
def test_malformed_binary_refused(steps, cls, what):
    with pytest.raises(cls, match=what):
        plan_of(W, steps)


# ------------------------------------------------------------------ clip
@pytest.mark.parametrize("lo, hi", [(-1.0, 2.0), (-np.inf, 0.5), (0.0, np.inf), (1.0, -1.0)])
def test_clip_matches_numpy(lo, hi):
    x = x_data(9)
    x[0, 0, 0] = np.nan
    (y,) = run_plan(W, [("clip", 0, lo, hi)], x, check_finite=False)
    close(y, np.minimum(np.maximum(x, np.float32(lo)), np.float32(hi)))
    assert np.isnan(y[0, 0, 0])  # NaN kept, as onnxruntime and numpy do


def test_clip_with_a_nan_bound_refused():
    with pytest.raises(gruinfer.InvalidModel, match="NaN or Inf"):
        plan_of(W, [("clip", 0, float("nan"), 1.0)])


# ------------------------------------------------------------------ embed
V, D = 9, 4


def table(seed=10):
    return np.random.default_rng(seed).standard_normal((V, D)).astype(np.float32)


def test_embed_looks_up_rows_with_onnx_negative_ids():
    tab = table()
    ids = np.random.default_rng(11).integers(-V, V, (T, N, 2))
    (y,) = run_plan(2, [("embed", 0, tab)], ids.astype(np.float32))
    close(y, tab[np.where(ids < 0, ids + V, ids)].reshape(T, N, 2 * D))


def gru_layer(I, H, seed=12):
    rng = np.random.default_rng(seed)
    W_, R_ = (rng.standard_normal((1, 3 * H, k)).astype(np.float32) for k in (I, H))
    return _core.Gru(I, H, 0, 0, None, [(0, 0.0, 0.0)], [(1, 0.0, 0.0)], W_, R_, None, None, "g")


@pytest.mark.parametrize("bad", [V, -V - 1, 2.5, np.nan, np.inf, 1e30])
@pytest.mark.parametrize("check_finite", [True, False])
def test_bad_ids_refused_before_any_state_changes(bad, check_finite):
    H = 5
    plan = plan_of(1, [("embed", 0, table()), ("gru", 1, gru_layer(D, H))])
    core = _core.StreamCore(plan, N, 1, (N, 1), (N, H), check_finite)
    ids = np.ones((3, N, 1), np.float32)
    core.run_chunk(ids, 3, N, 1, {})
    state = core._get_state(1, H)
    ids[2, 1, 0] = bad
    # NaN and Inf are refused as such when check_finite is on, as token ids otherwise
    with pytest.raises(gruinfer.InvalidArgument, match="token id|NaN or Inf"):
        core.run_chunk(ids, 3, N, 1, {})
    assert np.array_equal(core._get_state(1, H), state)


@pytest.mark.parametrize("steps, cls, what", [
    ([("dense", 0, np.ones((1, 1), np.float32), None), ("embed", 1, table())],
     gruinfer.InvalidModel, "malformed plan step"),    # ids only come from the plan input
    ([("embed", 0, np.full((V, D), np.nan, np.float32))], gruinfer.InvalidModel, "NaN or Inf"),
    ([("embed", 0, np.ones((V, 0), np.float32))], gruinfer.InvalidModel, "size"),
    ([("embed", 0, np.ones(V, np.float32))], TypeError, r"\[V, D\]"),
])
def test_malformed_embed_refused(steps, cls, what):
    with pytest.raises(cls, match=what):
        plan_of(1, steps)


# ------------------------------------------------------------------ ONNX ops lowered to these steps
I, H = 4, 6


def gru_model(head_nodes, inits=(), opset=17, x_type=TensorProto.FLOAT, front=(), x_shape=None,
              gru_in="X"):
    """X [T, N, I] -> (front) -> GRU -> Squeeze(1) = "y" [T, N, H] -> head_nodes -> "out"; Y_h too."""
    rng = np.random.default_rng(0)
    W_ = (rng.standard_normal((1, 3 * H, I)) * 0.5).astype(np.float32)
    R_ = (rng.standard_normal((1, 3 * H, H)) * 0.5).astype(np.float32)
    B_ = (rng.standard_normal((1, 6 * H)) * 0.5).astype(np.float32)
    nodes = list(front) + [
        helper.make_node("GRU", [gru_in, "W", "R", "B"], ["Y", "Y_h"], name="gru", hidden_size=H),
        helper.make_node("Squeeze", ["Y", "one"], ["y"], name="squeeze") if opset >= 13 else
        helper.make_node("Squeeze", ["Y"], ["y"], name="squeeze", axes=[1])] + list(head_nodes)
    inits = [numpy_helper.from_array(np.asarray(a), n) for n, a in
             [("W", W_), ("R", R_), ("B", B_), ("one", np.array([1], np.int64))] + list(inits)]
    graph = helper.make_graph(
        nodes, "g", [helper.make_tensor_value_info("X", x_type, x_shape or ["T", "N", I])],
        [helper.make_tensor_value_info("out", TensorProto.FLOAT, None),
         helper.make_tensor_value_info("Y_h", TensorProto.FLOAT, None)], inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    return m


def streams_like_run(sess, x, steps):
    info = sess.plan_info()
    assert info["lowered"] and info["steps"] == steps, info
    whole = sess.run(None, {"X": x})
    stream = sess.stream(x.shape[1])
    assert stream.lowered
    parts = [stream.run(None, {"X": x[a:b]}) for a, b in ((0, 1), (1, 4), (4, len(x)))]
    close(np.concatenate([p[0] for p in parts]), whole[0])
    close(parts[-1][1], whole[1])
    stream.reset()
    for t in range(len(x)):
        close(stream.step(x[t]), whole[0][t])


def fx(seed=1, T_=11):
    return np.random.default_rng(seed).standard_normal((T_, N, I)).astype(np.float32)


@pytest.mark.parametrize("opset", [11, 13, 17])
@pytest.mark.parametrize("op", ["Softmax", "LogSoftmax"])
def test_onnx_softmax_lowered(op, opset):
    head = [helper.make_node("Mul", ["y", "k"], ["z"], name="sharpen"),
            helper.make_node(op, ["z"], ["out"], name="sm", axis=2 if opset < 13 else -1)]
    sess = gruinfer.InferenceSession(gru_model(head, [("k", np.float32(4.0))], opset=opset))
    streams_like_run(sess, fx(), ["gru", "binary", op.lower()])


def test_onnx_layernorm_residual_clip_lowered():
    rng = np.random.default_rng(2)
    head = [helper.make_node("LayerNormalization", ["y", "g", "b"], ["n"], name="ln", epsilon=1e-3),
            helper.make_node("Add", ["n", "y"], ["r"], name="residual"),
            helper.make_node("Sub", ["r", "y"], ["s"], name="minus"),
            helper.make_node("Div", ["s", "r"], ["q"], name="ratio"),
            helper.make_node("Clip", ["q", "lo", "hi"], ["out"], name="clip")]
    inits = [("g", rng.standard_normal(H).astype(np.float32)),
             ("b", rng.standard_normal(H).astype(np.float32)),
             ("lo", np.float32(-1.5)), ("hi", np.float32(0.75))]
    sess = gruinfer.InferenceSession(gru_model(head, inits))
    streams_like_run(sess, fx(), ["gru", "layernorm", "binary", "binary", "binary", "clip"])


def test_onnx_clip_before_opset_11_and_one_sided():
    head = [helper.make_node("Clip", ["y"], ["c"], name="clip6", min=-0.2, max=0.3),
            helper.make_node("Relu", ["c"], ["out"], name="relu")]
    streams_like_run(gruinfer.InferenceSession(gru_model(head, opset=10)), fx(),
                     ["gru", "clip", "act"])
    head = [helper.make_node("Clip", ["y", "lo"], ["out"], name="floor")]
    streams_like_run(gruinfer.InferenceSession(gru_model(head, [("lo", np.float32(0.1))])), fx(),
                     ["gru", "clip"])


def test_onnx_constant_minus_and_over_a_time_path_value_lowered():
    head = [helper.make_node("Sigmoid", ["y"], ["s"], name="sig"),
            helper.make_node("Div", ["c", "s"], ["d"], name="inv"),
            helper.make_node("Sub", ["c", "d"], ["out"], name="flip")]
    sess = gruinfer.InferenceSession(gru_model(head, [("c", np.float32(2.0))]))
    streams_like_run(sess, fx(), ["gru", "act", "binary", "binary"])


def test_two_values_of_different_layouts_stay_on_the_python_path():
    """[T, N, 1, H] + [T, N, H, 1]: an outer product per frame, which one C binary step is not."""
    head = [helper.make_node("Unsqueeze", ["y", "two"], ["u"], name="unsq2"),
            helper.make_node("Unsqueeze", ["y", "three"], ["v"], name="unsq3"),
            helper.make_node("Add", ["u", "v"], ["out"], name="add_layouts")]
    sess = gruinfer.InferenceSession(gru_model(head, [("two", np.array([2], np.int64)),
                                                      ("three", np.array([3], np.int64))]))
    info = sess.plan_info()
    assert info["streamable"] and not info["lowered"]
    assert ("add_layouts", "Add") in [(n, o) for n, o, _ in info["not_lowered"]]
    x = fx()
    stream = sess.stream(N)
    close(np.concatenate([stream.run(None, {"X": x[a:b]})[0] for a, b in ((0, 3), (3, 11))]),
          sess.run(None, {"X": x})[0])


@pytest.mark.parametrize("layout", ["TN", "NT"])
def test_onnx_concat_over_features_lowered(layout):
    """A Concat of time-path values over features (RNNoise's [dense, gru, input]) is a chain of
    C concat steps, in time-major and batch-major layouts; one over part of a frame's axes
    stays on the Python path."""
    rng = np.random.default_rng(5)
    d = rng.standard_normal((I, 3)).astype(np.float32)
    nt = layout == "NT"
    perm = [helper.make_node("Transpose", [v], [v + "_nt"], name=f"t_{v}", perm=[1, 0, 2])
            for v in ("y", "X", "h")] if nt else []
    sfx = "_nt" if nt else ""
    head = [helper.make_node("MatMul", ["X", "D"], ["h"], name="dense")] + perm + [
        helper.make_node("Concat", ["h" + sfx, "y" + sfx, "X" + sfx], ["c"], name="cat",
                         axis=2)]
    head.append(helper.make_node("Transpose", ["c"], ["out"], name="back", perm=[1, 0, 2])
                if nt else helper.make_node("Identity", ["c"], ["out"], name="id"))
    sess = gruinfer.InferenceSession(gru_model(head, [("D", d)]))
    streams_like_run(sess, fx(), ["gru", "dense", "concat", "concat"])
    x = fx()
    y = sess.run(None, {"X": x})[0]
    close(y[..., :3], x @ d)
    close(y[..., 3 + H:], x)


def test_onnx_concat_of_4d_rows_stays_on_the_python_path():
    """[T, N, 2, H] joined on the last axis interleaves rows: no C step for it."""
    head = [helper.make_node("Unsqueeze", ["y", "two"], ["u"], name="unsq"),
            helper.make_node("Concat", ["u", "u"], ["c"], name="cat", axis=2),
            helper.make_node("Concat", ["c", "c"], ["out"], name="cat2", axis=3)]
    sess = gruinfer.InferenceSession(gru_model(head, [("two", np.array([2], np.int64))]))
    info = sess.plan_info()
    assert info["streamable"] and not info["lowered"]
    assert "cat2" in [n for n, _, _ in info["not_lowered"]]
    x = fx()
    stream = sess.stream(N)
    close(np.concatenate([stream.run(None, {"X": x[a:b]})[0] for a, b in ((0, 3), (3, 11))]),
          sess.run(None, {"X": x})[0])


def embed_model(opset=17):
    tab = np.random.default_rng(3).standard_normal((V, I)).astype(np.float32)
    front = [helper.make_node("Gather", ["E", "X"], ["e"], name="embed")]
    head = [helper.make_node("Softmax", ["y"], ["out"], name="sm")]
    return gru_model(head, [("E", tab)], opset, TensorProto.INT64, front, ["T", "N"], "e"), tab


def test_onnx_embedding_front_lowered_and_bad_ids_refused():
    model, tab = embed_model()
    sess = gruinfer.InferenceSession(model)
    ids = np.random.default_rng(4).integers(-V, V, (11, N))
    streams_like_run(sess, ids, ["embed", "gru", "softmax"])
    stream = sess.stream(N)
    stream.run(None, {"X": ids[:3]})
    state = stream.get_state()
    for bad in (V, -V - 1, 1 << 40):
        chunk = ids[3:6].copy()
        chunk[1, 2] = bad
        with pytest.raises(gruinfer.InvalidArgument, match="token id"):
            stream.run(None, {"X": chunk})
        with pytest.raises(gruinfer.InvalidArgument, match="token id"):
            stream.step(chunk[1])
        with pytest.raises(gruinfer.InvalidArgument):  # the whole-sequence run refuses it too
            sess.run(None, {"X": chunk})
    assert np.array_equal(stream.get_state()["gru"], state["gru"])
    # float32 ids are the no-conversion path of step()
    stream.reset()
    out = np.empty((N, H), np.float32)
    whole = sess.run(None, {"X": ids})[0]
    for t in range(len(ids)):
        stream.step(ids[t].astype(np.float32), out=out)
        close(out, whole[t])


def test_embedding_table_with_nan_refused():
    model, tab = embed_model()
    t = model.graph.initializer[-1]
    bad = tab.copy()
    bad[2, 1] = np.nan
    t.CopyFrom(numpy_helper.from_array(bad, "E"))
    sess = gruinfer.InferenceSession(model)
    info = sess.plan_info()
    assert not info["streamable"] and "NaN or Inf" in info["reason"] and "'embed'" in info["reason"]


# ------------------------------------------------------------------ outputs from final states
def state_model(head_nodes, inits=()):
    """X -> GRU -> Y_h [1, N, H] -> head_nodes -> "out" (first output); Y as second output."""
    m = gru_model([], inits)
    g = m.graph
    del g.output[:]
    g.node.extend(head_nodes)
    g.output.extend([helper.make_tensor_value_info("out", TensorProto.FLOAT, None),
                     helper.make_tensor_value_info("y", TensorProto.FLOAT, None),
                     helper.make_tensor_value_info("Y_h", TensorProto.FLOAT, None)])
    return m


def test_head_on_the_final_state_streams_as_prefix_runs():
    rng = np.random.default_rng(5)
    head = [helper.make_node("Squeeze", ["Y_h", "zero"], ["h"], name="drop_dir"),
            helper.make_node("MatMul", ["h", "w"], ["m"], name="linear"),
            helper.make_node("Add", ["m", "b"], ["a"], name="bias"),
            helper.make_node("LayerNormalization", ["a", "g"], ["n"], name="ln"),
            helper.make_node("Mul", ["n", "a"], ["p"], name="gate"),
            helper.make_node("LogSoftmax", ["p"], ["out"], name="lsm")]
    inits = [("zero", np.array([0], np.int64)), ("w", rng.standard_normal((H, 3)).astype(np.float32)),
             ("b", rng.standard_normal(3).astype(np.float32)), ("g", np.ones(3, np.float32))]
    sess = gruinfer.InferenceSession(state_model(head, inits))
    info = sess.plan_info()
    assert info["lowered"] and info["steps"] == ["gru", "dense", "layernorm", "binary", "logsoftmax"]
    x = fx(T_=9)
    stream = sess.stream(N)
    for a, b in ((0, 1), (1, 4), (4, 9)):
        got = stream.run(None, {"X": x[a:b]})
        want = sess.run(None, {"X": x[:b]})
        close(got[0], want[0])                       # from the final state: the prefix's value
        close(got[1], want[1][a:b])                  # per frame: this chunk's frames
        close(got[2], want[2])
    stream.reset()
    for t in range(9):
        close(stream.step(x[t]), sess.run(None, {"X": x[:t + 1]})[0])


def test_final_state_mixed_with_per_frame_values_is_not_lowered():
    head = [helper.make_node("Add", ["y", "Y_h"], ["out"], name="mix")]
    info = gruinfer.InferenceSession(state_model(head)).plan_info()
    assert not info["lowered"]


def test_outputs_sharing_one_buffer_keep_their_own_layouts():
    """Y [T, 1, N, H], y = Squeeze(Y) [T, N, H], yt = Transpose(y) [N, T, H], a Cast of Y_h and
    a Reshape of it are all one C buffer; each output comes back in its own layout."""
    m = gru_model([])
    g = m.graph
    del g.output[:]
    g.node.extend([helper.make_node("Transpose", ["y"], ["yt"], name="bt", perm=[1, 0, 2]),
                   helper.make_node("Cast", ["Y_h"], ["hc"], name="cast", to=TensorProto.FLOAT),
                   helper.make_node("Squeeze", ["hc", "zero"], ["hs"], name="drop")])
    g.initializer.append(numpy_helper.from_array(np.array([0], np.int64), "zero"))
    g.output.extend([helper.make_tensor_value_info(n, TensorProto.FLOAT, None)
                     for n in ("yt", "Y", "y", "hs", "hc")])
    sess = gruinfer.InferenceSession(m)
    assert sess.plan_info()["lowered"]
    x = fx()
    stream = sess.stream(N)
    for a, b in ((0, 2), (2, 11)):
        got = stream.run(None, {"X": x[a:b]})
        want = sess.run(None, {"X": x[:b]})
        close(got[0], want[0][:, a:b])
        for i in (1, 2):
            close(got[i], want[i][a:b])
        for i in (3, 4):
            close(got[i], want[i])
