"""lower/convs.py: Conv, ConvTranspose, Pad and Einsum on time-path values (frame-wise handlers of frames.py, on the Python path): a causal Pad or a Conv's causal time padding becomes past frames the stream carries (graph.Carry); what needs future frames is refused by name."""
import numpy as np

from ..errors import NotStreamable
from ..graph import Carry
from ..onnx_io import forms
from ..onnx_io.ops_tensor import einsum_terms
from .values import MERGED, TN, Seq


def _future(o, frames):
    raise NotStreamable(f"node {o.node.name!r} ({o.op}): needs {frames} future frame(s) (padding "
                        "after the time axis); a stream has only the frames fed so far")


def _probe_axes(o, ins, at, frames):
    """Output axes of the node on x: run on zeros with `frames` frames and one slot; time and
    batch stay on the axes they hold in x (Conv, ConvTranspose and Pad keep the rank)."""
    x = o.x
    if any(a in MERGED or a is None for a in x.axes) or x.axes.count("N") != 1:
        o.refuse("a convolution or Pad on a value whose frames are not [batch, ...sizes]")
    shape = [frames if a == "T" else 1 if a == "N" else a for a in x.axes]
    args = [np.zeros(shape, np.float32) if a is x else a for a in ins]
    out = o.lw.compute(o.node._replace(attrs=at), args)[0]
    return tuple(a if a in ("T", "N") else int(d) for a, d in zip(x.axes, out.shape))


def _conv_time(o):
    """(time axis, kernel span in frames, pads before and after on time, stride on time) of a
    Conv or ConvTranspose on x, with N on axis 0 and channels on axis 1; None without time."""
    x, at, w = o.x, o.at, o.ins[1]
    if o.ins[0] is not x or len(o.seqs) != 1 or not isinstance(w, np.ndarray) or \
            any(a is not None and not isinstance(a, np.ndarray) for a in o.ins[2:]):
        o.refuse("a convolution whose weights are computed at run time")
    if x.axes[:1] != ("N",) or x.axes[1] in TN or w.ndim != len(x.axes):
        o.refuse("a convolution of a value that is not [batch, channels, ...] with time on a "
                 "spatial axis")
    if at.get("auto_pad", "NOTSET") not in ("NOTSET", "VALID", b"NOTSET", b"VALID"):
        o.refuse(f"a convolution with auto_pad={at['auto_pad']} over time")
    t = o.t
    if t is None:
        return None
    nsp, i = len(x.axes) - 2, t - 2
    pads = list(at.get("pads", [0] * 2 * nsp))
    dil, stride = list(at.get("dilations", [1] * nsp)), list(at.get("strides", [1] * nsp))
    return t, dil[i] * (w.shape[t] - 1), pads[i], pads[i + nsp], stride[i]


def _conv(o):
    x, lw = o.x, o.lw
    found = _conv_time(o)
    if found is None:
        return o.python("Conv on a value from final states (no C step)", _probe_axes(o, o.ins, o.at, 1))
    t, span, before, after, stride = found
    if after:
        _future(o, after)
    if stride != 1:
        o.refuse(f"a convolution with stride {stride} over time (it changes the frame rate)")
    if x.past + before != span or x.past and before:
        o.refuse(f"a convolution over {span + 1} frames that is given {x.past + before} past "
                 "frames: its output has another number of frames than its input")
    if before:
        lw.low.carries[o.node.name] = Carry(t, before, 0.0, "input", x.axes)
    axes = _probe_axes(o, o.ins, o.at, 1 + x.past)
    return o.python("Conv (no C step)" + (f", over {span + 1} frames" if span else ""), axes)


def _conv_transpose(o):
    found = _conv_time(o)
    if found is not None:
        t, span, before, after, stride = found
        outpad = list(o.at.get("output_padding", [0] * (len(o.x.axes) - 2)))[t - 2]
        if span or before or after or stride != 1 or outpad:
            o.refuse("a transposed convolution over time (its output frames need later inputs)")
    return o.python("ConvTranspose over features (no C step)", _probe_axes(o, o.ins, o.at, 1))


def _pad(o):
    x, at, ins, r = o.x, o.at, o.ins, len(o.x.axes)
    if ins[0] is not x or len(o.seqs) != 1 or x.past:
        o.refuse("pads a time-path value by values computed at run time")
    given = ins[1] if len(ins) > 1 else None
    pads = at.get("pads") if o.lw.g.opset < 11 else given
    if not isinstance(pads, (np.ndarray, list)) or len(ins) > 3 and ins[3] is not None:
        o.refuse("pads by amounts computed at run time, or along listed axes")
    pads = forms.ints(pads, f"node {o.node.name!r} (Pad): its pads")
    if len(pads) != 2 * r:
        o.refuse(f"pads {pads} are not two per axis of a rank-{r} value")
    t = o.t
    for i, a in enumerate(x.axes):
        if a in TN and a != "T" and (pads[i] or pads[i + r]):
            o.refuse("pads along the batch axis")
    before, after = (pads[t], pads[t + r]) if t is not None else (0, 0)
    if after > 0:
        _future(o, after)
    if before < 0 or after < 0:
        o.refuse("crops the time axis")
    fill = 0.0
    if before:
        mode = at.get("mode", "constant")
        mode = mode.decode() if isinstance(mode, bytes) else mode
        if mode != "constant":
            o.refuse(f"pads the time axis in mode {mode!r} (it reads frames not yet seen)")
        value = at.get("value", 0.0) if o.lw.g.opset < 11 else ins[2] if len(ins) > 2 else None
        fill = 0.0 if value is None else float(np.asarray(value, np.float64).reshape(-1)[0])
    if t is not None:
        pads[t] = 0
    probe = list(ins)
    at2 = dict(at, pads=pads) if o.lw.g.opset < 11 else at
    if o.lw.g.opset >= 11:
        probe[1] = np.array(pads, np.int64)
    axes = _probe_axes(o, probe, at2, 1)
    if before:
        o.lw.low.carries[o.node.name] = Carry(t, before, fill, "output", axes)
    o.lw.python(o.node, o.op, "Pad (no C step)")
    return [Seq(axes, None, last=x.last, past=before)]


def _einsum(o):
    """An Einsum in which time and batch pass through: the grouped linear 'btgi,gih->btgh'."""
    x = o.x
    try:
        terms, rhs = einsum_terms(o.at.get("equation", ""), len(o.ins))
    except ValueError as e:
        o.refuse(f"equation {o.at.get('equation')!r}: {e}")
    if len(o.seqs) != 1 or any(a is not x and not isinstance(a, np.ndarray) for a in o.ins) \
            or any("..." in term for term in terms) or len(terms[o.ins.index(x)]) != len(x.axes):
        o.refuse("an Einsum that is not one time-path value with constants, without '...'")
    term = terms[o.ins.index(x)]
    sizes = {}
    for tm, a in zip(terms, o.ins):
        for c, d in zip(tm, x.axes if a is x else np.shape(a)):
            sizes.setdefault(c, d)
    keep = {c for c, d in zip(term, x.axes) if d in TN}
    if any(d in MERGED for d in x.axes) or any(c not in rhs or any(
            c in tm for tm, a in zip(terms, o.ins) if a is not x) for c in keep):
        o.refuse("an Einsum that sums over or mixes the time or batch axis")
    return o.python("Einsum (no C step)", tuple(sizes[c] for c in rhs))


CONV_HANDLERS = {"Conv": (_conv,), "ConvTranspose": (_conv_transpose,), "Pad": (_pad,),
                 "Einsum": (_einsum,)}
