"""Streams: chunked run() and frame-wise step() against whole-sequence sess.run, state handling, errors, threads."""
import re
import threading

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import gruinfer

KERNELS = gruinfer.kernel_info()["supported"]
TOL = 1e-5
CHUNKS = (1, 3, 7)          # then the rest: with T = 75 the rest (64 frames) spans C blocks of 32


# ---------------------------------------------------------------- model building

def _weights(rng, D, I, H):
    """Random weights scaled like a trained layer's (pre-activations O(1): no saturation, no chaos)."""
    scale = 1.0 / np.sqrt(max(I, H))
    W = (rng.standard_normal((D, 3 * H, I)) * scale).astype(np.float32)
    R = (rng.standard_normal((D, 3 * H, H)) * scale).astype(np.float32)
    B = (rng.standard_normal((D, 6 * H)) * scale).astype(np.float32)
    return W, R, B


def _out(name):
    """An output value_info with a rank but free dimensions (Y: 4 axes, Y_h: 3)."""
    rank = 3 if name.endswith("_h") else 4
    return helper.make_tensor_value_info(name, TensorProto.FLOAT,
                                         [f"{name}_{i}" for i in range(rank)])


def _finish(nodes, inputs, outputs, inits):
    graph = helper.make_graph(nodes, "g", inputs, outputs, inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def gru_model(I, H, *, lbr=0, layout=0, bias=True, outputs=("Y", "Y_h"), h0=None,
              h0_value=None, lens=False, direction="forward", seed=0, name="gru",
              x_shape=None):
    """One GRU node reading graph input X.

    h0: None | "input" (graph input h0) | "initializer" | "overridable" (initializer also
    listed as a graph input) | "constant" (a Constant node); h0_value is its value then.
    """
    rng = np.random.default_rng(seed)
    D = 2 if direction == "bidirectional" else 1
    W, R, B = _weights(rng, D, I, H)
    inits = [numpy_helper.from_array(W, "W"), numpy_helper.from_array(R, "R")]
    if bias:
        inits.append(numpy_helper.from_array(B, "B"))
    if x_shape is None:
        x_shape = ["batch", "seq", I] if layout else ["seq", "batch", I]
    ins = ["X", "W", "R", "B" if bias else "", "lens" if lens else "", ""]
    g_in = [helper.make_tensor_value_info("X", TensorProto.FLOAT, x_shape)]
    if lens:
        g_in.append(helper.make_tensor_value_info("lens", TensorProto.INT32, ["batch"]))
    nodes = []
    if h0 is not None:
        ins[5] = "h0"
        h_shape = ["batch", D, H] if layout else [D, "batch", H]
        if h0 == "input":
            g_in.append(helper.make_tensor_value_info("h0", TensorProto.FLOAT, h_shape))
        elif h0 in ("initializer", "overridable"):
            inits.append(numpy_helper.from_array(np.asarray(h0_value, np.float32), "h0"))
            if h0 == "overridable":
                g_in.append(helper.make_tensor_value_info("h0", TensorProto.FLOAT,
                                                          list(h0_value.shape)))
        elif h0 == "constant":
            nodes.append(helper.make_node(
                "Constant", [], ["h0"], name="h0_const",
                value=numpy_helper.from_array(np.asarray(h0_value, np.float32))))
        else:
            raise ValueError(h0)
    while ins[-1] == "":
        ins.pop()
    node_outs = ["Y" if "Y" in outputs else "", "Y_h" if "Y_h" in outputs else ""]
    while node_outs[-1] == "":
        node_outs.pop()
    nodes.append(helper.make_node("GRU", ins, node_outs, name=name, hidden_size=H,
                                  linear_before_reset=lbr, layout=layout, direction=direction))
    g_out = [_out(o) for o in outputs]
    return _finish(nodes, g_in, g_out, inits)


def two_gru_model(I, Ha, Hb, *, layout=0, seed=0, first="a"):
    """Two GRU nodes (different H, lbr) reading the same input X; outputs of both."""
    rng = np.random.default_rng(seed)
    Wa, Ra, Ba = _weights(rng, 1, I, Ha)
    Wb, Rb, Bb = _weights(rng, 1, I, Hb)
    inits = [numpy_helper.from_array(a, n) for a, n in
             ((Wa, "Wa"), (Ra, "Ra"), (Ba, "Ba"), (Wb, "Wb"), (Rb, "Rb"), (Bb, "Bb"))]
    x_shape = ["batch", "seq", I] if layout else ["seq", "batch", I]
    nodes = [
        helper.make_node("GRU", ["X", "Wa", "Ra", "Ba"], ["Ya", "Ya_h"], name="gru_a",
                         hidden_size=Ha, linear_before_reset=0, layout=layout),
        helper.make_node("GRU", ["X", "Wb", "Rb", "Bb"], ["Yb", "Yb_h"], name="gru_b",
                         hidden_size=Hb, linear_before_reset=1, layout=layout),
    ]
    outs = ["Ya", "Yb_h", "Yb", "Ya_h"] if first == "a" else ["Yb", "Ya", "Ya_h", "Yb_h"]
    g_out = [_out(o) for o in outs]
    return _finish(nodes, [helper.make_tensor_value_info("X", TensorProto.FLOAT, x_shape)],
                   g_out, inits)


# ---------------------------------------------------------------- helpers

def make_x(T, N, I, layout=0, seed=1):
    rng = np.random.default_rng(seed)
    return rng.standard_normal((N, T, I) if layout else (T, N, I)).astype(np.float32)


def tslice(a, t0, t1, layout):
    """Frames [t0, t1) of an X ([T, N, I] / [N, T, I]) or Y ([T, 1, N, H] / [N, T, 1, H])."""
    return a[:, t0:t1] if layout else a[t0:t1]


def frame(x, t, layout):
    return x[:, t] if layout else x[t]


def bounds(T, sizes=CHUNKS):
    out, t = [0], 0
    for s in sizes:
        t += s
        out.append(t)
    assert t < T
    out.append(T)
    return list(zip(out[:-1], out[1:]))


def close(a, b, tol=TOL):
    a, b = np.asarray(a), np.asarray(b)
    assert a.shape == b.shape, (a.shape, b.shape)
    np.testing.assert_allclose(a, b, rtol=0, atol=tol)


def same_state(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].shape == b[k].shape
        assert np.array_equal(a[k], b[k]), f"state of {k!r} changed"


# ---------------------------------------------------------------- chunked run == sess.run

@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("lbr", [0, 1])
@pytest.mark.parametrize("layout", [0, 1])
@pytest.mark.parametrize("N", [1, 3, 8])
@pytest.mark.parametrize("bias", [True, False])
def test_chunks_equal_whole_sequence(kernel, lbr, layout, N, bias):
    I, H, T = 5, 19, 75
    model = gru_model(I, H, lbr=lbr, layout=layout, bias=bias, seed=lbr + 2 * layout)
    sess = gruinfer.InferenceSession(model, kernel=kernel)
    assert sess.kernel == kernel
    x = make_x(T, N, I, layout, seed=N)
    Y, Y_h = sess.run(None, {"X": x})
    stream = sess.stream(batch_size=N)
    ys = []
    for t0, t1 in bounds(T):
        y, y_h = stream.run(["Y", "Y_h"], {"X": tslice(x, t0, t1, layout)})
        ys.append(y)
        # Y_h of a chunk: the state after it, i.e. sess.run's Y_h over the prefix
        _, prefix_h = sess.run(None, {"X": tslice(x, 0, t1, layout)})
        close(y_h, prefix_h)
        close(stream.get_state()["gru"], y_h.reshape(N, H))
    close(np.concatenate(ys, axis=1 if layout else 0), Y)
    close(y_h, Y_h)


@pytest.mark.parametrize("lbr", [0, 1])
def test_stream_matches_onnxruntime(lbr):
    """An independent oracle: onnxruntime (layout 0 only: it rejects layout 1)."""
    I, H, N, T = 6, 24, 3, 50
    model = gru_model(I, H, lbr=lbr, seed=7)
    ref = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    x = make_x(T, N, I, seed=8)
    Y_ort, Yh_ort = ref.run(None, {"X": x})
    for kernel in KERNELS:
        stream = gruinfer.InferenceSession(model, kernel=kernel).stream(N)
        ys = [stream.run(None, {"X": x[t0:t1]})[0] for t0, t1 in bounds(T)]
        close(np.concatenate(ys), Y_ort)
        close(stream.get_state()["gru"], Yh_ort[0])


@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("I,H", [(1, 1), (17, 16), (3, 33), (40, 64)])
def test_chunks_other_sizes(kernel, I, H):
    N, T = 5, 70
    for layout in (0, 1):
        model = gru_model(I, H, lbr=1, layout=layout, seed=H)
        sess = gruinfer.InferenceSession(model, kernel=kernel)
        x = make_x(T, N, I, layout, seed=I)
        Y, Y_h = sess.run(None, {"X": x})
        stream = sess.stream(N)
        ys = [stream.run(None, {"X": tslice(x, t0, t1, layout)})[0]
              for t0, t1 in bounds(T, (2, 1, 40))]
        close(np.concatenate(ys, axis=1 if layout else 0), Y)


@pytest.mark.parametrize("outputs", [("Y",), ("Y_h",), ("Y", "Y_h"), ("Y_h", "Y")])
@pytest.mark.parametrize("layout", [0, 1])
def test_output_selection(outputs, layout):
    I, H, N, T = 4, 9, 3, 20
    model = gru_model(I, H, layout=layout, outputs=outputs, seed=3)
    sess = gruinfer.InferenceSession(model)
    x = make_x(T, N, I, layout)
    whole = dict(zip(outputs, sess.run(None, {"X": x})))
    stream = sess.stream(N)
    got = {o: [] for o in outputs}
    for t0, t1 in bounds(T):
        names = list(reversed(outputs)) if t0 % 2 else None
        res = stream.run(names, {"X": tslice(x, t0, t1, layout)})
        for o, a in zip(names or outputs, res):
            got[o].append(a)
    if "Y" in outputs:
        close(np.concatenate(got["Y"], axis=1 if layout else 0), whole["Y"])
    if "Y_h" in outputs:
        close(got["Y_h"][-1], whole["Y_h"])
    # step() returns the first graph output for the frame: Y's frame or the new state
    stream.reset()
    ref = whole[outputs[0]]
    for t in range(T):
        y = stream.step(frame(x, t, layout))
        assert y.shape == ((N, 1, H) if layout else (1, N, H))
        if outputs[0] == "Y":
            close(y, tslice(ref, t, t + 1, layout).reshape(y.shape))
    if outputs[0] == "Y_h":
        close(y, ref)


def test_chunk_length_free_of_declared_seq_length():
    """A chunk is any k >= 1 frames, even when the model declares a fixed seq_length."""
    I, H, N, T = 4, 6, 2, 12
    model = gru_model(I, H, x_shape=[T, N, I])
    sess = gruinfer.InferenceSession(model)
    x = make_x(T, N, I)
    Y, _ = sess.run(None, {"X": x})
    stream = sess.stream(N)
    ys = [stream.run(["Y"], {"X": x[t0:t1]})[0] for t0, t1 in bounds(T, (1, 3, 7))]
    close(np.concatenate(ys), Y)


# ---------------------------------------------------------------- step()

@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("layout", [0, 1])
@pytest.mark.parametrize("lbr", [0, 1])
@pytest.mark.parametrize("N", [1, 3])
def test_step_equals_whole_sequence(kernel, layout, lbr, N):
    I, H, T = 7, 21, 40
    model = gru_model(I, H, lbr=lbr, layout=layout, seed=11 + lbr)
    sess = gruinfer.InferenceSession(model, kernel=kernel)
    x = make_x(T, N, I, layout, seed=5)
    Y, Y_h = sess.run(None, {"X": x})
    shape = (N, 1, H) if layout else (1, N, H)

    stream = sess.stream(N)
    outs = [stream.step(frame(x, t, layout)) for t in range(T)]   # kept without copying
    for t, y in enumerate(outs):
        assert y.shape == shape and y.dtype == np.float32
        close(y, tslice(Y, t, t + 1, layout).reshape(shape))
    close(stream.get_state()["gru"], Y_h.reshape(N, H))

    stream.reset()
    out = np.empty(shape, np.float32)
    for t in range(T):
        r = stream.step(frame(x, t, layout), out=out)
        assert r is out
        close(out, tslice(Y, t, t + 1, layout).reshape(shape))
    close(stream.get_state()["gru"], Y_h.reshape(N, H))


def test_step_and_run_interleave():
    I, H, N, T = 5, 12, 2, 30
    model = gru_model(I, H, lbr=1)
    sess = gruinfer.InferenceSession(model)
    x = make_x(T, N, I)
    Y, _ = sess.run(None, {"X": x})
    stream = sess.stream(N)
    got, t = [], 0
    while t < T:
        if t % 3 == 0:
            got.append(stream.step(x[t])[None])
            t += 1
        else:
            k = min(4, T - t)
            got.append(stream.run(["Y"], {"X": x[t:t + k]})[0])
            t += k
    close(np.concatenate(got), Y)


def test_step_accepts_convertible_frames():
    """Non-contiguous frames are converted, and float64 ones with cast_feeds=True (refused
    without it), as in sess.run."""
    I, H, N, T = 4, 8, 3, 10
    sess = gruinfer.InferenceSession(gru_model(I, H), cast_feeds=True)
    x = make_x(T, N, I)
    Y, _ = sess.run(None, {"X": x})
    with pytest.raises(gruinfer.InvalidArgument, match="cast_feeds"):
        gruinfer.InferenceSession(gru_model(I, H)).stream(N).step(x[0].astype(np.float64))
    wide = np.repeat(x, 2, axis=2)                      # x[..., ::2] is a strided view of x
    stream = sess.stream(N)
    for t in range(T):
        src = wide[t, :, ::2] if t % 2 else x[t].astype(np.float64)
        close(stream.step(src), Y[t])


# ---------------------------------------------------------------- initial_h

@pytest.mark.parametrize("layout", [0, 1])
def test_initial_h_input(layout):
    I, H, N, T = 5, 10, 3, 30
    model = gru_model(I, H, layout=layout, h0="input", lbr=1, seed=4)
    sess = gruinfer.InferenceSession(model)
    x = make_x(T, N, I, layout)
    hshape = (N, 1, H) if layout else (1, N, H)
    zeros = np.zeros(hshape, np.float32)
    h_a = np.random.default_rng(9).standard_normal(hshape).astype(np.float32)
    h_b = np.random.default_rng(10).standard_normal(hshape).astype(np.float32)

    # omitted: zeros start
    Y0, _ = sess.run(None, {"X": x, "h0": zeros})
    stream = sess.stream(N)
    ys = [stream.run(["Y"], {"X": tslice(x, t0, t1, layout)})[0] for t0, t1 in bounds(T)]
    close(np.concatenate(ys, axis=1 if layout else 0), Y0)

    # given with the first chunk: sets the state; later chunks carry it
    Ya, Yha = sess.run(None, {"X": x, "h0": h_a})
    stream = sess.stream(N)
    stream.run(None, {"X": tslice(x, 0, 1, layout)})            # some state to overwrite
    ys = []
    for i, (t0, t1) in enumerate(bounds(T)):
        feed = {"X": tslice(x, t0, t1, layout)}
        if i == 0:
            stream.reset()
            feed["h0"] = h_a
        ys.append(stream.run(["Y"], feed)[0])
    close(np.concatenate(ys, axis=1 if layout else 0), Ya)
    close(stream.get_state()["gru"], Yha.reshape(N, H))

    # given mid-stream (without a reset): the state is replaced, not combined
    stream = sess.stream(N)
    stream.run(None, {"X": tslice(x, 0, 10, layout)})
    rest = tslice(x, 10, T, layout)
    Yb, Yhb = sess.run(None, {"X": rest, "h0": h_b})
    y, y_h = stream.run(["Y", "Y_h"], {"X": rest, "h0": h_b})
    close(y, Yb)
    close(y_h, Yhb)


@pytest.mark.parametrize("kind", ["initializer", "constant", "overridable"])
@pytest.mark.parametrize("layout", [0, 1])
def test_constant_initial_h(kind, layout):
    I, H, N, T = 5, 11, 3, 25
    hshape = (N, 1, H) if layout else (1, N, H)
    h0 = np.random.default_rng(12).standard_normal(hshape).astype(np.float32)
    model = gru_model(I, H, layout=layout, h0=kind, h0_value=h0, seed=6)
    sess = gruinfer.InferenceSession(model)
    x = make_x(T, N, I, layout)
    Y, Y_h = sess.run(None, {"X": x})
    rows = h0.reshape(N, H)

    stream = sess.stream(N)
    assert np.array_equal(stream.get_state()["gru"], rows), \
        f"a fresh stream does not start from the {kind} initial_h"
    ys = [stream.run(["Y"], {"X": tslice(x, t0, t1, layout)})[0] for t0, t1 in bounds(T)]
    close(np.concatenate(ys, axis=1 if layout else 0), Y)

    stream.reset([1])
    st = stream.get_state()["gru"]
    assert np.array_equal(st[1], rows[1])
    close(st[[0, 2]], Y_h.reshape(N, H)[[0, 2]])

    stream.reset()
    assert np.array_equal(stream.get_state()["gru"], rows), f"reset() does not return to the {kind} initial_h"
    for t in range(T):
        close(stream.step(frame(x, t, layout)).reshape(N, H),
              tslice(Y, t, t + 1, layout).reshape(N, H))


def test_constant_initial_h_single_row():
    I, H, T = 3, 6, 15
    h0 = np.random.default_rng(2).standard_normal((1, 1, H)).astype(np.float32)
    sess = gruinfer.InferenceSession(gru_model(I, H, h0="initializer", h0_value=h0))
    x = make_x(T, 1, I)
    Y, _ = sess.run(None, {"X": x})
    stream = sess.stream(1)
    close(stream.run(["Y"], {"X": x})[0], Y)
    stream.reset()
    assert np.array_equal(stream.get_state()["gru"], h0[0])


# ---------------------------------------------------------------- several GRU nodes

@pytest.mark.parametrize("layout", [0, 1])
@pytest.mark.parametrize("first", ["a", "b"])
def test_two_grus_same_input(layout, first):
    I, Ha, Hb, N, T = 6, 9, 20, 3, 45
    model = two_gru_model(I, Ha, Hb, layout=layout, first=first)
    sess = gruinfer.InferenceSession(model)
    names = [o.name for o in sess.get_outputs()]
    x = make_x(T, N, I, layout)
    whole = dict(zip(names, sess.run(None, {"X": x})))
    stream = sess.stream(N)
    got = {n: [] for n in names}
    for t0, t1 in bounds(T):
        for n, a in zip(names, stream.run(None, {"X": tslice(x, t0, t1, layout)})):
            got[n].append(a)
        prefix_ah, prefix_bh = sess.run(["Ya_h", "Yb_h"], {"X": tslice(x, 0, t1, layout)})
        close(got["Ya_h"][-1], prefix_ah)
        close(got["Yb_h"][-1], prefix_bh)
    for n in ("Ya", "Yb"):
        close(np.concatenate(got[n], axis=1 if layout else 0), whole[n])
    state = stream.get_state()
    assert set(state) == {"gru_a", "gru_b"}
    close(state["gru_a"], whole["Ya_h"].reshape(N, Ha))
    close(state["gru_b"], whole["Yb_h"].reshape(N, Hb))

    stream.reset()
    ref = whole["Ya" if first == "a" else "Yb"]
    H = Ha if first == "a" else Hb
    for t in range(T):
        close(stream.step(frame(x, t, layout)).reshape(N, H),
              tslice(ref, t, t + 1, layout).reshape(N, H))
    close(stream.get_state()["gru_b"], whole["Yb_h"].reshape(N, Hb))


def test_set_state_subset_of_nodes():
    I, N = 4, 2
    sess = gruinfer.InferenceSession(two_gru_model(I, 5, 7))
    stream = sess.stream(N)
    stream.run(None, {"X": make_x(6, N, I)})
    before = stream.get_state()
    new_b = np.full((N, 7), 0.25, np.float32)
    stream.set_state({"gru_b": new_b})
    after = stream.get_state()
    assert np.array_equal(after["gru_a"], before["gru_a"])
    assert np.array_equal(after["gru_b"], new_b)


# ---------------------------------------------------------------- slots

@pytest.mark.parametrize("kernel", KERNELS)
@pytest.mark.parametrize("use_step", [False, True])
def test_slot_reset_independence(kernel, use_step):
    I, H, N, T, cut = 6, 13, 5, 40, 17
    model = gru_model(I, H, lbr=1, seed=21)
    sess = gruinfer.InferenceSession(model, kernel=kernel)
    x = make_x(T, N, I, seed=22)
    Y, _ = sess.run(None, {"X": x})
    stream = sess.stream(N)
    stream.run(None, {"X": x[:cut]})
    stream.reset([2, 4])
    if use_step:
        y = np.concatenate([stream.step(x[t]) for t in range(cut, T)])[:, None]
    else:
        y = stream.run(["Y"], {"X": x[cut:]})[0]
    for n in range(N):
        if n in (2, 4):
            fresh, _ = sess.run(None, {"X": x[cut:, n:n + 1]})
            close(y[:, :, n:n + 1], fresh)
        else:
            close(y[:, :, n], Y[cut:, :, n])


def test_reset_accepts_slot_forms():
    I, H, N = 3, 5, 4
    sess = gruinfer.InferenceSession(gru_model(I, H))
    stream = sess.stream(N)
    stream.run(None, {"X": make_x(5, N, I)})
    base = stream.get_state()["gru"]
    stream.reset(np.array([3], np.int64))
    stream.reset((1,))
    st = stream.get_state()["gru"]
    assert not st[[1, 3]].any()
    assert np.array_equal(st[[0, 2]], base[[0, 2]])


def test_reset_empty_slot_list_is_a_no_op():
    """reset([]) resets no slot, e.g. reset([i for i in slots if done[i]]) with none done."""
    I, H, N = 3, 5, 4
    sess = gruinfer.InferenceSession(gru_model(I, H))
    stream = sess.stream(N)
    stream.run(None, {"X": make_x(5, N, I)})
    before = stream.get_state()
    stream.reset([])
    same_state(before, stream.get_state())


# ---------------------------------------------------------------- checkpoints

@pytest.mark.parametrize("layout", [0, 1])
def test_get_set_state_round_trip(layout):
    I, H, N, T = 5, 14, 3, 40
    sess = gruinfer.InferenceSession(gru_model(I, H, layout=layout, lbr=1, seed=31))
    x = make_x(T, N, I, layout, seed=32)
    stream = sess.stream(N)
    stream.run(None, {"X": tslice(x, 0, 15, layout)})
    ckpt = stream.get_state()
    first = stream.run(None, {"X": tslice(x, 15, T, layout)})
    after = stream.get_state()
    # the checkpoint is a copy: running on did not change it, changing it does not touch the stream
    assert not np.array_equal(ckpt["gru"], after["gru"])
    ckpt_copy = {k: v.copy() for k, v in ckpt.items()}
    stream.set_state(ckpt)
    again = stream.run(None, {"X": tslice(x, 15, T, layout)})
    for a, b in zip(first, again):
        assert np.array_equal(a, b)
    ckpt["gru"][:] = 123.0
    same_state(stream.get_state(), after)

    # restore into another stream of the same session; step replays identically
    other = sess.stream(N)
    other.set_state(ckpt_copy)
    out = np.empty((N, 1, H) if layout else (1, N, H), np.float32)
    for t in range(15, T):
        other.step(frame(x, t, layout), out=out)
        close(out, tslice(first[0], t - 15, t - 14, layout).reshape(out.shape))
    close(other.get_state()["gru"], after["gru"])


# ---------------------------------------------------------------- rejected calls leave state alone

def _bad_calls(N, I, H):
    """(description, callable(stream)) for calls that must raise InvalidArgument."""
    good_x = make_x(3, N, I, seed=40)
    good_h = np.random.default_rng(41).standard_normal((1, N, H)).astype(np.float32)
    nan_last = good_x.copy()
    nan_last[-1, -1, -1] = np.nan
    inf_x = good_x.copy()
    inf_x[0, 0, 0] = np.inf
    nan_h = good_h.copy()
    nan_h[0, -1, 0] = np.nan
    f = good_x[0]
    nan_f = f.copy()
    nan_f[-1, 0] = np.nan
    bad_nan_state = np.zeros((N, H), np.float32)
    bad_nan_state[0, 0] = np.nan
    return [
        ("run: wrong input size", lambda s: s.run(None, {"X": make_x(3, N, I + 1)})),
        ("run: wrong batch size", lambda s: s.run(None, {"X": make_x(3, N + 1, I)})),
        ("run: rank 2", lambda s: s.run(None, {"X": good_x[0]})),
        ("run: zero frames", lambda s: s.run(None, {"X": good_x[:0]})),
        ("run: int dtype", lambda s: s.run(None, {"X": good_x.astype(np.int32)})),
        ("run: NaN in last frame", lambda s: s.run(None, {"X": nan_last})),
        ("run: Inf in x", lambda s: s.run(None, {"X": inf_x})),
        ("run: NaN in fed h0", lambda s: s.run(None, {"X": good_x, "h0": nan_h})),
        ("run: good h0, NaN in x", lambda s: s.run(None, {"X": nan_last, "h0": good_h})),
        ("run: h0 wrong shape", lambda s: s.run(None, {"X": good_x, "h0": good_h[:, :, 1:]})),
        ("run: h0 int dtype", lambda s: s.run(None, {"X": good_x,
                                                     "h0": good_h.astype(np.int64)})),
        ("run: unknown input", lambda s: s.run(None, {"X": good_x, "nope": good_x})),
        ("run: X missing", lambda s: s.run(None, {"h0": good_h})),
        ("run: unknown output", lambda s: s.run(["Y", "nope"], {"X": good_x})),
        ("step: wrong shape", lambda s: s.step(np.zeros((N, I + 1), np.float32))),
        ("step: wrong batch", lambda s: s.step(np.zeros((N + 1, I), np.float32))),
        ("step: int dtype", lambda s: s.step(np.zeros((N, I), np.int32))),
        ("step: NaN", lambda s: s.step(nan_f)),
        ("step: bad out shape", lambda s: s.step(f, out=np.empty((1, N, H + 1), np.float32))),
        ("step: bad out dtype", lambda s: s.step(f, out=np.empty((1, N, H), np.float64))),
        ("reset: slot N", lambda s: s.reset([0, N])),
        ("reset: slot -1", lambda s: s.reset([-1])),
        ("reset: non-int", lambda s: s.reset(["a"])),
        ("set_state: not a dict", lambda s: s.set_state([np.zeros((N, H), np.float32)])),
        ("set_state: unknown node", lambda s: s.set_state(
            {"gru": np.zeros((N, H), np.float32), "other": np.zeros((N, H), np.float32)})),
        ("set_state: wrong shape", lambda s: s.set_state({"gru": np.zeros((N, H + 1),
                                                                          np.float32)})),
        ("set_state: wrong batch", lambda s: s.set_state({"gru": np.zeros((N + 1, H),
                                                                          np.float32)})),
        ("set_state: NaN", lambda s: s.set_state({"gru": bad_nan_state})),
        ("set_state: int dtype", lambda s: s.set_state({"gru": np.zeros((N, H), np.int32)})),
    ]


_N, _I, _H = 3, 4, 9


@pytest.mark.parametrize("desc,call", _bad_calls(_N, _I, _H),
                         ids=[re.sub(r"[^a-z0-9]+", "-", d.lower()).strip("-")
                              for d, _ in _bad_calls(_N, _I, _H)])
def test_rejected_call_leaves_state(desc, call):
    sess = gruinfer.InferenceSession(gru_model(_I, _H, h0="input", lbr=1, seed=50))
    x = make_x(12, _N, _I, seed=51)
    stream, twin = sess.stream(_N), sess.stream(_N)
    stream.run(None, {"X": x[:5]})
    twin.run(None, {"X": x[:5]})
    before = stream.get_state()
    with pytest.raises(gruinfer.InvalidArgument):
        call(stream)
    same_state(before, stream.get_state())
    # and the stream goes on exactly like one that never saw the call
    a = stream.run(None, {"X": x[5:]})
    b = twin.run(None, {"X": x[5:]})
    for u, v in zip(a, b):
        assert np.array_equal(u, v)


def test_two_gru_set_state_checks_everything_first():
    I, N = 4, 2
    sess = gruinfer.InferenceSession(two_gru_model(I, 5, 7))
    stream = sess.stream(N)
    stream.run(None, {"X": make_x(6, N, I)})
    before = stream.get_state()
    bad = np.zeros((N, 7), np.float32)
    bad[1, 1] = np.nan
    with pytest.raises(gruinfer.InvalidArgument):
        stream.set_state({"gru_a": np.ones((N, 5), np.float32), "gru_b": bad})
    same_state(before, stream.get_state())


# ---------------------------------------------------------------- what cannot stream

@pytest.mark.parametrize("direction", ["reverse", "bidirectional"])
def test_non_causal_not_streamable(direction):
    model = gru_model(4, 6, direction=direction, name=f"my_{direction}_gru")
    sess = gruinfer.InferenceSession(model)
    sess.run(None, {"X": make_x(5, 2, 4)})          # the whole sequence still runs
    with pytest.raises(gruinfer.NotStreamable) as e:
        sess.stream(2)
    assert f"my_{direction}_gru" in str(e.value)
    assert "needs the whole sequence" in str(e.value)
    assert isinstance(e.value, gruinfer.InvalidModel)


def test_sequence_lens_cannot_be_fed():
    I, H, N, T = 4, 6, 3, 10
    sess = gruinfer.InferenceSession(gru_model(I, H, lens=True))
    x = make_x(T, N, I)
    stream = sess.stream(N)
    y = stream.run(["Y"], {"X": x[:4]})[0]                  # omitted: every frame counts
    full, _ = sess.run(None, {"X": x, "lens": np.full(N, T, np.int32)})
    close(y, full[:4])
    before = stream.get_state()
    with pytest.raises(gruinfer.InvalidArgument, match="lens"):
        stream.run(None, {"X": x[4:], "lens": np.full(N, T - 4, np.int32)})
    same_state(before, stream.get_state())


# ---------------------------------------------------------------- threads

def test_streams_in_threads_match_sequential():
    I, H, N, T, n_threads = 16, 128, 2, 160, 4
    sess = gruinfer.InferenceSession(gru_model(I, H, lbr=1, seed=60))
    xs = [make_x(T, N, I, seed=61 + i) for i in range(n_threads)]

    def work(stream, x):
        out = np.empty((1, N, H), np.float32)
        res = []
        for t in range(T // 2):                       # frame by frame
            res.append(stream.step(x[t], out=out).copy())
        for t0 in range(T // 2, T, 7):                # then chunks
            res.append(stream.run(["Y"], {"X": x[t0:t0 + 7]})[0].reshape(-1, N, H))
        return np.concatenate(res), stream.get_state()["gru"]

    expected = [work(sess.stream(N), x) for x in xs]
    results = [None] * n_threads
    errors = []
    barrier = threading.Barrier(n_threads)

    def thread_main(i):
        try:
            stream = sess.stream(N)
            barrier.wait()
            for _ in range(3):
                stream.reset()
                results[i] = work(stream, xs[i])
                assert np.array_equal(results[i][0], expected[i][0])
        except BaseException as e:                    # reported in the main thread
            errors.append(e)

    threads = [threading.Thread(target=thread_main, args=(i,)) for i in range(n_threads)]
    for th in threads:
        th.start()
    for th in threads:
        th.join()
    if errors:
        raise errors[0]
    for (y, h), (ey, eh) in zip(results, expected):
        assert np.array_equal(y, ey)
        assert np.array_equal(h, eh)
    whole, _ = sess.run(None, {"X": xs[0]})
    close(expected[0][0], whole[:, 0])
