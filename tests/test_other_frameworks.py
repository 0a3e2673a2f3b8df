"""Paddle (paddle2onnx) and JAX (jax2onnx: flax.nnx GRUCell, Keras 3 on JAX) exports: load, match framework and onnxruntime, stream."""
# Fixtures come from tests/fixtures/make_paddle_fixtures.py and make_jax_fixtures.py (each run in its
# own venv; versions in paddle_versions.json / jax_versions.json). These tests need neither paddle nor jax.
#
# What the exporters emit:
# * paddle2onnx 2.1 (opset 9): GRU nodes (linear_before_reset=1) behind Identity / Transpose / Reshape /
#   Slice plumbing and a Shape/Expand zero state. For a 2-layer nn.GRU the graph declares a [2, N, H] final
#   state but computes only the last layer's [1, N, H]: the exporter is wrong there, so that output is
#   checked against onnxruntime and against the last layer of Paddle's state (test_paddle_stacked_state).
# * jax2onnx 0.17 (opset 23): every lax.scan becomes a Loop (Gemm / Split / Sigmoid / Tanh / Mul / Sub / Add
#   body, the sequence carried through the loop); gruinfer.lift_loop proves each is a GRU cell (flax's
#   GRUCell is reset-after with no recurrent bias) and replaces it by a GRU node. Keras 3 on the JAX
#   backend exports the same way through jax2onnx (reset_after=True computes x W for all steps before the
#   Loop, so the lifted GRU reads the projected sequence).
import glob
import json
import os

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import helper, numpy_helper

import gruinfer
from gruinfer.rewrite.loops import lift_loops

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")
PADDLE = sorted(os.path.basename(p)[:-5] for p in glob.glob(os.path.join(FIXTURES, "paddle_*.onnx")))
JAX = sorted(os.path.basename(p)[:-5] for p in glob.glob(os.path.join(FIXTURES, "jax_*.onnx")))
ALL = PADDLE + JAX
TOL = 1e-5
# Outputs whose declared meaning the exporter gets wrong: (fixture, output index) -> why.
EXPORTER_WRONG = {("paddle_gru2", 1): "paddle2onnx declares [2, N, H] final states but computes only the "
                                      "last layer's [1, N, H]"}
# Non-causal: go_backwards reverses time with Gather(x, Range(T - 1, -1, -1)) before the GRU.
NOT_CAUSAL = {"jax_keras_gru_backwards"}
RUNS = ALL


def path(name):
    return os.path.join(FIXTURES, name + ".onnx")


def cases(name):
    """[(feeds by input position, framework outputs)] for each recorded (batch, length)."""
    d = np.load(os.path.join(FIXTURES, name + ".npz"))
    out, k = [], 0
    while f"x_{k}" in d:
        feeds = [d[f"x_{k}"]] + ([d[f"h0_{k}"]] if f"h0_{k}" in d else [])
        ys, j = [d[f"y_{k}"]], 1
        while f"y_{k}_{j}" in d:
            ys.append(d[f"y_{k}_{j}"])
            j += 1
        out.append((feeds, ys))
        k += 1
    return out


def named(sess, feeds):
    return {a.name: v for a, v in zip(sess.get_inputs(), feeds)}


def test_fixtures_present():
    assert len(PADDLE) >= 3 and len(JAX) >= 5, (PADDLE, JAX)
    for which in ("paddle", "jax"):
        with open(os.path.join(FIXTURES, f"{which}_versions.json")) as f:
            assert "onnx" in json.load(f)
    size = sum(os.path.getsize(p) for p in glob.glob(os.path.join(FIXTURES, "paddle_*"))
               + glob.glob(os.path.join(FIXTURES, "jax_*")))
    assert size < 500_000


@pytest.mark.parametrize("name", ALL)
def test_dynamic_axes_recorded(name):
    shapes = {feeds[0].shape[:2] for feeds, _ in cases(name)}
    assert len({s[0] for s in shapes}) > 1 and len({s[1] for s in shapes}) > 1


