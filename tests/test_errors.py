"""Malformed models and bad feeds raise gruinfer's specific exceptions, with messages naming what is wrong, and never crash."""
import math

import numpy as np
import onnx
import pytest
from onnx import TensorProto, helper, numpy_helper

import gruinfer
from gruinfer import (GruinferError, InvalidArgument, InvalidModel, KernelUnavailable,
                      UnsupportedOp)

I, H = 3, 4          # input_size, hidden_size of every test model
T, N = 5, 2          # seq_length, batch_size of every feed
NODE = "gru0"        # name of the GRU node in every test model


# --------------------------------------------------------------------------- helpers
def _weights(D=1, seed=0):
    rng = np.random.default_rng(seed)
    W = rng.uniform(-0.5, 0.5, (D, 3 * H, I)).astype(np.float32)
    R = rng.uniform(-0.5, 0.5, (D, 3 * H, H)).astype(np.float32)
    B = rng.uniform(-0.5, 0.5, (D, 6 * H)).astype(np.float32)
    return W, R, B


def _finish(nodes, inputs, outputs, initializers):
    g = helper.make_graph(nodes, "g", inputs, outputs, initializers)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 14)])
    m.ir_version = 8
    return m


def gru_model(W=None, R=None, B=None, attrs=None, node_inputs=("X", "W", "R", "B"),
              hidden_size=H, declare_shapes=True, feeds=("X",), weights_as_inputs=()):
    """One GRU node named NODE.  W/R/B default to valid random weights; pass an array to
    override.  node_inputs are the node's input names ("" for an omitted optional input).
    feeds: graph inputs among "X", "seq_lens", "h0".  weights_as_inputs: weight names
    declared as graph inputs instead of initializers."""
    W0, R0, B0 = _weights()
    W = W0 if W is None else W
    R = R0 if R is None else R
    B = B0 if B is None else B
    at = dict(attrs or {})
    if hidden_size is not None:
        at.setdefault("hidden_size", hidden_size)
    node = helper.make_node("GRU", list(node_inputs), ["Y", "Y_h"], name=NODE, **at)
    layout = at.get("layout", 0)
    shapes = {
        "X": ["N", "T", I] if layout else ["T", "N", I],
        "seq_lens": ["N"],
        "h0": ["N", 1, H] if layout else [1, "N", H],
    }
    types = {"X": TensorProto.FLOAT, "seq_lens": TensorProto.INT32, "h0": TensorProto.FLOAT}
    inputs = [helper.make_tensor_value_info(n, types[n], shapes[n] if declare_shapes else None)
              for n in feeds]
    inits = []
    for name, arr in (("W", W), ("R", R), ("B", B)):
        if name in weights_as_inputs:
            dt = helper.np_dtype_to_tensor_dtype(arr.dtype)
            inputs.append(helper.make_tensor_value_info(name, dt, list(arr.shape)))
        else:
            inits.append(numpy_helper.from_array(arr, name))
    outputs = [helper.make_tensor_value_info("Y", TensorProto.FLOAT, None),
               helper.make_tensor_value_info("Y_h", TensorProto.FLOAT, None)]
    return _finish([node], inputs, outputs, inits)


def seq_model(declare_shapes=True, **kw):
    """GRU node fed X, sequence_lens and initial_h from the graph inputs."""
    return gru_model(node_inputs=("X", "W", "R", "B", "seq_lens", "h0"),
                     feeds=("X", "seq_lens", "h0"), declare_shapes=declare_shapes, **kw)


def good_feed():
    rng = np.random.default_rng(1)
    return {"X": rng.standard_normal((T, N, I)).astype(np.float32),
            "seq_lens": np.full(N, T, np.int32),
            "h0": rng.standard_normal((1, N, H)).astype(np.float32)}


def shape_id(shape):
    """Readable parametrize id for a shape tuple: "5x2", "0d"."""
    return "x".join(map(str, shape)) if shape else "0d"


