"""lower/frames.py: frame-wise ops on time-path values mapped to typed C steps (dense, act, softmax, layernorm, binary, clip, embed, concat), to the declared Python path, or refused when they mix frames."""
import numpy as np

from ..errors import NotStreamable
from ..onnx_io import forms
from ..onnx_io.activations import OP_ACTIVATIONS, op_params
from ..onnx_io.shapes import Dims
from .convs import CONV_HANDLERS
from .reshape import layout_op, static_size
from .steps import (ActStep, BinaryStep, ClipStep, ConcatStep, DenseStep, EmbedStep,
                    LayerNormStep, SoftmaxStep)
from .values import MERGED, TN, Seq, c_layout, time_axis, width

# Element-wise ops without a C step: frame-wise, so they stream on the Python path.  Inputs other
# than time-path values must be constants that do not vary along time or batch.
ELEMENTWISE_PY = ("Sqrt", "Neg", "Exp", "Log", "Abs", "Sign", "Floor", "Ceil", "Round", "Reciprocal",
                  "Erf", "Gelu", "Selu", "HardSwish", "Mish", "Celu", "Not", "Pow", "PRelu", "Min",
                  "Max", "Sum", "Mean", "Equal", "Less", "LessOrEqual", "Greater", "GreaterOrEqual",
                  "And", "Or", "Xor", "Where", "Add", "Sub", "Mul", "Div")
REDUCE_OPS = ("ReduceMean", "ReduceSum", "ReduceMax", "ReduceMin", "ReduceProd", "ReduceSumSquare",
              "ReduceL2")
ARITHMETIC = ("Add", "Sub", "Mul", "Div")


class _Op:
    """One frame-wise node being lowered: its inputs, the first time-path value x and its time
    axis t (None for a value from final states)."""

    def __init__(self, lw, node, ins, seqs):
        self.lw, self.node, self.ins, self.seqs = lw, node, ins, seqs
        self.op, self.at, self.x = node.op, node.attrs, seqs[0]
        self.t = time_axis(self.x.axes)

    def python(self, why, axes=None):
        """The node runs on the Python path; its outputs have these axes (x's by default)."""
        self.lw.python(self.node, self.op, why)
        axes = self.x.axes if axes is None else axes
        return [Seq(axes, None, last=self.x.last)] * len(self.node.outputs)

    def refuse(self, why):
        raise NotStreamable(f"node {self.node.name!r} ({self.op}): {why}; it needs the whole sequence")

    def step(self, step, axes=None):
        """The node as one C step (on the Python path when its input is)."""
        axes = self.x.axes if axes is None else axes
        if self.x.buf is None:
            return self.python("its input is computed on the Python path", axes)
        return [self.lw.emit(step, axes, last=self.x.last)]

    def row_op(self, over):
        """True when axes `over` of x are exactly its feature row: no time or batch axis among
        them, and every feature axis of size > 1 inside them."""
        axes = self.x.axes
        return c_layout(axes) and all(axes[i] not in TN for i in over) and all(
            i in over for i, a in enumerate(axes) if a != 1 and a not in TN)


def frame_op(lw, node, ins, seqs):
    """The abstract outputs of a node on time-path values (and constants)."""
    o = _Op(lw, node, ins, seqs)
    if any(a.past for a in seqs) and node.op != "Conv":
        o.refuse("reads the frames a causal Pad put before the chunk (only a Conv over time "
                 "may: the stream carries them for it)")
    if any(a.last != o.x.last for a in seqs):
        raise NotStreamable(f"node {node.name!r} ({node.op}): combines values from a GRU's final "
                            "state (or the last frame) with per-frame values, so every frame needs "
                            "the whole sequence")
    if any(isinstance(a, Dims) for a in ins) and node.op not in ("Reshape", "Expand", "Slice"):
        o.refuse("combines a time-path value with a number computed from shapes that streams do "
                 "not know (such as the sequence length)")
    for handler in HANDLERS.get(node.op, ()):
        out = handler(o)
        if out is not None:
            return out
    o.refuse("its effect on the time axis is not known")


# ----------------------------------------------------------------------------- handlers
# Each returns the node's outputs, or None when it does not apply (the next one is tried).

def _act(o):
    act = OP_ACTIVATIONS[o.op]
    return o.step(ActStep(o.x.buf, act.kind, *op_params(act, o.at)))


