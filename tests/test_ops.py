"""The non-GRU ops (gruinfer/ops.py) against onnxruntime: one node per model, each opset form, run and folded at load."""
import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import gruinfer

R = np.random.default_rng(0)


def f(*shape):
    return (R.standard_normal(shape) * 3).astype(np.float32)


def i64(*values):
    return np.asarray(values, np.int64)


BIG = np.iinfo(np.int64).max
# id -> (op, opset, inputs (None: omitted), attributes, number of outputs)
CASES = {
    "gemm": ("Gemm", 13, [f(3, 4), f(5, 4), f(5)], dict(transB=1, alpha=0.5, beta=2.0), 1),
    "gemm_transA": ("Gemm", 11, [f(4, 3), f(4, 5)], dict(transA=1), 1),
    "matmul": ("MatMul", 13, [f(2, 3, 4), f(4, 5)], {}, 1),
    "add": ("Add", 14, [f(2, 3, 4), f(4)], {}, 1),
    "sub": ("Sub", 14, [f(2, 1, 4), f(3, 1)], {}, 1),
    "mul": ("Mul", 14, [f(2, 3, 4), f(1, 3, 1)], {}, 1),
    "div": ("Div", 14, [f(2, 3), f(3) + 10], {}, 1),
    "div_int": ("Div", 14, [i64(7, -7, 9, -1), i64(2, 2, -4, 3)], {}, 1),
    "relu": ("Relu", 14, [f(3, 4)], {}, 1),
    "tanh": ("Tanh", 13, [f(3, 4)], {}, 1),
    "sigmoid": ("Sigmoid", 13, [f(3, 4) * 30], {}, 1),
    "leakyrelu": ("LeakyRelu", 16, [f(3, 4)], dict(alpha=0.2), 1),
    "elu": ("Elu", 6, [f(3, 4)], dict(alpha=0.5), 1),
    "hardsigmoid": ("HardSigmoid", 6, [f(3, 4)], dict(alpha=0.3, beta=0.4), 1),
    "softmax_11_axis1": ("Softmax", 11, [f(2, 3, 4)], dict(axis=1), 1),
    "softmax_11_default": ("Softmax", 11, [f(2, 3, 4)], {}, 1),
    "softmax_13_axis1": ("Softmax", 13, [f(2, 3, 4)], dict(axis=1), 1),
    "softmax_13_default": ("Softmax", 13, [f(2, 3, 4)], {}, 1),
    "logsoftmax_11": ("LogSoftmax", 11, [f(2, 3, 4)], dict(axis=1), 1),
    "logsoftmax_13": ("LogSoftmax", 13, [f(2, 3, 4)], dict(axis=0), 1),
    "clip_6": ("Clip", 6, [f(3, 4)], dict(min=-1.0, max=0.5), 1),
    "clip_13_min": ("Clip", 13, [f(3, 4), np.float32(-0.5)], {}, 1),
    "clip_13_max": ("Clip", 13, [f(3, 4), None, np.float32(0.5)], {}, 1),
    "identity": ("Identity", 14, [f(3, 4)], {}, 1),
    "dropout_10": ("Dropout", 10, [f(3, 4)], dict(ratio=0.3), 1),
    "dropout_13": ("Dropout", 13, [f(3, 4)], {}, 1),
    "transpose": ("Transpose", 13, [f(2, 3, 4)], dict(perm=[2, 0, 1]), 1),
    "transpose_default": ("Transpose", 13, [f(2, 3, 4)], {}, 1),
    "reshape": ("Reshape", 13, [f(2, 3, 4), i64(0, -1, 2)], {}, 1),
    "reshape_allowzero": ("Reshape", 14, [np.zeros((0, 3), np.float32), i64(3, 0)], dict(allowzero=1), 1),
    "squeeze_11": ("Squeeze", 11, [f(1, 3, 1, 2)], dict(axes=[0, -2]), 1),
    "squeeze_13": ("Squeeze", 13, [f(1, 3, 1, 2), i64(2)], {}, 1),
    "squeeze_all": ("Squeeze", 13, [f(1, 3, 1, 2)], {}, 1),
    "unsqueeze_11": ("Unsqueeze", 11, [f(3, 2)], dict(axes=[0, 3]), 1),
    "unsqueeze_13": ("Unsqueeze", 13, [f(3, 2), i64(-1, 1)], {}, 1),
    "slice_9": ("Slice", 9, [f(4, 5)], dict(starts=[1, 0], ends=[3, 100], axes=[0, 1]), 1),
    "slice_13": ("Slice", 13, [f(4, 5, 6), i64(-1, 1), i64(-BIG, BIG), i64(0, 2), i64(-1, 2)], {}, 1),
    "slice_13_no_axes": ("Slice", 13, [f(4, 5), i64(1, 2), i64(3, -1)], {}, 1),
    "concat": ("Concat", 13, [f(2, 3), f(2, 1), f(2, 2)], dict(axis=-1), 1),
    "split_11": ("Split", 11, [f(5, 4)], dict(axis=0, split=[2, 3]), 2),
    "split_13": ("Split", 13, [f(4, 6), i64(1, 5)], dict(axis=1), 2),
    "split_13_equal": ("Split", 13, [f(6, 2)], {}, 3),
    "split_18": ("Split", 18, [f(5, 2)], dict(num_outputs=2), 2),
    "expand": ("Expand", 13, [f(3, 1), i64(2, 3, 4)], {}, 1),
    "cast_int": ("Cast", 13, [f(3, 4)], dict(to=TensorProto.INT32), 1),
    "cast_float": ("Cast", 13, [i64(1, 2, 3)], dict(to=TensorProto.FLOAT), 1),
    "layernorm": ("LayerNormalization", 17, [f(2, 3, 4), f(4), f(4)], dict(epsilon=1e-3), 1),
    "layernorm_axis1": ("LayerNormalization", 17, [f(2, 3, 4), f(3, 4)], dict(axis=1), 1),
    "gather": ("Gather", 13, [f(7, 3), i64(0, -1, 4, 4)], {}, 1),
    "gather_axis1": ("Gather", 13, [f(2, 5), np.asarray([[1, 0], [4, 2]], np.int64)], dict(axis=1), 1),
    "shape": ("Shape", 13, [f(2, 3, 4)], {}, 1),
    "shape_15": ("Shape", 15, [f(2, 3, 4)], dict(start=1, end=-1), 1),
    "constantofshape": ("ConstantOfShape", 13, [i64(2, 3)], {}, 1),
    "reducemean_13": ("ReduceMean", 13, [f(2, 3, 4)], dict(axes=[-1]), 1),
    "reducemean_18": ("ReduceMean", 18, [f(2, 3, 4), i64(0, 2)], dict(keepdims=0), 1),
    "pow": ("Pow", 13, [f(3, 4), np.float32(2.0)], {}, 1),
    "sqrt": ("Sqrt", 13, [np.abs(f(3, 4))], {}, 1),
    "neg": ("Neg", 13, [f(3, 4)], {}, 1),
    "exp": ("Exp", 13, [f(3, 4)], {}, 1),
    "log": ("Log", 13, [np.abs(f(3, 4)) + 0.1], {}, 1),
    "constantofshape_int": ("ConstantOfShape", 13, [i64(2)],
                            dict(value=numpy_helper.from_array(i64(5))), 1),
    "abs": ("Abs", 13, [f(3, 4)], {}, 1),
    "sign": ("Sign", 13, [f(3, 4)], {}, 1),
    "floor": ("Floor", 13, [f(3, 4)], {}, 1),
    "ceil": ("Ceil", 13, [f(3, 4)], {}, 1),
    "round": ("Round", 13, [np.asarray([0.5, 1.5, -2.5, 2.4, -0.6], np.float32)], {}, 1),
    "reciprocal": ("Reciprocal", 13, [f(3, 4) + 20], {}, 1),
    "erf": ("Erf", 13, [f(3, 4)], {}, 1),
    "gelu": ("Gelu", 20, [f(3, 4)], {}, 1),
    "gelu_tanh": ("Gelu", 20, [f(3, 4)], dict(approximate="tanh"), 1),
    "softplus": ("Softplus", 13, [f(3, 4) * 10], {}, 1),
    "softsign": ("Softsign", 13, [f(3, 4)], {}, 1),
    "selu": ("Selu", 13, [f(3, 4)], {}, 1),
    "thresholdedrelu": ("ThresholdedRelu", 10, [f(3, 4)], dict(alpha=0.5), 1),
    "hardswish": ("HardSwish", 14, [f(3, 4)], {}, 1),
    "prelu": ("PRelu", 16, [f(2, 3, 4), f(4)], {}, 1),
    "min": ("Min", 13, [f(2, 3), f(3), f(1, 1)], {}, 1),
    "max": ("Max", 13, [f(2, 3), f(3)], {}, 1),
    "max_one": ("Max", 13, [f(2, 3)], {}, 1),
    "sum": ("Sum", 13, [f(2, 3), f(3), f(2, 1)], {}, 1),
    "mean": ("Mean", 13, [f(2, 3), f(3)], {}, 1),
    "equal": ("Equal", 13, [i64(1, 2, 3), i64(1, 0, 3)], {}, 1),
    "less": ("Less", 13, [f(3, 4), f(4)], {}, 1),
    "lessorequal": ("LessOrEqual", 16, [f(3, 4), f(3, 1)], {}, 1),
    "greater": ("Greater", 13, [f(3, 4), f(4)], {}, 1),
    "greaterorequal": ("GreaterOrEqual", 16, [i64(1, 2, 3), i64(2)], {}, 1),
    "not": ("Not", 13, [np.asarray([True, False])], {}, 1),
    "and": ("And", 13, [np.asarray([[True, False], [True, True]]), np.asarray([True, False])], {}, 1),
    "or": ("Or", 13, [np.asarray([True, False]), np.asarray([False, False])], {}, 1),
    "xor": ("Xor", 13, [np.asarray([True, False]), np.asarray([True, True])], {}, 1),
    "where": ("Where", 16, [np.asarray([[True], [False]]), f(2, 3), f(3)], {}, 1),
    "reducesum_11": ("ReduceSum", 11, [f(2, 3, 4)], dict(axes=[1]), 1),
    "reducesum_13": ("ReduceSum", 13, [f(2, 3, 4), i64(-1)], dict(keepdims=0), 1),
    "reducesum_13_all": ("ReduceSum", 13, [f(2, 3, 4)], {}, 1),
    "reducemax_13": ("ReduceMax", 13, [f(2, 3, 4)], dict(axes=[2]), 1),
    "reducemax_18": ("ReduceMax", 18, [f(2, 3, 4), i64(0)], {}, 1),
    "reducemin_13": ("ReduceMin", 13, [f(2, 3, 4)], dict(axes=[0, 2], keepdims=0), 1),
    "reduceprod_13": ("ReduceProd", 13, [f(2, 3)], dict(axes=[1]), 1),
    "reducesumsquare_13": ("ReduceSumSquare", 13, [f(2, 3, 4)], dict(axes=[-1]), 1),
    "reducel2_18": ("ReduceL2", 18, [f(2, 3, 4), i64(2)], {}, 1),
    "argmax": ("ArgMax", 13, [f(3, 4)], dict(axis=1), 1),
    "argmin_last": ("ArgMin", 13, [np.asarray([[1, 0, 0], [2, 2, 1]], np.float32)],
                    dict(axis=1, keepdims=0, select_last_index=1), 1),
    "globalaveragepool": ("GlobalAveragePool", 13, [f(2, 3, 5)], {}, 1),
    "batchnorm": ("BatchNormalization", 15, [f(2, 3, 4), f(3), f(3), f(3), np.abs(f(3)) + 1], {}, 1),
    "tile": ("Tile", 13, [f(2, 3), i64(2, 1)], {}, 1),
    "cumsum": ("CumSum", 14, [f(3, 4), np.asarray(1, np.int64)], {}, 1),
    "cumsum_exclusive_reverse": ("CumSum", 14, [f(3, 4), np.asarray(0, np.int64)],
                                 dict(exclusive=1, reverse=1), 1),
    "pad_constant": ("Pad", 13, [f(2, 3), i64(0, 2, 1, 0), np.float32(1.5)], {}, 1),
    "pad_reflect": ("Pad", 13, [f(3, 4), i64(1, 1, 1, 2)], dict(mode="reflect"), 1),
    "pad_edge_axes": ("Pad", 18, [f(3, 4), i64(2, 1), None, i64(1)], dict(mode="edge"), 1),
    "pad_2": ("Pad", 2, [f(2, 3)], dict(pads=[1, 0, 0, 1], value=2.0), 1),
    "mish": ("Mish", 18, [f(3, 4)], {}, 1),
    "celu": ("Celu", 12, [f(3, 4)], dict(alpha=0.7), 1),
    "flatten": ("Flatten", 13, [f(2, 3, 4)], {}, 1),
    "flatten_axis0": ("Flatten", 13, [f(2, 3, 4)], dict(axis=0), 1),
    "flatten_neg": ("Flatten", 13, [f(2, 3, 4)], dict(axis=-1), 1),
    "nonzero": ("NonZero", 13, [np.asarray([[1.0, 0.0, 2.0], [0.0, 0.0, 3.0]], np.float32)], {}, 1),
    "topk": ("TopK", 11, [np.asarray([[3, 1, 3, 2], [0, 5, 5, 1]], np.float32), i64(2)], {}, 2),
    "topk_smallest": ("TopK", 11, [f(3, 5), i64(3)], dict(axis=0, largest=0), 2),
    "scatterelements": ("ScatterElements", 13, [f(3, 4), np.asarray([[2, 0], [1, -1]], np.int64), f(2, 2)],
                        dict(axis=1), 1),
    "gatherelements": ("GatherElements", 13, [f(3, 4), np.asarray([[2, 0], [1, -1]], np.int64)],
                       dict(axis=1), 1),
    "conv1d": ("Conv", 11, [f(2, 4, 9), f(6, 4, 3), f(6)], dict(pads=[1, 1]), 1),
    "conv1d_stride_dilation_group": ("Conv", 11, [f(2, 4, 11), f(6, 2, 3)],
                                     dict(strides=[2], dilations=[2], group=2), 1),
    "conv1d_same_upper": ("Conv", 11, [f(1, 3, 8), f(5, 3, 4), f(5)], dict(auto_pad="SAME_UPPER",
                                                                          strides=[3]), 1),
    "conv2d": ("Conv", 11, [f(2, 3, 5, 6), f(4, 3, 2, 3), f(4)], dict(pads=[0, 1, 1, 0]), 1),
    "conv2d_valid_depthwise": ("Conv", 11, [f(1, 4, 5, 5), f(4, 1, 3, 3)],
                               dict(auto_pad="VALID", group=4), 1),
}


