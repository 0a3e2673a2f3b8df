"""GRU weights (W, R, B) given at run time: graph inputs and overridden initializers run on the interpreter, agree with onnxruntime and with the constant-weights model, are checked like feeds, are repacked only when they change, and refuse to stream."""
import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper

import gruinfer
from gru_reference import feeds_for, make_gru_model
from gruinfer.interp import weights as weights_room

T, N, I, H = 5, 3, 4, 6


def arrays(seed, direction="forward", with_b=True, with_lens=False):
    rng = np.random.default_rng(seed)
    D = 2 if direction == "bidirectional" else 1
    a = {"X": rng.standard_normal((T, N, I)), "W": rng.standard_normal((D, 3 * H, I)) * 0.5,
         "R": rng.standard_normal((D, 3 * H, H)) * 0.5,
         "B": rng.standard_normal((D, 6 * H)) * 0.5 if with_b else None,
         "sequence_lens": np.array([T, 2, 0][:N], np.int32) if with_lens else None,
         "initial_h": rng.standard_normal((D, N, H))}
    return {k: None if v is None else v.astype(np.int32 if k == "sequence_lens" else np.float32)
            for k, v in a.items()}


def ort_run(model, feeds):
    so = ort.SessionOptions()
    so.intra_op_num_threads = so.inter_op_num_threads = 1
    so.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), so,
                                providers=["CPUExecutionProvider"]).run(None, feeds)


def fed_model(inputs, attrs, initializers=(), **kw):
    return make_gru_model(inputs, dict(attrs, hidden_size=H), initializers=initializers, **kw)


@pytest.mark.parametrize("direction", ["forward", "reverse", "bidirectional"])
@pytest.mark.parametrize("lbr", [0, 1])
@pytest.mark.parametrize("with_lens", [False, True])
def test_matches_onnxruntime_and_constant_weights(direction, lbr, with_lens, kernel):
    inputs = arrays(7 + lbr, direction, with_lens=with_lens)
    attrs = {"direction": direction, "linear_before_reset": lbr}
    model = fed_model(inputs, attrs)
    feeds = feeds_for(inputs, initializers=())
    sess = gruinfer.InferenceSession(model, kernel=kernel)
    got = sess.run(None, feeds)
    const = gruinfer.InferenceSession(fed_model(inputs, attrs, ("W", "R", "B")), kernel=kernel)
    for g, w, c in zip(got, ort_run(model, feeds), const.run(None, feeds_for(inputs))):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5)
        np.testing.assert_array_equal(g, c)


def test_get_inputs_list_the_weights_as_onnxruntime_does():
    inputs = arrays(1)
    model = fed_model(inputs, {})
    so = ort.SessionOptions()
    want = ort.InferenceSession(model.SerializeToString(), so,
                                providers=["CPUExecutionProvider"]).get_inputs()
    got = gruinfer.InferenceSession(model).get_inputs()
    assert [(a.name, a.shape, a.type) for a in got] == [(a.name, a.shape, a.type) for a in want]
    assert [a.name for a in got] == ["X", "W", "R", "B", "initial_h"]


def test_new_weights_each_call_and_repacking_only_when_they_change(monkeypatch):
    packed = []
    build = weights_room.build_layer
    monkeypatch.setattr(weights_room, "build_layer", lambda *a: packed.append(1) or build(*a))
    first, second = arrays(1), arrays(2)
    second["X"], second["initial_h"] = first["X"], first["initial_h"]
    model = fed_model(first, {})
    sess = gruinfer.InferenceSession(model)
    feeds = [feeds_for(a, initializers=()) for a in (first, second)]
    want = [ort_run(model, f) for f in feeds]
    assert not np.allclose(want[0][1], want[1][1], atol=1e-3), "test is void: same results"
    for k, expect_packs in ((0, 1), (0, 1), (1, 2), (0, 3), (0, 3)):
        for g, w in zip(sess.run(None, feeds[k]), want[k]):
            np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5)
        assert len(packed) == expect_packs
    # the layer kept is the weights' content, not the arrays fed: changed in place, repacked
    feeds[0]["R"][0, 0, 0] += 1.0
    sess.run(None, feeds[0])
    assert len(packed) == 4
    # -0.0 and 0.0 are different weights to the cache (bit for bit)
    zero = dict(feeds[0], B=np.zeros_like(feeds[0]["B"]))
    sess.run(None, zero)
    sess.run(None, dict(zero, B=-zero["B"]))
    assert len(packed) == 6


def test_only_some_weights_fed():
    inputs = arrays(3)
    model = fed_model(inputs, {}, initializers=("W", "R"))
    feeds = feeds_for(inputs, initializers=("W", "R"))
    assert "B" in feeds and "W" not in feeds
    got = gruinfer.InferenceSession(model).run(None, feeds)
    for g, w in zip(got, ort_run(model, feeds)):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5)


def test_weight_computed_from_an_input():
    """W is a graph input scaled in the graph: its value too is known at run time only."""
    inputs = arrays(4)
    model = fed_model(inputs, {}, initializers=("R", "B"))
    gru = model.graph.node[0]
    gru.input[1] = "W_scaled"
    two = helper.make_tensor("two", TensorProto.FLOAT, [], [2.0])
    model.graph.initializer.append(two)
    model.graph.node.insert(0, helper.make_node("Mul", ["W", "two"], ["W_scaled"]))
    feeds = feeds_for(inputs, initializers=("R", "B"))
    got = gruinfer.InferenceSession(model).run(None, feeds)
    for g, w in zip(got, ort_run(model, feeds)):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5)


