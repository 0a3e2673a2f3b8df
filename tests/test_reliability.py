"""Hostile input never crashes, hangs or leaks an internal error: the fuzzers' reproducers as cases, the load budgets, streams used by two threads at once refused, and memory that stays flat over many steps and sessions."""
import gc
import os
import threading

import numpy as np
import onnx
import pytest
from onnx import TensorProto as TP, helper as h, numpy_helper as nh

import gruinfer
from hostile import identity_loop_body
from test_bad_feeds import fixture, on_python_path

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")


def model(nodes, inputs, outputs=("y",), inits=(), opset=17):
    g = h.make_graph(nodes, "g", inputs, [h.make_tensor_value_info(o, TP.FLOAT, None) for o in outputs],
                     list(inits))
    return h.make_model(g, opset_imports=[h.make_opsetid("", opset)])


def cell_like(extra=(), x_shape=(1, 4)):
    """The ops of a GRU cell's gate, which send the cell lifter to onnx's shape inference."""
    x = h.make_tensor_value_info("x", TP.FLOAT, list(x_shape))
    nodes = [h.make_node("MatMul", ["x", "W"], ["a"]), h.make_node("MatMul", ["x", "W"], ["b"]),
             h.make_node("Sigmoid", ["a"], ["s"]), h.make_node("Mul", ["s", "b"], ["p"]),
             h.make_node("Mul", ["p", "b"], ["y"])] + list(extra)
    return model(nodes, [x], inits=[nh.from_array(np.eye(4, dtype=np.float32), "W")])


def refused(m, *parts, cls=gruinfer.InvalidModel, **kw):
    data = m if isinstance(m, bytes) else m.SerializeToString()
    with pytest.raises(cls) as e:
        gruinfer.InferenceSession(data, **kw)
    for p in parts:
        assert p in str(e.value), (p, str(e.value))
    return str(e.value)


def with_bad_bytes(m, name, bad=b"\xff\xfe"):
    """m's bytes with the text `name` (of the same length) replaced by bytes that are not UTF-8."""
    data = m.SerializeToString()
    assert name.encode() in data
    return data.replace(name.encode(), bad.ljust(len(name), b"\xff"))


# ---------------------------------------------------------------- crashes in onnx's shape inference

def test_eyelike_of_nothing_beside_a_cell_is_refused_not_a_segfault():
    refused(cell_like([h.make_node("EyeLike", [""], ["e"])]), "EyeLike", "missing")


@pytest.mark.parametrize("dim", [-2, -2147483649])
def test_negative_declared_dims_are_refused(dim):
    x = h.make_tensor_value_info("x", TP.FLOAT, [3, dim])
    body = identity_loop_body()
    inits = [nh.from_array(np.array([0], np.int64), "z"), nh.from_array(np.array([1], np.int64), "o"),
             nh.from_array(np.array(2, np.int64), "n"), nh.from_array(np.array(True), "t")]
    nodes = [h.make_node("Slice", ["x", "z", "o"], ["s"]), h.make_node("Loop", ["n", "t", "s"], ["y"], body=body)]
    refused(model(nodes, [x], inits=inits), "'x'", str(dim))


# ---------------------------------------------------------------- schema validation

@pytest.mark.parametrize("case", ["unknown-attr", "wrong-type", "body-not-graph", "missing-required",
                                  "attr-twice", "nan"])
def test_attributes_are_checked_against_the_schema(case):
    x = h.make_tensor_value_info("x", TP.FLOAT, [2, 3])
    node = h.make_node("Concat", ["x", "x"], ["y"], axis=0)
    want = "Concat"
    if case == "unknown-attr":
        node.attribute.append(h.make_attribute("perm", [1, 0]))
        want = "'perm' is not one of"
    elif case == "wrong-type":
        node.attribute[0].CopyFrom(h.make_attribute("axis", 0.5))
        want = "FLOAT"
    elif case == "body-not-graph":
        node = h.make_node("Loop", ["", ""], ["y"], body=3)
        want = "'body' is of type INT"
    elif case == "missing-required":
        del node.attribute[:]
        want = "required attribute 'axis'"
    elif case == "attr-twice":
        node.attribute.append(h.make_attribute("axis", 1))
        want = "given twice"
    else:
        node = h.make_node("LeakyRelu", ["x"], ["y"], alpha=float("nan"))
        want = "nan"
    refused(model([node], [x]), want)