def _layout(o):
    axes = layout_op(o.lw, o.node, o.ins, o.x)

    def feats(ax):
        return [a for a in ax if a != 1 and a not in TN]

    if o.x.buf is not None and feats(axes) == feats(o.x.axes) and c_layout(axes):
        return [o.x._replace(axes=axes)]
    return o.python("moves feature axes (no C copy step)", axes)


def _dense(o):
    x, ins, at = o.x, o.ins, o.at
    if ins[0] is not x or len(o.seqs) != 1 or not isinstance(ins[1], np.ndarray) \
            or len(ins) > 2 and not isinstance(ins[2], (np.ndarray, type(None))):
        return None
    w = np.asarray(ins[1], np.float32)
    if o.op == "Gemm":
        if at.get("transA", 0):
            o.refuse("Gemm with transA reads across frames")
        w = (w.T if at.get("transB", 0) else w) * at.get("alpha", 1.0)
    if w.ndim != 2 or x.axes[-1] in TN or x.axes[-1] != w.shape[0]:
        o.refuse("a matrix product that is not over the feature axis")
    bias = None
    if o.op == "Gemm" and len(ins) > 2 and ins[2] is not None:
        c = np.asarray(ins[2], np.float32) * at.get("beta", 1.0)
        if c.size not in (1, w.shape[1]) or c.ndim > 2 or c.ndim == 2 and c.shape[0] != 1:
            raise NotStreamable(f"node {o.node.name!r} (Gemm): its C of shape {list(c.shape)} is "
                                f"not one bias per output of {w.shape[1]}")
        bias = np.broadcast_to(c.reshape(-1), (w.shape[1],))
    axes = x.axes[:-1] + (w.shape[1],)
    if not c_layout(x.axes) or x.buf is None:
        return o.python("a matrix product on a value the plan does not hold", axes)
    return o.step(DenseStep(x.buf, np.ascontiguousarray(w.T),
                            None if bias is None else np.ascontiguousarray(bias)), axes)


def _affine(o):
    """x (+-*/) a per-feature or scalar constant: a C binary step with the constant copied (Add
    or Sub right after a bias-free dense step joins it as its bias)."""
    x, ins, lw = o.x, o.ins, o.lw
    if len(o.seqs) != 1:
        return None
    swapped = ins[0] is not x
    c = ins[0] if swapped else ins[1]
    if not isinstance(c, np.ndarray):
        o.refuse("its other input is computed at run time in a way streams do not follow")
    t, rank = o.t, len(x.axes)
    if c.ndim > rank or (t is not None and c.ndim >= rank - t and c.shape[t - rank] != 1):
        o.refuse("a constant that varies along the time axis")
    if x.buf is None:
        return o.python("its input is computed on the Python path")
    w, F = width(x.axes), x.axes[-1]
    if not c_layout(x.axes) or not (c.size == 1 or (c.size == F == w and c.shape[-1] == F)):
        return o.python("a constant that is not per feature")
    c = np.ascontiguousarray(np.broadcast_to(np.asarray(c, np.float32).reshape(-1), (w,)))
    prev = lw.low.steps[x.buf - 1] if x.buf else None
    src = o.node.inputs[1 if swapped else 0]
    if (o.op == "Add" or o.op == "Sub" and not swapped) and isinstance(prev, DenseStep) \
            and prev.bias is None and lw.consumers.get(src, 0) == 1 and x.buf == len(lw.low.steps) \
            and src not in {out.name for out in lw.g.outputs}:
        # MatMul + Add: the bias joins the dense step.
        lw.low.steps[-1] = prev._replace(bias=c if o.op == "Add" else np.ascontiguousarray(-c))
        return [x]
    kind = ("r" if swapped and o.op in ("Sub", "Div") else "") + o.op.lower()
    return o.step(BinaryStep(x.buf, kind, c))


def _binary_pair(o):
    """Two time-path values of the same layout: a C binary step over two buffers."""
    x, seqs, t = o.x, o.seqs, o.t
    if len(seqs) != 2 or not (t is None or all(
            time_axis(a.axes) is not None and len(a.axes) - time_axis(a.axes) == len(x.axes) - t
            for a in seqs)):
        return None
    a, b = seqs if o.ins[0] is seqs[0] else seqs[::-1]
    if a.axes != b.axes and any(c in MERGED for s in seqs for c in s.axes):
        o.refuse("combines rows of merged time and batch with a value of another layout")
    if o.op == "Pow" or a.axes != b.axes or a.buf is None or b.buf is None or not c_layout(a.axes):
        return o.python("element-wise op on two time-path values of different layouts "
                        "(the C binary step takes two buffers of the same shape)")
    return o.step(BinaryStep(a.buf, o.op.lower(), b.buf))


