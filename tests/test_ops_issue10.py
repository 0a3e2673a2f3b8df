"""Einsum, ScatterND and ConvTranspose (issue 10) against onnxruntime: each opset form and edge case, bad forms refused with gruinfer errors, and small models shaped like DeepFilterNet3's grouped linears and erb_dec and GTCRN's cache updates."""
import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import gruinfer

R = np.random.default_rng(10)


def f(*shape):
    return R.standard_normal(shape).astype(np.float32)


def idx(values):
    return np.asarray(values, np.int64)


def ones(*shape):
    return np.full(shape, 1.5, np.float32)


# id -> (op, opset, inputs, attributes)
CASES = {
    # Einsum: DeepFilterNet3's grouped linear in both spellings exporters emit, and the rest of
    # what the spec allows
    "einsum_grouped_linear": ("Einsum", 12, [f(1, 7, 8, 16), f(8, 16, 12)], dict(equation="btgi,gih->btgh")),
    "einsum_grouped_ellipsis": ("Einsum", 12, [f(2, 7, 8, 16), f(8, 16, 12)], dict(equation="...gi,gih->...gh")),
    "einsum_batched_matmul": ("Einsum", 12, [f(3, 4, 5), f(3, 5, 6)], dict(equation="bij,bjk->bik")),
    "einsum_ellipsis_broadcast": ("Einsum", 12, [f(2, 1, 4, 5), f(1, 3, 5, 6)],
                                  dict(equation="...ij,...jk->...ik")),
    "einsum_implicit": ("Einsum", 12, [f(4, 5), f(5, 3)], dict(equation="ij,jk")),
    "einsum_implicit_ellipsis": ("Einsum", 12, [f(2, 3, 4)], dict(equation="...ji")),
    "einsum_transpose": ("Einsum", 12, [f(2, 3, 4)], dict(equation="abc->cab")),
    "einsum_spaces_upper": ("Einsum", 12, [f(4, 5), f(5, 3)], dict(equation=" iJ , Jk -> ki ")),
    "einsum_diagonal": ("Einsum", 12, [f(4, 4)], dict(equation="ii->i")),
    "einsum_trace": ("Einsum", 12, [f(4, 4)], dict(equation="ii")),
    "einsum_batch_diagonal": ("Einsum", 12, [f(3, 3, 2)], dict(equation="iij->ij")),
    "einsum_outer": ("Einsum", 12, [f(3), f(4)], dict(equation="i,j->ij")),
    "einsum_dot": ("Einsum", 12, [f(5), f(5)], dict(equation="i,i")),
    "einsum_sum": ("Einsum", 12, [f(3, 4)], dict(equation="ij->")),
    "einsum_label_broadcast": ("Einsum", 12, [f(1, 3), f(2, 3)], dict(equation="ij,ij->ij")),
    "einsum_three": ("Einsum", 12, [f(2, 3), f(3, 4), f(4, 5)], dict(equation="ij,jk,kl->il")),
    "einsum_double": ("Einsum", 12, [f(3, 4).astype(np.float64), f(4, 2).astype(np.float64)],
                      dict(equation="ij,jk->ik")),
    # ScatterND: every opset form; duplicates only where a reduction makes them defined (and
    # for none, where onnxruntime keeps the last, as numpy does)
    "scatternd_11_rows": ("ScatterND", 11, [f(5, 3), idx([[4], [0]]), f(2, 3)], {}),
    "scatternd_11_elements": ("ScatterND", 11, [f(2, 3, 4), idx([[0, 1, 2], [1, 2, 3], [1, 0, 0]]), f(3)], {}),
    "scatternd_11_whole": ("ScatterND", 11, [f(2, 3), np.zeros((1, 0), np.int64), f(1, 2, 3)], {}),
    "scatternd_13_negative": ("ScatterND", 13, [f(4, 3, 2), idx([[-1, -3], [0, 2]]), f(2, 2)], {}),
    "scatternd_13_duplicates_last": ("ScatterND", 13, [f(4, 3), idx([[1], [1]]), f(2, 3)], {}),
    "scatternd_16_add": ("ScatterND", 16, [f(4, 3), idx([[1], [1], [-1]]), f(3, 3)], dict(reduction="add")),
    "scatternd_16_mul": ("ScatterND", 16, [f(4, 3), idx([[2], [2]]), ones(2, 3)], dict(reduction="mul")),
    "scatternd_16_none": ("ScatterND", 16, [f(4, 3), idx([[3]]), f(1, 3)], dict(reduction="none")),
    "scatternd_18_max": ("ScatterND", 18, [f(4, 3), idx([[0], [0], [3]]), f(3, 3)], dict(reduction="max")),
    "scatternd_18_min": ("ScatterND", 18, [f(4, 3), idx([[0, 1], [0, 1]]), f(2)], dict(reduction="min")),
    "scatternd_16_add_int": ("ScatterND", 16, [idx([[1, 2], [3, 4]]), idx([[0], [0]]), idx([[5, 6], [7, 8]])],
                             dict(reduction="add")),
    # ConvTranspose: 1-D, 2-D and 3-D; groups, strides, pads, output_padding, dilations,
    # auto_pad, output_shape (smaller and larger than the full result), kernel_shape, bias
    "convt1d": ("ConvTranspose", 11, [f(2, 3, 6), f(3, 4, 3)], {}),
    "convt1d_bias_stride_outpad": ("ConvTranspose", 11, [f(1, 3, 6), f(3, 4, 3), f(4)],
                                   dict(strides=[2], output_padding=[1])),
    "convt1d_pads_dilation": ("ConvTranspose", 11, [f(1, 2, 7), f(2, 3, 3)],
                              dict(strides=[3], dilations=[2], pads=[1, 2], output_padding=[1])),
    "convt1d_outpad_below_dilation": ("ConvTranspose", 11, [f(1, 2, 5), f(2, 2, 3)],
                                      dict(strides=[2], dilations=[3], output_padding=[1])),
    "convt1d_groups": ("ConvTranspose", 11, [f(2, 6, 5), f(6, 2, 4), f(6)], dict(group=3, strides=[2])),
    "convt1d_same_upper": ("ConvTranspose", 11, [f(1, 2, 5), f(2, 3, 3)], dict(strides=[2], auto_pad="SAME_UPPER")),
    "convt1d_same_lower": ("ConvTranspose", 11, [f(1, 2, 5), f(2, 3, 3)], dict(strides=[2], auto_pad="SAME_LOWER")),
    "convt1d_same_dilated": ("ConvTranspose", 11, [f(1, 2, 5), f(2, 3, 3)],
                             dict(strides=[2], dilations=[2], auto_pad="SAME_UPPER")),
    "convt1d_valid": ("ConvTranspose", 11, [f(1, 2, 5), f(2, 3, 3)],
                      dict(strides=[2], auto_pad="VALID", output_padding=[1])),
    "convt1d_output_shape": ("ConvTranspose", 11, [f(1, 2, 5), f(2, 3, 3)], dict(strides=[2], output_shape=[10])),
    "convt1d_output_shape_upper": ("ConvTranspose", 11, [f(1, 2, 5), f(2, 3, 3)],
                                   dict(strides=[2], output_shape=[9], auto_pad="SAME_UPPER")),
    "convt1d_output_shape_larger": ("ConvTranspose", 11, [f(1, 2, 5), f(2, 3, 3), f(3)],
                                    dict(strides=[2], output_shape=[12])),
    "convt1d_output_shape_pads_ignored": ("ConvTranspose", 11, [f(1, 2, 5), f(2, 3, 3)],
                                          dict(strides=[2], pads=[3, 0], output_shape=[7])),
    "convt1d_opset1": ("ConvTranspose", 1, [f(1, 2, 5), f(2, 3, 2)], dict(strides=[2], kernel_shape=[2])),
    "convt2d_erb_dec": ("ConvTranspose", 11, [f(1, 8, 5, 4), f(8, 1, 1, 3)],
                        dict(group=8, kernel_shape=[1, 3], strides=[1, 2], pads=[0, 1, 0, 1],
                             output_padding=[0, 1], dilations=[1, 1])),
    "convt2d_gtcrn_depthwise": ("ConvTranspose", 11, [f(1, 4, 9, 6), f(4, 1, 3, 3), f(4)],
                                dict(group=4, kernel_shape=[3, 3], dilations=[2, 1], pads=[4, 1, 4, 1])),
    "convt2d_gtcrn_upsample": ("ConvTranspose", 11, [f(1, 4, 3, 7), f(4, 1, 1, 5), f(2)],
                               dict(group=2, kernel_shape=[1, 5], strides=[1, 2], pads=[0, 2, 0, 2])),
    "convt2d_mixed": ("ConvTranspose", 11, [f(2, 4, 3, 5), f(4, 3, 2, 3), f(6)],
                      dict(group=2, strides=[2, 3], pads=[1, 0, 0, 2], dilations=[2, 1],
                           output_padding=[1, 2])),
    "convt2d_same_lower": ("ConvTranspose", 11, [f(1, 2, 4, 3), f(2, 2, 3, 2)],
                           dict(strides=[2, 2], auto_pad="SAME_LOWER")),
    "convt3d": ("ConvTranspose", 11, [f(1, 2, 3, 2, 4), f(2, 2, 2, 2, 3), f(2)],
                dict(strides=[1, 2, 2], pads=[0, 1, 1, 1, 0, 0])),
}