@pytest.mark.parametrize("field", ["input", "node", "initializer", "attr-string", "dim_param"])
def test_names_that_are_not_utf8_are_refused(field):
    x = h.make_tensor_value_info("x", TP.FLOAT, [2, "TTTT"])
    nodes = [h.make_node("Add", ["x", "cccc"], ["y"], name="nnnn"),
             h.make_node("Constant", [], ["k"], value_string="ssss")]
    m = model(nodes, [x], inits=[nh.from_array(np.ones(1, np.float32), "cccc")])
    name = {"input": "cccc", "node": "nnnn", "initializer": "cccc", "attr-string": "ssss",
            "dim_param": "TTTT"}[field]
    refused(with_bad_bytes(m, name), "not UTF-8")


def test_a_loop_body_of_the_wrong_signature_is_refused_before_shape_inference():
    """Seed 13 #52077: an empty Loop body beside an op the opset lacks segfaulted onnx's shape
    inference; the body's inputs and outputs are checked against the node's first."""
    body = h.make_graph([], "body", [], [])
    loop = h.make_node("Loop", ["", "c", "v"], ["v2", "scanned"], body=body)
    m = cell_like([loop], x_shape=(1, 4))
    m.graph.input.extend([h.make_tensor_value_info("c", TP.BOOL, []),
                          h.make_tensor_value_info("v", TP.FLOAT, [1])])
    refused(m, "(Loop)", "body takes 0 inputs and gives 0 outputs", "3 and 3")


@pytest.mark.parametrize("opset, shown", [(11, False), (17, True)])
def test_an_op_missing_from_the_opset_keeps_shape_inference_away(monkeypatch, opset, shown):
    """LayerNormalization came in opset 17: at 11 it has no schema, so onnx's shape inference
    (whose C++ trusts what that schema would have checked) never sees the model."""
    calls = []
    real = onnx.shape_inference.infer_shapes
    monkeypatch.setattr(onnx.shape_inference, "infer_shapes", lambda m, *a, **k: calls.append(1) or real(m))
    base = cell_like()
    scale = nh.from_array(np.ones(4, np.float32), "scale")
    m = model(list(base.graph.node) + [h.make_node("LayerNormalization", ["y", "scale"], ["z"])],
              list(base.graph.input), ("z",), list(base.graph.initializer) + [scale], opset=opset)
    gruinfer.InferenceSession(m.SerializeToString())
    assert bool(calls) == shown


def test_node_arity_is_checked():
    relu = h.make_node("Relu", ["y", "y"], ["z"])
    refused(cell_like([relu]), "(Relu)", "it has 2 inputs", "the op has 1 inputs")


@pytest.mark.parametrize("where", ["slice", "gather-state"])
def test_float_index_tensors_are_refused_not_int_of_nan(where):
    """Seed 13 #26704, #28737: a Slice bound or a Gather index of float nan reached int()."""
    T, N, I, H = 3, 1, 2, 4
    rng = np.random.default_rng(0)
    inits = [nh.from_array(rng.standard_normal((1, 3 * H, I)).astype(np.float32), "W"),
             nh.from_array(rng.standard_normal((1, 3 * H, H)).astype(np.float32), "R")]
    nodes = [h.make_node("GRU", ["x", "W", "R"], ["Y", "Yh"], hidden_size=H)]
    nan = nh.from_array(np.array([np.nan], np.float32), "nan")
    if where == "slice":
        nodes.append(h.make_node("Slice", ["Y", "nan", "nan"], ["y"]))
    else:
        nodes.append(h.make_node("Gather", ["Yh", "nan"], ["y"]))
    m = model(nodes, [h.make_tensor_value_info("x", TP.FLOAT, ["T", N, I])], inits=inits + [nan])
    with pytest.raises(gruinfer.GruinferError) as e:
        sess = gruinfer.InferenceSession(m.SerializeToString())
        sess.run(None, {"x": np.zeros((T, N, I), np.float32)})
    assert "float32 values: ONNX takes integers there" in str(e.value) or \
        isinstance(e.value, gruinfer.InvalidModel), str(e.value)


