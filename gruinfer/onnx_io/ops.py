"""onnx_io/ops.py: what each non-GRU ONNX op gruinfer runs computes, in NumPy: the one definition, used to fold constants, to check proved cells and to run the slow path."""
import numpy as np

from . import budget, forms
from .op_sizes import output_bound
from .activations import OP_ACTIVATIONS, apply_op
from .limits import check_size, text
from .ops_conv import OPS_CONV
from .ops_tensor import OPS_TENSOR
from .proto import tensor_to_array


def _float(fn):
    def op(ins, at, opset):
        with np.errstate(over="ignore", under="ignore"):
            return [np.asarray(fn(ins[0], at), dtype=ins[0].dtype)]
    return op


def _binary(fn, out=None):
    """Two inputs of one dtype, broadcast; the result in that dtype (or `out`: bool comparisons)."""
    def op(ins, at, opset):
        a, b = ins
        if a.dtype != b.dtype:
            raise ValueError(f"inputs have different dtypes {a.dtype} and {b.dtype}")
        with np.errstate(over="ignore", under="ignore"):
            return [np.asarray(fn(a, b), dtype=out or a.dtype)]
    return op


def _div(a, b):
    if a.dtype.kind in "iu":  # integer division truncates toward zero, as onnxruntime does
        return np.trunc(a.astype(np.float64) / b).astype(a.dtype)
    return a / b


def _softmax_axis(x, at, opset):
    """(array viewed so softmax runs over `axis`, the axis, restore): opset < 13 flattens to 2-D."""
    axis = forms.softmax_axis(at, opset)
    if not -x.ndim <= axis < max(x.ndim, 1):
        raise ValueError(f"axis {axis} is out of range for rank {x.ndim}")
    if opset >= 13:
        return x, axis, x.shape
    axis %= max(x.ndim, 1)
    return x.reshape(int(np.prod(x.shape[:axis])), -1), 1, x.shape


def _softmax(ins, at, opset, log=False):
    x, axis, shape = _softmax_axis(ins[0], at, opset)
    z = x - x.max(axis=axis, keepdims=True)
    s = np.exp(z).sum(axis=axis, keepdims=True)
    y = z - np.log(s) if log else np.exp(z) / s
    return [y.reshape(shape).astype(ins[0].dtype)]


def _gemm(ins, at, opset):
    a, b = ins[0], ins[1]
    a = a.T if at.get("transA", 0) else a
    b = b.T if at.get("transB", 0) else b
    y = at.get("alpha", 1.0) * (a @ b)
    if len(ins) > 2 and ins[2] is not None:
        y = y + at.get("beta", 1.0) * ins[2]
    return [y.astype(ins[0].dtype)]


def _clip(ins, at, opset):
    x = ins[0]
    lo, hi = forms.clip_bounds(at, ins, opset)
    if lo is not None:
        x = np.maximum(x, np.asarray(lo, x.dtype))
    if hi is not None:
        x = np.minimum(x, np.asarray(hi, x.dtype))
    return [np.array(x, dtype=ins[0].dtype)]


def _dropout(ins, at, opset):
    # Inference: the identity (training_mode, an input from opset 12, must be false or absent).
    if len(ins) > 2 and ins[2] is not None and bool(np.asarray(ins[2])):
        raise ValueError("training_mode=True is not supported (inference only)")
    return [ins[0], np.ones(ins[0].shape, bool)]


def _transpose(ins, at, opset):
    perm = at.get("perm")
    return [np.transpose(ins[0], perm if perm else None)]


def reshape_target(in_shape, shape, allowzero=0):
    """The output shape of ONNX Reshape: 0 copies the input dim (unless allowzero), -1 is inferred."""
    out = [int(d) for d in np.asarray(shape).reshape(-1)]
    for i, d in enumerate(out):
        if d == 0 and not allowzero:
            if i >= len(in_shape):
                raise ValueError(f"shape entry {i} is 0 but the input has rank {len(in_shape)}")
            out[i] = in_shape[i]
    return out


def _reshape(ins, at, opset):
    return [ins[0].reshape(reshape_target(ins[0].shape, ins[1], at.get("allowzero", 0)))]