def load_error(model, cls, *parts, **kw):
    """Assert InferenceSession(model) raises cls (or a subclass) with every part in its message."""
    with pytest.raises(cls) as ei:
        gruinfer.InferenceSession(model, **kw)
    msg = str(ei.value)
    for p in parts:
        assert p in msg, f"{p!r} not in message {msg!r}"
    return msg


def run_error(sess, feed, cls, *parts, output_names=None):
    with pytest.raises(cls) as ei:
        sess.run(output_names, feed)
    msg = str(ei.value)
    for p in parts:
        assert p in msg, f"{p!r} not in message {msg!r}"
    return msg


SUPPORTED_KERNELS = gruinfer.kernel_info()["supported"]


# --------------------------------------------------------------------------- hierarchy
def test_exception_hierarchy():
    assert issubclass(InvalidModel, ValueError) and issubclass(InvalidModel, GruinferError)
    assert issubclass(InvalidArgument, ValueError) and issubclass(InvalidArgument, GruinferError)
    assert issubclass(UnsupportedOp, InvalidModel)
    assert issubclass(gruinfer.NotStreamable, InvalidModel)
    assert issubclass(KernelUnavailable, GruinferError)


def test_errors_from_c_carry_their_status_name():
    """Callers tell why from `status`, not the message: C statuses have a short name, errors
    raised in Python None (the class attribute)."""
    assert GruinferError.status is None and InvalidArgument("x").status is None
    W = np.ones((1, 3, 2), np.float32)
    layer = gruinfer._core.Gru(2, 1, 0, 0, None, [(0, 0.0, 0.0)], [(1, 0.0, 0.0)], W,
                               np.ones((1, 3, 1), np.float32), None, None, "g")
    X = np.full((2, 1, 2), np.nan, np.float32)
    with pytest.raises(InvalidArgument) as ei:
        layer.run(X, 0, None, None, True, True, True, "g")
    assert ei.value.status == "nonfinite"
    with pytest.raises(InvalidArgument) as ei:
        layer.run(X[:, :, :1].copy(), 0, np.array([3], np.int32), None, True, True, False, "g")
    assert ei.value.status == "seqlen"
    with pytest.raises(InvalidModel) as ei:
        gruinfer._core.Gru(2, 1, 0, 2, None, [(0, 0.0, 0.0)], [(1, 0.0, 0.0)], W,
                           np.ones((1, 3, 1), np.float32), None, None, "g")
    assert ei.value.status == "attr"


def test_valid_model_loads_and_runs():
    """The baseline every error test perturbs is itself valid."""
    sess = gruinfer.InferenceSession(seq_model())
    Y, Yh = sess.run(None, good_feed())
    assert Y.shape == (T, 1, N, H) and Yh.shape == (1, N, H)
    assert np.isfinite(Y).all() and np.isfinite(Yh).all()


# --------------------------------------------------------------------------- malformed models
@pytest.mark.parametrize("node_inputs, role", [
    (("X", "", "R", "B"), "W"),
    (("X",), "W"),
    (("X", "W", "", "B"), "R"),
    (("X", "W"), "R"),
])
def test_missing_required_weight(node_inputs, role):
    load_error(gru_model(node_inputs=node_inputs), InvalidModel, NODE, f"input {role}", "missing")


def test_missing_x():
    load_error(gru_model(node_inputs=("", "W", "R", "B")), InvalidModel, NODE, "X", "missing")


@pytest.mark.parametrize("shape", [(1, 13, I), (1, 3 * H, I, 1), (3 * H, I), (2, 3 * H, I),
                                   (1, 0, I), (1, 3 * H, 0)], ids=shape_id)
def test_w_wrong_shape(shape):
    W = np.zeros(shape, np.float32)
    got = "[" + ", ".join(map(str, shape)) + "]"
    load_error(gru_model(W=W, hidden_size=None), InvalidModel, NODE, "input W", got,
               "num_directions=1")


@pytest.mark.parametrize("shape", [(1, 3 * H, H + 1), (1, 3 * H + 1, H), (3 * H, H),
                                   (2, 3 * H, H)], ids=shape_id)