def one_node(op, opset, inputs, attrs, folded=False, name="my_node"):
    """One node; inputs are graph inputs (int64 indices an initializer), or all initializers
    (the node is then folded at load)."""
    names = [f"in{i}" for i in range(len(inputs))]
    node = helper.make_node(op, names, ["out"], name=name, **attrs)
    g_in, inits, feeds = [], [], {}
    for n, a in zip(names, inputs):
        if folded or (op == "ScatterND" and n == "in1"):
            inits.append(numpy_helper.from_array(a, n))
        else:
            g_in.append(helper.make_tensor_value_info(n, helper.np_dtype_to_tensor_dtype(a.dtype), list(a.shape)))
            feeds[n] = a
    graph = helper.make_graph([node], "g", g_in, [helper.make_empty_tensor_value_info("out")], inits)
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    return m, feeds


def check_close(got, expected, rtol=1e-5):
    assert got.dtype == expected.dtype and got.shape == expected.shape, \
        (got.dtype, expected.dtype, got.shape, expected.shape)
    if got.dtype.kind == "f":
        scale = max(float(np.abs(expected).max(initial=0)), 1.0)
        assert np.abs(got - expected).max(initial=0) <= rtol * scale, np.abs(got - expected).max()
    else:
        assert np.array_equal(got, expected)


