"""Tests for gruinfer.rewrite.loops: Keras/tf2onnx GRU Loops become GRU nodes with identical outputs; other Loops stay."""
# Fixtures come from tests/fixtures/make_keras_fixtures.py (run in a TensorFlow venv); these tests
# need only onnx, onnxruntime and numpy. The proof that a rewrite is right is onnxruntime on the
# lifted model against onnxruntime on the original and against the Keras outputs in the .npz.
#
# gruinfer.InferenceSession is compared on the lifted fixtures here (and on every Keras fixture,
# keras_gru_masking included, in test_keras_models.py); keras_gru_masking is not lifted at all.
import copy
import dataclasses
import glob
import os

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

from gruinfer.rewrite.loops import lift_loops

ort = pytest.importorskip("onnxruntime")

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")
KERAS = sorted(os.path.basename(p)[:-5] for p in glob.glob(os.path.join(FIXTURES, "keras_*.onnx")))
# Fixtures whose export holds GRU Loops (all of Keras 3; legacy Keras 2 only with reset_after=False).
# keras_legacy_gru_ra1 (and _ra1_last) are already GRU nodes; keras_gru_masking holds a masked loop
# (Keras peels the first step out of the loop and carries the mask-selected state), which is not lifted.
NOT_LIFTED = {"keras_legacy_gru_ra1", "keras_legacy_gru_ra1_last", "keras_gru_masking"}
LOOP_FIXTURES = [n for n in KERAS if n not in NOT_LIFTED]
# Inputs declared with a fixed length (6): the loop bounds are that number, not a shape.
FIXED_LEN = {"keras_gru_fixed_len", "keras_legacy_gru_fixed_len"}
FIXED_BATCH = {"keras_gru_batch1"}  # exported for a batch of 1
TOL = 1e-5


def load(name):
    return onnx.load(os.path.join(FIXTURES, name + ".onnx"))


def cases(name):
    d = np.load(os.path.join(FIXTURES, name + ".npz"))
    k = 0
    while f"x_{k}" in d:
        yield d[f"x_{k}"], d[f"y_{k}"]
        k += 1


def run(model, feeds):
    sess = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return sess.run(None, feeds)


def ops(model):
    return [n.op_type for n in model.graph.node]


def test_fixtures_present():
    assert len(KERAS) >= 12, KERAS
    assert os.path.isfile(os.path.join(FIXTURES, "keras_versions.json"))
    assert sum(os.path.getsize(p) for p in glob.glob(os.path.join(FIXTURES, "keras_*"))) < 1_000_000


@pytest.mark.parametrize("name", LOOP_FIXTURES)
def test_keras_loops_lifted(name):
    model = load(name)
    n_loops = ops(model).count("Loop")
    assert n_loops >= 1
    lifted, notes = lift_loops(model)
    notes = [str(n) for n in notes]  # LiftNote records, as text
    assert "Loop" not in ops(lifted), notes
    assert ops(lifted).count("GRU") == n_loops
    assert len(notes) == n_loops and all("lifted into GRU" in n for n in notes), notes
    onnx.checker.check_model(lifted)
    # The interface is unchanged.
    assert [(v.name, v.type) for v in lifted.graph.input] == [(v.name, v.type) for v in model.graph.input]
    assert [(v.name, v.type) for v in lifted.graph.output] == [(v.name, v.type) for v in model.graph.output]
    assert ops(model).count("Loop") == n_loops  # the input model is not modified


@pytest.mark.parametrize("name", KERAS)
def test_keras_outputs_match(name):
    model = load(name)
    lifted, _ = lift_loops(model)
    in_name = model.graph.input[0].name
    shapes = set()
    for x, y in cases(name):
        shapes.add(x.shape)
        (want,) = run(model, {in_name: x})
        (got,) = run(lifted, {in_name: x})
        assert got.shape == want.shape == y.shape
        np.testing.assert_allclose(got, want, rtol=0, atol=TOL)
        np.testing.assert_allclose(got, y, rtol=0, atol=TOL)
        np.testing.assert_allclose(want, y, rtol=0, atol=TOL)
    assert len({s[0] for s in shapes}) == 1 if name in FIXED_BATCH else len({s[0] for s in shapes}) > 1
    assert len({s[1] for s in shapes}) == 1 if name in FIXED_LEN else len({s[1] for s in shapes}) > 1


GRUINFER_RUNS = ["keras_gru_ra1_seq1", "keras_gru_ra1_seq0", "keras_gru_ra0_seq1", "keras_gru_ra0_seq0",
                  "keras_gru_hardsig", "keras_gru_nobias_relu", "keras_stacked_dense", "keras_legacy_gru_ra0",
                  "keras_legacy_gru_ra1"]


