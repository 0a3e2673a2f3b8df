"""The published models the team shares (../shared/real-models/, see its README): they load, match onnxruntime and stream fully in C, frame by frame and in uneven chunks equal to the whole run.  Skipped, saying so, where that folder is absent."""
from pathlib import Path

import numpy as np
import onnxruntime as ort
import pytest

import gruinfer

SHARED = Path(__file__).resolve().parents[2] / "shared" / "real-models"
RNNOISE = ["rnnoise16k_tfkeras", "rnnoise16k_keras3", "rnnoise16k_tfkeras_freebatch"]


@pytest.fixture(scope="module", params=RNNOISE)
def rnnoise(request):
    path = SHARED / f"{request.param}.onnx"
    if not path.is_file():
        pytest.skip(f"{path} is not here (the team's shared folder)")
    return (gruinfer.InferenceSession(str(path)),
            ort.InferenceSession(str(path), providers=["CPUExecutionProvider"]), request.param)


def features(N, T, seed):
    """RNNoise's 38 features per frame lie roughly within [-5, 5]."""
    rng = np.random.default_rng(seed)
    return np.clip(rng.standard_normal((N, T, 38)) * 2, -5, 5).astype(np.float32)


def test_rnnoise_streams_in_c(rnnoise):
    sess, _, name = rnnoise
    info = sess.plan_info()
    assert info["streamable"] and info["lowered"] and not info["not_lowered"], info
    assert info["steps"].count("gru") == 3 and "concat" in info["steps"]


@pytest.mark.parametrize("T", [1, 7, 200])
def test_rnnoise_matches_onnxruntime_and_streams_like_the_whole_run(rnnoise, T):
    sess, ref, name = rnnoise
    inp = sess.get_inputs()[0].name
    N = 3 if name.endswith("freebatch") else 1
    x = features(N, T, T)
    whole = sess.run(None, {inp: x})
    for a, b in zip(whole, ref.run(None, {inp: x})):
        assert np.abs(a - b).max() <= 1e-4 * max(1.0, float(np.abs(b).max()))
    stream = sess.stream(N)
    frames = np.stack([stream.step(x[:, t]) for t in range(T)], 1)
    np.testing.assert_allclose(frames, whole[0], rtol=0, atol=1e-5)
    stream = sess.stream(N)
    cuts = sorted({0, min(1, T), min(4, T), min(50, T), T})
    parts = [stream.run(None, {inp: x[:, a:b]}) for a, b in zip(cuts, cuts[1:])]
    for k in range(len(whole)):
        np.testing.assert_allclose(np.concatenate([p[k] for p in parts], 1), whole[k], rtol=0,
                                   atol=1e-5)
