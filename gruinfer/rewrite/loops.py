"""rewrite/loops.py: ONNX Loops that provably compute a GRU cell (tf2onnx Keras, jax2onnx flax / Keras-on-JAX) rewritten into GRU nodes."""
# A pure ONNX-graph-to-ONNX-graph transformation (onnx and numpy only). Entry point: lift_loops(model).
#
# How a Loop is proved to be a GRU:
# * The loop-carried values are classified: pass-through (weights, the time length), a counter
#   (starts at 0, +1 per step), and exactly one float state h.
# * The body's new state is evaluated symbolically (evaluate.SymbolicEval over algebra.Poly):
#   every value is an elementwise polynomial over "leaves" with per-column coefficients; a leaf
#   is either a linear map of x (the input row Gather(X, counter)), of h or of a product of
#   leaves, or an activation of a polynomial.  Any op on a step-dependent value the evaluation
#   does not know means "not provably a GRU".  Constants (body initializers, outer initializers,
#   loop-carried constants) are folded with the NumPy ops.  X may be an outer tensor or a
#   loop-carried value passed through unchanged (jax2onnx's scan).
# * cell.match_cell reads the new state as z*h + (1-z)*g(...) (reset before or after), and the
#   weights off the polynomial, so which MatMul, Split or Slice produced them does not matter.
# * The trip count and the loop condition must make the loop run exactly T = X.shape[0] steps
#   for every T >= 1; every scan output must be the new state; the body itself, run for two
#   steps, must agree with the GRU read off it (cell.self_check).
# The Loop is then replaced by GRU (+ Squeeze to drop num_directions, + Unsqueeze of a non-zero
# initial state) producing the Loop's output names, so all consumers stay as they were; nodes
# left dead are removed. The last step taken from the scan output (tf2onnx's Slice(Y, -1:),
# jax2onnx's Gather(Y, T - 1) with T - 1 computed from shapes) is read from the GRU's Y_h instead.
#
# flax.nnx.GRUCell (n = tanh(x Wn + b_n + r * (h Rn)), new h = (1 - z) * n + z * h, no recurrent
# bias) is reset-after: linear_before_reset=1 with Rb = 0.
import copy
from dataclasses import dataclass

import numpy as np

import onnx

from ..onnx_io import forms
from ..onnx_io.budget import check_prover_time
from ..onnx_io.proto import attr, attrs, declared_dims, known_sizes, opset_version, tensor_to_array
from .algebra import Cond, Count, NotGru, Poly, number, scalar
from .cell import GruCell, check_data, match_cell, run_nodes, self_check
from .edit import Builder, all_names, graph_free_names, node_reads, replace_nodes
from .evaluate import Outer, SymbolicEval
from .notes import LEFT, LIFTED, LOOP, LiftNote
from .outer import OuterGraph, inferred_shapes

_INT_MAX = 2 ** 31 - 1


@dataclass(frozen=True)
class LoopCell:
    """A Loop proved to be a GRU: the cell, its input sequence X, its initial state (None when
    zero), and its outputs: the final state, the scan outputs and the passed-through values
    (output, the input it passes)."""
    cell: GruCell
    X: str
    h0: object
    state_out: str
    scan_outs: list
    passthrough: list


