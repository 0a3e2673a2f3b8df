"""Every slower path a model takes is a record with a reason in plan_info(); a bug in lowering fails loudly instead of quietly selecting the interpreter."""
import os

import numpy as np
import pytest
from onnx import helper

import gruinfer
from gruinfer.lower import frames
from gruinfer.lower.steps import Fallback
from test_lowering import gru_head, x_data

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")


def test_a_c_plan_has_no_fallbacks():
    info = gruinfer.InferenceSession(gru_head([helper.make_node("Tanh", ["y"], ["out"], name="t")])).plan_info()
    assert info["lowered"] and info["fallbacks"] == [] and info["gru_nodes"] == ["gru"]
    assert info["time_input"] == "X" and info["input_axes"] == ("T", "N", 4)


def test_ops_on_the_python_path_are_fallback_records():
    sess = gruinfer.InferenceSession(gru_head([helper.make_node("Exp", ["y"], ["out"], name="exp")]))
    info = sess.plan_info()
    assert not info["lowered"]
    assert info["not_lowered"] == [Fallback("exp", "Exp", "Exp (no C step)")]
    ops = [(f.node, f.op) for f in info["fallbacks"]]
    assert ops == [(None, "run"), ("exp", "Exp")], info["fallbacks"]
    assert all(isinstance(f, Fallback) and f.reason for f in info["fallbacks"])


def test_a_loop_left_to_the_interpreter_is_a_fallback_record():
    sess = gruinfer.InferenceSession(os.path.join(FIXTURES, "keras_gru_masking.onnx"))
    info = sess.plan_info()
    loops = [f for f in info["fallbacks"] if f.op == "Loop"]
    assert loops and all(f.node and "recurrent state" in f.reason for f in loops), info["fallbacks"]
    assert any(f.op == "run" and "cannot stream" in f.reason for f in info["fallbacks"])


def test_a_bug_in_lowering_is_not_turned_into_a_slow_path(monkeypatch):
    """A lowering handler that raises something other than NotStreamable (a bug) propagates
    from run() and plan_info(): it must fail a test, not quietly select the interpreter."""
    def broken(o):
        raise TypeError("a bug in a handler")

    monkeypatch.setitem(frames.HANDLERS, "Tanh", (broken,))
    sess = gruinfer.InferenceSession(gru_head([helper.make_node("Tanh", ["y"], ["out"], name="t")]))
    with pytest.raises(TypeError, match="a bug in a handler"):
        sess.run(None, {"X": x_data()})
    with pytest.raises(TypeError, match="a bug in a handler"):
        sess.plan_info()


def test_a_table_the_c_plan_refuses_is_a_declared_reason():
    """A head whose weights hold NaN: the C plan refuses its table, so the model does not stream,
    plan_info says why, and whole runs take the interpreter (as onnxruntime, they give NaN)."""
    w = np.ones((6, 3), np.float32)
    w[0, 0] = np.nan
    m = gru_head([helper.make_node("MatMul", ["y", "w"], ["out"], name="mm")],
                 [("w", w)])
    sess = gruinfer.InferenceSession(m)
    info = sess.plan_info()
    assert not info["streamable"] and "C plan refuses" in info["reason"], info
    assert "NaN or Inf" in info["reason"]
    out = sess.run(None, {"X": x_data()})[0]
    assert np.isnan(out[..., 0]).all() and np.isfinite(out[..., 1:]).all()