def ort_run(m, feeds):
    ref = ort.InferenceSession(m.SerializeToString(), providers=["CPUExecutionProvider"])
    return ref.run(None, feeds)


@pytest.mark.parametrize("folded", [False, True], ids=["run", "folded"])
@pytest.mark.parametrize("case", sorted(CASES))
def test_op_matches_onnxruntime(case, folded):
    m, feeds = one_node(*CASES[case], folded=folded)
    expected = ort_run(m, feeds)
    got = gruinfer.InferenceSession(m).run(None, feeds)
    check_close(got[0], expected[0])


def test_scatternd_leaves_its_data_input_alone():
    data = f(4, 3)
    before = data.copy()
    m, feeds = one_node("ScatterND", 16, [data, idx([[1]]), f(1, 3)], dict(reduction="add"))
    gruinfer.InferenceSession(m).run(None, feeds)
    assert np.array_equal(data, before)


# id -> (op, opset, inputs, attributes, what the message says): refused when the model loads
BAD_AT_LOAD = {
    "einsum_two_arrows": ("Einsum", 12, [f(2, 3), f(3, 4)], dict(equation="ij,jk->ik->i"), "'->'"),
    "einsum_bad_char": ("Einsum", 12, [f(2, 3)], dict(equation="i$j->j"), "letters"),
    "einsum_stray_dot": ("Einsum", 12, [f(2, 3)], dict(equation="i.j->j"), "at most one '...'"),
    "einsum_two_ellipses": ("Einsum", 12, [f(2, 3)], dict(equation="...i...->i"), "at most one '...'"),
    "einsum_term_count": ("Einsum", 12, [f(2, 3)], dict(equation="ij,jk->ik"), "2 input terms for 1 inputs"),
    "einsum_repeated_output": ("Einsum", 12, [f(3)], dict(equation="i->ii"), "repeats a letter"),
    "einsum_unknown_output": ("Einsum", 12, [f(2, 3)], dict(equation="ij->k"), "no input term has"),
    "einsum_lost_ellipsis": ("Einsum", 12, [f(2, 3, 4)], dict(equation="...i->i"), "'...' but the output"),
    "scatternd_add_before_16": ("ScatterND", 13, [f(4, 3), idx([[1]]), f(1, 3)], dict(reduction="add"),
                                # the schema check (onnx_io/validate.py) refuses it first
                                "attribute 'reduction' is not one of the op's at opset 13"),
    "scatternd_max_before_18": ("ScatterND", 16, [f(4, 3), idx([[1]]), f(1, 3)], dict(reduction="max"),
                                "reduction 'max'"),
    "scatternd_unknown_reduction": ("ScatterND", 18, [f(4, 3), idx([[1]]), f(1, 3)], dict(reduction="sum"),
                                    "reduction 'sum'"),
    "convt_pads_and_auto_pad": ("ConvTranspose", 11, [f(1, 2, 5), f(2, 3, 3)],
                                dict(auto_pad="SAME_UPPER", pads=[1, 1]), "cannot be given together"),
    "convt_bad_auto_pad": ("ConvTranspose", 11, [f(1, 2, 5), f(2, 3, 3)], dict(auto_pad="SAME"), "auto_pad 'SAME'"),
}


