"""Loops that are not GRU cells run iteration by iteration (loop_run.py): hand-built Loops against onnxruntime, and their errors."""
import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import gruinfer

F, I64, B = TensorProto.FLOAT, TensorProto.INT64, TensorProto.BOOL


def vi(name, elem, shape=None):
    return helper.make_tensor_value_info(name, elem, shape)


def const(name, value):
    return numpy_helper.from_array(np.asarray(value), name)


def model(nodes, inputs, outputs, inits=(), opset=17):
    g = helper.make_graph(nodes, "g", inputs, outputs, list(inits))
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    return m


def scan_body(with_cond):
    """acc += x[i] * w (w from the outer scope); scan output: acc after the step; condition:
    acc.sum() < limit when with_cond, else passed through."""
    nodes = [
        helper.make_node("Gather", ["x", "i"], ["xi"], axis=0),
        helper.make_node("Mul", ["xi", "w"], ["xw"]),
        helper.make_node("Add", ["acc", "xw"], ["acc_out"]),
        helper.make_node("Identity", ["acc_out"], ["scan"]),
    ]
    if with_cond:
        nodes += [helper.make_node("ReduceSum", ["acc_out"], ["s"], keepdims=0),
                  helper.make_node("Less", ["s", "limit"], ["cond_out"])]
    else:
        nodes.append(helper.make_node("Identity", ["cond"], ["cond_out"]))
    return helper.make_graph(
        nodes, "body", [vi("i", I64, []), vi("cond", B, []), vi("acc", F, [3])],
        [vi("cond_out", B, []), vi("acc_out", F, [3]), vi("scan", F, [3])],
        [const("limit", np.float32(6.0))] if with_cond else [])


def loop_model(trip, with_cond):
    """Loop over the rows of x: trip count M (None: omitted), a condition input when with_cond."""
    inits = [const("w", np.array([1.0, 2.0, 0.5], np.float32)), const("acc0", np.zeros(3, np.float32)),
             const("true", np.array(True))]
    if trip is not None:
        inits.append(const("M", np.array(trip, np.int64)))
    loop = helper.make_node("Loop", ["M" if trip is not None else "", "true" if with_cond else "", "acc0"],
                            ["acc_final", "scans"], name="my_loop", body=scan_body(with_cond))
    return model([loop], [vi("x", F, [None, 3])], [vi("acc_final", F, None), vi("scans", F, None)], inits)


def check(m, feeds):
    got = gruinfer.InferenceSession(m).run(None, feeds)
    want = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"]).run(None, feeds)
    for g, w in zip(got, want):
        assert g.shape == w.shape and g.dtype == w.dtype
        np.testing.assert_allclose(g, w, rtol=1e-6, atol=1e-6)
    return got


X = np.random.default_rng(1).uniform(0, 1, (6, 3)).astype(np.float32)


def test_for_loop_with_scan_output_and_outer_value():
    acc, scans = check(loop_model(trip=6, with_cond=False), {"x": X})
    assert scans.shape == (6, 3)
    np.testing.assert_allclose(acc, (X * [1.0, 2.0, 0.5]).sum(0), rtol=1e-6)


def test_while_loop_stops_on_its_condition():
    acc, scans = check(loop_model(trip=None, with_cond=True), {"x": X * 2})
    assert 0 < len(scans) < 6


def test_trip_count_and_condition_together():
    check(loop_model(trip=2, with_cond=True), {"x": X})


def test_zero_iterations():
    acc, scans = check(loop_model(trip=0, with_cond=False), {"x": X})
    assert scans.shape[0] == 0 and not acc.any()