def _squeeze(ins, at, opset):
    x = ins[0]
    axes = forms.list_arg("Squeeze", at, ins, opset)
    if axes is None:
        axes = [i for i, d in enumerate(x.shape) if d == 1]
    axes = [a % x.ndim for a in axes]
    for a in axes:
        if x.shape[a] != 1:
            raise ValueError(f"cannot squeeze axis {a} of size {x.shape[a]} (shape {list(x.shape)})")
    return [np.squeeze(x, axis=tuple(axes))]


def _unsqueeze(ins, at, opset):
    x = ins[0]
    axes = forms.list_arg("Unsqueeze", at, ins, opset)
    if axes is None:
        raise ValueError("Unsqueeze needs its axes")
    rank = x.ndim + len(axes)
    return [np.expand_dims(x, tuple(sorted(a % rank for a in axes)))]


def _slice(ins, at, opset):
    x = ins[0]
    args = forms.slice_args(at, ins, opset)
    if args is forms.UNKNOWN:
        raise ValueError("starts, ends, axes and steps must be given, of one length")
    index = [slice(None)] * x.ndim
    for s, e, a, st in zip(*args):
        if st == 0:
            raise ValueError("Slice steps must be nonzero")
        # Python slicing clamps out-of-range bounds exactly as the ONNX spec does.
        index[a % x.ndim] = slice(int(s), int(e), int(st))
    return [x[tuple(index)]]


def _concat(ins, at, opset):
    return [np.concatenate(ins, axis=at["axis"])]


