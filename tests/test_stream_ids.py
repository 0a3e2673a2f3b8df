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


@pytest.mark.parametrize("dtype", [np.uint8, np.int16, np.uint64, ">i8"])
def test_other_integer_frames_and_chunks(dtype):
    """Ids of other integer dtypes go through int64 on the slow paths; a huge unsigned id
    saturates rather than wrapping round to a valid negative id."""
    sess = gruinfer.InferenceSession(MODEL)
    ids = np.random.default_rng(1).integers(0, 5, (2, 4)).astype(dtype)
    (whole,) = sess.run(None, {"x": ids.astype(np.int64)})
    np.testing.assert_allclose(sess.stream(2).run(None, {"x": ids})[0], whole, rtol=0, atol=1e-5)
    if np.dtype(dtype) == np.uint64:
        with pytest.raises(gruinfer.InvalidArgument, match="token id"):
            sess.stream(2).step(np.array([1, 2**64 - 1], np.uint64))


def test_ids_to_float_clamps_in_c():
    from gruinfer import _core

    x = np.array([[0, -1], [1 << 40, -(1 << 40)]], np.int64)
    y = _core.ids_to_float(x[:, ::-1])  # any layout in, a new C-contiguous array out
    assert y.dtype == np.float32 and y.flags.c_contiguous and y.shape == (2, 2)
    assert y.tolist() == [[-1, 0], [-(1 << 25), 1 << 25]]
    assert _core.ids_to_float(np.array([[7]], np.int32)).tolist() == [[7]]
    for bad in (np.array([1.0]), np.array([1], np.int16), [1, 2]):
        with pytest.raises(TypeError):
            _core.ids_to_float(bad)


def decoder_step(token_shape):
    """A single-step decoder: token ids -> Embedding -> a GRUCell with its state h an input ->
    Linear + softmax head, h' an output (the fixture's cell step, its x embedded from token;
    token_shape ["batch"] or ["batch", 1], the latter squeezed to [batch, D])."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    m = onnx.load(os.path.join(os.path.dirname(MODEL), "cell_step_head_ts.onnx"))
    g = m.graph
    x = g.input[0].name
    g.input.remove(g.input[0])
    g.input.insert(0, helper.make_tensor_value_info("token", TensorProto.INT64, token_shape))
    table = np.random.default_rng(0).standard_normal((11, 5)).astype(np.float32)
    g.initializer.extend([numpy_helper.from_array(table, "E"),
                          numpy_helper.from_array(np.array([1], np.int64), "ax1")])
    if len(token_shape) == 1:
        g.node.insert(0, helper.make_node("Gather", ["E", "token"], [x], name="embed"))
    else:
        g.node.insert(0, helper.make_node("Gather", ["E", "token"], ["e3"], name="embed"))
        g.node.insert(1, helper.make_node("Squeeze", ["e3", "ax1"], [x], name="squeeze"))
    return m


@pytest.mark.parametrize("token_shape", [["batch"], ["batch", 1]])
def test_decoder_step_streams_in_c_like_feeding_h_back(token_shape):
    """token [N] (or [N, 1]) and h -> logits, h': the stream keeps h inside, one C call per
    token, equal to onnxruntime with h fed back by hand."""
    import onnxruntime as ort

    model = decoder_step(token_shape)
    sess = gruinfer.InferenceSession(model)
    info = sess.plan_info()
    assert info["lowered"] and info["steps"][:2] == ["embed", "gru"], info
    ref = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    N = 3
    tokens = np.random.default_rng(1).integers(-11, 11, (12, N) + (1,) * (len(token_shape) - 1))
    h = np.zeros((N, 7), np.float32)
    step, chunks = sess.stream(N), sess.stream(N)
    for tok in tokens:
        logits, h = ref.run(None, {"token": tok, "h": h})
        np.testing.assert_allclose(step.step(tok), logits, rtol=0, atol=1e-5)
        got = chunks.run(None, {"token": tok})
        np.testing.assert_allclose(got[0], logits, rtol=0, atol=1e-5)
        np.testing.assert_allclose(got[1], h, rtol=0, atol=1e-5)
    with pytest.raises(gruinfer.InvalidArgument, match="token id"):
        step.step(np.full((N,) + (1,) * (len(token_shape) - 1), 11))