def test_nested_loop_reads_every_scope():
    """An inner Loop sums 0..i-1 into the outer carried value, reading the outer body's i."""
    inner = helper.make_graph(
        [helper.make_node("Cast", ["j"], ["jf"], to=F), helper.make_node("Add", ["s", "jf"], ["s_out"]),
         helper.make_node("Identity", ["c"], ["c_out"])], "inner",
        [vi("j", I64, []), vi("c", B, []), vi("s", F, [])], [vi("c_out", B, []), vi("s_out", F, [])])
    outer = helper.make_graph(
        [helper.make_node("Loop", ["i", "", "t"], ["t_out"], body=inner),
         helper.make_node("Mul", ["t_out", "scale"], ["scaled"]),
         helper.make_node("Identity", ["c"], ["c_out"])], "outer",
        [vi("i", I64, []), vi("c", B, []), vi("t", F, [])],
        [vi("c_out", B, []), vi("t_out", F, []), vi("scaled", F, [])])
    m = model([helper.make_node("Loop", ["n", "", "zero"], ["total", "per_step"], body=outer)],
              [vi("n", I64, []), vi("scale", F, [])], [vi("total", F, None), vi("per_step", F, None)],
              [const("zero", np.float32(0.0))])
    total, _ = check(m, {"n": np.array(5, np.int64), "scale": np.array(3.0, np.float32)})
    assert total == sum(sum(range(i)) for i in range(5))


def test_loop_is_reported_and_does_not_stream():
    sess = gruinfer.InferenceSession(loop_model(trip=6, with_cond=False))
    info = sess.plan_info()
    assert not info["streamable"] and "my_loop" in info["reason"]


def test_unsupported_op_in_a_body_names_it():
    body = scan_body(False)
    body.node[1].op_type = "Hardmax"
    del body.node[1].input[1]
    m = loop_model(trip=6, with_cond=False)
    m.graph.node[0].attribute[0].g.CopyFrom(body)
    with pytest.raises(gruinfer.UnsupportedOp, match="Hardmax.*my_loop"):
        gruinfer.InferenceSession(m)


def test_undefined_name_in_a_body():
    m = loop_model(trip=6, with_cond=False)
    m.graph.node[0].attribute[0].g.node[1].input[1] = "nowhere"
    with pytest.raises(gruinfer.InvalidModel, match="'nowhere'"):
        gruinfer.InferenceSession(m)


def test_body_that_does_not_match_the_loop():
    m = loop_model(trip=6, with_cond=False)
    del m.graph.node[0].attribute[0].g.output[2]
    with pytest.raises(gruinfer.InvalidModel, match="my_loop"):
        gruinfer.InferenceSession(m)


def test_runaway_loop_stops_with_an_error():
    body = scan_body(False)
    body.node[0].input[1] = "zero_i"  # always row 0, so the condition-less while loop never ends
    body.initializer.append(const("zero_i", np.array(0, np.int64)))
    m = loop_model(trip=None, with_cond=True)
    m.graph.node[0].attribute[0].g.CopyFrom(body)
    budget = gruinfer.LoadBudget(loop_iterations=50)
    with pytest.raises(gruinfer.InvalidArgument, match="my_loop.*50 iterations.*loop_iterations"):
        gruinfer.InferenceSession(m, load_budget=budget).run(None, {"x": X})


def test_a_trip_count_past_the_budget_stops_at_the_budget():
    """A trip count of 2**40 (a hang) stops at loop_iterations, before the body runs that often."""
    body = scan_body(False)
    body.node[0].input[1] = "zero_i"
    body.initializer.append(const("zero_i", np.array(0, np.int64)))
    m = loop_model(trip=2**40, with_cond=False)
    m.graph.node[0].attribute[0].g.CopyFrom(body)
    budget = gruinfer.LoadBudget(loop_iterations=20)
    with pytest.raises(gruinfer.InvalidArgument, match="more than 20 iterations"):
        gruinfer.InferenceSession(m, load_budget=budget).run(None, {"x": X})


def test_body_failure_names_both_nodes():
    with pytest.raises(gruinfer.InvalidArgument, match="my_loop.*Gather"):
        gruinfer.InferenceSession(loop_model(trip=9, with_cond=False)).run(None, {"x": X})