def _split(ins, at, opset):
    x, axis = ins[0], at.get("axis", 0)
    split = forms.list_arg("Split", at, ins, opset)
    if split is None:
        n = at["num_outputs"]  # the readers (graph.py, rewrite/outer.py) set it to the output count
        size = -(-x.shape[axis] // n)
        split = [min(size, x.shape[axis] - i * size) for i in range(n)]
    if sum(split) != x.shape[axis]:
        raise ValueError(f"split sizes {split} do not add up to axis {axis} of size {x.shape[axis]}")
    if len(split) != at.get("num_outputs", len(split)):
        raise ValueError(f"split has {len(split)} sizes but the node has {at['num_outputs']} outputs")
    return np.split(x, np.cumsum(split)[:-1], axis=axis)


def _expand(ins, at, opset):
    x, shape = ins[0], np.asarray(ins[1])
    if shape.dtype.kind not in "iu" or shape.ndim != 1 or shape.size > 32 or (shape < 0).any():
        raise ValueError(f"shape must be a 1-D int64 tensor of at most 32 sizes >= 0, got {shape!r}")
    out = check_size(np.broadcast_shapes(x.shape, tuple(int(d) for d in shape)))
    return [np.array(np.broadcast_to(x, out))]


def _range(ins, at, opset):
    start, limit, delta = (np.asarray(v).reshape(()) for v in ins)
    if delta == 0:
        raise ValueError("delta must not be 0")
    n = max(int(np.ceil((limit - start) / delta)), 0)
    check_size([n])
    return [(start + delta * np.arange(n)).astype(start.dtype)]


def _cast(ins, at, opset):
    from onnx import helper

    return [ins[0].astype(helper.tensor_dtype_to_np_dtype(at["to"]))]


def _layer_norm(ins, at, opset):
    x, axis, eps = ins[0], at.get("axis", -1), at.get("epsilon", 1e-5)
    axes = tuple(range(axis % x.ndim, x.ndim))
    xd = x.astype(np.float64 if x.dtype == np.float64 else np.float32)
    mean = xd.mean(axis=axes, keepdims=True)
    inv = 1 / np.sqrt(((xd - mean) ** 2).mean(axis=axes, keepdims=True) + eps)
    y = (xd - mean) * inv * ins[1]
    if len(ins) > 2 and ins[2] is not None:
        y = y + ins[2]
    return [y.astype(x.dtype), mean, inv]


def _gather(ins, at, opset):
    x, idx, axis = ins[0], np.asarray(ins[1]), at.get("axis", 0)
    n = x.shape[axis]
    if idx.size and (idx.min() < -n or idx.max() >= n):
        raise ValueError(f"indices must lie in [{-n}, {n - 1}] for axis {axis} of size {n}")
    return [np.take(x, np.where(idx < 0, idx + n, idx), axis=axis)]


def _shape(ins, at, opset):
    shape = ins[0].shape
    return [np.asarray(shape[at.get("start", 0):at.get("end", len(shape))], dtype=np.int64)]


def _constant_of_shape(ins, at, opset):
    value = tensor_to_array(at["value"], "ConstantOfShape value") if "value" in at else \
        np.zeros(1, np.float32)
    return [np.full(check_size([int(d) for d in np.asarray(ins[0]).reshape(-1)]), value.reshape(-1)[0],
                    dtype=value.dtype)]


def _reverse_sequence(ins, at, opset):
    x, lens = ins
    t_ax, b_ax = at.get("time_axis", 0), at.get("batch_axis", 1)
    if {t_ax, b_ax} != {0, 1} or lens.shape != (x.shape[b_ax],):
        raise ValueError(f"time_axis/batch_axis must be 0 and 1 and sequence_lens [{x.shape[b_ax]}]")
    if lens.size and (lens.min() < 0 or lens.max() > x.shape[t_ax]):
        raise ValueError(f"sequence_lens values must lie in [0, {x.shape[t_ax]}]")
    out = x.copy()
    for b, n in enumerate(lens.tolist()):
        idx = [slice(None)] * x.ndim
        idx[b_ax], idx[t_ax] = b, slice(0, n)
        out[tuple(idx)] = x[tuple(idx)][::-1]
    return [out]


def _reduce(name, fn):
    """A Reduce* op (its axes: forms.list_arg)."""
    def op(ins, at, opset):
        x = ins[0]
        axes = forms.list_arg(name, at, ins, opset)
        if not axes and at.get("noop_with_empty_axes", 0):
            return [x]
        axes = tuple(range(x.ndim)) if not axes else tuple(a % max(x.ndim, 1) for a in axes)
        with np.errstate(over="ignore", under="ignore"):
            y = fn(x, axes, bool(at.get("keepdims", 1)))
        return [np.asarray(y, dtype=x.dtype)]
    return op


def _variadic(fn):
    """Min, Max, Sum, Mean: element-wise over any number of inputs of one dtype, broadcast."""
    def op(ins, at, opset):
        if any(a.dtype != ins[0].dtype for a in ins):
            raise ValueError("inputs have different dtypes " + ", ".join(str(a.dtype) for a in ins))
        return [np.asarray(fn(ins), dtype=ins[0].dtype)]
    return op


def _logical(fn):
    def op(ins, at, opset):
        if any(a.dtype != np.bool_ for a in ins):
            raise ValueError("inputs must be bool, got " + ", ".join(str(a.dtype) for a in ins))
        return [np.asarray(fn(*ins), dtype=bool)]
    return op


def _where(ins, at, opset):
    c, a, b = ins
    if c.dtype != np.bool_ or a.dtype != b.dtype:
        raise ValueError(f"condition must be bool and the values of one dtype, got {c.dtype}, "
                         f"{a.dtype} and {b.dtype}")
    return [np.where(c, a, b).astype(a.dtype)]


def _erf(x):
    import math
    return np.vectorize(math.erf, otypes=[np.float64])(x.astype(np.float64))


def _gelu(x, at):
    if at.get("approximate", b"none") in (b"tanh", "tanh"):
        return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x ** 3)))
    return 0.5 * x * (1 + _erf(x / np.sqrt(2)))


def _selu(x, at):
    alpha, gamma = at.get("alpha", 1.67326319217681884765625), at.get("gamma", 1.05070102214813232421875)
    return gamma * np.where(x > 0, x, alpha * np.expm1(np.minimum(x, 0)))


def _prelu(ins, at, opset):
    x, slope = ins
    return [np.where(x >= 0, x, x * slope).astype(x.dtype)]


