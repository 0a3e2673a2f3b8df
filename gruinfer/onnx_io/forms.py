"""onnx_io/forms.py: the opset-dependent forms of op arguments, read once: Slice bounds, the axes of Squeeze/Unsqueeze/Reduce ops, Split sizes, Clip bounds, Softmax's axis.

Each reader takes a node's decoded attributes, its inputs as the caller knows them (arrays for
constants, None for an omitted optional input, anything else for a value known only at run time)
and the opset, and returns the argument decoded, or UNKNOWN when it is an input the caller does
not know as a constant.
"""
import numpy as np

from ..errors import InvalidModel

# An argument given by an input whose value is not a constant here.
UNKNOWN = type("Unknown", (), {"__repr__": lambda self: "UNKNOWN", "__slots__": ()})()

# The first opset that takes each op's list argument as an input instead of an attribute.
LIST_INPUT_SINCE = {
    "Squeeze": 13, "Unsqueeze": 13, "Split": 13, "ReduceSum": 13, "ReduceMean": 18,
    "ReduceMax": 18, "ReduceMin": 18, "ReduceProd": 18, "ReduceSumSquare": 18, "ReduceL2": 18,
}
# The name of that argument.
LIST_NAME = {"Split": "split"}


def ints(value, what="an index, axis or size argument"):
    """A constant as a list of ints (a scalar becomes one entry); InvalidModel when it is not
    of an integer type (ONNX takes int32/int64 tensors there: a float one may hold nan)."""
    arr = np.asarray(value)
    if arr.dtype.kind not in "iub":
        raise InvalidModel(f"{what} holds {arr.dtype} values: ONNX takes integers there")
    return [int(v) for v in arr.reshape(-1)]


def _input(ins, i):
    return ins[i] if len(ins) > i else None


def list_arg(op, at, ins, opset):
    """The int list of Squeeze/Unsqueeze (axes), Split (split sizes) and the Reduce ops (axes):
    an attribute before opset LIST_INPUT_SINCE[op], the second input from then on.  A list of
    ints, None when absent, or UNKNOWN."""
    if opset < LIST_INPUT_SINCE[op]:
        value = at.get(LIST_NAME.get(op, "axes"))
        return None if value is None else ints(value)
    value = _input(ins, 1)
    if value is None:
        return None
    return ints(value) if isinstance(value, np.ndarray) else UNKNOWN


def slice_args(at, ins, opset):
    """A Slice's (starts, ends, axes, steps) as lists of ints of one length (axes and steps
    filled in), or UNKNOWN when a bound is not a constant or the lists do not match."""
    if opset < 10:
        starts, ends, axes, steps = at.get("starts"), at.get("ends"), at.get("axes"), None
        if starts is None or ends is None:
            return UNKNOWN
    else:
        given = [_input(ins, i) for i in range(1, 5)]
        if given[0] is None or given[1] is None or \
                any(v is not None and not isinstance(v, np.ndarray) for v in given):
            return UNKNOWN
        starts, ends, axes, steps = given
    starts, ends = ints(starts), ints(ends)
    axes = list(range(len(starts))) if axes is None else ints(axes)
    steps = [1] * len(starts) if steps is None else ints(steps)
    if not len(starts) == len(ends) == len(axes) == len(steps):
        return UNKNOWN
    return starts, ends, axes, steps


def clip_bounds(at, ins, opset):
    """A Clip's (lo, hi): attributes before opset 11, inputs from then on; each None when
    absent, a constant array (or attribute float), or UNKNOWN."""
    if opset < 11:
        return at.get("min"), at.get("max")
    return tuple(None if v is None else v if isinstance(v, (np.ndarray, np.generic, float, int)) else UNKNOWN
                 for v in (_input(ins, 1), _input(ins, 2)))


def softmax_axis(at, opset):
    """Softmax's and LogSoftmax's axis: -1 by default from opset 13, 1 before (where the input
    is seen flattened to 2-D at that axis)."""
    return at.get("axis", -1 if opset >= 13 else 1)


def softmax_axes(at, opset, rank):
    """The axes a Softmax or LogSoftmax normalises over: its axis from opset 13, that axis and
    every one after it before."""
    axis = softmax_axis(at, opset) % rank
    return {axis} if opset >= 13 else set(range(axis, rank))
