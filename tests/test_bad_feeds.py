"""Bad stream calls, made systematically on both stream paths and many model shapes: each raises InvalidArgument and leaves every slot, and the stream's future, as it was; the valid forms are written down beside them.

What counts as valid (test_valid_forms pins it):
  - frames and chunks of float32 in either byte order, nested lists of floats, any memory
    layout (non-contiguous, Fortran order); float64 and float16 arrays are refused as in
    onnxruntime, and converted when the session has cast_feeds=True (test_cast_feeds);
  - token ids (an Embedding model's input) of any integer dtype and byte order, and on the C
    plan also floats holding integers (its step reads float32 ids; the Python path's Gather
    refuses them); an id counts from the end when negative, as Gather does: [-V, V) for V rows;
  - states (set_state, state-input feeds) as frames are: float32 arrays, nested lists of floats;
  - slots: None (all), an int, or a 1-D sequence of ints ([] resets none);
  - output_names: None or any iterable of output names other than a string.
Everything else the calls below make is bad: no bool or complex data, no object or str arrays,
no ints where floats go (nor floats or bools where slots go), no NaN/Inf while check_finite is
on, no sizes other than the model's and the stream's (time: any length >= 1), out= only a
writeable C-contiguous native float32 array of the step's output shape.  A state feed has the
shape the graph declares with the stream's batch size, e.g. [1, N, H] for a GRU's initial_h.

For every bad call: it raises gruinfer.InvalidArgument; get_state() is bit-identical before and
after; and the stream then runs a chunk and a step exactly like a twin that never saw the call
(which catches hidden state, such as a remembered state feed, that get_state does not show).
"""
import functools
import os
import re
from typing import NamedTuple

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import gruinfer

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")
I, H = 4, 6          # the hand-built GRUs'


# ---------------------------------------------------------------- models