def _batch_norm(ins, at, opset):
    x, scale, bias, mean, var = ins[:5]
    if at.get("training_mode", 0):
        raise ValueError("training_mode=1 is not supported (inference only)")
    shape = [1, -1] + [1] * (x.ndim - 2)
    inv = 1 / np.sqrt(var.astype(np.float64) + at.get("epsilon", 1e-5))
    y = (x - mean.reshape(shape)) * (scale * inv).reshape(shape) + bias.reshape(shape)
    return [y.astype(x.dtype)]


def _global_average_pool(ins, at, opset):
    x = ins[0]
    return [x.mean(axis=tuple(range(2, x.ndim)), keepdims=True).astype(x.dtype)]


def _tile(ins, at, opset):
    reps = [int(r) for r in np.asarray(ins[1]).reshape(-1)]
    if len(reps) != ins[0].ndim or min(reps, default=0) < 0:
        raise ValueError(f"repeats {reps} must be {ins[0].ndim} sizes >= 0")
    check_size([r * d for r, d in zip(reps, ins[0].shape)])
    return [np.tile(ins[0], reps)]


def _arg(fn):
    def op(ins, at, opset):
        x, axis = ins[0], at.get("axis", 0)
        if at.get("select_last_index", 0):
            flipped = np.flip(x, axis=axis)
            y = x.shape[axis] - 1 - fn(flipped, axis=axis)
        else:
            y = fn(x, axis=axis)
        if at.get("keepdims", 1):
            y = np.expand_dims(y, axis)
        return [np.asarray(y, dtype=np.int64)]
    return op


def _cumsum(ins, at, opset):
    x, axis = ins[0], int(np.asarray(ins[1]).reshape(()))
    y = np.flip(x, axis) if at.get("reverse", 0) else x
    y = np.cumsum(y, axis=axis, dtype=x.dtype)
    if at.get("exclusive", 0):
        y = y - (np.flip(x, axis) if at.get("reverse", 0) else x)
    return [np.flip(y, axis) if at.get("reverse", 0) else y]


def _pad(ins, at, opset):
    x = ins[0]
    mode = text(at.get("mode", b"constant"))
    if opset < 11:
        pads, value, axes = at["pads"], at.get("value", 0.0), None
    else:
        pads = forms.ints(ins[1])
        value = np.asarray(ins[2]).reshape(()) if len(ins) > 2 and ins[2] is not None else 0
        axes = forms.ints(ins[3]) if len(ins) > 3 and ins[3] is not None else None
    axes = list(range(x.ndim)) if axes is None else [a % x.ndim for a in axes]
    if len(pads) != 2 * len(axes):
        raise ValueError(f"pads has {len(pads)} entries, expected {2 * len(axes)}")
    width = [(0, 0)] * x.ndim
    for i, a in enumerate(axes):
        width[a] = (int(pads[i]), int(pads[i + len(axes)]))
    check_size([d + b + e for d, (b, e) in zip(x.shape, width)])
    if any(b < 0 or e < 0 for b, e in width):  # negative pads crop
        crop = tuple(slice(max(-b, 0), x.shape[i] - max(-e, 0)) for i, (b, e) in enumerate(width))
        x, width = x[crop], [(max(b, 0), max(e, 0)) for b, e in width]
    if mode == "constant":
        return [np.pad(x, width, mode="constant", constant_values=value).astype(x.dtype)]
    if mode in ("reflect", "edge", "wrap"):
        return [np.pad(x, width, mode=mode)]
    raise ValueError(f"mode {mode!r} must be constant, reflect, edge or wrap")


def _flatten(ins, at, opset):
    x, axis = ins[0], at.get("axis", 1)
    axis += x.ndim if axis < 0 else 0
    return [x.reshape(int(np.prod(x.shape[:axis])), int(np.prod(x.shape[axis:])))]


def _topk(ins, at, opset):
    x = ins[0]
    k = int(np.asarray(at["k"] if opset < 10 else ins[1]).reshape(-1)[0])
    axis = at.get("axis", -1) % x.ndim
    if not 0 <= k <= x.shape[axis]:
        raise ValueError(f"k={k} is out of range for axis {axis} of size {x.shape[axis]}")
    largest = at.get("largest", 1)
    # a stable sort keeps equal values in index order, as onnxruntime returns them
    order = np.argsort(-x if largest else x, axis=axis, kind="stable")
    idx = np.take(order, np.arange(k), axis=axis)
    return [np.take_along_axis(x, idx, axis=axis), idx.astype(np.int64)]


