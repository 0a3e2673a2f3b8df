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


# The NumPy dtype of each ONNX element type a feed may declare.
NUMPY_TYPES = {"tensor(float)": np.float32, "tensor(double)": np.float64,
               "tensor(float16)": np.float16, "tensor(int32)": np.int32,
               "tensor(int64)": np.int64, "tensor(int8)": np.int8, "tensor(uint8)": np.uint8,
               "tensor(int16)": np.int16, "tensor(uint16)": np.uint16,
               "tensor(uint32)": np.uint32, "tensor(uint64)": np.uint64, "tensor(bool)": np.bool_}


def check_dtype(x, what, onnx_type, cast=False):
    """x with the element type its input declares, C-contiguous.  As in onnxruntime, an array of
    another dtype is refused; cast converts it where the kinds allow (any float or integer to a
    floating type, integers to an integer type when every value fits).  Lists and scalars, which
    have no dtype of their own, are converted so too, and so is the declared type in the other
    byte order (onnxruntime reads such an array's bytes as native: wrong numbers)."""
    want = NUMPY_TYPES.get(onnx_type)
    given = isinstance(x, np.ndarray)
    arr = as_array(x, what)
    if want is None or arr.dtype.newbyteorder("=") == want:
        return np.asarray(arr, dtype=want, order="C")
    kind, got = np.dtype(want).kind, arr.dtype.kind
    compatible = kind == got or (kind == "f" and got in "iu") or (kind in "iu" and got in "iu")
    if compatible and (cast or not given):
        if kind in "iu" and arr.size:
            info = np.iinfo(want)
            if arr.min() < info.min or arr.max() > info.max:
                raise InvalidArgument(f"{what}: values do not fit in {onnx_type}")
        return np.asarray(arr, dtype=want, order="C")
    hint = (f"; convert it (x.astype(np.{np.dtype(want).name})) or create the session with "
            "cast_feeds=True") if compatible else ""
    raise InvalidArgument(f"{what}: expected {onnx_type} ({np.dtype(want).name}), got dtype "
                          f"{arr.dtype}{hint}")


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


def coerce_feeds(declared, inputs, input_feed, required=True, where="feed", check_dims=True,
                 cast=False, loose=()):
    """input_feed ({name: array}) checked against the declared inputs (a dict name -> NodeArg:
    the graph inputs and the overridable initializers) and converted to the dtypes the engine
    takes.  inputs: the names of the graph inputs, which must all be fed when required.
    check_dims: fixed sizes of the declared shapes must match (streams let every axis vary but
    the rank).  cast: convert feeds of another floating or integer dtype (check_dtype).
    loose: names whose feeds are made arrays but not typed (the caller checks their dtype)."""
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
        arr = as_array(value, what) if name in loose else check_dtype(value, what, arg.type, cast)
        if arg.shape is not None:
            check_shape(arr, what, [d if check_dims and isinstance(d, int) and d > 0 else None
                                    for d in arg.shape])
        feeds[name] = arr
    missing = [n for n in inputs if n not in feeds] if required else []
    if missing:
        raise InvalidArgument("missing input(s) " + ", ".join(repr(m) for m in missing))
    return feeds


def check_output_names(outputs, wanted):
    """The outputs asked for (None or an empty list: all of them, in graph order, as in
    onnxruntime), each checked to be one."""
    if wanted is None or (isinstance(wanted, (list, tuple)) and not wanted):
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
