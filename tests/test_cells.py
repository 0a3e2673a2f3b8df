"""nn.GRUCell exports (one step, stacked steps, Python loops over frames) lifted into GRU nodes at load: torch's outputs, onnxruntime, streaming, and cells left alone."""
import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import numpy_helper

import gruinfer
from gruinfer.rewrite.cells import lift_cells

from torch_fixtures import VERSIONS, close, path, recorded

CELLS = sorted(VERSIONS["cells"])
STEPS = [n for n in CELLS if n.startswith("cell_step")]
LOOPS = [n for n in CELLS if n.startswith("cell_loop")]


def test_fixtures_present():
    assert len(STEPS) == 6 and len(LOOPS) == 8


@pytest.mark.parametrize("name", CELLS)
def test_lifted_and_matches_torch(name, kernel):
    feeds, expected = recorded(name)
    sess = gruinfer.InferenceSession(path(name), kernel=kernel)
    info = sess.plan_info()
    assert info["cells"] and info["lowered"] and "gru" in info["steps"], info
    for g, e in zip(sess.run(None, feeds), expected):
        close(g, e)


@pytest.mark.parametrize("name", CELLS)
def test_matches_onnxruntime_at_other_batch_sizes(name):
    feeds, _ = recorded(name)
    sess = gruinfer.InferenceSession(path(name))
    ref = ort.InferenceSession(path(name), providers=["CPUExecutionProvider"])
    rng = np.random.default_rng(5)
    for N in (1, 5):
        f = {}
        for k, v in feeds.items():
            shape = list(v.shape)
            shape[1 if k == "x" and not name.startswith(("cell_step", "cell_loop_bf")) else 0] = N
            f[k] = rng.standard_normal(shape).astype(np.float32)
        for g, e in zip(sess.run(None, f), ref.run(None, f)):
            close(g, e)


def _state_outputs(sess, feeds):
    """{state input: index of the output that is its next value} (the output of the same shape)."""
    outs = sess.run(None, feeds)
    states = {}
    for k in feeds:
        if k != "x":
            states[k] = [i for i, o in enumerate(outs) if o.shape == feeds[k].shape][-1 if k == "h2" else 0]
    return states


@pytest.mark.parametrize("name", STEPS)
def test_single_step_model_streams_with_the_state_inside(name):
    """stream.run / step with x only == sess.run with h' fed back by hand."""
    feeds, _ = recorded(name)
    sess = gruinfer.InferenceSession(path(name))
    if name.startswith("cell_step2"):
        states = {"h": 1, "h2": 2}
    else:
        states = {"h": len(sess.get_outputs()) - 1}
    rng = np.random.default_rng(3)
    xs = [rng.standard_normal(feeds["x"].shape).astype(np.float32) for _ in range(5)]
    stream = sess.stream(batch_size=feeds["x"].shape[0])
    assert stream.lowered
    f = dict(feeds)
    for t, x in enumerate(xs):
        f["x"] = x
        want = sess.run(None, f)
        got = stream.run(None, f if t == 0 else {"x": x})  # the state feeds only start it
        for g, w in zip(got, want):
            close(g, w)
        for k, i in states.items():
            f[k] = want[i]
    # step(): the first output, frame by frame, from the state set before
    stream.set_state({n: v for n, v in zip(stream.get_state(), [feeds[k] for k in states])})
    f = dict(feeds)
    for x in xs:
        f["x"] = x
        want = sess.run(None, f)
        close(stream.step(x), want[0])
        for k, i in states.items():
            f[k] = want[i]
    stream.reset()
    assert not any(v.any() for v in stream.get_state().values())


@pytest.mark.parametrize("name", LOOPS)
def test_loop_model_streams_in_chunks(name):
    feeds, expected = recorded(name)
    sess = gruinfer.InferenceSession(path(name))
    low = sess._lowering()
    t_ax = low.in_axes.index("T")
    stream = sess.stream(batch_size=feeds["x"].shape[low.in_axes.index("N")])
    parts = []
    for t0, t1 in ((0, 1), (1, 4), (4, 6)):
        f = {"x": np.take(feeds["x"], range(t0, t1), axis=t_ax)}
        if t0 == 0 and "h" in feeds:
            f["h"] = feeds["h"]
        parts.append(stream.run(None, f))
    for i, e in enumerate(expected):
        if e.ndim == 3:  # the stacked states
            close(np.concatenate([p[i] for p in parts], axis=t_ax), e)
        else:  # the last state, or a head over it: its value after the last chunk
            close(parts[-1][i], e)


def _mutated(name, edit):
    m = onnx.load(path(name))
    edit(m.graph)
    return m


def _swap_update(g):
    """h' = (h - n) * z + n becomes (h - n) * (1 - z) + n: not what a GRU computes."""
    mul = next(n for n in g.node if n.op_type == "Mul" and any("Sub" in i or "sub" in i for i in n.input))
    z = next(i for i in mul.input if "Sub" not in i and "sub" not in i)
    g.initializer.append(numpy_helper.from_array(np.array(1.0, np.float32), "one_"))
    g.node.insert(list(g.node).index(mul), onnx.helper.make_node("Sub", ["one_", z], ["one_minus_z"]))
    mul.input[list(mul.input).index(z)] = "one_minus_z"


def _skip_a_frame(g):
    """The third cell reads frame 3 instead of frame 2: not a GRU over the sequence."""
    gathers = [n for n in g.node if n.op_type == "Gather" and n.input[0] == "x"]
    const = next(n for n in g.node if n.op_type == "Constant" and n.output[0] == gathers[2].input[1])
    const.attribute[0].t.CopyFrom(numpy_helper.from_array(np.array(3, np.int64)))


@pytest.mark.parametrize("name, edit", [("cell_step_ts", _swap_update), ("cell_loop_ts", _skip_a_frame)])
def test_not_a_gru_is_left_alone(name, edit):
    m = _mutated(name, edit)
    lifted, notes = lift_cells(m)
    assert not notes and lifted is m
    feeds, _ = recorded(name)
    sess = gruinfer.InferenceSession(m)
    assert not sess.plan_info()["cells"]
    ref = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    for g, e in zip(sess.run(None, feeds), ref.run(None, feeds)):
        close(g, e)


def test_lift_leaves_the_input_model_unchanged():
    m = onnx.load(path("cell_loop_ts"))
    before = m.SerializeToString()
    lifted, notes = lift_cells(m)
    assert notes and m.SerializeToString() == before
    assert [n.op_type for n in lifted.graph.node].count("GRU") == 1
    assert [(v.name, v.type) for v in lifted.graph.input] == [(v.name, v.type) for v in m.graph.input]
    assert [(v.name, v.type) for v in lifted.graph.output] == [(v.name, v.type) for v in m.graph.output]