@pytest.mark.parametrize("name", GRUINFER_RUNS)
def test_gruinfer_runs_lifted_model(name):
    import gruinfer

    lifted, _ = lift_loops(load(name))
    sess = gruinfer.InferenceSession(lifted.SerializeToString())
    in_name = lifted.graph.input[0].name
    for x, y in cases(name):
        (got,) = sess.run(None, {in_name: x})
        (want,) = run(lifted, {in_name: x})
        np.testing.assert_allclose(got, want, rtol=0, atol=TOL)
        np.testing.assert_allclose(got, y, rtol=0, atol=TOL)


def test_lifted_ops_around_gru():
    """What the graph loader must run after lifting (documents the plumbing left around GRU nodes)."""
    seq = ops(lift_loops(load("keras_gru_ra1_seq1"))[0])
    assert seq == ["Transpose", "GRU", "Squeeze", "Transpose"]
    last = ops(lift_loops(load("keras_gru_ra0_seq0"))[0])
    assert last == ["Transpose", "GRU", "Squeeze"]  # return_sequences=False reads Y_h
    stacked = ops(lift_loops(load("keras_stacked_dense"))[0])
    assert stacked == ["Transpose", "GRU", "Squeeze", "Transpose", "Transpose", "GRU", "Squeeze",
                       "MatMul", "Add", "Sigmoid"]


def test_hard_sigmoid_becomes_hardsigmoid_activation():
    lifted, _ = lift_loops(load("keras_gru_hardsig"))
    (gru,) = [n for n in lifted.graph.node if n.op_type == "GRU"]
    at = {a.name: helper.get_attribute_value(a) for a in gru.attribute}
    assert at["activations"] == [b"HardSigmoid", b"Tanh"]
    np.testing.assert_allclose(at["activation_alpha"], [1 / 6], rtol=1e-6)
    assert at["activation_beta"] == [0.0]


@pytest.mark.parametrize("name,lbr", [("keras_gru_ra1_seq1", 1), ("keras_gru_ra0_seq1", 0),
                                      ("keras_legacy_gru_ra0", 0)])
def test_reset_after_maps_to_linear_before_reset(name, lbr):
    lifted, _ = lift_loops(load(name))
    (gru,) = [n for n in lifted.graph.node if n.op_type == "GRU"]
    at = {a.name: helper.get_attribute_value(a) for a in gru.attribute}
    assert at["linear_before_reset"] == lbr and at["hidden_size"] == 6


# ----------------------------------------------------------------------------- edited exports

def _loop_and_body(model):
    (loop,) = [n for n in model.graph.node if n.op_type == "Loop"]
    body = [a.g for a in loop.attribute if a.name == "body"][0]
    return loop, body


def _body_node(body, op, suffix=None):
    found = [n for n in body.node if n.op_type == op and (suffix is None or n.output[0].endswith(suffix))]
    assert found, (op, suffix)
    return found[0]


@pytest.mark.parametrize("name", ["keras_gru_ra1_seq1", "keras_gru_ra0_seq0"])
def test_nonzero_initial_state(name):
    """A Loop whose state starts from a graph input: lifted with Unsqueeze -> initial_h."""
    model = load(name)
    loop, body = _loop_and_body(model)
    h_idx = 3  # carried values: time, h, ...
    assert body.input[h_idx].type.tensor_type.elem_type == TensorProto.FLOAT
    loop.input[h_idx] = "h0"
    model.graph.input.append(helper.make_tensor_value_info("h0", TensorProto.FLOAT, ["N", 6]))
    lifted, notes = lift_loops(model)
    notes = [str(n) for n in notes]  # LiftNote records, as text
    assert "Loop" not in ops(lifted) and "Unsqueeze" in ops(lifted), notes
    rng = np.random.default_rng(1)
    for n, t in ((2, 5), (3, 1)):
        feeds = {"x": rng.standard_normal((n, t, 4)).astype(np.float32),
                 "h0": rng.standard_normal((n, 6)).astype(np.float32)}
        np.testing.assert_allclose(run(lifted, feeds)[0], run(model, feeds)[0], rtol=0, atol=TOL)


def _assert_unchanged(model, why=None):
    lifted, notes = lift_loops(model)
    notes = [str(n) for n in notes]  # LiftNote records, as text
    assert lifted.SerializeToString() == model.SerializeToString()
    assert len(notes) == 1 and "left unchanged" in notes[0], notes
    if why:
        assert why in notes[0], notes[0]
    return notes[0]


def _mutant(edit):
    model = load("keras_gru_ra1_seq1")
    loop, body = _loop_and_body(model)
    edit(model, loop, body)
    return model