@pytest.mark.parametrize("case", sorted(BAD_AT_LOAD))
def test_bad_form_refused_at_load(case):
    op, opset, inputs, attrs, why = BAD_AT_LOAD[case]
    m, _ = one_node(op, opset, inputs, attrs, name="bad")
    with pytest.raises(gruinfer.InvalidModel, match=f"'bad' \\({op}\\)") as e:
        gruinfer.InferenceSession(m)
    assert why in str(e.value)
    if op == "Einsum":
        assert repr(attrs["equation"]) in str(e.value)


def test_einsum_without_equation_refused_at_load():
    m, _ = one_node("Einsum", 12, [f(2, 3)], {}, name="bad")
    with pytest.raises(gruinfer.InvalidModel, match="'bad' \\(Einsum\\): required attribute 'equation' is missing"):
        gruinfer.InferenceSession(m)


# id -> (op, opset, inputs, attributes, what the message says): refused when the node runs
# (gruinfer.InvalidArgument) or is folded at load (gruinfer.InvalidModel)
BAD_AT_RUN = {
    "einsum_sizes": ("Einsum", 12, [f(2, 3), f(4, 5)], dict(equation="ij,jk->ik"), "letter 'j' has sizes 3 and 4"),
    "einsum_diagonal_sizes": ("Einsum", 12, [f(2, 3)], dict(equation="ii->i"), "letter 'i' of term 'ii'"),
    "einsum_rank": ("Einsum", 12, [f(2, 3, 4), f(3, 4)], dict(equation="ij,jk->ik"), "does not fit term 'ij'"),
    "einsum_rank_ellipsis": ("Einsum", 12, [f(2), f(3, 4)], dict(equation="...ij,jk->...ik"),
                             "does not fit term '...ij'"),
    "einsum_ellipsis_broadcast": ("Einsum", 12, [f(2, 3, 4), f(5, 4, 2)], dict(equation="...ij,...jk->...ik"),
                                  "broadcast"),
    "einsum_dtypes": ("Einsum", 12, [f(2, 3), f(3, 4).astype(np.float64)], dict(equation="ij,jk->ik"),
                      "different dtypes"),
    "einsum_too_large": ("Einsum", 12, [f(20000), f(20000)], dict(equation="i,j->ij"), "too large"),
    "scatternd_out_of_range": ("ScatterND", 13, [f(4, 3), idx([[1], [4]]), f(2, 3)], {},
                               "index [4] is out of range for data of shape [4, 3]"),
    "scatternd_negative_out_of_range": ("ScatterND", 16, [f(4, 3), idx([[0, -4]]), f(1)],
                                        dict(reduction="add"), "index [0, -4] is out of range"),
    "scatternd_updates_shape": ("ScatterND", 11, [f(4, 3), idx([[1]]), f(2, 3)], {}, "must be float32 of shape [1, 3]"),
    "scatternd_updates_dtype": ("ScatterND", 11, [f(4, 3), idx([[1]]), idx([[1, 2, 3]])], {}, "must be float32"),
    "scatternd_index_depth": ("ScatterND", 11, [f(4, 3), idx([[1, 1, 1]]), f(1)], {}, "at most the data's rank"),
    "scatternd_index_dtype": ("ScatterND", 11, [f(4, 3), np.asarray([[1]], np.int32), f(1, 3)], {}, "int64"),
    "convt_output_padding": ("ConvTranspose", 11, [f(1, 2, 5), f(2, 3, 3)], dict(strides=[2], output_padding=[2]),
                             "less than max(stride, dilation)"),
    "convt_output_padding_dilation": ("ConvTranspose", 11, [f(1, 2, 5), f(2, 3, 3)],
                                      dict(dilations=[2], output_padding=[1]), "does not fit input size 5"),
    "convt_output_shape_too_large": ("ConvTranspose", 11, [f(1, 2, 5), f(2, 3, 3)],
                                     dict(strides=[2], output_shape=[14]), "output size 14"),
    "convt_output_shape_rank": ("ConvTranspose", 11, [f(1, 2, 5), f(2, 3, 3)],
                                dict(strides=[2], output_shape=[1, 3, 10]), "the spatial axes"),
    "convt_kernel_shape": ("ConvTranspose", 11, [f(1, 2, 5), f(2, 3, 3)], dict(kernel_shape=[2]), "kernel_shape [2]"),
    "convt_group": ("ConvTranspose", 11, [f(1, 4, 5), f(4, 3, 3)], dict(group=3), "group 3"),
    "convt_weight_channels": ("ConvTranspose", 11, [f(1, 4, 5), f(2, 3, 3)], {}, "does not fit input"),
    "convt_bias": ("ConvTranspose", 11, [f(1, 2, 5), f(2, 3, 3), f(2)], {}, "bias of shape [2] must be [3]"),
    "convt_rank": ("ConvTranspose", 11, [f(2, 5), f(2, 3)], {}, "rank >= 3"),
    "convt_strides_length": ("ConvTranspose", 11, [f(1, 2, 5), f(2, 3, 3)], dict(strides=[1, 1]), "1 entries"),
    "convt_pads_negative": ("ConvTranspose", 11, [f(1, 2, 5), f(2, 3, 3)], dict(pads=[-1, 0]), "sizes >= 0"),
    "convt_too_large": ("ConvTranspose", 11, [f(1, 1, 2, 2), f(1, 4, 3, 3)],
                        dict(strides=[20000, 20000]), "too large"),
}