def test_r_wrong_shape(shape):
    got = "[" + ", ".join(map(str, shape)) + "]"
    load_error(gru_model(R=np.zeros(shape, np.float32)), InvalidModel, NODE, "input R",
               f"[1, {3 * H}, {H}]", got)


@pytest.mark.parametrize("shape", [(1, 3 * H), (6 * H,), (2, 6 * H), (1, 6 * H, 1)],
                         ids=shape_id)
def test_b_wrong_shape(shape):
    got = "[" + ", ".join(map(str, shape)) + "]"
    load_error(gru_model(B=np.zeros(shape, np.float32)), InvalidModel, NODE, "input B",
               f"[1, {6 * H}]", got)


@pytest.mark.parametrize("hs", [H + 1, H - 1, 3 * H])
def test_hidden_size_mismatch(hs):
    load_error(gru_model(hidden_size=hs), InvalidModel, NODE, f"hidden_size={hs}",
               f"[1, {3 * H}, {I}]")


def test_bidirectional_with_forward_weights():
    load_error(gru_model(attrs={"direction": "bidirectional"}), InvalidModel, NODE,
               "input W", "num_directions=2", f"[1, {3 * H}, {I}]")


@pytest.mark.parametrize("acts, bad", [(["Sigmoid", "Foo"], "'Foo'"),
                                       (["Swish", "Tanh"], "'Swish'"),
                                       (["Sigmoid", ""], "''")])
def test_unknown_activation(acts, bad):
    load_error(gru_model(attrs={"activations": acts}), InvalidModel, NODE,
               "unknown activation", bad)


@pytest.mark.parametrize("acts", [["Sigmoid"], ["Sigmoid", "Tanh", "Tanh"],
                                  ["Sigmoid", "Tanh", "Sigmoid", "Tanh"]])
def test_wrong_number_of_activations(acts):
    load_error(gru_model(attrs={"activations": acts}), InvalidModel, NODE,
               f"lists {len(acts)} functions", "expected 2")


def test_wrong_number_of_activations_bidirectional():
    W, R, B = _weights(D=2)
    model = gru_model(W=W, R=R, B=B, attrs={"direction": "bidirectional",
                                            "activations": ["Sigmoid", "Tanh"]})
    load_error(model, InvalidModel, NODE, "lists 2 functions", "expected 4")


def test_nonfinite_activation_alpha():
    model = gru_model(attrs={"activations": ["HardSigmoid", "Tanh"],
                             "activation_alpha": [math.nan]})
    load_error(model, InvalidModel, NODE, "HardSigmoid", "non-finite")


@pytest.mark.parametrize("direction", ["sideways", "Forward", "backward", ""])
def test_bad_direction(direction):
    load_error(gru_model(attrs={"direction": direction}), InvalidModel, NODE, "direction",
               repr(direction))


@pytest.mark.parametrize("lbr", [2, -1])
def test_bad_linear_before_reset(lbr):
    load_error(gru_model(attrs={"linear_before_reset": lbr}), InvalidModel, NODE,
               "linear_before_reset", str(lbr))


@pytest.mark.parametrize("layout", [2, -1])
def test_bad_layout(layout):
    load_error(gru_model(attrs={"layout": layout}), InvalidModel, NODE, "layout", str(layout))


@pytest.mark.parametrize("clip", [0.0, -1.0, math.nan, math.inf])
def test_bad_clip(clip):
    load_error(gru_model(attrs={"clip": clip}), InvalidModel, NODE, "clip", str(clip))


@pytest.mark.parametrize("role", ["W", "R", "B"])
def test_weight_as_graph_input_cannot_stream(role):
    """A weight fed at run time runs (tests/test_runtime_weights.py) but cannot stream."""
    sess = gruinfer.InferenceSession(gru_model(weights_as_inputs=(role,)))
    with pytest.raises(gruinfer.NotStreamable) as ei:
        sess.stream()
    for p in (NODE, f"input {role} ('{role}')", "fed at run time"):
        assert p in str(ei.value)