def _extra_relu(model, loop, body):
    tanh = _body_node(body, "Tanh")
    raw = tanh.output[0] + "_raw"
    out = tanh.output[0]
    tanh.output[0] = raw
    body.node.insert(list(body.node).index(tanh) + 1, helper.make_node("Relu", [raw], [out]))


def _reset_gate_tanh(model, loop, body):
    _body_node(body, "Sigmoid", "Sigmoid_1:0").op_type = "Tanh"


def _update_reversed(model, loop, body):
    # h' = (1-z)*h + z*candidate: the ONNX form needs z*h + (1-z)*candidate
    for n in body.node:
        if n.op_type == "Mul" and any(i.endswith("sub:0") for i in n.input):
            n.input[:] = [i.replace("sub:0", "Sigmoid:0") if i.endswith("sub:0") else i for i in n.input]
        elif n.op_type == "Mul" and any(i.endswith("Sigmoid:0") for i in n.input) and \
                any("placeholder_2" in i for i in n.input):
            n.input[:] = [i.replace("Sigmoid:0", "sub:0") if i.endswith("Sigmoid:0") else i for i in n.input]


def _gather_next_step(model, loop, body):
    gather = _body_node(body, "Gather")
    one = numpy_helper.from_array(np.array(1, np.int32), "one_more")
    body.initializer.append(one)
    body.node.insert(0, helper.make_node("Add", [gather.input[1], "one_more"], ["next_index"]))
    gather.input[1] = "next_index"


def _scan_is_candidate(model, loop, body):
    body.output[-1].name = _body_node(body, "Tanh").output[0]


def _trip_count_short(model, loop, body):
    one = numpy_helper.from_array(np.array(1, np.int64), "one_less")
    model.graph.initializer.append(one)
    idx = [i for i, n in enumerate(model.graph.node) if n is loop][0]
    model.graph.node.insert(idx, helper.make_node("Sub", [loop.input[0], "one_less"], ["short_trip"]))
    loop.input[0] = "short_trip"


def _cond_stops_early(model, loop, body):
    counter_next = _body_node(body, "Add", "Identity_2:0").output[0]
    body.initializer.append(numpy_helper.from_array(np.array(1, np.int32), "plus_one"))
    body.node.insert(list(body.node).index(_body_node(body, "Add", "Identity_2:0")) + 1,
                     helper.make_node("Add", [counter_next, "plus_one"], ["counter_plus_2"]))
    for n in body.node:
        if n.op_type == "Cast" and n.input[0] == counter_next:
            n.input[0] = "counter_plus_2"
    # and no trip count: only the condition bounds the loop
    loop.input[0] = ""


def _weights_overridable(model, loop, body):
    for t in model.graph.initializer:
        if t.data_type == TensorProto.FLOAT and len(t.dims) == 2:
            model.graph.input.append(helper.make_tensor_value_info(t.name, TensorProto.FLOAT, list(t.dims)))


def _update_gate_clipped(model, loop, body):
    # z = Clip(sigmoid(.), -0.5, 0.5): not an activation ONNX's GRU offers
    sig = _body_node(body, "Sigmoid", "Sigmoid:0")
    raw = sig.output[0] + "_raw"
    out = sig.output[0]
    sig.output[0] = raw
    lo = numpy_helper.from_array(np.array(-0.5, np.float32), "clip_lo")
    hi = numpy_helper.from_array(np.array(0.5, np.float32), "clip_hi")
    body.initializer.extend([lo, hi])
    body.node.insert(list(body.node).index(sig) + 1, helper.make_node("Clip", [raw, "clip_lo", "clip_hi"], [out]))


MUTANTS = {
    "extra Relu after the candidate's tanh": (_extra_relu, "candidate"),
    "reset gate uses tanh, update gate sigmoid": (_reset_gate_tanh, "one f for both"),
    "update written (1-z)*h + z*candidate": (_update_reversed, "z*h + (1-z)*candidate"),
    "input read at the next step": (_gather_next_step, "Gather"),
    "scan output is the candidate": (_scan_is_candidate, "scan output"),
    "trip count one short": (_trip_count_short, "trip count"),
    "condition ends the loop early": (_cond_stops_early, "early"),
    "weights overridable graph inputs": (_weights_overridable, None),
    "update gate clipped": (_update_gate_clipped, "update gate"),
}


@pytest.mark.parametrize("what", sorted(MUTANTS))
def test_not_a_gru_left_unchanged(what):
    edit, why = MUTANTS[what]
    model = _mutant(edit)
    _assert_unchanged(model, why)
    # The edited export still runs in onnxruntime (it is a valid model, just not a GRU).
    if edit not in (_gather_next_step,):  # that one reads past the end of the sequence at the last step
        x = np.random.default_rng(0).standard_normal((2, 5, 4)).astype(np.float32)
        run(model, {"x": x})