def _softmax(o):
    over = forms.softmax_axes(o.at, o.lw.g.opset, len(o.x.axes))
    if o.t is not None and min(over) <= o.t <= max(over):
        o.refuse("normalises over the time axis")
    if not o.row_op(over):
        return o.python(f"{o.op} over part of a frame (the C step normalises whole feature rows)")
    return o.step(SoftmaxStep(o.x.buf, log=o.op == "LogSoftmax"))


def _layernorm(o):
    x, ins, lw = o.x, o.ins, o.lw
    axis = o.at.get("axis", -1) % len(x.axes)
    if o.t is not None and axis <= o.t:
        o.refuse("normalises over the time axis")
    over = set(range(axis, len(x.axes)))
    outs = {out.name for out in lw.g.outputs}
    if any(v and (lw.consumers.get(v) or v in outs) for v in o.node.outputs[1:]) \
            or ins[0] is not x or not o.row_op(over) \
            or not all(isinstance(a, np.ndarray) or a is None for a in ins[1:]):
        return o.python("LayerNormalization over part of a frame, or with its mean and "
                        "inverse deviation outputs used (the C step normalises whole rows)")
    shape = [x.axes[i] for i in sorted(over)]
    width(shape)  # (no wider than a C plan takes)
    try:
        scale, bias = (None if a is None else np.ascontiguousarray(
            np.broadcast_to(np.asarray(a, np.float32), shape).reshape(-1))
            for a in (ins + [None])[1:3])
    except ValueError:  # numpy: a scale or bias that does not broadcast to the row
        return o.python("LayerNormalization with a scale or bias that is not per feature")
    return o.step(LayerNormStep(x.buf, scale, bias, float(o.at.get("epsilon", 1e-5))))


def _clip(o):
    lo, hi = forms.clip_bounds(o.at, o.ins, o.lw.g.opset)
    if o.ins[0] is not o.x or any(b is not None and (not isinstance(b, (np.ndarray, float, int))
                                                     or np.size(b) != 1) for b in (lo, hi)):
        return o.python("Clip with bounds that are not constant scalars")
    lo = -np.inf if lo is None else float(np.asarray(lo).reshape(-1)[0])
    hi = np.inf if hi is None else float(np.asarray(hi).reshape(-1)[0])
    return o.step(ClipStep(o.x.buf, lo, hi))


def _reduce(o):
    x, rank = o.x, len(o.x.axes)
    if o.op == "GlobalAveragePool":
        axes = range(2, rank)
    elif o.op in REDUCE_OPS:
        axes = forms.list_arg(o.op, o.at, o.ins, o.lw.g.opset)
        if axes is forms.UNKNOWN:
            o.refuse("reduces over axes computed at run time")
        axes = range(rank) if not axes else axes
    else:
        axes = [o.at.get("axis", 0)]
    axes = {int(a) % rank for a in axes}
    if any(x.axes[a] in TN for a in axes):
        o.refuse("reduces over the time or batch axis")
    keep = o.at.get("keepdims", 1) or o.op == "GlobalAveragePool"
    return o.python(f"{o.op} over features (no C step)",
                    tuple(1 if i in axes else a for i, a in enumerate(x.axes) if keep or i not in axes))


def _elementwise(o):
    """Output axes of an element-wise op on time-path values of one layout and constants."""
    x = o.x
    if any(a.axes != x.axes for a in o.seqs):
        o.refuse("combines time-path values of different layouts")
    axes = list(x.axes)
    for c in o.ins:
        if c is None or isinstance(c, Seq):
            continue
        shape = np.shape(c)
        if len(shape) > len(axes):
            o.refuse("broadcasts a time-path value against a constant of higher rank")
        for i, d in enumerate(shape, len(axes) - len(shape)):
            if axes[i] in TN and d != 1:
                o.refuse("a constant that varies along the time or batch axis")
            if axes[i] not in TN and d != 1:
                if axes[i] not in (1, d):
                    o.refuse(f"a constant of shape {list(shape)} that does not broadcast")
                axes[i] = d
    return o.python(f"{o.op} (no C step)", tuple(axes))


