"""Streams of convolutional-recurrent graphs on the Python path: causal Pads and Convs over time carry their past frames from chunk to chunk, inputs fed frames beside the time input, frame-wise Conv/ConvTranspose/Einsum; what needs future frames is refused by name."""
import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto as TP, helper as h, numpy_helper as nh

import gruinfer

C, F, M, H = 2, 6, 3, 5


def conv_gru(pad_time=(2, 0), conv_pads=(0, 1, 0, 1), kernel=(3, 3), dilation=1, mode="constant",
             value=0.0, second_input=False, einsum=False, convt=False, seed=0):
    """x [N, C, T, F] -> Pad (time before/after) -> Conv -> Relu (-> ConvTranspose over F)
    (+ a second input's frames) -> [T, N, M*F'] -> (Einsum grouped linear) -> GRU -> y."""
    rng = np.random.default_rng(seed)
    inits = [nh.from_array((rng.standard_normal((M, C) + kernel) * 0.4).astype(np.float32), "Wc"),
             nh.from_array(rng.standard_normal(M).astype(np.float32) * 0.1, "Bc"),
             nh.from_array(np.array([0, 0, pad_time[0], 0, 0, 0, pad_time[1], 0], np.int64), "pads"),
             nh.from_array(np.array(value, np.float32), "pv")]
    nodes = [h.make_node("Pad", ["x", "pads", "pv"], ["xp"], mode=mode),
             h.make_node("Conv", ["xp", "Wc", "Bc"], ["c"], kernel_shape=list(kernel),
                         pads=list(conv_pads), dilations=[dilation, 1]),
             h.make_node("Relu", ["c"], ["r"])]
    feat = "r"
    width = F + conv_pads[1] + conv_pads[3] - (kernel[1] - 1)
    if convt:
        inits.append(nh.from_array((rng.standard_normal((M, M, 1, 3)) * 0.4).astype(np.float32), "Wt"))
        nodes.append(h.make_node("ConvTranspose", ["r", "Wt"], ["ct"], strides=[1, 2], pads=[0, 1, 0, 1],
                                 output_padding=[0, 1]))
        feat, width = "ct", 2 * width
    inputs = [h.make_tensor_value_info("x", TP.FLOAT, ["N", C, "T", F])]
    if second_input:
        inputs.append(h.make_tensor_value_info("z", TP.FLOAT, ["N", M, "T", width]))
        nodes.append(h.make_node("Add", [feat, "z"], ["fz"]))
        feat = "fz"
    nodes += [h.make_node("Transpose", [feat], ["tr"], perm=[2, 0, 1, 3]),
              h.make_node("Reshape", ["tr", "shape"], ["seq"])]
    inits.append(nh.from_array(np.array([0, 0, M * width], np.int64), "shape"))
    I, x_in = M * width, "seq"
    if einsum:  # two groups: [T, N, 2, I/2] x [2, I/2, 4] -> [T, N, 2, 4]
        inits += [nh.from_array(np.array([0, 0, 2, I // 2], np.int64), "gshape"),
                  nh.from_array((rng.standard_normal((2, I // 2, 4)) * 0.3).astype(np.float32), "We"),
                  nh.from_array(np.array([0, 0, 8], np.int64), "eshape")]
        nodes += [h.make_node("Reshape", ["seq", "gshape"], ["g"]),
                  h.make_node("Einsum", ["g", "We"], ["e"], equation="btgi,gih->btgh"),
                  h.make_node("Reshape", ["e", "eshape"], ["eseq"])]
        I, x_in = 8, "eseq"
    inits += [nh.from_array((rng.standard_normal((1, 3 * H, I)) * 0.3).astype(np.float32), "W"),
              nh.from_array((rng.standard_normal((1, 3 * H, H)) * 0.3).astype(np.float32), "R")]
    nodes += [h.make_node("GRU", [x_in, "W", "R"], ["Y"], hidden_size=H),
              h.make_node("Squeeze", ["Y", "one"], ["y"])]
    inits.append(nh.from_array(np.array([1], np.int64), "one"))
    g = h.make_graph(nodes, "conv_gru", inputs, [h.make_tensor_value_info("y", TP.FLOAT, ["T", "N", H])], inits)
    m = h.make_model(g, opset_imports=[h.make_opsetid("", 17)])
    m.ir_version = 8
    return m.SerializeToString()


def feeds_for(sess, T, N, seed=1):
    rng = np.random.default_rng(seed)
    return {a.name: rng.standard_normal([T if d == "T" else N if d == "N" else d for d in a.shape])
            .astype(np.float32) for a in sess.get_inputs()}


def frames(feeds, t0, t1):
    return {k: v[:, :, t0:t1] for k, v in feeds.items()}


@pytest.mark.parametrize("kw", [
    {}, {"pad_time": (0, 0), "conv_pads": (2, 1, 0, 1)}, {"pad_time": (4, 0), "dilation": 2},
    {"value": 0.5}, {"second_input": True}, {"einsum": True}, {"convt": True},
    {"pad_time": (0, 0), "kernel": (1, 3)},
], ids=["pad", "conv-pads", "dilated", "pad-value", "two-inputs", "einsum", "convtranspose", "frame-wise"])
def test_chunks_and_steps_equal_the_whole_run_and_onnxruntime(kw):
    model = conv_gru(**kw)
    sess, T, N = gruinfer.InferenceSession(model), 13, 2
    feeds = feeds_for(sess, T, N)
    whole = sess.run(["y"], feeds)[0]
    ref = ort.InferenceSession(model, providers=["CPUExecutionProvider"]).run(["y"], feeds)[0]
    np.testing.assert_allclose(whole, ref, atol=1e-5)
    stream = sess.stream(N)
    assert not stream.lowered
    got, t = [], 0
    for c in (1, 4, 2, 6):
        got.append(stream.run(["y"], frames(feeds, t, t + c))[0])
        t += c
    np.testing.assert_allclose(np.concatenate(got), whole, atol=1e-5)
    stream.reset()
    for t in range(T):
        x = {k: v[:, :, t] for k, v in feeds.items()}
        y = stream.step(x if len(x) > 1 else x["x"])
        np.testing.assert_allclose(y, whole[t], atol=1e-5)


def test_carried_frames_are_state_reset_by_slot_and_set_whole():
    model = conv_gru()
    sess, N = gruinfer.InferenceSession(model), 3
    feeds = feeds_for(sess, 6, N)
    stream = sess.stream(N)
    stream.run(None, frames(feeds, 0, 4))
    state = stream.get_state()
    carried = list(sess.plan_info()["carries"])
    assert carried == ["Pad_0"] and sess.plan_info()["carries"]["Pad_0"].frames == 2
    assert set(state) == {"Pad_0", sess.plan_info()["gru_nodes"][0]} and state["Pad_0"].shape == (N, C, 2, F)
    np.testing.assert_array_equal(state[carried[0]], feeds["x"][:, :, 2:4])
    stream.reset([1])
    after = stream.get_state()[carried[0]]
    np.testing.assert_array_equal(after[1], 0)
    np.testing.assert_array_equal(after[[0, 2]], state[carried[0]][[0, 2]])
    # set_state back, then the next chunk equals a stream that never reset
    twin = sess.stream(N)
    twin.run(None, frames(feeds, 0, 4))
    stream.set_state(state)
    np.testing.assert_array_equal(stream.run(None, frames(feeds, 4, 6))[0],
                                  twin.run(None, frames(feeds, 4, 6))[0])


def test_a_bad_carried_state_changes_nothing():
    sess = gruinfer.InferenceSession(conv_gru())
    stream = sess.stream(2)
    stream.run(None, frames(feeds_for(sess, 3, 2), 0, 3))
    before = stream.get_state()
    bad = dict(before)
    name = next(k for k in before if before[k].ndim == 4)
    bad[name] = np.zeros((2, C, 3, F), np.float32)
    gru = next(k for k in before if before[k].ndim == 2)
    bad[gru] = np.zeros_like(before[gru])
    with pytest.raises(gruinfer.InvalidArgument, match="past frames"):
        stream.set_state(bad)
    after = stream.get_state()
    for k in before:
        np.testing.assert_array_equal(after[k], before[k])


@pytest.mark.parametrize("kw, parts", [
    ({"pad_time": (1, 1)}, ["(Pad)", "needs 1 future frame"]),
    ({"pad_time": (0, 0), "conv_pads": (1, 1, 1, 1)}, ["(Conv)", "needs 1 future frame"]),
    ({"mode": "reflect"}, ["(Pad)", "mode 'reflect'"]),
    ({"pad_time": (1, 0)}, ["(Conv)", "over 3 frames that is given 1 past frames"]),
])
def test_what_needs_other_frames_is_refused_by_name(kw, parts):
    sess = gruinfer.InferenceSession(conv_gru(**kw))
    with pytest.raises(gruinfer.NotStreamable) as e:
        sess.stream(1)
    for p in parts:
        assert p in str(e.value), str(e.value)


def test_frames_of_both_inputs_are_required_and_agree():
    sess = gruinfer.InferenceSession(conv_gru(second_input=True))
    stream = sess.stream(1)
    feeds = feeds_for(sess, 4, 1)
    with pytest.raises(gruinfer.InvalidArgument, match="missing input 'z'"):
        stream.run(None, {"x": feeds["x"]})
    with pytest.raises(gruinfer.InvalidArgument, match="'z'"):
        stream.run(None, {"x": feeds["x"], "z": feeds["z"][:, :, :3]})
    with pytest.raises(gruinfer.InvalidArgument, match="takes a dict"):
        stream.step(feeds["x"][:, :, 0])
    assert sess.plan_info()["time_inputs"] == {"x": ("N", C, "T", F), "z": ("N", M, "T", F)}
