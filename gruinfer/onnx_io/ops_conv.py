"""onnx_io/ops_conv.py: Conv and ConvTranspose in NumPy over any number of spatial axes (registered in ops.OPS)."""
import numpy as np

from .limits import check_size, text

AUTO_PADS = ("NOTSET", "SAME_UPPER", "SAME_LOWER", "VALID")


def _spatial(at, name, nd, default):
    """An attribute with one int per spatial axis (default when absent), or ValueError."""
    value = [int(v) for v in at.get(name, [default] * nd)]
    if len(value) != nd:
        raise ValueError(f"{name} {value} must have {nd} entries (one per spatial axis)")
    return value


def _auto_pad(at):
    auto = text(at.get("auto_pad", "NOTSET"))
    if auto not in AUTO_PADS:
        raise ValueError(f"auto_pad {auto!r} must be one of {', '.join(AUTO_PADS)}")
    return auto


def transpose_auto_pad(at):
    """ConvTranspose's auto_pad, or ValueError when it is unknown or given with pads."""
    auto = _auto_pad(at)
    if auto != "NOTSET" and "pads" in at:
        raise ValueError(f"pads and auto_pad {auto} cannot be given together")
    return auto


def _conv(ins, at, opset):
    """Conv over any number of spatial axes: pads (or auto_pad), strides, dilations, groups."""
    x, w = ins[0], ins[1]
    b = ins[2] if len(ins) > 2 else None
    nd = x.ndim - 2
    if nd < 1 or w.ndim != x.ndim:
        raise ValueError(f"input of rank {x.ndim} and weight of rank {w.ndim}: expected [N, C, ...] "
                         "and [M, C/group, ...] of one rank >= 3")
    group = at.get("group", 1)
    strides, dil = _spatial(at, "strides", nd, 1), _spatial(at, "dilations", nd, 1)
    k = list(w.shape[2:])
    C, M = x.shape[1], w.shape[0]
    if group < 1 or C != w.shape[1] * group or M % group or min(strides + dil + k, default=1) < 1:
        raise ValueError(f"weight {list(w.shape)} with group {group}, strides {strides} and "
                         f"dilations {dil} does not fit input {list(x.shape)}")
    auto = _auto_pad(at)
    span = [(k[i] - 1) * dil[i] + 1 for i in range(nd)]
    if auto in ("SAME_UPPER", "SAME_LOWER"):
        total = [max(0, (-(-x.shape[2 + i] // strides[i]) - 1) * strides[i] + span[i] - x.shape[2 + i])
                 for i in range(nd)]
        low = [t // 2 if auto == "SAME_UPPER" else t - t // 2 for t in total]
        pads = low + [t - lo for t, lo in zip(total, low)]
    else:
        pads = list(at.get("pads", [0] * (2 * nd))) if auto != "VALID" else [0] * (2 * nd)
    if len(pads) != 2 * nd or min(pads, default=0) < 0:
        raise ValueError(f"pads {pads} must be {2 * nd} sizes >= 0")
    xp = np.pad(x, [(0, 0), (0, 0)] + [(pads[i], pads[i + nd]) for i in range(nd)])
    if any(xp.shape[2 + i] < span[i] for i in range(nd)):
        raise ValueError(f"the kernel spans {span}, more than the padded input {list(xp.shape[2:])}")
    from numpy.lib.stride_tricks import sliding_window_view

    win = sliding_window_view(xp, span, axis=tuple(range(2, 2 + nd)))  # [N, C, o..., span...]
    win = win[(Ellipsis,) + tuple(slice(None, None, d) for d in dil)]
    win = win[(slice(None), slice(None)) + tuple(slice(None, None, s_) for s_ in strides)]
    cg, mg = C // group, M // group
    # every group at once: [N, G, cg, o..., k...] by [G, mg, cg, k...] -> [N, G, mg, o...]
    o_, k_ = "opqrst"[:nd], "uvwxyz"[:nd]
    xg = win.reshape((win.shape[0], group, cg) + win.shape[2:])
    wg = w.reshape((group, mg, cg) + w.shape[2:])
    y = np.einsum(f"ngc{o_}{k_},gmc{k_}->ngm{o_}", xg, wg, optimize=True)
    y = y.reshape((y.shape[0], M) + y.shape[3:])
    if b is not None:
        y = y + b.reshape([1, M] + [1] * nd)
    return [y.astype(x.dtype)]


def _transpose_geometry(at, n, k, nd):
    """ConvTranspose's (strides, dilations, output sizes, leading pads) for input spatial sizes n
    and kernel sizes k, as onnxruntime computes them: output_shape (or, for SAME_*, input size
    times stride) fixes the output and the padding follows, SAME_UPPER putting the odd pad at the
    end; otherwise pads (none for VALID) crop the full result, output_padding extends it."""
    strides, dil = _spatial(at, "strides", nd, 1), _spatial(at, "dilations", nd, 1)
    extra = _spatial(at, "output_padding", nd, 0)
    if min(strides + dil, default=1) < 1 or min(extra, default=0) < 0:
        raise ValueError(f"strides {strides} and dilations {dil} must be >= 1, "
                         f"output_padding {extra} >= 0")
    for i in range(nd):
        if extra[i] >= max(strides[i], dil[i]):
            raise ValueError(f"output_padding {extra} must be less than max(stride, dilation) "
                             f"on each axis (strides {strides}, dilations {dil})")
    auto = transpose_auto_pad(at)
    span = [(k[i] - 1) * dil[i] + 1 for i in range(nd)]
    full = [strides[i] * (n[i] - 1) + extra[i] + span[i] for i in range(nd)]
    out = at.get("output_shape")
    if out is None and auto in ("SAME_UPPER", "SAME_LOWER"):
        out = [n[i] * strides[i] for i in range(nd)]
    if out is not None:
        out = [int(v) for v in out]
        if len(out) != nd or min(out, default=0) < 0:
            raise ValueError(f"output_shape {out} must be {nd} sizes >= 0 (the spatial axes)")
        total = [max(0, f - o) for f, o in zip(full, out)]
        head = [t // 2 if auto == "SAME_UPPER" else t - t // 2 for t in total]
    else:
        pads = [0] * (2 * nd) if auto == "VALID" else [int(p) for p in at.get("pads", [0] * (2 * nd))]
        if len(pads) != 2 * nd or min(pads, default=0) < 0:
            raise ValueError(f"pads {pads} must be {2 * nd} sizes >= 0")
        head, total = pads[:nd], [pads[i] + pads[nd + i] for i in range(nd)]
        out = [f - t for f, t in zip(full, total)]
    for i in range(nd):
        # the output must be one a Conv with these parameters maps back onto the input
        if out[i] < 0 or (out[i] + total[i] - span[i]) // strides[i] + 1 != n[i]:
            raise ValueError(f"output size {out[i]} on spatial axis {i} does not fit input size "
                             f"{n[i]} (kernel {k[i]}, stride {strides[i]}, dilation {dil[i]}, "
                             f"output_padding {extra[i]}, padding {total[i]})")
    return strides, dil, out, head


def _conv_transpose(ins, at, opset):
    """ConvTranspose: one GEMM of the input with the weights ([C, M/group, k...] per group), then
    each kernel tap's columns added into the output at stride and dilation (col2im by slices)."""
    x, w = ins[0], ins[1]
    b = ins[2] if len(ins) > 2 else None
    nd = x.ndim - 2
    group = int(at.get("group", 1))
    if nd < 1 or w.ndim != x.ndim or group < 1 or w.shape[0] != x.shape[1] or x.shape[1] % group:
        raise ValueError(f"weight {list(w.shape)} with group {group} does not fit input "
                         f"{list(x.shape)}: expected [N, C, ...] and [C, M/group, ...] of one "
                         "rank >= 3, C divisible by group")
    if x.dtype != w.dtype or (b is not None and b.dtype != x.dtype):
        raise ValueError(f"input, weight and bias must have one dtype, got {x.dtype}, {w.dtype}"
                         + ("" if b is None else f" and {b.dtype}"))
    N, C, n, k = x.shape[0], x.shape[1], list(x.shape[2:]), list(w.shape[2:])
    cg, mg = C // group, w.shape[1]
    M = mg * group
    if "kernel_shape" in at and [int(v) for v in at["kernel_shape"]] != k:
        raise ValueError(f"kernel_shape {list(at['kernel_shape'])} does not match weight {list(w.shape)}")
    if b is not None and b.shape != (M,):
        raise ValueError(f"bias of shape {list(b.shape)} must be [{M}]")
    if min(n + k, default=1) < 1:
        raise ValueError(f"input spatial sizes {n} and kernel {k} must be >= 1")
    strides, dil, out, head = _transpose_geometry(at, n, k, nd)
    P, K = int(np.prod(n)), int(np.prod(k))
    check_size([N, M, K, P])
    size = [max(strides[i] * (n[i] - 1) + (k[i] - 1) * dil[i] + 1, head[i] + out[i]) for i in range(nd)]
    check_size([N, M] + size)
    xg = x.reshape(N, group, cg, P).transpose(1, 0, 3, 2).reshape(group, N * P, cg)
    cols = np.matmul(xg, w.reshape(group, cg, mg * K))  # [group, N*P, mg*K]
    cols = cols.reshape(group, N, P, mg, K).transpose(1, 0, 3, 4, 2).reshape([N, M] + k + n)
    y = np.zeros([N, M] + size, dtype=x.dtype)
    both = (slice(None), slice(None))
    for tap in np.ndindex(*k):
        at_tap = tuple(slice(t * d, t * d + s * (m - 1) + 1, s) for t, d, s, m in zip(tap, dil, strides, n))
        y[both + at_tap] += cols[both + tap]
    y = y[both + tuple(slice(h, h + o) for h, o in zip(head, out))]
    if b is not None:
        y = y + b.reshape([1, M] + [1] * nd)
    return [np.ascontiguousarray(y, dtype=x.dtype)]


OPS_CONV = {"Conv": _conv, "ConvTranspose": _conv_transpose}
