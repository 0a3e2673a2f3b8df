"""Token-id frames (int64 / int32) for an Embedding model's stream.step: same results as the whole run, bad ids refused with state kept."""
import os

import numpy as np
import pytest

import gruinfer

MODEL = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "embed_gru_softmax_ts.onnx")


@pytest.mark.parametrize("dtype", [np.int64, np.int32])
def test_int_frames_match_run(dtype):
    sess = gruinfer.InferenceSession(MODEL)
    ids = np.random.default_rng(0).integers(0, 5, (3, 8)).astype(dtype)  # [batch, time]
    (whole,) = sess.run(None, {"x": ids.astype(np.int64)})
    stream = sess.stream(3)
    frames = np.stack([stream.step(ids[:, t]).copy() for t in range(8)], axis=1)
    np.testing.assert_allclose(frames.reshape(whole.shape), whole, rtol=0, atol=1e-5)


@pytest.mark.parametrize("bad", [10**12, -10**12, -99, 2**24 + 1])
def test_bad_ids_refused_state_kept(bad):
    stream = gruinfer.InferenceSession(MODEL).stream(2)
    stream.step(np.array([1, 2], np.int64))
    before = stream.get_state()
    with pytest.raises(gruinfer.InvalidArgument, match="token id"):
        stream.step(np.array([1, bad], np.int64))
    after = stream.get_state()
    assert all(np.array_equal(before[k], after[k]) for k in before)