def _set_const(graph, name, value):
    t = next(t for t in graph.initializer if t.name == name)
    t.CopyFrom(numpy_helper.from_array(np.asarray(value, numpy_helper.to_array(t).dtype), name))


@pytest.mark.parametrize("where", ["trip count", "condition"])
def test_fixed_length_loop_that_stops_short_left_unchanged(where):
    """With a fixed input length the bounds are plain numbers: one less than the length is not a GRU
    over the whole input."""
    model = load("keras_gru_fixed_len")
    loop, body = _loop_and_body(model)
    assert numpy_helper.to_array(next(t for t in model.graph.initializer if t.name == loop.input[0])) == 6
    if where == "trip count":
        _set_const(model.graph, loop.input[0], 5)
        _assert_unchanged(model, "trip count")
    else:
        loop.input[0] = ""  # only the condition bounds the loop
        for n in body.node:
            if n.op_type == "Less":
                _set_const(body, n.input[1], 5.0)
        _assert_unchanged(model, "early")
    x = np.random.default_rng(0).standard_normal((2, 6, 4)).astype(np.float32)
    assert run(model, {"x": x})[0].shape[1] == 5  # the edited loop really stops one step early


def test_cumulative_sum_loop_left_unchanged():
    """A hand-made Loop over time that sums the input rows: no GRU, stays a Loop."""
    body = helper.make_graph(
        [helper.make_node("Gather", ["X", "i"], ["row"], axis=0),
         helper.make_node("Add", ["s_in", "row"], ["s_out"]),
         helper.make_node("Identity", ["cond_in"], ["cond_out"]),
         helper.make_node("Identity", ["s_out"], ["scan"])],
        "cumsum_body",
        [helper.make_tensor_value_info("i", TensorProto.INT64, []),
         helper.make_tensor_value_info("cond_in", TensorProto.BOOL, []),
         helper.make_tensor_value_info("s_in", TensorProto.FLOAT, ["N", 3])],
        [helper.make_tensor_value_info("cond_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("s_out", TensorProto.FLOAT, ["N", 3]),
         helper.make_tensor_value_info("scan", TensorProto.FLOAT, ["N", 3])])
    graph = helper.make_graph(
        [helper.make_node("Shape", ["X"], ["shape"]),
         helper.make_node("Gather", ["shape", "zero"], ["T"], axis=0),
         helper.make_node("Gather", ["shape", "one"], ["N"], axis=0),
         helper.make_node("Unsqueeze", ["N", "axes0"], ["N1"]),
         helper.make_node("Concat", ["N1", "three"], ["sshape"], axis=0),
         helper.make_node("ConstantOfShape", ["sshape"], ["s0"],
                          value=numpy_helper.from_array(np.array([0], np.float32))),
         helper.make_node("Loop", ["T", "", "s0"], ["s_final", "scan_all"], body=body)],
        "cumsum",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["T", "N", 3])],
        [helper.make_tensor_value_info("scan_all", TensorProto.FLOAT, ["T", "N", 3])],
        [numpy_helper.from_array(np.array(0, np.int64), "zero"),
         numpy_helper.from_array(np.array(1, np.int64), "one"),
         numpy_helper.from_array(np.array([0], np.int64), "axes0"),
         numpy_helper.from_array(np.array([3], np.int64), "three")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    note = _assert_unchanged(model)
    assert "z*h" in note
    x = np.random.default_rng(0).standard_normal((4, 2, 3)).astype(np.float32)
    np.testing.assert_allclose(run(model, {"X": x})[0], np.cumsum(x, axis=0), rtol=1e-6, atol=1e-6)


def test_masked_keras_gru_left_unchanged():
    note = _assert_unchanged(load("keras_gru_masking"))
    assert "recurrent state" in note


def test_self_check_catches_a_wrong_extraction(monkeypatch):
    """The numeric self-check against the original body refuses a cell whose weights were read wrong."""
    import gruinfer.rewrite.loops as lift

    real = lift.match_cell

    def wrong(*args):
        cell = real(*args)
        B = cell.B.copy()
        B[0, 0] += 0.01
        return dataclasses.replace(cell, B=B)

    monkeypatch.setattr(lift, "match_cell", wrong)
    _assert_unchanged(load("keras_gru_ra1_seq1"), "self-check")


def test_no_loop_is_a_no_op():
    model = load("keras_legacy_gru_ra1")
    lifted, notes = lift_loops(model)
    notes = [str(n) for n in notes]  # LiftNote records, as text
    assert notes == [] and lifted.SerializeToString() == model.SerializeToString()


def test_rejects_non_model():
    with pytest.raises(TypeError):
        lift_loops(copy.deepcopy(load("keras_gru_ra1_seq1").graph))
