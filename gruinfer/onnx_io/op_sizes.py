"""onnx_io/op_sizes.py: a bound on what each op would allocate, from its inputs' shapes alone, so a load budget can refuse a fold before it runs."""
import numpy as np

# Ops whose outputs are the broadcast of their inputs (temporaries of the variadic ones stack
# every input at that size).
_BROADCAST = {"Add", "Sub", "Mul", "Div", "Pow", "PRelu", "Where", "Equal", "Less", "LessOrEqual",
              "Greater", "GreaterOrEqual", "And", "Or", "Xor", "Min", "Max", "Sum", "Mean"}


def output_bound(op, ins, at):
    """(elements, bytes per element): a bound on the largest output (or temporary) of op on
    these inputs, computed from their shapes before the op runs.  Ops not named here make
    nothing larger than their largest input."""
    arrs = [np.asarray(v) for v in ins if v is not None]
    if not arrs:
        return 0, 8
    item = max(max(a.itemsize for a in arrs), 4)
    shapes = [a.shape for a in arrs]
    n = max(a.size for a in arrs)
    if op in _BROADCAST:
        n = _elements(np.broadcast_shapes(*shapes)) * (len(arrs) if op in ("Sum", "Mean") else 1)
    elif op in ("MatMul", "Gemm") and len(arrs) >= 2 and min(len(s) for s in shapes[:2]) >= 1:
        a, b = shapes[0], shapes[1]
        if op == "Gemm":
            a = a[::-1] if at.get("transA", 0) else a
            b = b[::-1] if at.get("transB", 0) else b
        rows = a[-2] if len(a) >= 2 else 1
        cols = b[-1] if len(b) >= 2 else 1
        n = _elements(np.broadcast_shapes(a[:-2], b[:-2])) * rows * cols
    elif op in ("Expand", "Tile", "Pad", "ConstantOfShape", "Range"):
        n = _grown(op, arrs, at, n)
    elif op == "Concat":
        n = sum(a.size for a in arrs)
    elif op == "Gather" and len(arrs) == 2 and arrs[0].ndim:
        axis = at.get("axis", 0)
        n = arrs[1].size * arrs[0].size // max(arrs[0].shape[axis % arrs[0].ndim], 1)
    elif op == "NonZero":
        n = arrs[0].size * max(arrs[0].ndim, 1)
    elif op == "Conv" and arrs[0].ndim >= 3 and len(arrs) >= 2:
        pads = sum(at.get("pads", ())) + 1
        n = _elements(arrs[0].shape[:2]) * (_elements(arrs[0].shape[2:]) + pads) * \
            max(_elements(arrs[1].shape[1:]), 1) * max(arrs[1].shape[0], 1)
    elif op == "Cast":
        item = max(item, 8)
    return n, item


def _grown(op, arrs, at, n):
    """Elements Expand, Tile, Pad, ConstantOfShape or Range make, from their size inputs (0
    where the op will refuse its sizes)."""
    if op == "Range":
        if len(arrs) != 3 or any(a.size != 1 for a in arrs):
            return 0
        start, limit, delta = (float(a.reshape(())) for a in arrs)
        return 0 if delta == 0 or not np.isfinite((limit - start) / delta) else \
            max(int(min(np.ceil((limit - start) / delta), 2.0**62)), 0)
    if op == "Pad":  # pads from opset 11 an input, before an attribute; axes may pick the axes
        sizes = arrs[1] if len(arrs) > 1 else np.asarray(at.get("pads", []), np.int64)
    else:
        sizes = arrs[0] if op == "ConstantOfShape" else arrs[1] if len(arrs) > 1 else None
    if sizes is None or sizes.dtype.kind not in "iu" or sizes.ndim > 1 or sizes.size > 128:
        return n
    d = [int(v) for v in sizes.reshape(-1)]
    x = arrs[0].shape
    if op == "ConstantOfShape":
        return _elements(d)
    if op == "Tile":
        return _elements([a * b for a, b in zip(x, d)]) if len(d) == len(x) else 0
    if op == "Pad":  # every axis grows by at most all the pads together
        grow = sum(max(p, 0) for p in d)
        return _elements([a + grow for a in x])
    out = [max(a, b) for a, b in zip((1,) * (len(d) - len(x)) + x, (1,) * (len(x) - len(d)) + tuple(d))]
    return _elements(out)


def _elements(shape):
    n = 1
    for d in shape:
        n *= max(int(d), 0)
    return n
