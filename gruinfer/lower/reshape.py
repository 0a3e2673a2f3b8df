"""lower/reshape.py: Transpose, Squeeze, Unsqueeze and Reshape of time-path values read by meaning: where time and batch go, export-time sizes baked into targets, merged rows."""
import numpy as np

from ..errors import NotStreamable
from ..onnx_io import forms
from ..onnx_io.shapes import Dims
from .values import MERGED, TN, perm


def layout_op(lw, node, ins, x):
    """Output axes of Transpose/Squeeze/Unsqueeze/Reshape on a time-path value, by meaning."""
    op, at, name = node.op, node.attrs, node.name
    axes = list(x.axes)
    if op == "Transpose":
        return tuple(axes[p] for p in perm(node, len(axes)))
    if op == "Reshape" and not any(a in ("N",) + MERGED for a in axes):
        raise NotStreamable(f"node {name!r} (Reshape): reshapes a value without a batch axis")
    if op in ("Squeeze", "Unsqueeze"):
        spec = forms.list_arg(op, at, ins, lw.g.opset)
        if spec is None or spec is forms.UNKNOWN:
            raise NotStreamable(f"node {name!r} (Squeeze): squeezes every size-1 axis, which "
                                "may include time or batch; it cannot stream")
        frame = "T" not in lw.low.in_axes  # the time input is one frame: see lowering._one_frame
        if op == "Squeeze":
            drop = {a % len(axes) for a in spec}
            if any(axes[a] != 1 and not (frame and axes[a] == "T") for a in drop):
                raise NotStreamable(f"node {name!r} (Squeeze): squeezes the time, batch or a "
                                    "feature axis; it cannot stream")
            return tuple(a for i, a in enumerate(axes) if i not in drop)
        if frame and spec == [0] and "T" not in axes:
            return ("T",) + tuple(axes)  # one frame gets its time axis: the GRU's X
        rank = len(axes) + len(spec)
        for a in sorted(s % rank for s in spec):
            axes.insert(a, 1)
        return tuple(axes)
    target = ins[1] if len(ins) > 1 else None
    if isinstance(target, Dims):
        target = list(target.entries)
    elif isinstance(target, np.ndarray) and target.dtype.kind in "iu":  # (ONNX: int64)
        target = forms.ints(target)
    else:
        raise NotStreamable(f"node {name!r} (Reshape): its target shape is not known")
    if not at.get("allowzero", 0):
        target = [axes[i] if e == 0 and i < len(axes) else e for i, e in enumerate(target)]
    out = reshape_axes(lw, name, axes, target)
    if not any(a in MERGED for a in tuple(axes) + out):
        # (merged rows take no export-time sizes: the graph's own target is right at run time)
        lw.low.reshapes[name] = (tuple(axes), out)
    return out


def reshape_axes(lw, name, axes, target):
    """Reshape by meaning: time and batch keep their order (export-time sizes baked into the
    target are read as them), feature sizes must multiply out; size-1 axes come and go.
    Time and batch next to each other may merge into one row axis ([N, T, F] -> [-1, F]: "NT")
    and a merged row axis may split back (to sizes from shapes, e.g. Shape(y)[:2] + [F])."""
    where = f"node {name!r} (Reshape): "
    src = [a for a in axes if a != 1]
    tn = [a for a in src if a in TN]
    if src[:len(tn)] != tn:
        raise NotStreamable(where + "features come before time or batch; cannot tell which "
                            "axis is time after it")
    feat = int(np.prod([a for a in src if a not in TN]))
    rows = "".join(tn)  # the time and batch letters in order, e.g. "NT"
    merged = tn in (["NT"], ["TN"])
    if lw.static.get("N") == 1 and (merged or sorted(tn) == ["N", "T"]):
        if not merged:
            try:
                return _rows(lw, where, tn, target, feat, baked=True)
            except NotStreamable:
                pass
        out = _one_slot(lw, where, target, feat, baked=not merged, after=not merged or rows == "TN")
        if out is not None:
            return out
    if any(a in MERGED for a in tn):
        # rows merged before: kept merged, or split back into batch and time (no baked sizes)
        try:
            return _rows(lw, where, [rows], target, feat, baked=False)
        except NotStreamable:
            return _rows(lw, where, list(rows), target, feat, baked=False)
    try:
        return _rows(lw, where, tn, target, feat, baked=True)
    except NotStreamable as e:
        if len(rows) != 2:
            raise
        try:  # time and batch merged into one row axis: rows are frames x slots
            return _rows(lw, where, [rows], target, feat, baked=False)
        except NotStreamable:
            raise NotStreamable(f"{e}; nor does it merge time and batch alone into one row "
                                "axis (it moves them into features or features into rows)") from None