def test_an_empty_scan_of_a_shape_no_array_has_is_an_error_not_a_valueerror():
    """Seed 21 #73936: a Loop that runs no iteration gives its scan outputs the body's declared
    shape with 0 frames; dims whose product overflows made numpy raise ValueError."""
    body = h.make_graph([h.make_node("Identity", ["c"], ["c2"]), h.make_node("Identity", ["x"], ["s"])],
                        "b", [h.make_tensor_value_info("i", TP.INT64, []),
                              h.make_tensor_value_info("c", TP.BOOL, [])],
                        [h.make_tensor_value_info("c2", TP.BOOL, []),
                         h.make_tensor_value_info("s", TP.FLOAT, [2**40, 2**40])])
    m = model([h.make_node("Loop", ["n", ""], ["y"], body=body)],
              [h.make_tensor_value_info("x", TP.FLOAT, [1]), h.make_tensor_value_info("n", TP.INT64, [])])
    sess = gruinfer.InferenceSession(m.SerializeToString())
    with pytest.raises(gruinfer.InvalidArgument, match="declares shape"):
        sess.run(None, {"x": np.zeros(1, np.float32), "n": np.array(0, np.int64)})


@pytest.mark.parametrize("folded", [True, False])
def test_an_output_the_op_does_not_give_is_unsupported_not_a_keyerror(folded):
    """Seed 34 #28437: BatchNormalization's training-mode running mean, read by a later node,
    was never computed (folded at load or run): KeyError."""
    c = nh.from_array(np.ones(2, np.float32), "c")
    x = "c" if folded else "x"
    bn = h.make_node("BatchNormalization", [x, "c", "c", "c", "c"], ["y0", "mean"])
    m = model([bn, h.make_node("Add", ["y0", "mean"], ["y"])],
              [h.make_tensor_value_info("x", TP.FLOAT, [1, 2])], inits=[c], opset=13)
    with pytest.raises(gruinfer.UnsupportedOp, match="does not compute its output 1 .'mean'."):
        sess = gruinfer.InferenceSession(m.SerializeToString())
        sess.run(None, {"x": np.ones((1, 2), np.float32)})


@pytest.mark.parametrize("seed, index", [(13, 52077), (13, 26704), (13, 28737), (13, 81807),
                                         (13, 41174), (21, 73936), (34, 28437), (34, 46623),
                                         (34, 58612), (34, 95534)])
def test_the_generators_findings_end_in_gruinfer_errors(seed, index):
    """Each model the hostile generator found a crash or an internal error with, run as the
    harness runs it (in this process: none of them crashes any more)."""
    import random

    from hostile import exercise, model as hostile_model

    data, ext = hostile_model(seed, index)
    outcome = exercise(data, ext, random.Random(f"feeds:{seed}:{index}"))
    assert outcome.split(":")[-1] in ("InvalidModel", "UnsupportedOp", "InvalidArgument",
                                      "NotStreamable"), outcome


def test_cycles_are_refused_in_subgraphs_too():
    x = h.make_tensor_value_info("x", TP.FLOAT, [2])
    assert "without cycles" in refused(model([h.make_node("Relu", ["y"], ["y0"]),
                                              h.make_node("Relu", ["y0"], ["y"])], [x]))
    body = h.make_graph([h.make_node("Not", ["c3"], ["c2"]), h.make_node("Not", ["c2"], ["c3"]),
                         h.make_node("Identity", ["v"], ["v2"])], "b",
                        [h.make_tensor_value_info("i", TP.INT64, []), h.make_tensor_value_info("c", TP.BOOL, []),
                         h.make_tensor_value_info("v", TP.FLOAT, None)],
                        [h.make_tensor_value_info("c2", TP.BOOL, []), h.make_tensor_value_info("v2", TP.FLOAT, None)])
    inits = [nh.from_array(np.array(2, np.int64), "n"), nh.from_array(np.array(True), "t")]
    refused(model([h.make_node("Loop", ["n", "t", "x"], ["y"], body=body)], [x], inits=inits),
            "subgraph", "'c3'")