@pytest.mark.parametrize("role", ["W", "R", "B"])
@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
def test_nonfinite_weights(role, bad):
    arrs = dict(zip("WRB", _weights()))
    a = arrs[role].copy()
    a.flat[a.size // 2] = bad
    arrs[role] = a
    load_error(gru_model(**arrs), InvalidModel, NODE, f"input {role}", "NaN or Inf")


def test_integer_weights():
    W = np.zeros((1, 3 * H, I), np.int32)
    load_error(gru_model(W=W), InvalidModel, NODE, "input W", "float", "int32")


@pytest.mark.parametrize("dtype, role", [(np.float64, "W"), (np.float16, "R"), (np.float64, "B")])
def test_weights_that_are_not_float32_are_refused(dtype, role):
    """A model exported in double (or half) precision is refused, not silently run in float32."""
    W, R, B = (a.astype(dtype) if r == role else a for a, r in zip(_weights(), "WRB"))
    load_error(gru_model(W=W, R=R, B=B), InvalidModel, NODE, f"input {role}", np.dtype(dtype).name,
               "float32 only")


def test_truncated_initializer():
    model = gru_model()
    t = model.graph.initializer[0]
    t.raw_data = t.raw_data[:20]
    load_error(model, InvalidModel, "'W'")
    load_error(model.SerializeToString(), InvalidModel, "'W'")


def test_too_many_outputs():
    model = gru_model()
    model.graph.node[0].output.append("extra")
    load_error(model, InvalidModel, NODE, "at most 2 outputs")


def _with_extra_node(node, output="Z", before=False):
    model = gru_model()
    if before:
        model.graph.node.insert(0, node)
    else:
        model.graph.node.append(node)
    if output:
        model.graph.output.append(helper.make_tensor_value_info(output, TensorProto.FLOAT, None))
    return model


@pytest.mark.parametrize("op, node, before", [
    ("Hardmax", helper.make_node("Hardmax", ["Y_h"], ["Z"], name="hardmax_after"), False),
    ("MaxUnpool", helper.make_node("MaxUnpool", ["X", "W"], ["Xc"], name="unpool_before", kernel_shape=[2]), True),
    ("Mod", helper.make_node("Mod", ["Y", "Y"], ["Z"], name="mod_after"), False),
])
def test_unsupported_op(op, node, before):
    model = _with_extra_node(node, output=None if before else "Z", before=before)
    load_error(model, UnsupportedOp, f"op {op}", f"'{node.name}'")


def test_split_with_fewer_num_outputs_than_outputs_is_refused_before_shape_inference():
    """onnx's shape inference (which the lifts run) aborts the process on such a Split: it is
    refused first, also inside a Loop body."""
    node = helper.make_node("Split", ["Y_h"], ["a", "b", "c"], name="bad_split", axis=2, num_outputs=2)
    model = _with_extra_node(node, output="a")
    model.opset_import[0].version = 18
    load_error(model, InvalidModel, "'bad_split'", "num_outputs=2", "3 outputs")


def test_unsupported_op_unnamed_node_and_custom_domain():
    node = helper.make_node("Foo", ["Y_h"], ["Z"], domain="com.example")
    load_error(_with_extra_node(node), UnsupportedOp, "com.example.Foo", "Foo_1")


@pytest.mark.parametrize("where", ["gru", "identity"])
def test_input_that_nothing_produces(where):
    if where == "gru":
        model = gru_model()
        model.graph.node[0].input[0] = "X_missing"
        load_error(model, InvalidModel, NODE, "'X_missing'")
    else:
        node = helper.make_node("Identity", ["nowhere"], ["Z"], name="idn")
        load_error(_with_extra_node(node), InvalidModel, "'idn'", "'nowhere'")


def test_input_produced_only_later():
    """Nodes out of topological order: the consumer's input is not yet produced."""
    model = gru_model()
    model.graph.node.insert(0, helper.make_node("Identity", ["Y_h"], ["Z"], name="early"))
    model.graph.output.append(helper.make_tensor_value_info("Z", TensorProto.FLOAT, None))
    load_error(model, InvalidModel, "'early'", "'Y_h'")


@pytest.mark.parametrize("case", ["two_nodes_same_output", "node_writes_graph_input",
                                  "node_writes_initializer"])
def test_value_defined_twice(case):
    """ONNX graphs are SSA: a value has one producer.  onnxruntime refuses these models
    ("Duplicate definition of name"); silently letting the later definition win is wrong."""
    model = gru_model()
    if case == "two_nodes_same_output":
        dup = onnx.NodeProto()
        dup.CopyFrom(model.graph.node[0])
        dup.name = "gru1"
        model.graph.node.append(dup)
        name = "Y"
    else:
        name = "X" if case == "node_writes_graph_input" else "W"
        model.graph.node.append(helper.make_node("Identity", ["Y_h"], [name], name="clobber"))
    load_error(model, InvalidModel, f"'{name}'")


def test_graph_output_nothing_produces():
    model = gru_model()
    model.graph.output.append(helper.make_tensor_value_info("Q", TensorProto.FLOAT, None))
    load_error(model, InvalidModel, "'Q'")


@pytest.mark.parametrize("data", [b"\x00\x01garbage\xff\xfe" * 10, bytes(range(256)),
                                  b"hello world", b"\xff" * 7])
def test_garbage_bytes(data, tmp_path):
    load_error(data, InvalidModel)
    load_error(bytearray(data), InvalidModel)
    p = tmp_path / "garbage.onnx"
    p.write_bytes(data)
    load_error(str(p), InvalidModel, "garbage.onnx")
    load_error(p, InvalidModel, "garbage.onnx")


def test_empty_bytes():
    load_error(b"", InvalidModel)


def test_nonexistent_path(tmp_path):
    p = tmp_path / "no_such_model.onnx"
    with pytest.raises(FileNotFoundError, match="no_such_model.onnx"):
        gruinfer.InferenceSession(str(p))
    with pytest.raises(FileNotFoundError, match="no_such_model.onnx"):
        gruinfer.InferenceSession(p)


def test_directory_path(tmp_path):
    with pytest.raises((FileNotFoundError, IsADirectoryError, InvalidModel)):
        gruinfer.InferenceSession(str(tmp_path))


@pytest.mark.parametrize("model", [42, None, 3.5, {"graph": 1}, [b"x"], object()])
def test_wrong_model_type(model):
    with pytest.raises(TypeError, match=type(model).__name__):
        gruinfer.InferenceSession(model)


def test_missing_external_data(tmp_path):
    model = gru_model()
    p = tmp_path / "ext.onnx"
    onnx.save_model(model, str(p), save_as_external_data=True, all_tensors_to_one_file=True,
                    location="ext.data", size_threshold=0)
    gruinfer.InferenceSession(str(p))       # complete: loads
    (tmp_path / "ext.data").unlink()
    load_error(str(p), InvalidModel, "ext")


# --------------------------------------------------------------------------- bad feeds
@pytest.fixture(params=[True, False], ids=["declared", "undeclared"])
def sess(request):
    """A session over seq_model, with graph input shapes declared or not declared."""
    return gruinfer.InferenceSession(seq_model(declare_shapes=request.param))


def test_missing_input(sess):
    feed = good_feed()
    del feed["h0"]
    run_error(sess, feed, InvalidArgument, "missing", "'h0'")
    del feed["X"]
    run_error(sess, feed, InvalidArgument, "missing", "'X'")


def test_unknown_input_name(sess):
    feed = good_feed()
    feed["foo"] = feed["X"]
    run_error(sess, feed, InvalidArgument, "'foo'", "not a graph input")


def test_feed_not_a_dict(sess):
    run_error(sess, [good_feed()["X"]], InvalidArgument, "dict")


@pytest.mark.parametrize("shape", [(T, N), (T * N * I,), (T, N, I, 1), ()], ids=shape_id)
def test_x_wrong_rank(sess, shape):
    feed = good_feed()
    feed["X"] = np.zeros(shape, np.float32)
    got = "[" + ", ".join(map(str, shape)) + "]"
    run_error(sess, feed, InvalidArgument, "X", got)


@pytest.mark.parametrize("last", [I + 1, I - 1, 1])
def test_x_wrong_input_size(sess, last):
    feed = good_feed()
    feed["X"] = np.zeros((T, N, last), np.float32)
    run_error(sess, feed, InvalidArgument, "X", f"[{T}, {N}, {last}]", str(I))


def test_x_zero_length(sess):
    feed = good_feed()
    feed["X"] = np.zeros((0, N, I), np.float32)
    feed["seq_lens"] = np.zeros(N, np.int32)
    run_error(sess, feed, InvalidArgument, "X", f"[0, {N}, {I}]")


@pytest.mark.parametrize("dtype", [np.int32, np.int64, np.uint8, np.bool_, np.complex64, "U3"])
def test_x_non_float_dtype(sess, dtype):
    feed = good_feed()
    feed["X"] = np.zeros((T, N, I), dtype)
    run_error(sess, feed, InvalidArgument, "X", "float", str(np.dtype(dtype)))


def test_x_ragged_list(sess):
    """A ragged nested list is a bad feed like any other: InvalidArgument, not numpy's own
    ValueError."""
    feed = good_feed()
    feed["X"] = [[[1.0, 2.0, 3.0]] * N, [[1.0, 2.0]] * N]
    run_error(sess, feed, InvalidArgument, "X")


@pytest.mark.parametrize("declared", [True, False])
@pytest.mark.parametrize("dtype", [np.float64, np.float16])
def test_x_other_float_dtypes_refused_unless_cast(declared, dtype):
    """As onnxruntime does, a float64 or float16 array fed to a tensor(float) input is refused,
    naming the input; cast_feeds=True converts it."""
    feed = good_feed()
    feed["X"] = feed["X"].astype(dtype)
    feed["h0"] = feed["h0"].astype(dtype)
    strict = gruinfer.InferenceSession(seq_model(declare_shapes=declared))
    run_error(strict, feed, InvalidArgument, "input 'X'", "tensor(float)", np.dtype(dtype).name,
              "cast_feeds=True")
    sess = gruinfer.InferenceSession(seq_model(declare_shapes=declared), cast_feeds=True)
    got = sess.run(None, feed)
    # float16 rounds the values: compare with float32 arrays holding the same values.
    want = sess.run(None, {**feed, "X": feed["X"].astype(np.float32),
                           "h0": feed["h0"].astype(np.float32)})
    for a, b in zip(got, want):
        assert a.dtype == np.float32
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)