def _one_slot(lw, where, target, feat, baked, after):
    """A fixed batch of 1: the rows are the frames, so the target is read with time alone and
    the batch is a size-1 entry beside time (after it when `after`, else before; the other
    side when there is none).  tf2onnx writes the Transpose of a fixed batch of 1 as such a
    Reshape ([1, T, F] -> [-1, 1, F]); torch.export bakes the size into a reshape back."""
    try:
        out = _rows(lw, where, ["T"], target, feat, baked)
    except NotStreamable:
        return None
    t = out.index("T")
    later = [i for i, a in enumerate(out) if a == 1 and i > t]
    earlier = [i for i, a in enumerate(out) if a == 1 and i < t][::-1]
    side = (later or earlier) if after else (earlier or later)
    if not side:
        return None
    lw.pin(where + "places the batch axis of a fixed batch of 1")
    return out[:side[0]] + ("N",) + out[side[0] + 1:]


def static_size(lw, sym):
    """The fixed size of row axis sym ("T", "N", or merged "NT"/"TN") the input declares, or None."""
    sizes = [lw.static.get(a) for a in sym]
    return int(np.prod(sizes)) if all(sizes) else None


def _rows(lw, where, groups, target, feat, baked):
    """Output axes when the leading non-1 target entries are the row axes `groups` ("T", "N",
    or a merged "NT"/"TN") and the others the features.  baked: an int > 1 may stand for a row
    axis (an export-time size); otherwise row entries are the axis itself (from a Shape) or
    unknown (-1), and sizes must determine the rows."""
    out, it, rest, row_entries = [], iter(groups), [], []
    for e in target:
        if e == 1:
            out.append(1)
        elif len(out) - out.count(1) < len(groups):
            sym = next(it)
            if e not in (sym, -1, None) and not (baked and isinstance(e, int) and e > 1):
                if not (isinstance(e, int) and e == static_size(lw, sym)):
                    raise NotStreamable(where + f"cannot match {e} to the {sym} axis")
                lw.pin(where + f"reads {e}, the fixed size of the input's {sym} axis")
            out.append(sym)
            row_entries.append(e)
        else:
            if isinstance(e, str):
                raise NotStreamable(where + f"the {e} axis lands among the features, which "
                                    "mixes time or batch into frames")
            out.append(e)
            rest.append(len(out) - 1)
    if len(out) - out.count(1) - len(rest) != len(groups):
        raise NotStreamable(where + "cannot tell which axes are time and batch (an export-time "
                            "size of 1 may be baked into the target); it cannot stream")
    unknown = [i for i in rest if out[i] in (-1, None) or not isinstance(out[i], int)]
    known = int(np.prod([out[i] for i in rest if i not in unknown]))
    if len(unknown) > 1 or (unknown and feat % known) or (not unknown and known != feat):
        raise NotStreamable(where + f"feature sizes {[out[i] for i in rest]} do not match {feat}")
    open_rows = sum(e in (-1, None) for e in row_entries)
    if not baked and (open_rows > 1 or open_rows and unknown):
        raise NotStreamable(where + "cannot tell the time and batch sizes from its target")
    for i in unknown:
        out[i] = feat // known
    return tuple(out)