def gru_graph(*, layout=0, h0=None, lens=False, weight_input=False, seed=0):
    """X -> one GRU (I=4, H=6, linear_before_reset=1) -> Y, Y_h.
    h0: None; "input" (a graph input fed as the GRU reads initial_h: [1, N, H], or [N, 1, H] with
    layout 1); "nh" (an [N, H] input the graph unsqueezes).  lens: a sequence_lens input.
    weight_input: W also listed as a graph input (keep_initializers_as_inputs)."""
    rng = np.random.default_rng(seed)
    W, R, B = ((rng.standard_normal(s) * 0.5).astype(np.float32)
               for s in ((1, 3 * H, I), (1, 3 * H, H), (1, 6 * H)))
    x_shape = ["N", "T", I] if layout else ["T", "N", I]
    inputs = [helper.make_tensor_value_info("X", TensorProto.FLOAT, x_shape)]
    inits = [numpy_helper.from_array(a, n) for n, a in (("W", W), ("R", R), ("B", B))]
    nodes, gru_in = [], ["X", "W", "R", "B", "", ""]
    if lens:
        inputs.append(helper.make_tensor_value_info("lens", TensorProto.INT32, ["N"]))
        gru_in[4] = "lens"
    if h0 == "input":
        inputs.append(helper.make_tensor_value_info(
            "h0", TensorProto.FLOAT, ["N", 1, H] if layout else [1, "N", H]))
        gru_in[5] = "h0"
    elif h0 == "nh":
        inputs.append(helper.make_tensor_value_info("h0", TensorProto.FLOAT, ["N", H]))
        inits.append(numpy_helper.from_array(np.array([layout], np.int64), "ax"))
        nodes.append(helper.make_node("Unsqueeze", ["h0", "ax"], ["h0_3d"], name="unsq"))
        gru_in[5] = "h0_3d"
    if weight_input:
        inputs.append(helper.make_tensor_value_info("W", TensorProto.FLOAT, list(W.shape)))
    while not gru_in[-1]:
        gru_in.pop()
    nodes.append(helper.make_node("GRU", gru_in, ["Y", "Y_h"], name="gru", hidden_size=H,
                                  linear_before_reset=1, layout=layout))
    graph = helper.make_graph(nodes, "g", inputs,
                              [helper.make_tensor_value_info(n, TensorProto.FLOAT, None)
                               for n in ("Y", "Y_h")], inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return m


def two_grus():
    """Two GRUs (H 6 and 9) reading the same X [T, N, I]."""
    m = gru_graph(seed=1)
    rng = np.random.default_rng(2)
    for n, s in (("W2", (1, 27, I)), ("R2", (1, 27, 9)), ("B2", (1, 54))):
        m.graph.initializer.append(numpy_helper.from_array(
            (rng.standard_normal(s) * 0.4).astype(np.float32), n))
    m.graph.node.append(helper.make_node("GRU", ["X", "W2", "R2", "B2"], ["Y2", "Y2_h"],
                                         name="gru_b", hidden_size=9))
    m.graph.output.append(helper.make_tensor_value_info("Y2_h", TensorProto.FLOAT, None))
    return m


def fixture(name):
    return onnx.load(os.path.join(FIXTURES, name + ".onnx"))


def on_python_path(model, op="Exp"):
    """model with `op` (one the C plan lacks) over its first output, as a new first output: its
    stream is a PyStream."""
    m = onnx.ModelProto()
    m.CopyFrom(model)
    first = m.graph.output[0].name
    attrs = {"axes": [-1]} if op == "ReduceMean" else {}
    m.graph.node.append(helper.make_node(op, [first], ["py_out"], name="py_head", **attrs))
    rank = len(m.graph.output[0].type.tensor_type.shape.dim)  # (a cell lifter checks shapes)
    m.graph.output.insert(0, helper.make_tensor_value_info(
        "py_out", TensorProto.FLOAT, [f"d{i}" for i in range(rank)] if rank else None))
    return m


class Spec(NamedTuple):
    model: object        # a function making the ModelProto
    lowered: bool        # Stream (the C plan) or PyStream
    N: int = 2
    vocab: int = 0       # > 0: the time input holds token ids, the embedding table's row count


SPECS = {
    "gru_tn": Spec(gru_graph, True),
    "gru_nt": Spec(lambda: gru_graph(layout=1), True),
    "gru_h0": Spec(lambda: gru_graph(h0="input"), True),
    "gru_h0_nh_nt": Spec(lambda: gru_graph(layout=1, h0="nh"), True, N=3),
    "gru_lens_weight": Spec(lambda: gru_graph(lens=True, weight_input=True), True),
    "two_grus": Spec(two_grus, True),
    "embed": Spec(lambda: fixture("embed_gru_softmax_ts"), True, vocab=11),
    "embed_hn_linear_nt": Spec(lambda: fixture("embed_gru_hn_linear_bf_ts"), True, vocab=11),
    "stacked_hn_linear": Spec(lambda: fixture("gru2_hn_linear_ts"), True),
    "stacked_h0_nt": Spec(lambda: fixture("gru2_h0_bf_ts"), True),
    "cell": Spec(lambda: fixture("cell_step_ts"), True),
    "cell2": Spec(lambda: fixture("cell_step2_ts"), True),
    "batch1": Spec(lambda: fixture("keras_gru_batch1"), True, N=1),
    "py_gru_tn": Spec(lambda: on_python_path(gru_graph()), False),
    "py_gru_nt": Spec(lambda: on_python_path(gru_graph(layout=1), "ReduceMean"), False),
    "py_gru_h0": Spec(lambda: on_python_path(gru_graph(h0="input")), False),
    "py_gru_h0_nh": Spec(lambda: on_python_path(gru_graph(h0="nh")), False, N=3),
    "py_lens_weight": Spec(lambda: on_python_path(gru_graph(lens=True, weight_input=True)), False),
    "py_embed": Spec(lambda: on_python_path(fixture("embed_gru_softmax_ts")), False, vocab=11),
    "py_stacked_hn_linear": Spec(lambda: on_python_path(fixture("gru2_hn_linear_ts")), False),
    "py_stacked_h0_nt": Spec(lambda: on_python_path(fixture("gru2_h0_bf_ts")), False),
    "py_cell": Spec(lambda: on_python_path(fixture("cell_step_ts")), False),
}


class Case:
    """A spec's session and what a valid call gives it, read from the session itself."""

    def __init__(self, spec):
        self.spec, N = spec, spec.N
        self.sess = sess = gruinfer.InferenceSession(spec.model())
        info = sess.plan_info()
        assert info["streamable"] and info["lowered"] == spec.lowered, info
        self.time, self.axes = info["time_input"], tuple(info["input_axes"])
        self.outputs = [o.name for o in sess.get_outputs()]
        # state inputs: the float inputs besides the frames; their valid feed has the declared
        # shape with the stream's batch size
        self.state_axes = {a.name: tuple(d if isinstance(d, int) else "N" for d in a.shape)
                           for a in sess.get_inputs()
                           if a.name != self.time and a.type == "tensor(float)"}
        self.lens = [a.name for a in sess.get_inputs() if a.type == "tensor(int32)"]
        self.weights = {a.name: np.zeros(a.shape, np.float32)
                        for a in sess.get_overridable_initializers()}
        stream = sess.stream(N)
        assert stream.lowered == spec.lowered
        self.hidden = {k: v.shape[1] for k, v in stream.get_state().items()}

    @functools.cached_property
    def out_shape(self):
        """The shape of what step() returns (found by a step: when a test needs it, not when the
        tests are collected)."""
        return self.sess.stream(self.spec.N).step(self.frame(0)).shape

    def chunk(self, T, seed):
        """A valid chunk of T frames of the time input."""
        rng = np.random.default_rng(seed)
        shape = [T if a == "T" else self.spec.N if a == "N" else a for a in self.axes]
        if self.spec.vocab:
            return rng.integers(0, self.spec.vocab, shape).astype(np.int64)
        return rng.standard_normal(shape).astype(np.float32)

    def frame(self, seed):
        """A valid step() frame: one frame with the time axis removed."""
        x = self.chunk(1, seed)
        return x[(slice(None),) * self.axes.index("T") + (0,)] if "T" in self.axes else x

    def frame_axes(self):
        return tuple(a for a in self.axes if a != "T")

    def state_feeds(self, seed):
        rng = np.random.default_rng(seed)
        return {n: rng.standard_normal([self.spec.N if a == "N" else a for a in ax])
                .astype(np.float32) for n, ax in self.state_axes.items()}

    def states(self, seed):
        """A valid set_state() argument for every GRU (not the stream's current states)."""
        rng = np.random.default_rng(seed)
        return {k: rng.standard_normal((self.spec.N, h)).astype(np.float32)
                for k, h in self.hidden.items()}

    def feed(self, T, seed, **extra):
        return dict({self.time: self.chunk(T, seed)}, **extra)

    def warm(self):
        """A stream that ran a chunk (state inputs fed), with slot 0 reset when there are two:
        carried and fresh slots alike must survive a bad call."""
        stream = self.sess.stream(self.spec.N)
        stream.run(None, self.feed(3, 1, **self.state_feeds(2)))
        if self.spec.N > 1:
            stream.reset([0])
        return stream


_CASES = {}


def case(name):
    if name not in _CASES:
        _CASES[name] = Case(SPECS[name])
    return _CASES[name]


def same_state(a, b):
    assert a.keys() == b.keys()
    for k in a:
        assert a[k].dtype == b[k].dtype and a[k].shape == b[k].shape
        assert np.array_equal(a[k], b[k]), f"state of {k!r} changed"


def goes_on_alike(c, stream, twin):
    """stream and twin give the same chunk outputs, step output and states from here on."""
    for s_out, t_out in zip(stream.run(None, c.feed(2, 5)), twin.run(None, c.feed(2, 5))):
        assert np.array_equal(s_out, t_out)
    assert np.array_equal(stream.step(c.frame(6)), twin.step(c.frame(6)))
    same_state(stream.get_state(), twin.get_state())


# ---------------------------------------------------------------- bad values, generated

def _resized(a, axis, size):
    """a with axis `axis` cut or cycled to `size` entries."""
    return np.take(a, np.arange(size) % max(a.shape[axis], 1), axis=axis)


def bad_arrays(good, axes, *, floats=True, ids=0):
    """(label, value) pairs that are each wrong for an argument whose valid form is `good`, an
    array with axes `axes` ("T": any length >= 1, "N": the batch, ints: fixed sizes).
    floats: the argument holds floats (ints are wrong); ids: it holds token ids of a table of
    that many rows (floats holding integers in range are right, other floats wrong)."""
    out = [("rank+1", good[None]), ("rank+1-last", good[..., None])]
    if good.ndim:
        out.append(("rank-1", good[0]))
    for ax, a in enumerate(axes):
        n = good.shape[ax]
        for size in sorted({0} if a == "T" else {0, n - 1, n + 1} - {n}):
            out.append((f"axis{ax}({a})={size}", _resized(good, ax, size)))
    for dt in ["bool", "complex64", "object", "str", "datetime64[s]"] + (
            ["int32", "int64", "uint8", "float64", "float16"] if floats and not ids else []):
        out.append((f"dtype={dt}", good.astype(dt)))
    out += [("None", None), ("float", 0.5), ("0-d", np.float32(1)), ("text", "abc"),
            ("bytes", b"abc"), ("dict", {"x": good}), ("object", object()),
            ("ragged", [good.tolist(), good.tolist()[:-1]]), ("set", {1.0})]
    flat = good.reshape(-1)
    if floats and not ids:
        for label, v in (("NaN", np.nan), ("+Inf", np.inf), ("-Inf", -np.inf)):
            bad = good.copy()
            bad.reshape(-1)[flat.size // 2] = v
            out.append((label, bad))
    if ids:
        for label, v, dt in (("id=V", ids, np.int64), ("id=-V-1", -ids - 1, np.int64),
                             ("id=2**40", 2**40, np.int64), ("id=-2**62", -2**62, np.int64),
                             ("id=V-int32", ids, np.int32), ("id=0.5", 0.5, np.float32),
                             ("id=V-float", ids, np.float32), ("id=NaN", np.nan, np.float32),
                             ("id=Inf", np.inf, np.float64), ("id=2**64-1", 2**64 - 1, np.uint64)):
            bad = good.astype(dt)
            bad.reshape(-1)[-1] = v
            out.append((label, bad))
    return out


def bad_outs():
    """(label, make) pairs: make(shape) is an `out` that step(x, out=) must refuse, for a step
    whose output has that shape."""
    def read_only(shape):
        a = np.zeros(shape, np.float32)
        a.flags.writeable = False
        return a

    out = [(f"dtype={dt}", lambda shape, dt=dt: np.zeros(shape, dt))
           for dt in ("float64", "float16", "int32", ">f4")]
    return out + [
        ("shape-last+1", lambda shape: np.zeros(shape[:-1] + (shape[-1] + 1,), np.float32)),
        ("rank+1", lambda shape: np.zeros((1,) + shape, np.float32)),
        ("rank-1", lambda shape: np.zeros(shape[1:], np.float32)),
        ("0-d", lambda shape: np.float32(0)), ("read-only", read_only),
        ("strided", lambda shape: np.zeros(shape[:-1] + (2 * shape[-1],), np.float32)[..., ::2]),
        ("reversed", lambda shape: np.flip(np.zeros(shape, np.float32),
                                           [i for i, d in enumerate(shape) if d > 1][-1])),
        ("list", lambda shape: np.zeros(shape).tolist()),
        ("memoryview", lambda shape: memoryview(np.zeros(shape, np.float32))),
        ("text", lambda shape: "out")]


def bad_slots(N):
    return [(f"slot={N}", N), ("slot=-1", -1), (f"slots=[0,{N}]", [0, N]), ("slots=[-1]", [-1]),
            ("slot=2**70", 2**70), ("slots=[2**70]", [2**70]),
            ("slot=uint64-max", np.uint64(2**64 - 1)),
            ("slot=1.0", 1.0), ("slots=[0.0]", [0.0]), ("slots=float-array", np.zeros(1)),
            ("slot=True", True), ("slot=np.True_", np.True_), ("slots=mask", [True] * N),
            ("slot='0'", "0"), ("slots=['a']", ["a"]), ("slot=b'0'", b"0"), ("slot=1j", 1j),
            ("slots=[[0]]", [[0]]), ("slots=2-D", np.zeros((1, 2), np.int64)),
            ("slots=empty-2-D", np.zeros((0, 2), np.int64)), ("slots=ragged", [[0], [0, 1]]),
            ("slots=dict", {0: 1}), ("slots=set", {0}), ("slots=object", object())]


BAD_BATCH_SIZES = [pytest.param(v, id=label) for label, v in (
    ("0", 0), ("-1", -1), ("1.5", 1.5), ("2.0", 2.0), ("np.float64", np.float64(2)), ("'2'", "2"),
    ("None", None), ("np.True_", np.True_), ("[2]", [2]), ("array", np.array([2])), ("2**21", 2**21),
    ("2**63", 2**63), ("2**80", 2**80), ("uint64-max", np.uint64(2**64 - 1)), ("1j", 1j),
    ("True", True))]


# ---------------------------------------------------------------- the calls

def bad_calls(c):
    """(label, call) for every bad call on a stream of case c."""
    N, t, calls = c.spec.N, c.time, []
    fax = c.frame_axes()
    floats = not c.spec.vocab

    def add(label, call):
        calls.append((label, call))

    # step(x): frames
    for label, x in bad_arrays(c.frame(7), fax, floats=floats, ids=c.spec.vocab):
        add(f"step x {label}", lambda s, x=x: s.step(x))
    if "T" in c.axes:
        add("step x a-chunk", lambda s: s.step(c.chunk(1, 7)))
    # step(x, out=)
    for label, make in bad_outs():
        add(f"step out {label}", lambda s, make=make: s.step(c.frame(7), out=make(c.out_shape)))
    # run(output_names, ...)
    for label, names in (("unknown", ["nope"]), ("one-unknown", [c.outputs[0], "nope"]),
                         ("a-string", c.outputs[0]), ("bytes", c.outputs[0].encode()),
                         ("int", 5), ("object", object()), ("[int]", [5]), ("[None]", [None]),
                         ("[[name]]", [[c.outputs[0]]])):
        add(f"run names {label}", lambda s, names=names: s.run(names, c.feed(2, 7)))
    # run(..., feed): the feed itself
    for label, feed in (("None", None), ("list", [c.chunk(2, 7)]), ("pairs", [(t, c.chunk(2, 7))]),
                        ("str", t), ("array", c.chunk(2, 7)), ("int-key", {0: c.chunk(2, 7)}),
                        ("empty", {}), ("unknown", c.feed(2, 7, nope=c.chunk(2, 7))),
                        ("state-only", c.state_feeds(8))):
        if label == "state-only" and not c.state_axes:
            continue
        add(f"run feed {label}", lambda s, feed=feed: s.run(None, feed))
    for name in c.lens:
        add(f"run feed lens {name}", lambda s, name=name: s.run(None, c.feed(2, 7, **{
            name: np.full(N, 2, np.int32)})))
    for name, w in c.weights.items():
        add(f"run feed weight {name}",
            lambda s, name=name, w=w: s.run(None, c.feed(2, 7, **{name: w})))
    # run: the chunk of frames, alone and beside valid state feeds
    for label, x in bad_arrays(c.chunk(2, 7), c.axes, floats=floats, ids=c.spec.vocab):
        add(f"run x {label}", lambda s, x=x: s.run(None, {t: x}))
        if c.state_axes and (label in ("NaN", "axis0(T)=0") or label.startswith("id=")):
            add(f"run x {label} with states",
                lambda s, x=x: s.run(None, dict({t: x}, **c.state_feeds(9))))
    # run: state-input feeds
    for name, ax in c.state_axes.items():
        for label, h in bad_arrays(c.state_feeds(9)[name], ax):
            add(f"run state {name} {label}",
                lambda s, name=name, h=h: s.run(None, dict(c.state_feeds(9), **{t: c.chunk(2, 7),
                                                                             name: h})))
    # reset(slots)
    for label, slots in bad_slots(N):
        add(f"reset {label}", lambda s, slots=slots: s.reset(slots))
    # set_state(state)
    good = c.states(10)
    first = next(iter(good))
    for label, st in (("list", list(good.values())), ("None", None), ("array", good[first]),
                      ("str", first), ("pairs", list(good.items())),
                      ("unknown", {"nope": good[first]}), ("int-key", {0: good[first]}),
                      ("None-key", {None: good[first]}),
                      ("good-and-unknown", dict(good, nope=good[first]))):
        add(f"set_state {label}", lambda s, st=st: s.set_state(st))
    for name in good:
        for label, h in bad_arrays(good[name], ("N", c.hidden[name])):
            # the other GRUs' states are good: nothing may be written
            add(f"set_state {name} {label}",
                lambda s, name=name, h=h: s.set_state(dict(good, **{name: h})))
    return calls


def _slug(label):
    return re.sub(r"[^A-Za-z0-9_.=+\-\[\]]+", "-", label).strip("-")


_ALL = [(name, label, call) for name in SPECS for label, call in bad_calls(case(name))]


@pytest.mark.parametrize("name,label,call", _ALL, ids=[f"{n}:{_slug(l)}" for n, l, _ in _ALL])
def test_bad_call_refused_state_kept(name, label, call):
    c = case(name)
    stream, twin = c.warm(), c.warm()
    before = stream.get_state()
    with pytest.raises(gruinfer.InvalidArgument):
        call(stream)
    same_state(before, stream.get_state())
    goes_on_alike(c, stream, twin)


@pytest.mark.parametrize("name", ["gru_tn", "py_gru_tn", "embed", "batch1"])
@pytest.mark.parametrize("batch_size", BAD_BATCH_SIZES)
def test_bad_batch_size_refused(name, batch_size):
    with pytest.raises(gruinfer.InvalidArgument):
        case(name).sess.stream(batch_size)


def test_fixed_batch_refused():
    with pytest.raises(gruinfer.InvalidArgument, match="batch_size must be 1"):
        case("batch1").sess.stream(2)


def test_the_suite_is_large():
    """Hundreds of bad calls on each path, over every kind of model above."""
    per_path = {True: 0, False: 0}
    for name, _, _ in _ALL:
        per_path[SPECS[name].lowered] += 1
    assert min(per_path.values()) >= 400, per_path


# ---------------------------------------------------------------- what is valid

def valid_forms(c):
    """(label, call, same): call is valid and does on a stream what `same` does on its twin."""
    t, N, V = c.time, c.spec.N, c.spec.vocab
    x, f = c.chunk(2, 11), c.frame(12)

    def forms_of(a):
        """(label, a in another valid form, what it stands for)"""
        if V:
            out = [(dt, a.astype(dt), a) for dt in ("int32", "uint8", "int16", ">i8")]
            out += [("negative", a - V, a), ("list", a.tolist(), a)]
            return out + ([("float32", a.astype(np.float32), a)] if c.spec.lowered else [])
        return [(">f4", a.astype(">f4"), a), ("list", a.tolist(), a),
                ("fortran", np.asfortranarray(a), a),
                ("strided", np.repeat(a, 2, axis=-1)[..., ::2], a)]

    forms = []
    for label, v, same in forms_of(x):
        forms.append((f"run x {label}", lambda s, v=v: s.run(None, {t: v}),
                      lambda s, same=same: s.run(None, {t: same})))
    for label, v, same in forms_of(f):
        forms.append((f"step x {label}", lambda s, v=v: s.step(v),
                      lambda s, same=same: s.step(same)))
    forms.append(("step out=", lambda s: s.step(f, out=np.full(c.out_shape, np.nan, np.float32)),
                  lambda s: s.step(f)))
    outs = c.outputs
    for label, names, same in (("tuple", lambda: tuple(outs), outs),
                               ("iterator", lambda: iter(outs), outs),
                               ("array", lambda: np.array(outs), outs),
                               ("repeated", lambda: outs[:1] * 2, outs[:1] * 2)):
        forms.append((f"run names {label}", lambda s, names=names: s.run(names(), {t: x}),
                      lambda s, same=same: s.run(same, {t: x})))
    last = N - 1
    for label, slots in (("np.int64", np.int64(last)), ("tuple", (last,)),
                         ("int32-array", np.array([last], np.int32)), ("uint8", np.uint8(last)),
                         ("repeated", [last, last]), ("range", range(last, N))):
        forms.append((f"reset {label}", lambda s, slots=slots: s.reset(slots),
                      lambda s: s.reset([last])))
    forms.append(("reset []", lambda s: s.reset([]), lambda s: None))
    forms.append(("reset None", lambda s: s.reset(None), lambda s: s.reset()))
    good = c.states(13)
    for label, st in (("list", {k: v.tolist() for k, v in good.items()}),
                      (">f4", {k: v.astype(">f4") for k, v in good.items()}),
                      ("fortran", {k: np.asfortranarray(v) for k, v in good.items()})):
        forms.append((f"set_state {label}", lambda s, st=st: s.set_state(st),
                      lambda s: s.set_state(good)))
    forms.append(("set_state {}", lambda s: s.set_state({}), lambda s: None))
    if c.state_axes:
        h = c.state_feeds(14)
        hl = {k: v.tolist() for k, v in h.items()}
        forms.append(("run state list", lambda s: s.run(None, dict({t: x}, **hl)),
                      lambda s: s.run(None, dict({t: x}, **h))))
    return forms


_VALID = [(name, label, call, same) for name in SPECS
          for label, call, same in valid_forms(case(name))]


@pytest.mark.parametrize("name,label,call,same", _VALID,
                         ids=[f"{n}:{_slug(l)}" for n, l, _, _ in _VALID])
def test_valid_forms(name, label, call, same):
    c = case(name)
    stream, twin = c.warm(), c.warm()
    got, want = call(stream), same(twin)
    if isinstance(want, np.ndarray):
        got, want = [got], [want]
    assert (got is None) == (want is None)
    for g, w in zip(got or [], want or []):
        assert isinstance(g, np.ndarray) and g.dtype == np.float32 and np.array_equal(g, w)
    same_state(stream.get_state(), twin.get_state())
    goes_on_alike(c, stream, twin)


# ---------------------------------------------------------------- what the suite found

@pytest.mark.parametrize("name", ["gru_h0", "py_gru_h0", "py_gru_h0_nh", "stacked_h0_nt",
                                  "py_stacked_h0_nt", "cell", "py_cell"])
def test_reset_slot_starts_where_get_state_says(name):
    """After a chunk with state feeds and reset([0]), slot 0 starts from the state get_state()
    shows (zeros: these models have no initial state of their own) on both paths; PyStream
    used to start it from the last state feed it had seen."""
    c = case(name)
    stream = c.warm()
    twin = c.sess.stream(c.spec.N)
    twin.set_state(stream.get_state())
    goes_on_alike(c, stream, twin)


def test_python_path_streams_with_a_sequence_lens_input():
    """A sequence_lens input is left out of stream feeds (every slot advances by every frame):
    PyStream used to say it was missing, so such a model could not stream at all."""
    c = case("py_lens_weight")
    N, T = c.spec.N, 7
    x = c.chunk(T, 15)
    whole = c.sess.run(None, {"X": x, "lens": np.full(N, T, np.int32)})
    stream = c.sess.stream(N)
    parts = [stream.run(None, {"X": x[a:b]}) for a, b in ((0, 1), (1, 4), (4, T))]
    for j in (0, 1):
        np.testing.assert_allclose(np.concatenate([p[j] for p in parts]), whole[j], rtol=0, atol=1e-5)
    np.testing.assert_allclose(parts[-1][2], whole[2], rtol=0, atol=1e-5)