def lift_loops(model):
    """(new ModelProto, [LiftNote]): every top-level Loop that provably computes a GRU cell
    replaced by a GRU node.  The input model is not modified; Loops that are not provably a GRU
    cell stay as they were, and their note says why."""
    if not isinstance(model, onnx.ModelProto):
        raise TypeError(f"model must be an onnx.ModelProto, not {type(model).__name__}")
    new = copy.deepcopy(model)
    loops = [n for n in new.graph.node if n.op_type == "Loop" and n.domain in ("", "ai.onnx")]
    if not loops:
        return new, []
    opset = opset_version(new)
    outer = OuterGraph(new.graph, inferred_shapes(model).graph, opset)
    names = all_names(new.graph)
    index = {id(n): i for i, n in enumerate(new.graph.node)}
    at, redefined, inits, notes = {}, set(), [], []
    for i, loop in enumerate(loops):
        label = loop.name or f"Loop_{i}"
        check_prover_time(f"Loop node {label!r}")
        try:
            found = _analyse(loop, outer, opset)
            outer.proven[id(loop)] = outer.dim(found.X, 0)
            b = _replacement(loop, found, outer, opset, names)
        except NotGru as e:
            outer.proven.pop(id(loop), None)
            notes.append(LiftNote(LOOP, label, LEFT, str(e)))
            continue
        at[index[id(loop)]] = b.nodes
        redefined.update(o for n in b.nodes for o in n.output if o)
        inits.extend(b.inits)
        c = found.cell
        notes.append(LiftNote(LOOP, label, LIFTED, (
            f"hidden_size={c.H}, input_size={c.I}, linear_before_reset={c.lbr}, "
            f"activations={c.f.name}/{c.g.name}{', zero initial state' if found.h0 is None else ''}")))
    if at:
        replace_nodes(new.graph, at, redefined, inits)
        _drop_unread_y(new.graph, {n.name for nodes in at.values() for n in nodes if n.op_type == "GRU"})
        try:
            onnx.checker.check_model(new)
        except onnx.checker.ValidationError as e:  # never hand back a broken graph
            return copy.deepcopy(model), [LiftNote(LOOP, n.node, LEFT, f"lifting produced an invalid "
                                                   f"graph ({e})") for n in notes]
    return new, notes


# ----------------------------------------------------------------------------- proving the cell

def _analyse(loop, outer, opset):
    body = attr(loop, "body")
    if body is None:
        raise NotGru("no body")
    n_in, n_out = len(loop.input), len(body.output)
    n_carried = n_in - 2
    n_scan = n_out - 1 - n_carried
    if n_carried < 1 or n_scan < 0 or len(body.input) != n_in or len(loop.output) != n_carried + n_scan:
        raise NotGru("inputs and outputs do not match the Loop signature")
    bin_names = [v.name for v in body.input]
    bout_names = [v.name for v in body.output]
    producer = {o: n for n in body.node for o in n.output}

    def resolve(name):  # follow Identity chains in the body
        seen = set()
        while name in producer and producer[name].op_type == "Identity" and name not in seen:
            seen.add(name)
            name = producer[name].input[0]
        return name

    bindings = {bin_names[0]: Count("k", 0)}
    kinds = []
    for j in range(n_carried):
        bi, bo, init = bin_names[2 + j], bout_names[1 + j], loop.input[2 + j]
        if resolve(bo) == bi:
            kinds.append("pass")
            v = outer.value(init) if init else None
            bindings[bi] = v if v is not None else Outer(init)
        else:
            kinds.append(None)
    # Counters: next = current + 1, starting from the constant 0.
    probe = SymbolicEval(body, outer, opset, dict(bindings, **{bin_names[1]: Cond()}))
    for j in range(n_carried):
        if kinds[j] is None:
            bi, bo, init = bin_names[2 + j], bout_names[1 + j], loop.input[2 + j]
            iv = outer.const.get(init)
            node = producer.get(resolve(bo))
            if (iv is not None and iv.dtype.kind in "iu" and iv.size == 1 and int(iv.reshape(())) == 0
                    and node is not None and node.op_type == "Add"):
                other = [n for n in node.input if n != bi]
                if len(other) == 1 and bi in node.input and scalar(probe.get(other[0])) == 1:
                    kinds[j] = "count"
                    bindings[bi] = Count("k", 0)
    state = [j for j in range(n_carried) if kinds[j] is None]
    if len(state) != 1:
        raise NotGru(f"expected exactly one recurrent state, found {len(state)} non-constant "
                     "loop-carried values that are not counters")
    s = state[0]
    h_in, h_out, h0 = bin_names[2 + s], bout_names[1 + s], loop.input[2 + s]
    H = _state_width(body, h_in, h0, outer)
    bindings[h_in] = Poly.source("h", H)
    cond_init = outer.value(loop.input[1]) if loop.input[1] else Cond()
    if not isinstance(cond_init, Cond):
        v = cond_init
        if isinstance(v, np.ndarray) and v.dtype == np.bool_ and v.size == 1 and bool(v.reshape(())):
            cond_init = Cond()
        else:
            raise NotGru("the initial loop condition is not recognised")
    bindings[bin_names[1]] = cond_init
    ev = SymbolicEval(body, outer, opset, bindings)
    ev.I = _input_width_hint(body, ev)
    new_h = ev.get(h_out)
    if not isinstance(new_h, Poly) or new_h.width != H:
        raise NotGru("the new state is not a row value of the state's width")
    if ev.X is None:
        raise NotGru("the body does not read an input sequence at the current step")
    cell = match_cell(new_h, H, ev.I)
    _prove_trip_count(loop, outer, ev, outer.dim(ev.X, 0), cond_init)
    for k in range(n_scan):
        name = bout_names[1 + n_carried + k]
        if not outer.used(loop.output[n_carried + k]):
            continue
        v = ev.get(name)
        if not isinstance(v, Poly) or v.key != new_h.key:
            raise NotGru(f"scan output {k} ({name!r}) is not the new state")
    for j in range(n_carried):
        if j != s and kinds[j] != "pass" and outer.used(loop.output[j]):
            raise NotGru(f"the final value of loop counter {j} is used after the loop")
    if outer.elem_types.get(ev.X) != onnx.TensorProto.FLOAT:
        raise NotGru(f"the input sequence {ev.X!r} is not known to be float32")
    found = LoopCell(cell, ev.X, None if outer.is_zero(h0) else h0, loop.output[s],
                     [loop.output[n_carried + k] for k in range(n_scan)],
                     [(loop.output[j], loop.input[2 + j]) for j in range(n_carried) if kinds[j] == "pass"])
    used_scans = [bout_names[1 + n_carried + k] for k in range(n_scan) if outer.used(found.scan_outs[k])]
    _check_body(body, outer, opset, found, kinds, loop, s, [h_out] + used_scans)
    return found