def test_opsets_onnx_does_not_know_are_refused():
    x = h.make_tensor_value_info("x", TP.FLOAT, [2])
    refused(model([h.make_node("Relu", ["x"], ["y"])], [x], opset=onnx.defs.onnx_opset_version() + 1),
            "opset")


# ---------------------------------------------------------------- load budgets

def big_fold(kind):
    """A model whose constants fold, at load, into something huge."""
    x = h.make_tensor_value_info("x", TP.FLOAT, [1])
    if kind == "matmul":  # [2**15, 1] x [1, 2**15]: 4 GiB
        inits = [nh.from_array(np.ones((1 << 15, 1), np.float32), "a"),
                 nh.from_array(np.ones((1, 1 << 15), np.float32), "b")]
        nodes = [h.make_node("MatMul", ["a", "b"], ["c"])]
    elif kind == "broadcast":  # 2**40 elements
        inits = [nh.from_array(np.ones(s, np.float32), n) for n, s in
                 (("a", [1 << 10, 1, 1, 1]), ("b", [1, 1 << 10, 1, 1]), ("d", [1, 1, 1 << 10, 1 << 10]))]
        nodes = [h.make_node("Mul", ["a", "b"], ["ab"]), h.make_node("Mul", ["ab", "d"], ["c"])]
    else:  # Range of 2**28, then Cast to double
        inits = [nh.from_array(np.array(v, np.int64), n) for n, v in (("s", 0), ("l", 1 << 28), ("d", 1))]
        nodes = [h.make_node("Range", ["s", "l", "d"], ["r"]),
                 h.make_node("Cast", ["r"], ["c"], to=TP.DOUBLE)]
    nodes += [h.make_node("Shape", ["c"], ["sh"]), h.make_node("Cast", ["sh"], ["shf"], to=TP.FLOAT),
              h.make_node("ReduceSum", ["shf"], ["sm"], keepdims=0), h.make_node("Add", ["x", "sm"], ["y"])]
    return model(nodes, [x], inits=inits)


@pytest.mark.parametrize("kind", ["matmul", "broadcast", "range"])
def test_huge_folds_are_refused_by_the_tensor_budget(kind):
    msg = refused(big_fold(kind), "at load", "tensor_bytes")
    assert ("MatMul" if kind == "matmul" else "Mul" if kind == "broadcast" else "Range") in msg


def test_budgets_are_options():
    m = big_fold("range")
    small = gruinfer.LoadBudget(tensor_bytes=1 << 10)
    refused(m, "Range", "tensor_bytes=1024 bytes", load_budget=small)
    total = gruinfer.LoadBudget(folded_bytes=1 << 20)
    x = h.make_tensor_value_info("x", TP.FLOAT, [1])
    inits = [nh.from_array(np.ones(1 << 17, np.float32), "a")]
    nodes = [h.make_node("Relu", ["a"], ["r1"]), h.make_node("Relu", ["r1"], ["r2"]),
             h.make_node("Relu", ["r2"], ["r3"]), h.make_node("ReduceSum", ["r3"], ["s"], keepdims=0),
             h.make_node("Add", ["x", "s"], ["y"])]
    ok = model(nodes, [x], inits=inits)
    gruinfer.InferenceSession(ok)
    refused(ok, "folded_bytes=1.0 MiB", load_budget=total)


def test_the_prover_time_budget():
    path = os.path.join(FIXTURES, "keras_gru_ra1_seq1.onnx")
    assert gruinfer.InferenceSession(path).plan_info()["loops"]
    refused(onnx.load(path), "prover_seconds", load_budget=gruinfer.LoadBudget(prover_seconds=0))


@pytest.mark.parametrize("bad", [{"tensor_bytes": -1}, {"folded_bytes": 1.5}, {"prover_seconds": "1"},
                                 {"loop_iterations": True}, {"prover_seconds": float("nan")}])
def test_bad_budgets_are_invalid_arguments(bad):
    with pytest.raises(gruinfer.InvalidArgument, match=next(iter(bad))):
        gruinfer.LoadBudget(**bad)