@pytest.mark.parametrize("folded", [False, True], ids=["run", "folded"])
@pytest.mark.parametrize("case", sorted(BAD_AT_RUN))
def test_bad_form_refused_with_gruinfer_error(case, folded):
    op, opset, inputs, attrs, why = BAD_AT_RUN[case]
    m, feeds = one_node(op, opset, inputs, attrs, folded=folded, name="bad")
    error = gruinfer.InvalidModel if folded else gruinfer.InvalidArgument
    with pytest.raises(error, match=f"'bad' \\({op}\\)") as e:
        gruinfer.InferenceSession(m).run(None, feeds)
    assert why in str(e.value)


def _session_pair(graph, opset, feeds):
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    m.ir_version = 8
    return ort_run(m, feeds), gruinfer.InferenceSession(m).run(None, feeds)


def _gru_weights(hidden, inputs):
    w = numpy_helper.from_array(f(1, 3 * hidden, inputs) * 0.3, "W")
    r = numpy_helper.from_array(f(1, 3 * hidden, hidden) * 0.3, "R")
    b = numpy_helper.from_array(f(1, 6 * hidden) * 0.1, "B")
    return [w, r, b]


@pytest.mark.parametrize("equation", ["btgi,gih->btgh", "...gi,gih->...gh"])
def test_deepfilternet_grouped_linear_around_a_gru(equation):
    """DeepFilterNet3's GroupedLinear: [B, T, G*I] seen as [B, T, G, I], one [I, H] matrix per
    group by Einsum, back to [B, T, G*H]; then a GRU over time (batch-first by Transpose)."""
    T, G, I, H = 9, 4, 8, 6
    nodes = [
        helper.make_node("Reshape", ["x", "split_shape"], ["xg"]),
        helper.make_node("Einsum", ["xg", "gw"], ["yg"], name="linear_in/Einsum", equation=equation),
        helper.make_node("Reshape", ["yg", "join_shape"], ["y"]),
        helper.make_node("Transpose", ["y"], ["y_tbf"], perm=[1, 0, 2]),
        helper.make_node("GRU", ["y_tbf", "W", "R", "B"], ["Y", "Y_h"], hidden_size=H, linear_before_reset=1),
        helper.make_node("Squeeze", ["Y", "one"], ["out"]),
    ]
    inits = [numpy_helper.from_array(idx([0, 0, G, I]), "split_shape"),
             numpy_helper.from_array(f(G, I, 6) * 0.3, "gw"),
             numpy_helper.from_array(idx([0, 0, G * 6]), "join_shape"),
             numpy_helper.from_array(idx([1]), "one")] + _gru_weights(H, G * 6)
    graph = helper.make_graph(nodes, "dfn_grouped_linear",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, "S", G * I])],
                              [helper.make_empty_tensor_value_info("out")], inits)
    feeds = {"x": f(1, T, G * I)}
    expected, got = _session_pair(graph, 13, feeds)
    check_close(got[0], expected[0])


