"""lower/plumbing.py: nodes off the time path: shape arithmetic (through the one shape tracker), zeros and broadcasts built from shapes at run time, and initial states taken from graph inputs."""
import numpy as np

from ..errors import NotStreamable
from ..onnx_io import forms, shapes
from ..onnx_io.proto import tensor_to_array
from ..onnx_io.shapes import Dims
from .values import Feed, Seq, State, Tiled, Zeros

# A size cast to a float type becomes a constant.
FLOAT_TYPES = (1, 10, 11, 16)
LAYOUT_OPS = ("Slice", "Reshape", "Squeeze", "Unsqueeze", "Transpose", "Identity", "Cast")


def shape(x, at):
    """Shape(x): known sizes, time and batch as "T" and "N"."""
    if isinstance(x, np.ndarray):
        entries = list(x.shape)
    elif isinstance(x, Seq):
        entries = list(x.axes)
    elif isinstance(x, State):
        entries = [len(x.ks) if a == "L" else a for a in x.axes]
    elif isinstance(x, Dims):  # a shape's shape: known
        return np.asarray([] if x.scalar else [len(x.entries)], np.int64)[at.get("start", 0):at.get("end", 1)]
    else:
        return Dims((None,))
    return shapes.shape_of(entries, at)


def static(lw, node, ins):
    """A node whose inputs are constants, shapes, run-time zeros or broadcasts, or feeds."""
    op, at, x = node.op, node.attrs, ins[0] if ins else None
    if op in ("ConstantOfShape", "Expand") and _zero_fill(node, ins):
        return [Zeros()]
    if op == "Expand" and isinstance(x, np.ndarray) and isinstance(ins[1], Dims):
        return [_tiled(node, x, ins[1])]
    if isinstance(x, Tiled) and op in ("Slice", "Identity"):
        if op == "Identity":
            return [x]
        args = forms.slice_args(at, ins, lw.g.opset)
        if args is forms.UNKNOWN or x.n in [a % x.value.ndim for a in args[2]]:
            raise NotStreamable(f"node {node.name!r} (Slice): slices a batch-broadcast constant in a "
                                "way streams do not follow")
        return [Tiled(lw.compute(node, [x.value] + ins[1:])[0], x.n)]
    if op == "Cast" and isinstance(x, Dims) and at.get("to") in FLOAT_TYPES and x.known:
        # sizes known here turned into numbers (y.shape[-1] ** -0.5): constants from now on
        return lw.compute(node, [x.array()])
    if ins and all(isinstance(a, np.ndarray) or a is None for a in ins):
        # every input known here (sizes turned constants, a Shape of a shape): computed now
        return lw.compute(node, ins)
    if isinstance(x, Dims) or op in ("Concat", "Mul") and any(isinstance(a, Dims) for a in ins):
        return [shapes.track(op, at, ins, lw.g.opset) or Dims((None,))]
    if isinstance(x, Zeros) and op in LAYOUT_OPS:
        return [Zeros()]
    if isinstance(x, Feed) and op == "Slice" and (x.rows is None or x.unsq is not None):
        return [_slice_feed(lw, node, ins)]
    if isinstance(x, Feed) and op in ("Unsqueeze", "Reshape") and x.whole:
        return [_unsqueeze_feed(lw, node, ins)]
    raise NotStreamable(f"node {node.name!r} ({op}): its inputs are computed at run time in a way "
                        "streams do not follow")


def _slice_feed(lw, node, ins):
    """One row of axis 0 of a state input (PyTorch's per-layer h0[l:l+1]); the whole of a
    size-1 axis inserted by an Unsqueeze keeps the input as it is."""
    args, feed = forms.slice_args(node.attrs, ins, lw.g.opset), ins[0]
    if args is not forms.UNKNOWN and len(args[0]) == 1 and args[3][0] == 1:
        (start,), (end,), (axis,), _ = args
        if feed.unsq is not None and axis == feed.unsq and start == 0 and end >= 1:
            return feed
        if feed.whole and axis == 0 and 0 <= start and end == start + 1:
            return Feed(feed.name, start)
    raise NotStreamable(f"node {node.name!r} (Slice): initial states are taken from input "
                        f"{feed.name!r} in a way streams do not follow (one row of axis 0 only)")


def _unsqueeze_feed(lw, node, ins):
    """Unsqueeze (or Reshape to [1, N, H] / [N, 1, H]) of an [N, H] state input: the GRU's
    initial_h is that input with a size-1 axis inserted, so its stream feed stays [N, H]."""
    op, name, feed = node.op, node.name, ins[0]
    arg = next((a for a in lw.g.inputs if a.name == feed.name), None) \
        or lw.g.overridable.get(feed.name)
    dims = arg.shape if arg is not None else None

    def refuse(why):
        raise NotStreamable(f"node {name!r} ({op}): initial states are taken from input "
                            f"{feed.name!r} in a way streams do not follow ({why})")

    if dims is None or len(dims) != 2:
        refuse("an Unsqueeze or Reshape of an input declared [N, H] only")
    H = dims[1] if isinstance(dims[1], int) and dims[1] > 0 else None
    if op == "Unsqueeze":
        axes = forms.list_arg("Unsqueeze", node.attrs, ins, lw.g.opset)
        if axes in (None, forms.UNKNOWN) or len(axes) != 1:
            refuse("one inserted axis only")
        axis = axes[0] % 3
    else:
        target = ins[1]
        if not isinstance(target, np.ndarray) or target.size != 3 or target.dtype.kind not in "iu":
            refuse("a Reshape to a constant [1, -1, H] or [-1, 1, H] only")
        target = forms.ints(target)
        if node.attrs.get("allowzero", 0) or 0 in target or target[2] <= 0 \
                or (H is not None and target[2] != H) or target.count(1) < 1:
            refuse("a Reshape to a constant [1, -1, H] or [-1, 1, H] only")
        n = dims[0] if isinstance(dims[0], int) and dims[0] > 0 else -1
        if target[:2] == [1, -1] or (n > 1 and target[:2] == [1, n]):
            axis = 0
        elif target[:2] == [-1, 1] or (n > 1 and target[:2] == [n, 1]):
            axis = 1
        else:
            refuse("a Reshape to a constant [1, -1, H] or [-1, 1, H] only")
    if axis == 2:
        refuse("a size-1 axis after the hidden one")
    return Feed(feed.name, None, axis)


def _tiled(node, c, target):
    """Expand of a constant to a shape whose only run-time entry is the batch, on an axis
    where the constant has size 1."""
    entries = list(target.entries)
    dims = [1] * (len(entries) - c.ndim) + list(c.shape)
    if len(entries) < c.ndim or entries.count("N") != 1:
        raise NotStreamable(f"node {node.name!r} (Expand): expands a constant to a shape "
                            "streams do not follow")
    n = entries.index("N")
    if dims[n] != 1 or any(e not in (1, d) for i, (e, d) in enumerate(zip(entries, dims)) if i != n):
        raise NotStreamable(f"node {node.name!r} (Expand): expands a constant to a shape "
                            "streams do not follow")
    return Tiled(np.asarray(c).reshape(dims), n)


def _zero_fill(node, ins):
    """ConstantOfShape or Expand that builds an all-zero tensor from run-time shapes."""
    if node.op == "ConstantOfShape":
        v = node.attrs.get("value")
        if v is not None:
            v = tensor_to_array(v, f"node {node.name!r} (ConstantOfShape): value")
        return isinstance(ins[0], Dims) and (v is None or not np.any(v))
    return isinstance(ins[0], np.ndarray) and not np.any(ins[0]) and isinstance(ins[1], Dims)