def test_load_budget_must_be_a_load_budget():
    with pytest.raises(gruinfer.InvalidArgument, match="load_budget"):
        gruinfer.InferenceSession(os.path.join(FIXTURES, "gru1_ts.onnx"), load_budget={"tensor_bytes": 1})


# ---------------------------------------------------------------- one thread per stream

def stream_of(name, batch=2, python_path=False):
    m = fixture(name)
    sess = gruinfer.InferenceSession(on_python_path(m) if python_path else m)
    s = sess.stream(batch)
    assert s.lowered is not python_path
    return sess, s


@pytest.mark.parametrize("python_path", [False, True])
def test_a_stream_in_use_refuses_other_calls_and_keeps_its_state(python_path):
    """Another call while one holds the stream (as a second thread's would) raises InvalidArgument
    and changes nothing, on both stream paths."""
    sess, s = stream_of("gru2_softmax_ts", python_path=python_path)
    frame = np.ones(s.frame_in_shape, np.float32)
    s.step(frame)
    before = s.get_state()
    s._claim()
    try:
        for call in (lambda: s.step(frame), lambda: s.get_state(), lambda: s.set_state(before),
                     lambda: s.reset(), lambda: s.run(None, {s.input_name: frame[None]})):
            with pytest.raises(gruinfer.InvalidArgument, match="in use by another thread"):
                call()
    finally:
        s._release()
    after = s.get_state()
    assert before.keys() == after.keys()
    for k in before:
        np.testing.assert_array_equal(before[k], after[k])
    s.step(frame)  # usable again


def test_two_threads_on_one_stream_raise_or_succeed_never_corrupt():
    """Calls racing on one stream either run or are refused; the stream ends as a replay of
    the calls that ran, in the order they ran, would leave it (each call is whole or nothing)."""
    sess, s = stream_of("gru2_softmax_ts", 1)
    frame = np.ones(s.frame_in_shape, np.float32)
    done, refusals = [], []

    def work():
        for _ in range(300):
            try:
                s.step(frame)
                done.append(1)
            except gruinfer.InvalidArgument as e:
                assert "in use" in str(e)
                refusals.append(1)

    pool = [threading.Thread(target=work) for _ in range(2)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    twin = sess.stream(1)
    for _ in done:
        twin.step(frame)
    for k, v in twin.get_state().items():
        np.testing.assert_array_equal(s.get_state()[k], v)


def test_duplicate_slots_reset_once():
    sess, s = stream_of("gru2_softmax_ts", 3)
    twin = sess.stream(3)
    frame = np.random.default_rng(0).standard_normal(s.frame_in_shape).astype(np.float32)
    for st in (s, twin):
        st.step(frame)
    s.reset([1, 1, 1])
    twin.reset([1])
    for k, v in twin.get_state().items():
        np.testing.assert_array_equal(s.get_state()[k], v)


# ---------------------------------------------------------------- memory stays flat

def rss():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE")


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="reads RSS from /proc")
def test_steps_do_not_leak():
    sess, s = stream_of("gru2_softmax_ts", 2)
    frame = np.ones(s.frame_in_shape, np.float32)
    out = np.empty(s.frame_out_shape, np.float32)
    shape = s.frame_in_shape  # a strided frame: the slow path (a conversion) too
    ids = np.zeros(shape[:-1] + (2 * shape[-1],), np.float32)[..., ::2]
    for _ in range(2000):
        s.step(frame, out=out)
        s.step(ids)
    gc.collect()
    before = rss()
    for _ in range(50_000):
        s.step(frame, out=out)
        s.step(ids)
    gc.collect()
    assert rss() - before < 1 << 20


@pytest.mark.skipif(not os.path.exists("/proc/self/statm"), reason="reads RSS from /proc")
def test_sessions_do_not_leak():
    data = fixture("gru2_softmax_ts").SerializeToString()

    def once():
        sess = gruinfer.InferenceSession(data)
        st = sess.stream(2)
        st.run(None, {st.input_name: np.ones((2,) + st.frame_in_shape, np.float32)})
        return sess

    for _ in range(100):
        once()
    gc.collect()
    before = rss()
    for _ in range(1000):
        once()
    gc.collect()
    assert rss() - before < 4 << 20
