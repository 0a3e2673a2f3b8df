"""sess.run of a fully lowered model goes through the C plan and equals the graph interpreter's result."""
import glob
import os

import numpy as np
import pytest

import gruinfer

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")
NAMES = sorted(os.path.basename(p)[:-5] for p in glob.glob(os.path.join(FIXTURES, "*.onnx")))


def first_case(name):
    d = np.load(os.path.join(FIXTURES, name + ".npz"))
    return {k: d[k] for k in d.files}


def lowered(name):
    try:
        return gruinfer.InferenceSession(os.path.join(FIXTURES, name + ".onnx")).plan_info()["lowered"]
    except gruinfer.GruinferError:
        return False


LOWERED = [n for n in NAMES if lowered(n)]


def test_some_fixtures_run_on_the_plan():
    assert len(LOWERED) >= 20


@pytest.mark.parametrize("name", LOWERED)
def test_plan_run_equals_interpreter(name, monkeypatch):
    path = os.path.join(FIXTURES, name + ".onnx")
    sess = gruinfer.InferenceSession(path)
    feeds_by_name = first_case(name)
    inputs = sess.get_inputs()
    # fixtures store inputs as in_<name> (PyTorch) or x_0 / h0_0 by position (Keras, JAX, Paddle)
    feeds = {}
    for i, a in enumerate(inputs):
        for key in (a.name, "in_" + a.name, "x_0" if i == 0 else "h0_0"):
            if key in feeds_by_name:
                feeds[a.name] = feeds_by_name[key]
                break
    if len(feeds) != len(inputs):
        pytest.fail(f"{name}: cannot find feeds for {[a.name for a in inputs]} in {sorted(feeds_by_name)}")
    calls = []
    real = gruinfer.InferenceSession._runs_on_plan
    monkeypatch.setattr(gruinfer.InferenceSession, "_runs_on_plan",
                        lambda self, low, f: calls.append(real(self, low, f)) or calls[-1])
    got = sess.run(None, feeds)
    assert calls == [True]
    monkeypatch.setattr(gruinfer.InferenceSession, "_runs_on_plan", lambda self, low, f: False)
    want = sess.run(None, feeds)
    for g, w in zip(got, want):
        assert g.shape == w.shape and g.dtype == w.dtype
        np.testing.assert_allclose(g, w, rtol=0, atol=1e-5)
