"""Keras exports loaded by path as they are (Loops lifted at load): outputs, streaming, and the declared slow path of a Loop that is not lifted."""
import glob
import os

import numpy as np
import onnxruntime as ort
import pytest

import gruinfer

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")
KERAS = sorted(os.path.basename(p)[:-5] for p in glob.glob(os.path.join(FIXTURES, "keras_*.onnx")))
NOT_LIFTED = {"keras_gru_masking"}
# Causal models whose first output is the per-frame GRU sequence.
SEQUENCE_OUT = ["keras_gru_ra1_seq1", "keras_gru_ra0_seq1", "keras_gru_hardsig",
                "keras_gru_nobias_relu", "keras_legacy_gru_ra0", "keras_legacy_gru_ra1",
                "keras_gru_fixed_len", "keras_legacy_gru_fixed_len", "keras_gru_elu",
                "keras_gru_leaky_softsign", "keras_legacy_gru_hardsig", "keras_gru_batch1",
                "keras_legacy_gru_recdrop"]


def path(name):
    return os.path.join(FIXTURES, name + ".onnx")


def cases(name):
    d = np.load(os.path.join(FIXTURES, name + ".npz"))
    return [(d[f"x_{i}"], d[f"y_{i}"]) for i in range(3) if f"x_{i}" in d]


def test_fixtures_present():
    assert len(KERAS) >= 10


@pytest.mark.parametrize("name", [n for n in KERAS if n not in NOT_LIFTED])
def test_runs_as_exported(name, kernel):
    sess = gruinfer.InferenceSession(path(name), kernel=kernel)
    assert not any("left unchanged" in n for n in sess.plan_info()["loops"])
    ref = ort.InferenceSession(path(name))
    x_name = sess.get_inputs()[0].name
    for x, y in cases(name):
        (got,) = sess.run(None, {x_name: x})
        (want,) = ref.run(None, {x_name: x})
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)
        np.testing.assert_allclose(got, y, rtol=0, atol=1e-5)


@pytest.mark.parametrize("name", SEQUENCE_OUT)
def test_streams_in_c(name):
    sess = gruinfer.InferenceSession(path(name))
    info = sess.plan_info()
    assert info["streamable"] and info["lowered"] and "gru" in info["steps"]
    x_name = sess.get_inputs()[0].name
    for x, _ in cases(name):
        (whole,) = sess.run(None, {x_name: x})
        stream = sess.stream(batch_size=x.shape[0])
        chunks = [stream.run(None, {x_name: x[:, t:t + 2]})[0] for t in range(0, x.shape[1], 2)]
        np.testing.assert_allclose(np.concatenate(chunks, axis=1), whole, rtol=0, atol=1e-5)
        stream.reset()
        frames = [stream.step(x[:, t]).copy() for t in range(x.shape[1])]
        np.testing.assert_allclose(np.stack(frames, axis=1).reshape(whole.shape), whole,
                                   rtol=0, atol=1e-5)


# return_sequences=False (+ Dense): the first output comes from the last GRU's final state.
FINAL_STATE_OUT = {"keras_gru_ra1_seq0": ["gru"], "keras_gru_ra0_seq0": ["gru"],
                   "keras_stacked_dense": ["gru", "gru", "dense", "act"],
                   "keras_legacy_gru_ra1_last": ["gru"]}  # a GRU node and Slice(Y, -1:)


@pytest.mark.parametrize("name", sorted(FINAL_STATE_OUT))
def test_final_state_outputs_stream_in_c(name):
    """Each chunk's output, and each step's, equals sess.run over every frame streamed so far."""
    sess = gruinfer.InferenceSession(path(name))
    info = sess.plan_info()
    assert info["lowered"] and info["steps"] == FINAL_STATE_OUT[name]
    x_name = sess.get_inputs()[0].name
    for x, _ in cases(name):
        stream = sess.stream(batch_size=x.shape[0])
        assert stream.lowered
        T = x.shape[1]
        cuts = sorted({0, min(1, T), min(4, T), T})
        for t0, t1 in zip(cuts, cuts[1:]):
            (got,) = stream.run(None, {x_name: x[:, t0:t1]})
            (want,) = sess.run(None, {x_name: x[:, :t1]})
            np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)
        stream.reset()
        for t in range(x.shape[1]):
            (want,) = sess.run(None, {x_name: x[:, :t + 1]})
            np.testing.assert_allclose(stream.step(x[:, t]), want, rtol=0, atol=1e-5)


def test_fixed_batch_of_one_streams_one_slot():
    """tf2onnx writes the batch-first Transpose of a fixed batch of 1 as a Reshape to [-1, 1, I]:
    followed in C, for that batch size only."""
    sess = gruinfer.InferenceSession(path("keras_gru_batch1"))
    assert sess.plan_info()["lowered"]
    sess.stream(batch_size=1)
    with pytest.raises(gruinfer.InvalidArgument, match="batch_size must be 1"):
        sess.stream(batch_size=2)


@pytest.mark.parametrize("name", ["keras_gru_backwards", "keras_bidir"])
def test_backwards_is_not_streamable(name):
    sess = gruinfer.InferenceSession(path(name))
    with pytest.raises(gruinfer.NotStreamable):
        sess.stream()


def test_masking_loop_runs_on_the_declared_slow_path(kernel):
    """A Masking layer makes the Loop carry two states: it is not lifted but runs iteration by
    iteration, matching onnxruntime and Keras, says so in plan_info and refuses to stream."""
    name = "keras_gru_masking"
    sess = gruinfer.InferenceSession(path(name), kernel=kernel)
    info = sess.plan_info()
    assert any("left unchanged" in n and "iteration by iteration" in n for n in info["loops"])
    assert not info["streamable"] and "(Loop)" in info["reason"]
    ref = ort.InferenceSession(path(name))
    x_name = sess.get_inputs()[0].name
    for x, y in cases(name):
        (got,) = sess.run(None, {x_name: x})
        np.testing.assert_allclose(got, ref.run(None, {x_name: x})[0], rtol=0, atol=1e-5)
        np.testing.assert_allclose(got, y, rtol=0, atol=1e-5)
    with pytest.raises(gruinfer.NotStreamable, match="Loop"):
        sess.stream()