def _cast(o):
    if o.at.get("to") == 1:
        return [o.x]  # float to float: nothing to do
    return o.python("Cast on the time path")


def _expand(o):
    """Expand(x, target) when it broadcasts only feature axes of x (F.normalize's per-frame norm
    expanded back to Shape(y)): time and batch stay where they are."""
    x, target = o.x, o.ins[1]
    if o.ins[0] is not x:
        return None
    entries = list(target.entries) if isinstance(target, Dims) else \
        forms.ints(target) if isinstance(target, np.ndarray) and target.dtype.kind in "iu" else None
    if entries is None or len(entries) > len(x.axes):
        o.refuse("an Expand to a shape streams do not follow")
    entries = [1] * (len(x.axes) - len(entries)) + entries
    axes = []
    for a, e in zip(x.axes, entries):
        if a in TN:
            if e not in (1, a):
                if e != static_size(o.lw, a):
                    o.refuse("an Expand along the time or batch axis")
                o.lw.pin(f"node {o.node.name!r} (Expand): reads {e}, the fixed size of the "
                         f"input's {a} axis")
            axes.append(a)
        elif not isinstance(e, int) or (a != 1 and e not in (1, a)):
            o.refuse("an Expand to a shape streams do not follow")
        else:
            axes.append(a if e == 1 else e)
    return o.python("Expand over features (no C step)", tuple(axes))


def _last_frame(o):
    """y[-1] (Gather -1 on the time axis) or y[-1:] (Slice -1: on it): the last frame, which a
    stream gives as a value from final states (its frame after each chunk), or None."""
    x, at = o.x, o.at
    if o.ins[0] is not x or x.last or "T" not in x.axes:
        return None
    t = x.axes.index("T")
    if o.op == "Gather":
        idx = o.ins[1]
        if not isinstance(idx, np.ndarray) or idx.size != 1 or int(idx.reshape(-1)[0]) != -1 \
                or at.get("axis", 0) % len(x.axes) != t:
            return None
        axes = x.axes[:t] + ((1,) if idx.ndim else ()) + x.axes[t + 1:]
    else:
        args = forms.slice_args(at, o.ins, o.lw.g.opset)
        if args is forms.UNKNOWN:
            return None
        found = False
        for s_, e, a, st in zip(*args):
            a, big = a % len(x.axes), e >= (1 << 31) - 1
            if a == t and s_ == -1 and big and st == 1:
                found = True
            elif a == t or not (s_ == 0 and st == 1 and (big or (
                    isinstance(x.axes[a], int) and e >= x.axes[a]))):
                return None  # anything but the whole of the other axes
        if not found:
            return None
        axes = x.axes[:t] + (1,) + x.axes[t + 1:]
    return [Seq(axes, x.buf, last=True)]


def _features(o):
    """Slice, Split, Concat or Gather working on feature axes only (the Python path)."""
    x, at, op = o.x, o.at, o.op
    if op != "Slice":
        axes = [at.get("axis", 0)]
    else:
        args = forms.slice_args(at, o.ins, o.lw.g.opset)
        if args is forms.UNKNOWN:
            o.refuse("slices with bounds computed at run time")
        axes = args[2]
    if any(x.axes[int(a) % len(x.axes)] in TN for a in axes):
        o.refuse("works along the time or batch axis")
    if op == "Concat" and any(not isinstance(a, Seq) or len(a.axes) != len(x.axes) for a in o.ins):
        o.refuse("joins time-path values with constants or values of another rank")
    out_axes = _feature_axes(o)
    if op == "Concat" and _row_concat(o):
        return [_concat_steps(o, out_axes[0])]
    return [o.python(f"{op} over features (no C step)", a)[0] for a in out_axes]


def _row_concat(o):
    """Concat of time-path values in C buffers, of one layout but for the joined axis, which is
    their only feature axis of size > 1: their rows side by side."""
    a = o.at.get("axis", 0) % len(o.x.axes)
    return all(s.buf is not None and c_layout(s.axes) and all(
        d == e or i == a for i, (d, e) in enumerate(zip(s.axes, o.x.axes))) and all(
        d in TN or d == 1 or i == a for i, d in enumerate(s.axes)) for s in o.ins)