def test_deepfilternet_erb_decoder_upsampling():
    """DeepFilterNet3's erb_dec: a depthwise ConvTranspose doubling the frequency axis
    (kernel [1, 3], strides [1, 2], pads [0, 1, 0, 1], output_padding [0, 1]) after a 1x1 Conv
    and a Relu, added to a skip of the doubled size."""
    C, T, F = 8, 6, 4
    nodes = [
        helper.make_node("Conv", ["x", "pw"], ["c"], kernel_shape=[1, 1]),
        helper.make_node("Relu", ["c"], ["r"]),
        helper.make_node("ConvTranspose", ["r", "tw"], ["up"], name="convt1/ConvTranspose", group=C,
                         kernel_shape=[1, 3], strides=[1, 2], pads=[0, 1, 0, 1], output_padding=[0, 1],
                         dilations=[1, 1]),
        helper.make_node("Add", ["up", "skip"], ["out"]),
    ]
    inits = [numpy_helper.from_array(f(C, C, 1, 1) * 0.3, "pw"), numpy_helper.from_array(f(C, 1, 1, 3), "tw")]
    graph = helper.make_graph(nodes, "erb_dec_up",
                              [helper.make_tensor_value_info("x", TensorProto.FLOAT, [1, C, "S", F]),
                               helper.make_tensor_value_info("skip", TensorProto.FLOAT, [1, C, "S", 2 * F])],
                              [helper.make_empty_tensor_value_info("out")], inits)
    feeds = {"x": f(1, C, T, F), "skip": f(1, C, T, 2 * F)}
    expected, got = _session_pair(graph, 12, feeds)
    assert got[0].shape == (1, C, T, 2 * F)
    check_close(got[0], expected[0])


