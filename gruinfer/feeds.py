"""feeds.py: user arrays checked against what a model declares and turned into the dtypes and shapes the engine takes, or a clear InvalidArgument."""
import numpy as np

from .errors import InvalidArgument


def _shape_text(shape):
    return "[" + ", ".join("?" if d is None else str(d) for d in shape) + "]"


def coerce_float(x, what, shape=None):
    """x as a C-contiguous float32 array; floating dtypes are converted, others refused.

    shape: expected shape, with None for a free axis; checked when given."""
    arr = as_array(x, what)
    if arr.dtype.kind != "f":
        raise InvalidArgument(f"{what}: expected tensor(float) (float32), got dtype {arr.dtype}")
    if shape is not None:
        check_shape(arr, what, shape)
    return np.asarray(arr, dtype=np.float32, order="C")


def coerce_int32(x, what, shape=None):
    """x as a C-contiguous int32 array; integer dtypes are converted when the values fit."""
    arr = as_array(x, what)
    if arr.dtype.kind not in "iu":
        raise InvalidArgument(f"{what}: expected tensor(int32), got dtype {arr.dtype}")
    if arr.dtype != np.int32 and arr.size and (arr.min() < -(2**31) or arr.max() >= 2**31):
        raise InvalidArgument(f"{what}: values do not fit in int32")
    if shape is not None:
        check_shape(arr, what, shape)
    return np.asarray(arr, dtype=np.int32, order="C")


def as_array(x, what):
    """np.asarray(x), or InvalidArgument naming `what` when x is not rectangular."""
    try:
        return np.asarray(x)
    except ValueError as e:  # ragged nested lists
        raise InvalidArgument(f"{what}: not a rectangular array: {e}") from None


def check_shape(arr, what, shape):
    """Raise InvalidArgument unless arr has len(shape) axes matching every non-None entry."""
    if arr.ndim != len(shape) or any(e is not None and e != g for e, g in zip(shape, arr.shape)):
        raise InvalidArgument(
            f"{what}: expected shape {_shape_text(shape)}, got {_shape_text(arr.shape)}")


def coerce_feeds(declared, inputs, input_feed, required=True, where="feed", check_dims=True):
    """input_feed ({name: array}) checked against the declared inputs (a dict name -> NodeArg:
    the graph inputs and the overridable initializers) and converted to the dtypes the engine
    takes.  inputs: the names of the graph inputs, which must all be fed when required.
    check_dims: fixed sizes of the declared shapes must match (streams let every axis vary but
    the rank)."""
    if not isinstance(input_feed, dict):
        raise InvalidArgument(f"input_feed must be a dict of name -> array, got "
                              f"{type(input_feed).__name__}")
    feeds = {}
    for name, value in input_feed.items():
        arg = declared.get(name)
        if arg is None:
            raise InvalidArgument(f"{where}: {name!r} is not a graph input; inputs are "
                                  + ", ".join(repr(n) for n in inputs))
        what = f"input {name!r}"
        if arg.type == "tensor(int32)":
            arr = coerce_int32(value, what)
        elif arg.type == "tensor(float)":
            arr = coerce_float(value, what)
        else:
            arr = as_array(value, what)
        if arg.shape is not None:
            check_shape(arr, what, [d if check_dims and isinstance(d, int) and d > 0 else None
                                    for d in arg.shape])
        feeds[name] = arr
    missing = [n for n in inputs if n not in feeds] if required else []
    if missing:
        raise InvalidArgument("missing input(s) " + ", ".join(repr(m) for m in missing))
    return feeds


def check_output_names(outputs, wanted):
    """The outputs asked for (None: all of them, in graph order), each checked to be one."""
    if wanted is None:
        return list(outputs)
    if isinstance(wanted, (str, bytes)):
        raise InvalidArgument("output_names must be a list of names or None, not a string")
    try:
        names = list(wanted)
    except TypeError:
        raise InvalidArgument(f"output_names must be a list of names or None, got "
                              f"{type(wanted).__name__}") from None
    for n in names:
        if not isinstance(n, str) or n not in outputs:
            raise InvalidArgument(
                f"{n!r} is not a graph output; outputs are " + ", ".join(map(repr, outputs)))
    return names