def test_x_nested_list_accepted(sess):
    feed = good_feed()
    want = sess.run(None, feed)
    feed["X"] = feed["X"].tolist()
    got = sess.run(None, feed)
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6)


@pytest.mark.parametrize("lens", [[T + 1, T], [T, -1], [2**31 - 1, 0]])
def test_sequence_lens_out_of_range(sess, lens):
    feed = good_feed()
    feed["seq_lens"] = np.array(lens, np.int32)
    run_error(sess, feed, InvalidArgument, NODE, "sequence_lens", f"seq_length={T}")


def test_sequence_lens_too_large_for_int32(sess):
    feed = good_feed()
    feed["seq_lens"] = np.array([T, 2**40], np.int64)
    run_error(sess, feed, InvalidArgument, "seq_lens")


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.bool_])
def test_sequence_lens_wrong_dtype(sess, dtype):
    feed = good_feed()
    feed["seq_lens"] = np.full(N, T, dtype)
    run_error(sess, feed, InvalidArgument, "seq_lens", "int32", str(np.dtype(dtype)))


@pytest.mark.parametrize("shape", [(N + 1,), (N, 1), ()], ids=shape_id)
def test_sequence_lens_wrong_shape(sess, shape):
    feed = good_feed()
    feed["seq_lens"] = np.full(shape, T, np.int32)
    got = "[" + ", ".join(map(str, shape)) + "]"
    run_error(sess, feed, InvalidArgument, "seq_lens", got)