def _element_index(x, idx, axis):
    """The full index of every element of idx into x along axis (indices may be smaller than x on
    the other axes, as ONNX allows), negative indices counted from the end."""
    n = x.shape[axis]
    if idx.ndim != x.ndim or any(i > d for i, d in zip(idx.shape, x.shape)) or (
            idx.size and (idx.min() < -n or idx.max() >= n)):
        raise ValueError(f"indices of shape {list(idx.shape)} must have rank {x.ndim}, fit in "
                         f"{list(x.shape)} and lie in [{-n}, {n - 1}] along axis {axis}")
    grid = list(np.indices(idx.shape, sparse=True))
    grid[axis] = np.where(idx < 0, idx + n, idx)
    return tuple(grid)


def _scatter_elements(ins, at, opset):
    x, idx, upd = ins
    axis, reduction = at.get("axis", 0) % x.ndim, at.get("reduction", b"none")
    if reduction not in (b"none", "none"):
        raise ValueError(f"reduction {reduction!r} is not supported")
    if upd.shape != idx.shape:
        raise ValueError(f"updates of shape {list(upd.shape)} must match indices {list(idx.shape)}")
    out = x.copy()
    out[_element_index(x, idx, axis)] = upd
    return [out]


def _gather_elements(ins, at, opset):
    x, idx = ins
    return [x[_element_index(x, idx, at.get("axis", 0) % x.ndim)]]