def test_sizes_from_undeclared_shapes():
    """Free axes everywhere: the hidden size from the attribute, the input size from X."""
    inputs = arrays(5)
    model = fed_model(inputs, {}, dynamic_inputs=True)
    feeds = feeds_for(inputs, initializers=())
    sess = gruinfer.InferenceSession(model)
    for g, w in zip(sess.run(None, feeds), ort_run(model, feeds)):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5)
    with pytest.raises(gruinfer.InvalidArgument, match=r"GRU node 'gru': input W \('W'\): "
                       r"expected shape \[1, 18, 4\], got \[1, 18, 3\]"):
        sess.run(None, dict(feeds, W=feeds["W"][:, :, :3]))


def test_hidden_size_unknown_is_refused_at_load():
    inputs = arrays(5)
    model = make_gru_model(inputs, {}, initializers=(), dynamic_inputs=True)
    with pytest.raises(gruinfer.InvalidModel, match="hidden size"):
        gruinfer.InferenceSession(model)


def test_declared_shape_that_cannot_fit_is_refused_at_load():
    inputs = arrays(5)
    model = fed_model(inputs, {})
    model.graph.input[2].type.tensor_type.shape.dim[2].dim_value = H + 1  # R [1, 18, 7]
    with pytest.raises(gruinfer.InvalidModel, match=r"input R \('R'\) is declared of shape "
                       r"\[1, 18, 7\]; the GRU needs \[1, 18, 6\]"):
        gruinfer.InferenceSession(model)


def test_declared_double_weight_is_refused_at_load():
    inputs = arrays(5)
    model = fed_model(inputs, {})
    model.graph.input[1].type.tensor_type.elem_type = TensorProto.DOUBLE
    with pytest.raises(gruinfer.InvalidModel, match=r"input W \('W'\) is tensor\(double\)"):
        gruinfer.InferenceSession(model)


@pytest.mark.parametrize("dynamic", [False, True])
@pytest.mark.parametrize("role, bad, match", [
    ("W", lambda a: a[:, :-3], r"input 'W'|input W \('W'\)"),
    ("R", lambda a: a[None], r"input 'R'|input R \('R'\)"),
    ("B", lambda a: a.reshape(-1), r"input 'B'|input B \('B'\)"),
    ("W", lambda a: a.astype(np.int64), r"input 'W'.*dtype int64|input W \('W'\).*dtype int64"),
    ("R", lambda a: np.where(a == a.max(), np.nan, a), r"input R \('R'\) holds NaN or Inf"),
    ("B", lambda a: np.where(a == a.min(), -np.inf, a), r"input B \('B'\) holds NaN or Inf"),
])
@pytest.mark.parametrize("check_finite", [True, False])
def test_bad_weight_feeds(dynamic, role, bad, match, check_finite):
    inputs = arrays(6)
    model = fed_model(inputs, {}, dynamic_inputs=dynamic)
    feeds = feeds_for(inputs, initializers=())
    sess = gruinfer.InferenceSession(model, check_finite=check_finite)
    with pytest.raises(gruinfer.InvalidArgument, match=match) as e:
        sess.run(None, dict(feeds, **{role: bad(feeds[role])}))
    if "shape" in str(e.value):
        assert "expected shape [" in str(e.value)
    sess.run(None, feeds)  # the session is unharmed


def test_stream_refused_naming_the_input():
    inputs = arrays(8)
    sess = gruinfer.InferenceSession(fed_model(inputs, {}, initializers=("W", "B")))
    with pytest.raises(gruinfer.NotStreamable, match=r"GRU node 'gru': its input R \('R'\) is "
                       "fed at run time"):
        sess.stream()
    info = sess.plan_info()
    assert info["streamable"] is False and "input R ('R') is fed at run time" in info["reason"]
    assert [f.op for f in info["fallbacks"]] == ["run"]


@pytest.mark.parametrize("role", ["W", "R", "B"])
def test_overridden_initializer_weights(role, monkeypatch):
    """An initializer that is also a graph input: its load-time value without a feed (the C
    plan), the fed one with a feed (the interpreter), repacked only when the feed changes."""
    inputs = arrays(9)
    model = fed_model(inputs, {}, initializers=("W", "R", "B"))
    arr = inputs[role]
    model.graph.input.append(helper.make_tensor_value_info(role, TensorProto.FLOAT, list(arr.shape)))
    packed = []
    build = weights_room.build_layer
    monkeypatch.setattr(weights_room, "build_layer", lambda *a: packed.append(1) or build(*a))
    sess = gruinfer.InferenceSession(model)
    assert [a.name for a in sess.get_overridable_initializers()] == [role]
    base = feeds_for(inputs)
    override = (arr * -1.5 + 0.1).astype(np.float32)
    for feeds in (base, dict(base, **{role: override}), dict(base, **{role: override.copy()})):
        for g, w in zip(sess.run(None, feeds), ort_run(model, feeds)):
            np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5)
    assert len(packed) == 2  # once at load, once for the fed value (the same twice)
    with pytest.raises(gruinfer.InvalidArgument, match=rf"input '{role}': expected shape"):
        sess.run(None, dict(base, **{role: override[..., :-1]}))
    assert sess.stream().lowered  # streams take the load-time weights, as before