@pytest.mark.parametrize("name", RUNS)
def test_runs_as_exported(name, kernel):
    sess = gruinfer.InferenceSession(path(name), kernel=kernel)
    ref = ort.InferenceSession(path(name), providers=["CPUExecutionProvider"])
    for feeds, ys in cases(name):
        got = sess.run(None, named(sess, feeds))
        want = ref.run(None, named(sess, feeds))
        assert len(got) == len(want) == len(ys)
        for j, (g, w, y) in enumerate(zip(got, want, ys)):
            np.testing.assert_allclose(g, w, rtol=0, atol=TOL, err_msg=f"{name} output {j} vs onnxruntime")
            if (name, j) in EXPORTER_WRONG:
                continue
            np.testing.assert_allclose(g, y, rtol=0, atol=TOL, err_msg=f"{name} output {j} vs framework")
            np.testing.assert_allclose(w, y, rtol=0, atol=TOL)


def test_paddle_stacked_state():
    """paddle2onnx's 2-layer export: the final-state output is the last layer's only (exporter bug)."""
    sess = gruinfer.InferenceSession(path("paddle_gru2"))
    for feeds, (y, h) in cases("paddle_gru2"):
        assert h.shape == (2, feeds[0].shape[0], 6)  # Paddle: both layers
        _, got = sess.run(None, named(sess, feeds))
        assert got.shape == (1,) + h.shape[1:]
        np.testing.assert_allclose(got, h[1:], rtol=0, atol=TOL)
        # and the last layer's state is the last frame of the sequence output (batch-major)
        np.testing.assert_allclose(got[0], y[:, -1], rtol=0, atol=TOL)


@pytest.mark.parametrize("name", JAX)
def test_jax_loops_lifted(name):
    model = onnx.load(path(name))
    n_loops = [n.op_type for n in model.graph.node].count("Loop")
    assert n_loops >= 1
    lifted, notes = lift_loops(model)
    notes = [str(n) for n in notes]  # LiftNote records, as text
    assert len(notes) == n_loops and all("lifted into GRU" in n for n in notes), notes
    assert gruinfer.InferenceSession(path(name)).plan_info()["loops"] == notes
    assert [n.op_type for n in lifted.graph.node].count("GRU") == n_loops
    assert "Loop" not in [n.op_type for n in lifted.graph.node]


def test_flax_gru_cell_is_reset_after():
    lifted, _ = lift_loops(onnx.load(path("jax_gru_scan")))
    (gru,) = [n for n in lifted.graph.node if n.op_type == "GRU"]
    at = {a.name: helper.get_attribute_value(a) for a in gru.attribute}
    assert at["linear_before_reset"] == 1 and at["hidden_size"] == 6
    assert at["activations"] == [b"Sigmoid", b"Tanh"]
    b = {t.name: numpy_helper.to_array(t) for t in lifted.graph.initializer}[gru.input[3]]
    assert not np.any(b[0, 18:]) and np.any(b[0, :18])  # flax's dense_h has no bias


@pytest.mark.parametrize("name", sorted(NOT_CAUSAL))
def test_time_reversal_is_not_streamable(name):
    sess = gruinfer.InferenceSession(path(name))
    with pytest.raises(gruinfer.NotStreamable) as e:
        sess.stream(2)
    assert "node" in str(e.value)


def test_keras_last_step_gather_reads_final_state():
    """Keras on JAX takes the last step as Gather(Y, T - 1): lifted to the GRU's Y_h, so it streams."""
    lifted, _ = lift_loops(onnx.load(path("jax_keras_gru_ra0_seq0")))
    assert [n.op_type for n in lifted.graph.node] == ["Transpose", "GRU", "Squeeze"]
    (gru,) = [n for n in lifted.graph.node if n.op_type == "GRU"]
    assert gru.output[0] == "" and lifted.graph.node[2].input[0] == gru.output[1]