def _check_body(body, outer, opset, found, kinds, loop, s, checked):
    """The original body, run for two steps of a 3-step sequence through the NumPy ops, against
    the extracted GRU (cell.self_check)."""
    T = 3
    X, h = check_data(found.cell, T, 2)
    np_types = {onnx.TensorProto.INT32: np.int32, onnx.TensorProto.INT64: np.int64,
                onnx.TensorProto.FLOAT: np.float32, onnx.TensorProto.DOUBLE: np.float64,
                onnx.TensorProto.BOOL: np.bool_}

    def concrete(v, elem_type):
        if isinstance(v, np.ndarray):
            return v
        if isinstance(v, Count) and v.base != "k":
            return np.array(T + v.off, dtype=np_types.get(elem_type, np.int64))
        if isinstance(v, Cond):
            return np.array(True)
        return None

    defined = {v.name for v in body.input} | {t.name for t in body.initializer}
    for node in body.node:
        defined.update(node.output)
    scope = {t.name: tensor_to_array(t, "Loop body initializer") for t in body.initializer}
    for name in sorted({n for n in graph_free_names(body) if n not in defined}):
        v = X if name == found.X else concrete(outer.value(name), outer.elem_types.get(name))
        if v is None:
            raise NotGru(f"self-check: no value for outer tensor {name!r}")
        scope[name] = v
    nodes = _cone(body, checked)

    def outputs_at(k, h):
        feeds = dict(scope)
        for j, v in enumerate(body.input):
            et = v.type.tensor_type.elem_type
            if j == 0 or (j >= 2 and kinds[j - 2] == "count"):
                feeds[v.name] = np.array(k, dtype=np_types.get(et, np.int64))
            elif j == 1:
                feeds[v.name] = np.array(True)
            elif j - 2 == s:
                feeds[v.name] = h
            else:
                val = concrete(outer.value(loop.input[j]), et) if loop.input[j] else None
                if val is None and loop.input[j] == found.X:  # the sequence carried through (jax2onnx)
                    val = X
                if val is None:
                    val = scope.get(loop.input[j])
                if val is None:
                    raise NotGru(f"self-check: no value for loop input {loop.input[j]!r}")
                feeds[v.name] = val
        values = run_nodes(nodes, feeds, opset, "the body")
        return [values[name] for name in checked]

    self_check(found.cell, outputs_at, X[:2], h)