def test_gtcrn_cache_update():
    """GTCRN's streaming export keeps its convolution cache [2, 1, C, K, F] as an input and an
    output: each frame's new rows are written by ScatterND, once whole slots (indices [[l]]),
    once element by element (indices [1, C, k, F, 4] from a constant), then read back."""
    C, K, F = 3, 4, 5
    slot = f(1, 1, C, K, F)
    pos = np.stack(np.meshgrid(np.arange(1), np.arange(C), np.arange(2, 4), np.arange(F), indexing="ij"), -1)
    nodes = [
        helper.make_node("Slice", ["cache", "s0", "s1", "ax"], ["layer"]),  # [1, 1, C, K, F]
        helper.make_node("Squeeze", ["layer", "ax"], ["layer3"]),  # [1, C, K, F]
        helper.make_node("ScatterND", ["layer3", "pos", "frame"], ["layer_new"], name="ScatterND_227"),
        helper.make_node("Unsqueeze", ["layer_new", "ax"], ["layer_new5"]),
        helper.make_node("ScatterND", ["cache", "which", "layer_new5"], ["cache_out"], name="ScatterND_631"),
        helper.make_node("ReduceSum", ["layer_new", "two"], ["summary"], keepdims=0),
    ]
    inits = [numpy_helper.from_array(idx([1]), "s0"), numpy_helper.from_array(idx([2]), "s1"),
             numpy_helper.from_array(idx([0]), "ax"), numpy_helper.from_array(pos.astype(np.int64), "pos"),
             numpy_helper.from_array(idx([[0]]), "which"), numpy_helper.from_array(idx([2]), "two")]
    graph = helper.make_graph(nodes, "gtcrn_cache",
                              [helper.make_tensor_value_info("cache", TensorProto.FLOAT, [2, 1, C, K, F]),
                               helper.make_tensor_value_info("frame", TensorProto.FLOAT, [1, C, 2, F])],
                              [helper.make_empty_tensor_value_info("cache_out"),
                               helper.make_empty_tensor_value_info("summary")], inits)
    feeds = {"cache": np.concatenate([f(1, 1, C, K, F), slot]), "frame": f(1, C, 2, F)}
    expected, got = _session_pair(graph, 13, feeds)
    for g, e in zip(got, expected):
        check_close(g, e)


def test_bad_einsum_in_a_loop_body_refused_at_load():
    body = helper.make_graph(
        [helper.make_node("Identity", ["c"], ["c_out"]),
         helper.make_node("Einsum", ["v"], ["v_out"], name="inner", equation="i->ii")],
        "body", [helper.make_tensor_value_info("it", TensorProto.INT64, []),
                 helper.make_tensor_value_info("c", TensorProto.BOOL, []),
                 helper.make_tensor_value_info("v", TensorProto.FLOAT, None)],
        [helper.make_tensor_value_info("c_out", TensorProto.BOOL, []),
         helper.make_tensor_value_info("v_out", TensorProto.FLOAT, None)])
    loop = helper.make_node("Loop", ["n", "", "x"], ["y"], name="loop", body=body)
    graph = helper.make_graph([loop], "g", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [3])],
                              [helper.make_empty_tensor_value_info("y")],
                              [numpy_helper.from_array(np.asarray(2, np.int64), "n")])
    m = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    with pytest.raises(gruinfer.InvalidModel, match="'inner' \\(Einsum\\): equation 'i->ii': .*repeats a letter"):
        gruinfer.InferenceSession(m)