# op -> fn(inputs (None for an omitted optional input), attributes, opset) -> list of outputs.
OPS = {
    "Gemm": _gemm,
    "MatMul": _binary(np.matmul),
    "Add": _binary(np.add),
    "Sub": _binary(np.subtract),
    "Mul": _binary(np.multiply),
    "Div": _binary(_div),
    "Softmax": _softmax,
    "LogSoftmax": lambda ins, at, opset: _softmax(ins, at, opset, log=True),
    "Clip": _clip,
    "Identity": lambda ins, at, opset: [ins[0]],
    "Dropout": _dropout,
    "Transpose": _transpose,
    "Reshape": _reshape,
    "Squeeze": _squeeze,
    "Unsqueeze": _unsqueeze,
    "Slice": _slice,
    "Concat": _concat,
    "Split": _split,
    "Expand": _expand,
    "Cast": _cast,
    "LayerNormalization": _layer_norm,
    "Gather": _gather,
    "Shape": _shape,
    "ConstantOfShape": _constant_of_shape,
    "ReverseSequence": _reverse_sequence,  # Keras go_backwards / Bidirectional
    "Range": _range,
    # beyond issue 5's list: what exporters decompose LayerNormalization into before opset 17
    "ReduceMean": _reduce("ReduceMean", lambda x, a, k: x.mean(axis=a, keepdims=k)),
    "Pow": lambda ins, at, opset: [np.power(ins[0], ins[1]).astype(ins[0].dtype)],
    "Sqrt": _float(lambda x, at: np.sqrt(x)),
    "Neg": lambda ins, at, opset: [np.negative(ins[0])],
    "Exp": _float(lambda x, at: np.exp(x)),
    "Log": _float(lambda x, at: np.log(x)),
    # what Keras (tf2onnx) and PyTorch heads, masks and decomposed norms also emit
    "Abs": lambda ins, at, opset: [np.abs(ins[0])],
    "Sign": lambda ins, at, opset: [np.sign(ins[0])],
    "Floor": _float(lambda x, at: np.floor(x)),
    "Ceil": _float(lambda x, at: np.ceil(x)),
    "Round": _float(lambda x, at: np.round(x)),
    "Reciprocal": _float(lambda x, at: 1 / x),
    "Erf": _float(lambda x, at: _erf(x)),
    "Gelu": _float(_gelu),
    "Selu": _float(_selu),
    "HardSwish": _float(lambda x, at: x * np.clip(x / 6 + 0.5, 0, 1)),
    "Mish": _float(lambda x, at: x * np.tanh(np.logaddexp(0, x))),
    "Celu": _float(lambda x, at: np.maximum(x, 0) + np.minimum(
        0, at.get("alpha", 1.0) * np.expm1(np.minimum(x, 0) / at.get("alpha", 1.0)))),
    "Flatten": _flatten,
    "NonZero": lambda ins, at, opset: [np.array(np.nonzero(ins[0]), dtype=np.int64).reshape(ins[0].ndim, -1)],
    "TopK": _topk,
    "ScatterElements": _scatter_elements,
    "GatherElements": _gather_elements,
    "PRelu": _prelu,
    "Min": _variadic(lambda ins: np.minimum.reduce(np.broadcast_arrays(*ins))),
    "Max": _variadic(lambda ins: np.maximum.reduce(np.broadcast_arrays(*ins))),
    "Sum": _variadic(lambda ins: np.sum(np.broadcast_arrays(*ins), axis=0)),
    "Mean": _variadic(lambda ins: np.mean(np.broadcast_arrays(*ins), axis=0)),
    "Equal": _binary(np.equal, bool),
    "Less": _binary(np.less, bool),
    "LessOrEqual": _binary(np.less_equal, bool),
    "Greater": _binary(np.greater, bool),
    "GreaterOrEqual": _binary(np.greater_equal, bool),
    "Not": _logical(np.logical_not),
    "And": _logical(np.logical_and),
    "Or": _logical(np.logical_or),
    "Xor": _logical(np.logical_xor),
    "Where": _where,
    "ReduceSum": _reduce("ReduceSum", lambda x, a, k: x.sum(axis=a, keepdims=k)),
    "ReduceMax": _reduce("ReduceMax", lambda x, a, k: x.max(axis=a, keepdims=k)),
    "ReduceMin": _reduce("ReduceMin", lambda x, a, k: x.min(axis=a, keepdims=k)),
    "ReduceProd": _reduce("ReduceProd", lambda x, a, k: x.prod(axis=a, keepdims=k)),
    "ReduceSumSquare": _reduce("ReduceSumSquare", lambda x, a, k: (x * x).sum(axis=a, keepdims=k)),
    "ReduceL2": _reduce("ReduceL2", lambda x, a, k: np.sqrt((x * x).sum(axis=a, keepdims=k))),
    "ArgMax": _arg(np.argmax),
    "ArgMin": _arg(np.argmin),
    "GlobalAveragePool": _global_average_pool,
    "BatchNormalization": _batch_norm,
    "Tile": _tile,
    "CumSum": _cumsum,
    "Pad": _pad,
}
# Convolutions (ops_conv.py), Einsum and ScatterND (ops_tensor.py).
OPS.update(OPS_CONV)
OPS.update(OPS_TENSOR)
# The activation ops, from the one activation table.
OPS.update({name: (lambda act: lambda ins, at, opset: [apply_op(act, ins[0], at)])(act)
            for name, act in OP_ACTIVATIONS.items()})


class OpError(Exception):
    """An op refused its inputs (a shape, dtype, value or attribute it cannot take); the
    message says why, the caller names the node."""


def apply(op, ins, at, opset):
    """The outputs of ONNX op `op` (a key of OPS) on inputs ins (None for an omitted optional
    input) with decoded attributes at: a list of arrays, or OpError.  While a model loads
    (budget.loading), an op whose outputs would pass the load budget is refused before it runs."""
    ins = list(ins)
    while ins and ins[-1] is None:
        ins.pop()
    try:
        budget.before_fold(*output_bound(op, ins, at))
        outs = [None if v is None else np.asarray(v) for v in OPS[op](ins, at, opset)]
        budget.charge_fold(sum(v.nbytes for v in outs if v is not None))
        return outs
    except budget.BudgetExceeded as e:
        raise OpError(str(e)) from None
    except KeyError as e:
        raise OpError(f"missing attribute {e}") from None
    except AttributeError:  # an optional input left empty where the op needs it
        raise OpError("a required input is missing") from None
    except (ValueError, IndexError, TypeError, ArithmeticError) as e:
        raise OpError(str(e)) from None