@pytest.mark.parametrize("declared", [True, False])
def test_sequence_lens_int64_refused_unless_cast(declared):
    feed = good_feed()
    strict = gruinfer.InferenceSession(seq_model(declare_shapes=declared))
    sess = gruinfer.InferenceSession(seq_model(declare_shapes=declared), cast_feeds=True)
    want = strict.run(None, feed)
    feed["seq_lens"] = feed["seq_lens"].astype(np.int64)
    run_error(strict, feed, InvalidArgument, "input 'seq_lens'", "tensor(int32)", "int64")
    for a, b in zip(sess.run(None, feed), want):
        np.testing.assert_array_equal(a, b)
    feed["seq_lens"][0] = 2**40
    run_error(sess, feed, InvalidArgument, "input 'seq_lens'", "do not fit")


@pytest.mark.parametrize("shape", [(1, N + 1, H), (1, N, H + 1), (N, H), (2, N, H),
                                   (1, N, H, 1)], ids=shape_id)
def test_initial_h_wrong_shape(sess, shape):
    feed = good_feed()
    feed["h0"] = np.zeros(shape, np.float32)
    got = "[" + ", ".join(map(str, shape)) + "]"
    run_error(sess, feed, InvalidArgument, "h0", got)


@pytest.mark.parametrize("declare", [True, False], ids=["declared", "undeclared"])
def test_layout1_feed_shapes(declare):
    """layout=1: X [N, T, I], initial_h [N, D, H]; layout-0 shaped feeds are refused."""
    sess = gruinfer.InferenceSession(seq_model(declare_shapes=declare, attrs={"layout": 1}))
    x = np.zeros((N, T, I), np.float32)
    lens = np.full(N, T, np.int32)
    Y, Yh = sess.run(None, {"X": x, "seq_lens": lens, "h0": np.zeros((N, 1, H), np.float32)})
    assert Y.shape == (N, T, 1, H) and Yh.shape == (N, 1, H)
    run_error(sess, {"X": x, "seq_lens": lens, "h0": np.zeros((1, N, H), np.float32)},
              InvalidArgument, "h0", f"[1, {N}, {H}]")
    run_error(sess, {"X": np.zeros((N, T, I + 1), np.float32), "seq_lens": lens,
                     "h0": np.zeros((N, 1, H), np.float32)},
              InvalidArgument, "X", f"[{N}, {T}, {I + 1}]")