def model(case, folded):
    """One node; its inputs are graph inputs, or initializers (the node is then folded at load)."""
    op, opset, inputs, attrs, n_out = CASES[case]
    names = [f"in{i}" if a is not None else "" for i, a in enumerate(inputs)]
    outs = [f"out{i}" for i in range(n_out)]
    node = helper.make_node(op, names, outs, name=f"my_{case}", **attrs)
    g_in, inits, feeds = [], [], {}
    for n, a in zip(names, inputs):
        if a is None:
            continue
        a = np.asarray(a)
        # shape-like inputs (2nd and later int64) stay initializers, as exporters write them
        if folded or (a.dtype == np.int64 and n != "in0"):
            inits.append(numpy_helper.from_array(a, n))
        else:
            g_in.append(helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(a.dtype),
                                                      list(a.shape)))
            feeds[n] = a
    g_out = [helper.make_empty_tensor_value_info(o) for o in outs]
    graph = helper.make_graph([node], "g", g_in, g_out, inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    return m, feeds


@pytest.mark.parametrize("folded", [False, True], ids=["run", "folded"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_op_matches_onnxruntime(case, folded):
    m, feeds = model(case, folded)
    ref = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    expected = ref.run(None, feeds)
    got = gruinfer.InferenceSession(m).run(None, feeds)
    for g, e in zip(got, expected):
        assert g.dtype == e.dtype and g.shape == e.shape, (g.dtype, e.dtype, g.shape, e.shape)
        if g.dtype.kind == "f":
            assert np.allclose(g, e, rtol=1e-5, atol=1e-6), np.abs(g - e).max()
        else:
            assert np.array_equal(g, e)


def test_op_error_names_node():
    node = helper.make_node("MatMul", ["in0", "w"], ["out0"], name="my_matmul")
    graph = helper.make_graph([node], "g", [helper.make_tensor_value_info("in0", TensorProto.FLOAT, None)],
                              [helper.make_tensor_value_info("out0", TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(f(4, 5), "w")])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    with pytest.raises(gruinfer.InvalidArgument, match="'my_matmul' \\(MatMul\\)"):
        gruinfer.InferenceSession(m).run(None, {"in0": f(2, 3)})


def test_folding_error_is_invalid_model():
    node = helper.make_node("MatMul", ["a", "w"], ["out0"], name="bad_fold")
    graph = helper.make_graph([node], "g", [], [helper.make_tensor_value_info("out0", TensorProto.FLOAT, None)],
                              [numpy_helper.from_array(f(2, 3), "a"), numpy_helper.from_array(f(4, 5), "w")])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    with pytest.raises(gruinfer.InvalidModel, match="bad_fold.*at load"):
        gruinfer.InferenceSession(m)
