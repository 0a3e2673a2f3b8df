"""feeds.py: turning user arrays into the dtypes and shapes the C core takes, or a clear InvalidArgument."""
import numpy as np

from .errors import InvalidArgument


def _shape_text(shape):
    return "[" + ", ".join("?" if d is None else str(d) for d in shape) + "]"


def coerce_float(x, what, shape=None):
    """x as a C-contiguous float32 array; floating dtypes are converted, others refused.

    shape: expected shape, with None for a free axis; checked when given."""
    arr = _asarray(x, what)
    if arr.dtype.kind != "f":
        raise InvalidArgument(f"{what}: expected tensor(float) (float32), got dtype {arr.dtype}")
    if shape is not None:
        check_shape(arr, what, shape)
    return np.asarray(arr, dtype=np.float32, order="C")


def coerce_int32(x, what, shape=None):
    """x as a C-contiguous int32 array; integer dtypes are converted when the values fit."""
    arr = _asarray(x, what)
    if arr.dtype.kind not in "iu":
        raise InvalidArgument(f"{what}: expected tensor(int32), got dtype {arr.dtype}")
    if arr.dtype != np.int32 and arr.size and (arr.min() < -(2**31) or arr.max() >= 2**31):
        raise InvalidArgument(f"{what}: values do not fit in int32")
    if shape is not None:
        check_shape(arr, what, shape)
    return np.asarray(arr, dtype=np.int32, order="C")


def _asarray(x, what):
    try:
        return np.asarray(x)
    except ValueError as e:  # ragged nested lists
        raise InvalidArgument(f"{what}: not a rectangular array: {e}") from None


def check_shape(arr, what, shape):
    """Raise InvalidArgument unless arr has len(shape) axes matching every non-None entry."""
    if arr.ndim != len(shape) or any(e is not None and e != g for e, g in zip(shape, arr.shape)):
        raise InvalidArgument(
            f"{what}: expected shape {_shape_text(shape)}, got {_shape_text(arr.shape)}")
