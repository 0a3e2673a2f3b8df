"""onnx_io/shapes.py: the one shape tracker: int tensors computed from shapes (Shape, Gather, Slice, Concat, Mul, Equal, Where, ...) followed entry by entry, with sizes known, symbolic or unknown."""
from typing import NamedTuple

import numpy as np

from . import forms

# Cast targets that keep a size a size (int32, int64).
INT_TYPES = (6, 7)


class Dims(NamedTuple):
    """A 1-D int tensor computed from shapes (0-D when scalar, one entry).  Entries are ints,
    symbols (any other value: a named axis such as "T", a loop count) or None (unknown);
    Equal gives bools."""
    entries: tuple
    scalar: bool = False

    @property
    def known(self):
        """Every entry an int: the tensor is a constant (see array)."""
        return all(isinstance(e, (int, np.integer)) and not isinstance(e, bool) for e in self.entries)

    def array(self):
        """The constant a known Dims is, as ONNX holds shapes (int64)."""
        a = np.asarray([int(e) for e in self.entries], np.int64)
        return a.reshape(()) if self.scalar else a


def shape_of(entries, at):
    """Shape(x) of a value with these per-axis entries (its start and end attributes applied)."""
    return Dims(tuple(entries[at.get("start", 0):at.get("end", len(entries))]))


def entries_of(v):
    """The entries of a Dims or of an int constant of rank <= 1, else None."""
    if isinstance(v, Dims):
        return list(v.entries)
    if isinstance(v, np.ndarray) and v.dtype.kind in "iu" and v.ndim <= 1:
        return [int(e) for e in v.reshape(-1)]
    return None


def _scalar(v):
    return isinstance(v, Dims) and v.scalar or isinstance(v, np.ndarray) and v.ndim == 0


def size_equal(p, q):
    """Whether two shape entries are equal: known for two ints, one symbol with itself, or a
    symbol (a size >= 1) against an int below 1; else None."""
    ints = (int, np.integer)
    if isinstance(p, ints) and isinstance(q, ints):
        return p == q
    if p is not None and p == q:
        return True
    sym, num = (q, p) if isinstance(p, ints) else (p, q)
    return False if sym is not None and isinstance(num, ints) and num < 1 else None


def track(op, at, ins, opset):
    """The Dims that op computes from Dims and int constants ins (its decoded attributes at), or
    None when this is not shape arithmetic the tracker follows (or its result is not known)."""
    x = entries_of(ins[0]) if ins else None
    if op in ("Identity", "Cast", "Squeeze", "Unsqueeze", "Reshape", "Expand"):
        if x is None or op == "Cast" and at.get("to") not in INT_TYPES:
            return None
        return _reshape(op, x, _scalar(ins[0]), ins)
    if op == "Gather" and x is not None and isinstance(ins[1], np.ndarray) and \
            ins[1].dtype.kind in "iu":
        idx = ins[1].reshape(-1)
        if not all(-len(x) <= int(i) < len(x) for i in idx):
            return None
        return Dims(tuple(x[int(i)] for i in idx), scalar=ins[1].ndim == 0)
    if op == "Slice" and x is not None:
        args = forms.slice_args(at, ins, opset)
        if args is forms.UNKNOWN or len(args[0]) != 1 or args[3][0] == 0:
            return None
        (start,), (end,), _, (step,) = args
        return Dims(tuple(x[start:end:step]))
    if op == "Concat":
        parts = [entries_of(v) for v in ins]
        if None in parts or not any(isinstance(v, Dims) for v in ins):
            return None
        return Dims(tuple(e for p in parts for e in p))
    if op in ("Mul", "Equal") and len(ins) == 2:
        b = entries_of(ins[1])
        if x is None or b is None or len(x) != len(b):
            return None
        pairs = zip(x, b)
        return Dims(tuple(size_equal(p, q) for p, q in pairs) if op == "Equal" else
                    tuple(_times(p, q) for p, q in pairs), scalar=_scalar(ins[0]) and _scalar(ins[1]))
    if op == "Where" and len(ins) == 3:
        c = [bool(e) for e in ins[0].reshape(-1)] if isinstance(ins[0], np.ndarray) and \
            ins[0].dtype == bool else x
        a, b = entries_of(ins[1]), entries_of(ins[2])
        if None in (c, a, b) or not len(c) == len(a) == len(b) or None in c:
            return None
        return Dims(tuple(p if k else q for k, p, q in zip(c, a, b)))
    return None


def _times(p, q):
    ints = (int, np.integer)
    if isinstance(p, ints) and isinstance(q, ints):
        return p * q
    return p if q == 1 else q if p == 1 else None


def _reshape(op, x, scalar, ins):
    """Identity, Cast, Squeeze, Unsqueeze, Reshape and Expand of shape entries: the entries stay,
    as a scalar or a vector as the op makes them."""
    if op in ("Identity", "Cast"):
        return Dims(tuple(x), scalar)
    if op == "Squeeze":
        return Dims(tuple(x), True) if len(x) == 1 else Dims(tuple(x))
    if op == "Unsqueeze":
        return Dims(tuple(x))
    target = ins[1] if len(ins) > 1 else None
    if not isinstance(target, np.ndarray) or target.dtype.kind not in "iu":
        return None
    target = [int(e) for e in target.reshape(-1)]
    if op == "Reshape":
        if target == [] and len(x) == 1:
            return Dims(tuple(x), True)
        return Dims(tuple(x)) if target in ([-1], [len(x)]) else None
    if target == []:  # Expand broadcasts: to [] a value stays as it is
        return Dims(tuple(x), scalar)
    return Dims(tuple(x)) if target == [1] and len(x) == 1 or target == [len(x)] else None
