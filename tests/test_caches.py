"""Explicit-cache models (a GTCRN-like step: one STFT frame plus a time-conv cache and a GRU-state cache that come back updated): sess.stream() keeps the caches per slot, equal to feeding them back by hand through onnxruntime; state, reset, slots, refusals, forks."""
import copy
import pickle

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import gruinfer

F, C, K, H1, H2 = 8, 2, 3, 3, 5   # frequency bins, channels, time-kernel, GRU sizes


def cache_model(cache_out="conv_cache_out", h_out="h_out"):
    """x [1, F, 1, 2] -> Concat(conv_cache, x as [1, C, 1, F]) over time -> Conv (kernel K over
    time) -> Relu -> a bidirectional GRU over frequency -> mean over frequency -> a GRU step
    from state h; outputs mask, y and the updated caches (the last K-1 frames, h')."""
    rng = np.random.default_rng(0)

    def w(*shape):
        return (rng.standard_normal(shape) * 0.4).astype(np.float32)

    inits = {"Wc": w(4, C, K, 1), "bc": w(4), "W1": w(2, 3 * H1, 4), "R1": w(2, 3 * H1, H1),
             "B1": w(2, 6 * H1), "W2": w(1, 3 * H2, 2 * H1), "R2": w(1, 3 * H2, H2),
             "B2": w(1, 6 * H2), "s": np.array([1], np.int64), "e": np.array([K], np.int64),
             "ax2": np.array([2], np.int64), "fr": np.array([F, 1, 4], np.int64),
             "f1": np.array([F, 1, 2 * H1], np.int64), "y2": np.array([1, H2], np.int64)}
    nodes = [
        helper.make_node("Transpose", ["x"], ["a"], perm=[0, 3, 2, 1]),
        helper.make_node("Concat", ["conv_cache", "a"], ["cat"], axis=2),
        helper.make_node("Slice", ["cat", "s", "e", "ax2"], [cache_out]),
        helper.make_node("Conv", ["cat", "Wc", "bc"], ["c"], kernel_shape=[K, 1]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("Sigmoid", ["r"], ["mask"]),
        helper.make_node("Transpose", ["r"], ["rt"], perm=[3, 0, 2, 1]),
        helper.make_node("Reshape", ["rt", "fr"], ["seq"]),
        helper.make_node("GRU", ["seq", "W1", "R1", "B1"], ["Y1"], hidden_size=H1,
                         direction="bidirectional"),
        helper.make_node("Transpose", ["Y1"], ["Y1t"], perm=[0, 2, 1, 3]),
        helper.make_node("Reshape", ["Y1t", "f1"], ["y1"]),
        helper.make_node("ReduceMean", ["y1"], ["m"], axes=[0], keepdims=1),
        helper.make_node("GRU", ["m", "W2", "R2", "B2", "", "h"], ["Y2", h_out], hidden_size=H2),
        helper.make_node("Reshape", ["Y2", "y2"], ["y"]),
    ]
    f = TensorProto.FLOAT
    graph = helper.make_graph(
        nodes, "gtcrn_like",
        [helper.make_tensor_value_info("x", f, [1, F, 1, 2]),
         helper.make_tensor_value_info("conv_cache", f, [1, C, K - 1, F]),
         helper.make_tensor_value_info("h", f, [1, 1, H2])],
        [helper.make_tensor_value_info("mask", f, [1, 4, 1, F]),
         helper.make_tensor_value_info("y", f, [1, H2]),
         helper.make_tensor_value_info(cache_out, f, [1, C, K - 1, F]),
         helper.make_tensor_value_info(h_out, f, [1, 1, H2])],
        [numpy_helper.from_array(v, k) for k, v in inits.items()])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return m


def frames(n, seed=1):
    return np.random.default_rng(seed).standard_normal((n, 1, F, 1, 2)).astype(np.float32)


def by_hand(ref, xs, caches=None):
    """onnxruntime fed frame by frame with the caches fed back: every frame's outputs."""
    cc = np.zeros((1, C, K - 1, F), np.float32) if caches is None else caches["conv_cache"]
    h = np.zeros((1, 1, H2), np.float32) if caches is None else caches["h"]
    out = []
    for x in xs:
        mask, y, cc, h = ref.run(None, {"x": x, "conv_cache": cc, "h": h})
        out.append((mask, y, cc, h))
    return out


@pytest.fixture(scope="module")
def model():
    m = cache_model()
    return m, gruinfer.InferenceSession(m), ort.InferenceSession(
        m.SerializeToString(), providers=["CPUExecutionProvider"])


def test_pairs_found_and_shown(model):
    _, sess, _ = model
    info = sess.plan_info()
    assert not info["streamable"] and "bidirectional" in info["reason"]
    assert [(p.input, p.output) for p in info["caches"]] == [("conv_cache", "conv_cache_out"),
                                                               ("h", "h_out")]


def test_stream_equals_feeding_caches_back(model):
    _, sess, ref = model
    xs = frames(12)
    want = by_hand(ref, xs)
    stream = sess.stream()
    assert not stream.lowered and stream.input_name == "x"
    for x, (mask, y, cc, h) in zip(xs, want):
        got = stream.run(None, {"x": x})
        for a, b in zip(got, (mask, y, cc, h)):
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-5)
    state = stream.get_state()
    np.testing.assert_allclose(state["conv_cache"], want[-1][2], rtol=0, atol=1e-5)
    np.testing.assert_allclose(state["h"], want[-1][3], rtol=0, atol=1e-5)
    again = sess.stream()
    for x, w in zip(xs, want):
        np.testing.assert_allclose(again.step(x), w[0], rtol=0, atol=1e-5)  # mask: the first


