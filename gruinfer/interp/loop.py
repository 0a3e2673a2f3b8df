"""interp/loop.py: ONNX Loops that are not GRU cells, run iteration by iteration through the NumPy ops (the declared slow path)."""
from collections import ChainMap

import numpy as np

from ..onnx_io.ops import OpError


def run_loop(body, ins, scope, run_op, max_iterations):
    """The outputs of a Loop with this graph.LoopBody: final carried values, then the scan
    outputs stacked on a new first axis.  ins: its inputs (trip count, condition, initial
    carried values); scope: every value visible where the Loop runs; run_op(node, values) runs
    one body node.  OpError when the Loop cannot go on, or would pass max_iterations (the
    LoadBudget's loop_iterations) whatever its trip count or condition says."""
    ins = list(ins) + [None] * (2 - len(ins))
    trip, cond = ins[0], ins[1]
    carried = list(ins[2:])
    n = len(carried)
    for value, what in ((trip, "trip count"), (cond, "condition")):
        if value is not None and np.size(value) != 1:
            raise OpError(f"the {what} must hold one value, not {np.size(value)}")
    trips = None if trip is None else int(np.asarray(trip).reshape(()))
    going = True if cond is None else bool(np.asarray(cond).reshape(()))
    scans = [[] for _ in body.outputs[1 + n:]]
    i = 0
    while going and (trips is None or i < trips):
        if i >= max_iterations:
            raise OpError(f"the Loop would run more than {max_iterations} iterations, the budget "
                          "loop_iterations (gruinfer.LoadBudget)")
        local = dict(body.constants)
        local[body.inputs[0]] = np.array(i, np.int64)
        local[body.inputs[1]] = np.array(going)
        local.update(zip(body.inputs[2:], carried))
        values = ChainMap(local, scope)
        for b in body.nodes:
            outs = run_op(b, values)
            for name, a in zip(b.outputs, outs):
                if name:
                    local[name] = a
        outs = [values[o] for o in body.outputs]
        if cond is not None:  # without a condition input the body's condition is ignored (a for loop)
            if np.size(outs[0]) != 1:
                raise OpError(f"the body's condition must hold one value, not {np.size(outs[0])}")
            going = bool(np.asarray(outs[0]).reshape(()))
        carried = outs[1:1 + n]
        for k, a in enumerate(outs[1 + n:]):
            if k < len(scans):
                if scans[k] and a.shape != scans[k][0].shape:
                    raise OpError(f"scan output {k} changes shape from {list(scans[k][0].shape)} "
                                     f"to {list(a.shape)} between iterations")
                scans[k].append(a)
        i += 1
    # no iteration: empty scan outputs shaped as the body declares them, when it does
    return carried + [np.stack(s) if s else _empty_scan(k, dt, shape) for k, (s, dt, shape) in
                      enumerate(zip(scans, body.out_dtypes[1 + n:], body.out_shapes[1 + n:]))]


def _empty_scan(k, dtype, shape):
    """Scan output k of a Loop that ran no iteration: no frames of the shape the body declares."""
    try:
        return np.zeros((0,) + tuple(shape or ()), dtype)
    except (ValueError, TypeError):  # numpy: sizes whose product no array can have
        raise OpError(f"scan output {k} of the body declares shape {list(shape)}, which no "
                      "array can have") from None