def _cone(body, names):
    """The body's nodes that compute names, in body order."""
    producer = {o: n for n in body.node for o in n.output if o}
    need, todo = set(), list(names)
    while todo:
        node = producer.get(todo.pop())
        if node is not None and id(node) not in need:
            need.add(id(node))
            todo.extend(node_reads(node))
    return [n for n in body.node if id(n) in need]


def _state_width(body, h_in, h0, outer):
    declared = [_value_info_sizes(body, h_in), outer.shapes.get(h0)]
    for shape in declared:
        if shape and len(shape) != 2:
            raise NotGru(f"the recurrent state has rank {len(shape)}, not 2 ([N, H])")
    for shape in declared:
        if shape and shape[1]:
            return shape[1]
    v = outer.const.get(h0)
    if v is not None and v.ndim >= 1:
        return v.shape[-1]
    for node in body.node:  # h @ R: R's first dimension (its second for Gemm with transB=1)
        if node.op_type in ("MatMul", "Gemm") and node.input[0] == h_in:
            axis = 1 if node.op_type == "Gemm" and attr(node, "transB", 0) else 0
            for t in body.initializer:
                if t.name == node.input[1] and len(t.dims) == 2:
                    return t.dims[axis]
            w = outer.const.get(node.input[1])
            if w is not None and w.ndim == 2:
                return w.shape[axis]
    raise NotGru("cannot determine the state width")


def _value_info_sizes(graph, name):
    for v in list(graph.input) + list(graph.value_info):
        if v.name == name:
            return known_sizes(declared_dims(v)) or []
    return []


def _input_width_hint(body, ev):
    """The input width from the first MatMul of the gathered row by a constant, if shapes do not say."""
    gathered = {n.output[0] for n in body.node if n.op_type == "Gather"}
    for node in body.node:
        if node.op_type in ("MatMul", "Gemm") and node.input[0] in gathered:
            try:
                w = ev.get(node.input[1])
            except NotGru:
                continue
            if isinstance(w, np.ndarray) and w.ndim == 2:
                return w.shape[1 if node.op_type == "Gemm" and attr(node, "transB", 0) else 0]
    return None


def _prove_trip_count(loop, outer, ev, T, cond_init):
    """NotGru unless the loop runs exactly T steps for every T >= 1 (for the one T of an input
    whose length is fixed, when the shapes fix it)."""
    static = outer.shapes.get(ev.X, [None])[0]

    def off(c):
        """c - T, when c is the sequence length plus a constant (a fixed length compared as a number)."""
        if isinstance(c, Count) and c.base == T:
            return c.off
        v = scalar(c) if isinstance(c, np.ndarray) else number(c)
        if static and v is not None and v == int(v):
            return int(v) - static
        return None

    M = loop.input[0]
    bounded = False
    if M:
        if off(outer.value(M)) != 0:
            raise NotGru("the trip count is not the length of the input sequence")
        bounded = True
    for lhs, rhs in cond_init.terms:
        if not (off(rhs) is not None and number(lhs) is not None and number(lhs) < 1 + off(rhs)):
            raise NotGru("the initial loop condition is not 'the sequence is non-empty'")
    cond = ev.get(attr(loop, "body").output[0].name)
    if not isinstance(cond, Cond):
        raise NotGru("the loop condition is not a comparison of the step with the sequence length")
    stops = False
    for lhs, rhs in cond.terms:
        if off(rhs) is None:
            raise NotGru("the loop condition compares with something other than the sequence length")
        if isinstance(lhs, Count) and lhs.base == "k":
            if lhs.off > off(rhs) + 1:
                raise NotGru("the loop condition ends the loop early")
            stops = stops or lhs.off == off(rhs) + 1
        elif number(lhs) is not None:
            if not number(lhs) < 2 + off(rhs):
                raise NotGru("the loop condition can end the loop early")
        else:
            raise NotGru("the loop condition is not recognised")
    if not (bounded or stops):
        raise NotGru("nothing bounds the loop to the sequence length")