def _assert_streams(name, sess):
    info = sess.plan_info()
    assert info["streamable"] and info["lowered"] and "gru" in info["steps"], info
    for feeds, _ in cases(name):
        whole = sess.run(None, named(sess, feeds))
        x, T = feeds[0], feeds[0].shape[1]
        stream = sess.stream(batch_size=x.shape[0])
        assert stream.lowered
        chunks, t, sizes = [], 0, [3, 1, 2]
        extra = named(sess, feeds)
        while t < T:
            k = min(sizes[len(chunks) % 3], T - t)
            part = {sess.get_inputs()[0].name: x[:, t:t + k]}
            if t == 0:  # initial states (if any) before the first chunk only
                part.update({n: v for n, v in extra.items() if n != sess.get_inputs()[0].name})
            chunks.append(stream.run(None, part))
            t += k
        # per-frame outputs (batch-major [N, T, F]) chunk by chunk; values from final states ([N, F]
        # or [L, N, H]) after the last chunk
        for j in range(len(whole)):
            if whole[j].ndim == 3 and whole[j].shape[:2] == x.shape[:2]:
                np.testing.assert_allclose(np.concatenate([c[j] for c in chunks], axis=1), whole[j],
                                           rtol=0, atol=TOL)
            else:
                np.testing.assert_allclose(chunks[-1][j], whole[j], rtol=0, atol=TOL)
        stream.reset()
        x_name = sess.get_inputs()[0].name
        states = {n: v for n, v in extra.items() if n != x_name}
        frames = []
        if states:  # step() takes frames only: initial states go in with a one-frame run first
            first = stream.run(None, {x_name: x[:, :1], **states})[0]
            frames.append(first[:, 0] if whole[0].ndim == 3 else first)
        frames += [stream.step(x[:, i]).copy() for i in range(len(frames), T)]
        if whole[0].ndim == 3:
            np.testing.assert_allclose(np.stack(frames, axis=1).reshape(whole[0].shape), whole[0],
                                       rtol=0, atol=TOL)
        else:
            np.testing.assert_allclose(frames[-1].reshape(whole[0].shape), whole[0], rtol=0, atol=TOL)


# Every causal fixture streams, jax_gru_scan_h0 (initial_h is Unsqueeze(axis 0) of the [N, H] graph
# input h0) and jax_gru2_dense (nnx.Linear as Reshape [-1, H] -> Gemm -> Reshape to Shape(y)[:2] + [F])
# included.
@pytest.mark.parametrize("name", [n for n in RUNS if n not in NOT_CAUSAL])
def test_streams_in_uneven_chunks(name):
    _assert_streams(name, gruinfer.InferenceSession(path(name)))


# ----------------------------------------------------------------------------- edited jax2onnx bodies

def _jax_loop(model):
    (loop,) = [n for n in model.graph.node if n.op_type == "Loop"]
    return loop, [a.g for a in loop.attribute if a.name == "body"][0]


def _gemm(body, i):
    return [n for n in body.node if n.op_type == "Gemm"][i]


def _set_attr(node, name, value):
    for a in node.attribute:
        if a.name == name:
            node.attribute.remove(a)
            break
    node.attribute.append(helper.make_attribute(name, value))


def _ort(model, x):
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, {"x": x})[0]


def test_gemm_attributes_followed():
    """Gemm alpha and transB in the body are read, not assumed: an edited export still lifts exactly."""
    model = onnx.load(path("jax_gru_scan"))
    loop, body = _jax_loop(model)
    g = _gemm(body, 1)  # h @ R (beta 0, no C)
    _set_attr(g, "alpha", 0.5)
    r = next(t for t in model.graph.initializer if t.name == loop.input[2 + list(
        v.name for v in body.input[2:]).index(g.input[1])])
    arr = numpy_helper.to_array(r)
    r.CopyFrom(numpy_helper.from_array(np.ascontiguousarray(2.0 * arr.T), r.name))
    _set_attr(g, "transB", 1)
    lifted, notes = lift_loops(model)
    notes = [str(n) for n in notes]  # LiftNote records, as text
    assert "Loop" not in [n.op_type for n in lifted.graph.node], notes
    x = np.random.default_rng(0).standard_normal((3, 4, 4)).astype(np.float32)
    np.testing.assert_allclose(_ort(lifted, x), _ort(model, x), rtol=0, atol=TOL)
    np.testing.assert_allclose(_ort(lifted, x), _ort(onnx.load(path("jax_gru_scan")), x), rtol=0, atol=TOL)


def _mutant_reverse_update(body):
    # new_h = z*n + (1-z)*h instead of (1-z)*n + z*h
    subs = [n for n in body.node if n.op_type == "Sub"]
    muls = [n for n in body.node if n.op_type == "Mul"]
    z = subs[0].input[1]
    for m in muls:
        if subs[0].output[0] in m.input:
            m.input[list(m.input).index(subs[0].output[0])] = z
        elif z in m.input and any(i.startswith("in_") for i in m.input):
            m.input[list(m.input).index(z)] = subs[0].output[0]