def test_slots_are_independent(model):
    _, sess, ref = model
    a, b = frames(6, 2), frames(6, 3)
    stream = sess.stream(2)
    for t in range(6):
        mask, y, _, _ = stream.run(None, {"x": np.concatenate([a[t], b[t]])})
        assert mask.shape == (2, 4, 1, F) and y.shape == (2, H2)
    wa, wb = by_hand(ref, a), by_hand(ref, b)
    np.testing.assert_allclose(y, np.concatenate([wa[-1][1], wb[-1][1]]), rtol=0, atol=1e-5)
    stream.reset([0])
    state = stream.get_state()
    assert not state["h"][0].any() and np.allclose(state["h"][1], wb[-1][3][0], atol=1e-5)
    with pytest.raises(gruinfer.InvalidArgument, match=r"input 'x': expected shape \[2, 8, 1, 2\]"):
        stream.run(None, {"x": a[0]})
    with pytest.raises(gruinfer.InvalidArgument, match="slot"):
        stream.reset([2])


def test_state_set_fed_and_refusals_leave_it(model):
    _, sess, ref = model
    xs = frames(4, 4)
    rng = np.random.default_rng(5)
    start = {"conv_cache": rng.standard_normal((1, C, K - 1, F)).astype(np.float32),
             "h": rng.standard_normal((1, 1, H2)).astype(np.float32)}
    want = by_hand(ref, xs, start)
    s1, s2 = sess.stream(), sess.stream()
    s1.set_state(start)
    s2.run(None, {"x": xs[0], **start})            # a cache fed to run replaces the state
    np.testing.assert_allclose(s1.run(None, {"x": xs[0]})[1], want[0][1], rtol=0, atol=1e-5)
    before = s1.get_state()
    for bad in ({"x": xs[1][..., :1]}, {"x": xs[1].astype(np.float64)}, {},
                {"x": xs[1], "h": np.full((1, 1, H2), np.nan, np.float32)},
                {"x": xs[1], "h": np.zeros((1, 2, H2), np.float32)}):
        with pytest.raises(gruinfer.InvalidArgument):
            s1.run(None, bad)
        for k, v in s1.get_state().items():
            np.testing.assert_array_equal(v, before[k])
    for bad in ({"h": np.zeros((1, H2), np.float32)}, {"nope": start["h"]}, ["h"]):
        with pytest.raises(gruinfer.InvalidArgument):
            s1.set_state(bad)
    np.testing.assert_allclose(s1.run(None, {"x": xs[1]})[1], want[1][1], rtol=0, atol=1e-5)


def test_state_map_when_names_do_not_tell():
    m = cache_model(cache_out="cc_next_frame", h_out="state")
    sess = gruinfer.InferenceSession(m)
    assert sess.plan_info()["caches"] == []
    with pytest.raises(gruinfer.NotStreamable):
        sess.stream()
    stream = sess.stream(state_map={"conv_cache": "cc_next_frame", "h": "state"})
    ref = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    xs = frames(5, 6)
    for x, w in zip(xs, by_hand(ref, xs)):
        np.testing.assert_allclose(stream.run(None, {"x": x})[1], w[1], rtol=0, atol=1e-5)
    for bad, what in (({"nope": "state"}, "not a graph input"), ({"h": "nope"}, "not a graph output"),
                      ({"h": "mask"}, "not one float cache"),
                      ({"h": "state", "conv_cache": "state"}, "not one float cache"),
                      ("h", "dict")):
        with pytest.raises(gruinfer.InvalidArgument, match=what):
            sess.stream(state_map=bad)


def test_cache_stream_forks_and_pickles(model):
    _, sess, _ = model
    xs = frames(6, 7)
    stream = sess.stream(2)
    two = np.concatenate
    for x in xs[:3]:
        stream.run(None, {"x": two([x, x])})
    fork, back = copy.copy(stream), pickle.loads(pickle.dumps(stream))
    want = [stream.run(None, {"x": two([x, x])})[1] for x in xs[3:]]
    for s in (fork, back):
        for x, w in zip(xs[3:], want):
            np.testing.assert_array_equal(s.run(None, {"x": two([x, x])})[1], w)


def test_a_stream_busy_in_another_thread_refuses(model):
    """The in-use flag: while one call holds the stream, another raises and changes nothing."""
    _, sess, _ = model
    stream = sess.stream()
    before = stream.get_state()
    stream._busy.acquire()  # as a call running on another thread holds it
    try:
        for call in (lambda: stream.run(None, {"x": frames(1)[0]}), stream.reset,
                     lambda: stream.set_state(before), stream.get_state):
            with pytest.raises(gruinfer.InvalidArgument, match="another thread"):
                call()
    finally:
        stream._busy.release()
    for k, v in stream.get_state().items():
        np.testing.assert_array_equal(v, before[k])