# ----------------------------------------------------------------------------- rewriting

def _replacement(loop, found, outer, opset, names):
    """A Builder holding the nodes (and initializers) that compute the Loop's used outputs."""
    b = Builder((loop.name or "loop").replace("/", "_") + "_", names, opset)
    gru_in = [found.X] + b.weights(found.cell) + [""]
    if found.h0 is not None:
        gru_in.append(b.unsqueeze(found.h0, 0, out=b.name("gru_initial_h")))
    # Keras' return_sequences=False takes Slice(Y, -1:, axis 0): that is Y_h. Let Y_h produce it.
    used_scans = [s for s in found.scan_outs if outer.used(s)]
    last_step, last_row = [], []
    T = outer.dim(found.X, 0)
    for s in used_scans:
        for c in outer.consumers.get(s, []):
            if s in outer.graph_outputs:
                continue
            if _is_last_step_slice(c, outer, opset):
                last_step.append(c)
            elif c.op_type == "Gather" and c.input[0] == s and _is_last_step_index(c, outer, T):
                last_row.append(c)  # jax2onnx (Keras on JAX): Gather(Y, T - 1) is Y_h without its first axis
    y, y_h = b.name("gru_Y"), b.name("gru_Y_h")
    if last_step:
        y_h = last_step[0].output[0]
    sliced = {id(c) for c in last_step + last_row}
    scan_still_used = any(s in outer.graph_outputs or any(id(c) not in sliced for c in outer.consumers.get(s, []))
                          for s in used_scans)
    b.gru(gru_in, [y if scan_still_used else "", y_h], found.cell)
    if scan_still_used:
        b.squeeze(y, used_scans[0], [1])
        for s in used_scans[1:]:
            b.node("Identity", [used_scans[0]], [s], tag="scan")
    if outer.used(found.state_out):
        b.squeeze(y_h, found.state_out, [0])
    for out, init in found.passthrough:
        if outer.used(out):
            b.node("Identity", [init], [out], tag="pass")
    for c in last_step[1:]:
        b.node("Identity", [y_h], [c.output[0]], tag="last")
    for c in last_row:
        b.squeeze(y_h, c.output[0], [0])
    return b


def _is_last_step_index(node, outer, T):
    """Gather(v, i, axis=0) with i the scalar -1 or T - 1: the last time step of v, time axis dropped."""
    if (attr(node, "axis", 0) or 0) != 0:
        return False
    i = outer.value(node.input[1])
    if isinstance(i, Count):
        return i.base == T and i.off == -1
    return isinstance(i, np.ndarray) and i.ndim == 0 and i.dtype.kind in "iu" and int(i) == -1


def _is_last_step_slice(node, outer, opset):
    """Slice(v, starts=[-1], ends=[>= INT_MAX], axes=[0], steps=[1]): the last time step of v."""
    if node.op_type != "Slice":
        return False
    args = forms.slice_args(attrs(node), [None] + [outer.const.get(n, forms.UNKNOWN) if n else None
                                                   for n in node.input[1:]], opset)
    if args is forms.UNKNOWN:
        return False
    starts, ends, axes, steps = args
    return starts == [-1] and len(ends) == 1 and ends[0] >= _INT_MAX and axes == [0] and steps == [1]


def _drop_unread_y(graph, ours):
    """Blank the Y output of the lifted GRU nodes (names in ours) once nothing reads it (only a pruned Shape did)."""
    reads = {o.name for o in graph.output}
    for n in graph.node:
        reads.update(node_reads(n))
    for n in graph.node:
        if n.name in ours and n.op_type == "GRU" and n.output[0] and n.output[0] not in reads:
            n.output[0] = ""
