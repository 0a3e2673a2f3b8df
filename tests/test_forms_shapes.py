"""The one reader of opset-dependent op arguments (onnx_io/forms.py) and the one shape tracker (onnx_io/shapes.py), case by case."""
import numpy as np
import pytest

from gruinfer.onnx_io import forms, shapes
from gruinfer.onnx_io.shapes import Dims


def i64(*v):
    return np.array(v, np.int64)


@pytest.mark.parametrize("op, at, ins, opset, want", [
    ("Squeeze", {"axes": [1]}, [None], 11, [1]),
    ("Squeeze", {}, [None, i64(0, -1)], 13, [0, -1]),
    ("Squeeze", {}, [None], 13, None),                      # absent: every size-1 axis
    ("Squeeze", {}, [None, "run-time"], 13, forms.UNKNOWN),
    ("Unsqueeze", {"axes": [0]}, [None, i64(2)], 12, [0]),  # before 13 the attribute counts
    ("Split", {"split": [2, 3]}, [None], 11, [2, 3]),
    ("Split", {}, [None, i64(2, 3)], 13, [2, 3]),
    ("ReduceMean", {"axes": [-1]}, [None], 17, [-1]),       # an input only from 18
    ("ReduceMean", {}, [None, i64(-1)], 18, [-1]),
    ("ReduceSum", {}, [None, i64(1)], 13, [1]),
])
def test_list_arguments_by_opset(op, at, ins, opset, want):
    assert forms.list_arg(op, at, ins, opset) == want


def test_slice_arguments_in_either_form():
    assert forms.slice_args({"starts": [1], "ends": [3]}, [None], 9) == ([1], [3], [0], [1])
    assert forms.slice_args({}, [None, i64(-1), i64(2**62), i64(0), i64(1)], 10) == \
        ([-1], [2**62], [0], [1])
    assert forms.slice_args({}, [None, i64(0, 1), i64(2, 3)], 13) == ([0, 1], [2, 3], [0, 1], [1, 1])
    assert forms.slice_args({}, [None, i64(0), "run-time"], 13) is forms.UNKNOWN
    assert forms.slice_args({}, [None, i64(0, 1), i64(2)], 13) is forms.UNKNOWN  # lengths differ
    assert forms.slice_args({"ends": [3]}, [None], 9) is forms.UNKNOWN


def test_clip_bounds_and_softmax_axes():
    assert forms.clip_bounds({"min": -1.0}, [None], 6) == (-1.0, None)
    lo, hi = forms.clip_bounds({}, [None, np.float32(0), None], 13)
    assert lo == 0 and hi is None
    assert forms.clip_bounds({}, [None, "run-time"], 13)[0] is forms.UNKNOWN
    assert forms.softmax_axes({}, 13, 3) == {2} and forms.softmax_axes({}, 11, 3) == {1, 2}
    assert forms.softmax_axes({"axis": 0}, 11, 3) == {0, 1, 2}


def test_shape_arithmetic_follows_symbols():
    s = shapes.shape_of(["T", "N", 8], {})
    assert s == Dims(("T", "N", 8))
    assert shapes.shape_of(["T", "N", 8], {"start": 1}) == Dims(("N", 8))
    last = shapes.track("Gather", {"axis": 0}, [s, np.array(-1, np.int64)], 13)
    assert last == Dims((8,), scalar=True) and last.known and last.array().shape == ()
    assert shapes.track("Slice", {}, [s, i64(0), i64(2)], 13) == Dims(("T", "N"))
    cat = shapes.track("Concat", {"axis": 0}, [Dims(("T", "N")), i64(-1)], 13)
    assert cat == Dims(("T", "N", -1)) and not cat.known
    assert shapes.track("Mul", {}, [Dims(("T", 4)), i64(1, 2)], 13) == Dims(("T", 8))
    assert shapes.track("Mul", {}, [Dims(("T", 4)), i64(2, 2)], 13) == Dims((None, 8))
    eq = shapes.track("Equal", {}, [Dims(("T", 4)), i64(-1, 4)], 13)
    assert eq == Dims((False, True))
    assert shapes.track("Where", {}, [eq, i64(1, 1), Dims(("T", 4))], 13) == Dims(("T", 1))


def test_shape_ranks_and_what_the_tracker_leaves():
    one = Dims(("N",))
    sq = shapes.track("Squeeze", {}, [one, i64(0)], 13)
    assert sq == Dims(("N",), scalar=True)
    assert shapes.track("Unsqueeze", {}, [sq, i64(0)], 13) == one
    assert shapes.track("Reshape", {}, [one, np.zeros(0, np.int64)], 13) == sq
    assert shapes.track("Reshape", {}, [Dims(("T", "N")), i64(-1)], 13) == Dims(("T", "N"))
    assert shapes.track("Reshape", {}, [Dims(("T", "N")), i64(1, 2)], 13) is None
    assert shapes.track("Cast", {"to": 7}, [one], 13) == one
    assert shapes.track("Cast", {"to": 1}, [one], 13) is None        # a float is no size
    assert shapes.track("Gather", {}, [one, i64(3)], 13) is None     # out of range
    assert shapes.track("Add", {}, [one, i64(1)], 13) is None
    assert shapes.size_equal("T", "T") is True and shapes.size_equal("T", -1) is False
    assert shapes.size_equal("T", 5) is None and shapes.size_equal(3, 3) is True