def _concat_steps(o, axes):
    """A chain of C concat steps, each joining one more input's row onto the last."""
    a = o.at.get("axis", 0) % len(axes)
    acc = o.ins[0]
    for s in o.ins[1:]:
        joined = acc.axes[:a] + (acc.axes[a] + s.axes[a],) + acc.axes[a + 1:]
        acc = o.lw.emit(ConcatStep(acc.buf, s.buf), joined, last=o.x.last)
    return acc


def _feature_axes(o):
    """Output axes of Slice, Split, Concat or Gather working on feature axes only."""
    op, at, axes, ins = o.op, o.at, list(o.x.axes), o.ins
    if op == "Concat":
        a = at.get("axis", 0) % len(axes)
        axes[a] = sum(s.axes[a] for s in ins)
        return [tuple(axes)]
    if op == "Gather":
        if not isinstance(ins[1], np.ndarray):  # (indices on the time path: a hostile finding)
            o.refuse("gathers by indices computed at run time")
        a, idx = at.get("axis", 0) % len(axes), ins[1]
        return [tuple(axes[:a] + list(idx.shape) + axes[a + 1:])]
    if op == "Split":
        a = at.get("axis", 0) % len(axes)
        n = len(o.node.outputs)
        sizes = forms.list_arg("Split", at, ins, o.lw.g.opset)
        if sizes is forms.UNKNOWN:
            o.refuse("splits by sizes computed at run time")
        if sizes is None:
            size = -(-axes[a] // n)
            sizes = [min(size, axes[a] - i * size) for i in range(n)]
        return [tuple(axes[:a] + [int(d)] + axes[a + 1:]) for d in sizes]
    for s_, e, a, st in zip(*forms.slice_args(at, ins, o.lw.g.opset)):
        a = a % len(axes)
        axes[a] = len(range(*slice(s_, e, st).indices(axes[a])))
    return [tuple(axes)]


def _mixes_frames(o):
    o.refuse("a cumulative sum streams do not carry")


# op -> the handlers that may lower it, tried in order.
HANDLERS = {op: (_act,) for op in OP_ACTIVATIONS}
HANDLERS.update({op: (_layout,) for op in ("Transpose", "Squeeze", "Unsqueeze", "Reshape")})
HANDLERS.update({op: (_dense,) for op in ("MatMul", "Gemm")})
HANDLERS.update({op: (_affine, _binary_pair, _elementwise) for op in ARITHMETIC})
HANDLERS.update({op: (_elementwise,) for op in ELEMENTWISE_PY if op not in ARITHMETIC})
HANDLERS["Pow"] = (_binary_pair, _elementwise)
HANDLERS.update({op: (_softmax,) for op in ("Softmax", "LogSoftmax")})
HANDLERS["LayerNormalization"] = (_layernorm,)
HANDLERS["Clip"] = (_clip,)
HANDLERS.update({op: (_reduce,) for op in REDUCE_OPS + ("ArgMax", "ArgMin", "GlobalAveragePool")})
HANDLERS["Cast"] = (_cast,)
HANDLERS["Expand"] = (_expand,)
HANDLERS.update({op: (_last_frame, _features) for op in ("Gather", "Slice")})
HANDLERS.update({op: (_features,) for op in ("Split", "Concat")})
HANDLERS["CumSum"] = (_mixes_frames,)
HANDLERS.update(CONV_HANDLERS)


def embed(lw, node, table, ids):
    """Gather of a constant [V, ...] float table by the token ids: a C embed step."""
    axes = ids.axes + tuple(np.shape(table)[1:])
    table = np.asarray(table)
    if not (ids.ids and ids.buf == 0 and c_layout(ids.axes) and table.ndim >= 1
            and table.dtype == np.float32 and 1 <= table.shape[0] <= 1 << 24):
        lw.python(node, "Gather", "a lookup the C embed step does not cover (it reads float32 "
                  "tables [V, ...] with the token ids the stream is fed)")
        return Seq(axes, None)
    if not np.isfinite(table).all():
        raise NotStreamable(f"node {node.name!r} (Gather): the embedding table holds NaN or Inf, "
                            "which the C embed step refuses")
    return lw.emit(EmbedStep(np.ascontiguousarray(table.reshape(table.shape[0], -1))), axes)