def test_initial_h_wrong_dtype(sess):
    feed = good_feed()
    feed["h0"] = np.zeros((1, N, H), np.int32)
    run_error(sess, feed, InvalidArgument, "h0", "float", "int32")


@pytest.mark.parametrize("bad", [math.nan, math.inf, -math.inf])
@pytest.mark.parametrize("where", ["X", "h0"])
def test_nonfinite_feed_refused(sess, where, bad):
    feed = good_feed()
    feed[where] = feed[where].copy()
    feed[where][0, 1, 0] = bad
    run_error(sess, feed, InvalidArgument, NODE, "NaN or Inf", "check_finite")


@pytest.mark.parametrize("kernel", SUPPORTED_KERNELS)
def test_nan_in_x_propagates_with_check_finite_false(kernel):
    """check_finite=False lets NaN through: the row that saw it is NaN from that step on,
    the other row is untouched (the session docstring promises propagation)."""
    sess = gruinfer.InferenceSession(seq_model(), kernel=kernel, check_finite=False)
    feed = good_feed()
    feed["X"][2, 1, 0] = np.nan
    Y, Yh = sess.run(None, feed)
    assert np.isfinite(Y[:, :, 0]).all() and np.isfinite(Yh[:, 0]).all()
    assert np.isfinite(Y[:2]).all()
    assert np.isnan(Y[2:, 0, 1]).all(), (
        f"kernel {kernel}: NaN input gave Y[2:, 0, 1] = {Y[2:, 0, 1]}")
    assert np.isnan(Yh[0, 1]).all(), f"kernel {kernel}: NaN input gave Y_h[0, 1] = {Yh[0, 1]}"