def _mutant_gemm_bias_on_state(body):
    # a bias on h @ R (beta 1): flax has none, but it is still a reset-after GRU
    g = _gemm(body, 1)
    c = numpy_helper.from_array(np.full(18, 0.25, np.float32), "extra_bias")
    body.initializer.append(c)
    g.input.append("extra_bias")
    _set_attr(g, "beta", 1.0)


def _mutant_transA(body):
    _set_attr(_gemm(body, 0), "transA", 1)


def _mutant_scan_out_candidate(body):
    tanh = [n for n in body.node if n.op_type == "Tanh"][0]
    body.output[-1].name = tanh.output[0]


@pytest.mark.parametrize("edit,why", [(_mutant_reverse_update, "z*h"), (_mutant_transA, "transA"),
                                      (_mutant_scan_out_candidate, "scan output")])
def test_edited_jax_loop_left_unchanged(edit, why):
    model = onnx.load(path("jax_gru_scan"))
    _, body = _jax_loop(model)
    edit(body)
    x = np.random.default_rng(2).standard_normal((2, 5, 4)).astype(np.float32)
    if edit is not _mutant_transA:  # the edit changes what the model computes
        assert np.abs(_ort(model, x) - _ort(onnx.load(path("jax_gru_scan")), x)).max() > 1e-3
    lifted, notes = lift_loops(model)
    notes = [str(n) for n in notes]  # LiftNote records, as text
    assert lifted.SerializeToString() == model.SerializeToString()
    assert len(notes) == 1 and "left unchanged" in notes[0] and why in notes[0], notes


def test_recurrent_gemm_bias_lifted_as_rbh():
    """A bias on the recurrent Gemm (beta 1) is the reset-after Rb: lifted, and equal to the Loop."""
    model = onnx.load(path("jax_gru_scan"))
    _, body = _jax_loop(model)
    _mutant_gemm_bias_on_state(body)
    lifted, notes = lift_loops(model)
    notes = [str(n) for n in notes]  # LiftNote records, as text
    assert "Loop" not in [n.op_type for n in lifted.graph.node], notes
    x = np.random.default_rng(1).standard_normal((2, 6, 4)).astype(np.float32)
    np.testing.assert_allclose(_ort(lifted, x), _ort(model, x), rtol=0, atol=TOL)
    sess = gruinfer.InferenceSession(lifted.SerializeToString())
    np.testing.assert_allclose(sess.run(None, {"x": x})[0], _ort(model, x), rtol=0, atol=TOL)


def test_damaged_jax_loops_never_crash_the_lifter():
    """Seeded random damage inside jax2onnx Loop bodies: lift_loops leaves what it cannot prove, never raises,
    and whatever it lifts still computes what the damaged Loop computes (where onnxruntime runs that)."""
    import random

    rng = random.Random(7)
    x = np.random.default_rng(3).standard_normal((2, 5, 4)).astype(np.float32)
    base = {n: onnx.load(path(n)) for n in ("jax_gru_scan", "jax_keras_gru_ra0_seq0", "jax_keras_gru_ra1")}
    lifted_some = 0
    for _ in range(60):
        name = rng.choice(sorted(base))
        model = onnx.load_from_string(base[name].SerializeToString())
        _, body = _jax_loop(model)
        node = rng.choice(list(body.node))
        r = rng.random()
        if r < 0.4:
            node.op_type = rng.choice(["Relu", "Add", "Mul", "Sub", "Tanh", "Identity", "Neg"])
        elif r < 0.7:
            node.input[rng.randrange(len(node.input))] = rng.choice([v.name for v in body.input])
        else:
            body.node.remove(node)
        lifted, notes = lift_loops(model)
        notes = [str(n) for n in notes]  # LiftNote records, as text
        assert len(notes) == 1
        if "lifted into GRU" not in notes[0]:
            assert lifted.SerializeToString() == model.SerializeToString()
            continue
        try:
            want = _ort(model, x)
        except Exception:
            continue
        lifted_some += 1
        np.testing.assert_allclose(_ort(lifted, x), want, rtol=0, atol=TOL, err_msg=notes[0])
    assert lifted_some  # some edits (e.g. Identity on an Identity) leave a GRU