@pytest.mark.parametrize("kernel", SUPPORTED_KERNELS)
def test_nan_in_initial_h_propagates_with_check_finite_false(kernel):
    sess = gruinfer.InferenceSession(seq_model(), kernel=kernel, check_finite=False)
    feed = good_feed()
    feed["h0"][0, 0, :] = np.nan
    Y, Yh = sess.run(None, feed)
    assert np.isnan(Y[:, 0, 0]).all() and np.isnan(Yh[0, 0]).all()
    assert np.isfinite(Y[:, 0, 1]).all() and np.isfinite(Yh[0, 1]).all()


@pytest.mark.parametrize("names, bad", [(["Y", "Z"], "'Z'"), (["y"], "'y'"), ([""], "''")])
def test_unknown_output_name(sess, names, bad):
    run_error(sess, good_feed(), InvalidArgument, bad, "not a graph output", output_names=names)


def test_output_names_as_string(sess):
    run_error(sess, good_feed(), InvalidArgument, "output_names", output_names="Y")


def test_feeding_an_overridable_weight_is_not_silently_ignored():
    """W is both an initializer and a graph input, so onnxruntime lets a feed override it
    and gruinfer lists it in get_overridable_initializers().  A feed of W must then either
    be used (as onnxruntime does) or be refused; returning results computed with the
    stored W is silently wrong."""
    model = gru_model()
    W = model.graph.initializer[0]
    model.graph.input.append(helper.make_tensor_value_info("W", TensorProto.FLOAT, list(W.dims)))
    sess = gruinfer.InferenceSession(model)
    assert [a.name for a in sess.get_overridable_initializers()] == ["W"]
    x = good_feed()["X"]
    W_new = np.zeros((1, 3 * H, I), np.float32)
    stored = sess.run(None, {"X": x})
    try:
        got = sess.run(None, {"X": x, "W": W_new})
    except InvalidArgument as e:
        assert "'W'" in str(e)
        return
    # Not refused: must equal the model with W replaced by the fed value.
    ref_model = gru_model(W=W_new)
    want = gruinfer.InferenceSession(ref_model).run(None, {"X": x})
    assert not np.allclose(stored[1], want[1]), "test is void: W_new changes nothing"
    for a, b in zip(got, want):
        np.testing.assert_allclose(a, b, rtol=0, atol=1e-6,
                                   err_msg="the fed W was ignored: result used the stored W")


@pytest.mark.parametrize("threads", [0, -1, 1.5, "2"])
def test_bad_threads(threads):
    load_error(gru_model(), InvalidArgument, "threads", threads=threads)


# --------------------------------------------------------------------------- kernels
@pytest.mark.parametrize("kernel", ["nope", "", "AVX2", "ref "])
def test_unknown_kernel(kernel):
    load_error(gru_model(), KernelUnavailable, repr(kernel), "ref", kernel=kernel)


def test_known_kernels_accepted():
    model = gru_model()
    x = good_feed()["X"]
    want = gruinfer.InferenceSession(model, kernel="ref").run(None, {"X": x})
    for k in SUPPORTED_KERNELS:
        sess = gruinfer.InferenceSession(model, kernel=k)
        assert sess.kernel == k
        for a, b in zip(sess.run(None, {"X": x}), want):
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-5)


@pytest.mark.parametrize("value", ["bogus", "AVX512", "ref,avx2"])
def test_env_kernel_unknown(monkeypatch, value):
    monkeypatch.setenv("GRUINFER_KERNEL", value)
    assert gruinfer.kernel_info()["selected"] is None
    load_error(gru_model(), KernelUnavailable, "GRUINFER_KERNEL", repr(value))
    # An explicit kernel does not consult the variable.
    sess = gruinfer.InferenceSession(gru_model(), kernel="ref")
    assert sess.kernel == "ref"


def test_env_kernel_known(monkeypatch):
    monkeypatch.setenv("GRUINFER_KERNEL", "ref")
    sess = gruinfer.InferenceSession(gru_model())
    assert sess.kernel == "ref"
    monkeypatch.delenv("GRUINFER_KERNEL")
    assert gruinfer.InferenceSession(gru_model()).kernel == SUPPORTED_KERNELS[-1]
