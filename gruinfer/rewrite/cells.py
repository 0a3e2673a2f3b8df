"""rewrite/cells.py: GRU cells written as plain ops (nn.GRUCell steps, Python or Keras-unrolled loops over a cell) rewritten into GRU nodes."""
# A pure ONNX-graph-to-ONNX-graph transformation (onnx and numpy only), run after lift_loops.
# Entry point: lift_cells(model).
#
# * A cell is a value h' computed from exactly two non-constant values x and h by the ops of a GRU
#   cell; the symbolic evaluation (evaluate.SymbolicEval, cell.match_cell) proves that
#   h' = GRU(x, h) (which gate is which, reset before or after, biases, activations) and reads
#   the weights off, and cell.self_check runs the cell's own ops against it.  Cells are found in
#   graph order; once h' is proved, it is a leaf for the cells after it.
# * A chain is cells c_1..c_T with the same weights, each starting from the one before.  When
#   c_t reads frame t of one sequence S (Gather(S, t), or Squeeze of Slice or Split of S, along
#   the same axis, t = 0..T-1 with T the length of that axis), the chain becomes one GRU over S
#   (transposed first when the frames are batch-first), starting from h of c_1 (a graph input, or
#   zeros).  The frames' outputs stacked by Unsqueeze + Concat become the GRU's Y (also through
#   the same frame-wise ops on every frame, a head per step, applied once to Y instead); the last
#   one its Y_h; any other use of an output reads its frame of Y.
# * A lone cell whose h is a graph input (a single-step model: x, h in, h' out) becomes a GRU over
#   one frame, Unsqueeze(x, 0); its output is that frame of Y, so such a model streams one frame
#   per call with the state kept in the stream (lower/: the time input has no time axis).
import copy
from dataclasses import dataclass, field

import numpy as np

import onnx

from ..onnx_io import forms
from ..onnx_io.budget import check_prover_time
from ..onnx_io.activations import OP_ACTIVATIONS
from ..onnx_io.proto import attr, attrs, opset_version
from .algebra import NotGru, Poly
from .cell import GruCell, check_data, match_cell, run_nodes, self_check
from .edit import Builder, all_names, fresh, replace_nodes
from .evaluate import SymbolicEval
from .notes import CELLS, LEFT, LIFTED, LiftNote
from .outer import OuterGraph, inferred_shapes

# Ops a cell is made of (what the symbolic evaluation understands).
CELL_OPS = {"MatMul", "Gemm", "Add", "Sub", "Mul", "Div", "Neg", "Split", "Slice", "Clip", "Cast",
            "Identity", "Min", "Max"} | set(OP_ACTIVATIONS)
# Frame-wise ops a per-frame head may hold, applied once to all frames [T, N, F] instead.
HEAD_OPS = {"MatMul", "Gemm", "Add", "Sub", "Mul", "Div", "Softmax", "LogSoftmax", "Identity",
            "Clip", "Dropout"} | set(OP_ACTIVATIONS)


@dataclass(frozen=True)
class Found:
    """A proved cell: output v = GRU(x, h) with the weights and attributes of `cell`; cone: the
    ids of the nodes that compute v from x and h; order: the index of v's node in the graph."""
    v: str
    x: str
    h: str
    cell: GruCell
    cone: frozenset
    order: int


@dataclass(frozen=True)
class Frame:
    """A value that is frame `index` of a rank-3 sequence along `axis`; count: the number of
    frames a Split cuts the sequence into (None when not a Split)."""
    seq: str
    axis: int
    index: int
    count: object = None


@dataclass
class CellRewrite:
    """The nodes that replace a chain of cells: put where its first cell began (at), replacing
    the producers of the names in redefined."""
    builder: Builder
    note: LiftNote
    redefined: set = field(default_factory=set)
    at: int = 0


def lift_cells(model):
    """(new ModelProto, [LiftNote]): GRU cells written as plain ops replaced by GRU nodes.

    The input model is not modified.  A model without cells comes back as it is (the same
    object)."""
    g = model.graph
    if not could_hold_cells(g):
        return model, []
    opset = opset_version(model)
    outer = OuterGraph(g, inferred_shapes(model).graph, opset)
    found = _find_cells(g, outer, opset)
    if not found:
        return model, []
    new = copy.deepcopy(model)
    names = all_names(new.graph)
    rewrites = []
    for chain in _chains(found):
        try:
            rw = _sequence(chain, outer, opset, names) or _single_steps(chain, outer, opset, names)
        except NotGru:
            rw = None
        if rw:
            rewrites.append(rw)
    if not rewrites:
        return model, []
    at = {}
    for rw in rewrites:
        at.setdefault(rw.at, []).extend(rw.builder.nodes)
    replace_nodes(new.graph, at, set().union(*(rw.redefined for rw in rewrites)),
                  [t for rw in rewrites for t in rw.builder.inits])
    try:
        onnx.checker.check_model(new)
    except onnx.checker.ValidationError as e:  # never hand back a broken graph
        return model, [LiftNote(CELLS, None, LEFT, "GRU cells found but not lifted: the rewritten "
                                f"graph is invalid ({e})")]
    return new, [rw.note for rw in rewrites]


def could_hold_cells(g):
    """The quick test before any proof: a gate activation, two matrix products and two products."""
    ops = [n.op_type for n in g.node]
    return any(op in ops for op in ("Sigmoid", "HardSigmoid", "Clip", "Min")) and \
        ops.count("MatMul") + ops.count("Gemm") >= 2 and ops.count("Mul") >= 2


# ----------------------------------------------------------------------------- finding cells

def _find_cells(g, outer, opset):
    producer = {o: n for n in g.node for o in n.output if o}
    graph_inputs = {v.name for v in g.input}
    leaves_of, found, cells, evaluators = {}, [], {}, {}

    def leaves(name):
        """The non-constant values `name` is computed from through cell ops (cells are leaves)."""
        if name in leaves_of:
            return leaves_of[name]
        node = producer.get(name)
        if name in outer.const:
            out = frozenset()
        elif name in cells or node is None or node.op_type not in CELL_OPS or name in graph_inputs:
            out = frozenset([name])
        else:
            out = frozenset().union(*(leaves(i) for i in node.input if i))
            if len(out) > 8:  # not a cell of two values: stop growing
                out = frozenset(list(out)[:9])
        leaves_of[name] = out
        return out

    for order, node in enumerate(g.node):
        if node.op_type not in ("Add", "Sub") or not node.output or not node.output[0]:
            continue
        v = node.output[0]
        check_prover_time(f"{node.op_type} node {node.name or v!r}")
        src = leaves(v)
        if len(src) != 2 or outer.elem_types.get(v, onnx.TensorProto.FLOAT) != onnx.TensorProto.FLOAT:
            continue
        for x, h in (tuple(src), tuple(src)[::-1]):
            H = _width(outer, h) or _width(outer, v)
            I = _width(outer, x)
            if not H or not I or _width(outer, v) not in (None, H):
                continue
            try:
                ev = evaluators.get((x, h))
                if ev is None:  # (Poly.source refuses widths the prover does not take)
                    ev = evaluators[(x, h)] = SymbolicEval(_shell(g), outer, opset, {
                        x: Poly.source("x", I), h: Poly.source("h", H)})
                    ev.I = I
                p = ev.get(v)
                if not isinstance(p, Poly) or p.width != H:
                    continue
                cell = match_cell(p, H, I)
                cone = _cone(producer, outer, x, h, v)
                _check(g, cone, outer, opset, x, h, v, cell)
            except NotGru:
                continue
            cells[v] = Found(v, x, h, cell, frozenset(id(n) for n in cone), order)
            found.append(cells[v])
            leaves_of.clear()  # v is a leaf from now on
            break
    return found


def _shell(g):
    """The graph's nodes without its initializers (constants come from OuterGraph, which leaves
    out initializers a feed may override)."""
    shell = onnx.GraphProto()
    shell.node.extend(g.node)
    return shell


def _width(outer, name):
    """The last dimension of a rank-2 row value: from shape inference, else from the weights of
    a MatMul or Gemm that reads it (None when neither says)."""
    shape = outer.shapes.get(name)
    if shape is not None and len(shape) == 2 and shape[1]:
        return shape[1]
    for n in outer.consumers.get(name, []):
        if n.op_type in ("MatMul", "Gemm") and n.input[0] == name and n.input[1] in outer.const:
            w = outer.const[n.input[1]]
            if w.ndim == 2:
                return w.shape[1 if n.op_type == "Gemm" and attr(n, "transB", 0) else 0]
    return None


def _cone(producer, outer, x, h, v):
    """The nodes that compute v from x, h and constants."""
    cone, todo, seen = {}, [v], set()
    while todo:
        name = todo.pop()
        if name in seen or name in (x, h) or name in outer.const:
            continue
        seen.add(name)
        node = producer.get(name)
        if node is None:
            raise NotGru(f"{name!r} is not computed from x and h")
        cone[id(node)] = node
        todo.extend(i for i in node.input if i)
    return list(cone.values())


def _check(g, cone, outer, opset, x, h, v, cell):
    """The cell's own nodes, run through the NumPy ops on random x and h, against the GRU."""
    index = {id(n): i for i, n in enumerate(g.node)}
    nodes = sorted(cone, key=lambda n: index[id(n)])
    used = {i for n in nodes for i in n.input if i}
    consts = {n: outer.const[n] for n in used if n in outer.const and n not in (x, h)}
    X, h0 = check_data(cell, 1, 3)
    self_check(cell, lambda k, hk: [run_nodes(nodes, dict(consts, **{x: X[k], h: hk}), opset,
                                              "the cell")[v]], X, h0)


def _chains(found):
    """Cells grouped into chains c_1 -> c_2 -> ... (same weights, each starting from the one before)."""
    by_v = {c.v: c for c in found}
    nxt = {}
    for c in found:
        prev = by_v.get(c.h)
        if prev is not None and prev.cell.same_weights(c.cell) and prev.v not in nxt:
            nxt[prev.v] = c
    starts = [c for c in found if not (c.h in by_v and nxt.get(c.h) is c)]
    chains = []
    for c in starts:
        chain = [c]
        while chain[-1].v in nxt:
            chain.append(nxt[chain[-1].v])
        chains.append(chain)
    return chains


# ----------------------------------------------------------------------------- rewriting

def _frame_of(outer, name, opset):
    """The Frame `name` is when it is one frame of a rank-3 sequence: Gather(S, t, axis),
    Squeeze(Slice(S, t, t+1, axis), axis) or Squeeze(Split(S, axis)[t], axis) with unit parts."""
    node = outer.producer.get(name)
    while node is not None and node.op_type == "Identity":
        node = outer.producer.get(node.input[0])
    if node is None:
        return None
    if node.op_type == "Gather":
        idx = outer.const.get(node.input[1])
        if idx is None or idx.ndim != 0 or outer.rank(node.input[0]) != 3:
            return None
        axis = attr(node, "axis", 0) % 3
        t = int(idx)
        if t < 0:
            T = (outer.shapes.get(node.input[0]) or [None] * 3)[axis]
            if not T:
                return None
            t += T
        return Frame(node.input[0], axis, t)
    if node.op_type != "Squeeze":
        return None
    axes = forms.list_arg("Squeeze", attrs(node), _consts(outer, node), opset)
    if axes in (None, forms.UNKNOWN) or len(axes) != 1:
        return None
    src = outer.producer.get(node.input[0])
    if src is None or outer.rank(src.input[0]) != 3:
        return None
    axis = axes[0] % 3
    if src.op_type == "Split":
        if attr(src, "axis", 0) % 3 != axis:
            return None
        sizes = forms.list_arg("Split", attrs(src), _consts(outer, src), opset)
        if sizes is forms.UNKNOWN or sizes is not None and any(s != 1 for s in sizes):
            return None
        T = (outer.shapes.get(src.input[0]) or [None] * 3)[axis]
        if sizes is None and T != len(src.output):
            return None
        return Frame(src.input[0], axis, list(src.output).index(node.input[0]), len(src.output))
    if src.op_type == "Slice":
        args = forms.slice_args(attrs(src), _consts(outer, src), opset)
        if args is forms.UNKNOWN or len(args[0]) != 1:
            return None
        (t,), (end,), (ax,), (step,) = args
        if ax % 3 != axis or step != 1 or t < 0 or end != t + 1:
            return None
        return Frame(src.input[0], axis, t)
    return None


def _consts(outer, node):
    """A node's inputs as forms readers take them: constants, None for omitted, UNKNOWN else."""
    return [outer.const.get(i, forms.UNKNOWN) if i else None for i in node.input]


def _sequence(chain, outer, opset, names):
    """The rewrite of a chain over every frame of one sequence, or None."""
    frames = [_frame_of(outer, c.x, opset) for c in chain]
    if any(f is None for f in frames):
        return None
    S, axis = frames[0].seq, frames[0].axis
    T = len(chain)
    if axis not in (0, 1) or any((f.seq, f.axis, f.index) != (S, axis, t) for t, f in enumerate(frames)):
        return None
    length = frames[0].count if frames[0].count is not None else \
        (outer.shapes.get(S) or [None] * 3)[axis]
    if length != T:
        return None  # the cells read only some frames of S (or its length is not known)
    first = chain[0]
    h0 = None if outer.is_zero(first.h) else first.h
    if h0 is not None and outer.rank(h0) not in (None, 2):
        return None
    base = fresh(names, (chain[-1].v.split("/")[0] or "cell").replace(":", "_") + "__gru")
    b = Builder(base, names, opset)
    X = S
    if axis == 1:  # batch-first frames: a time-major GRU (as exporters write them) over S transposed
        X = b.name("X")
        b.node("Transpose", [S], [X], perm=[1, 0, 2])
    ins = [X] + b.weights(first.cell) + [""]
    if h0 is not None:
        ins.append(b.unsqueeze(h0, 0))
    Y, Y_h = b.name("Y"), b.name("Y_h")
    b.gru(ins, [Y, Y_h], first.cell)
    Ysq = b.name("Ysq")  # [T, N, H]
    b.squeeze(Y, Ysq, [1])
    stacked = _stack_of(outer, [c.v for c in chain], opset)
    redefined = {c.v for c in chain}
    heads = None if stacked is not None else _per_frame_head(outer, chain, opset)
    if heads is not None:  # the same frame-wise ops on every frame's output, then stacked
        templates, stacked = heads
        Ysq = _vectorized(b, templates, Ysq, outer, opset)
    if stacked is not None:
        out, stack_axis = stacked
        if stack_axis == 0:
            b.node("Identity", [Ysq], [out])
        else:
            b.node("Transpose", [Ysq], [out], perm=[1, 0, 2])
        redefined.add(out)
    for t, c in enumerate(chain):
        nxt = chain[t + 1].cone if t + 1 < T else frozenset()
        users = [n for n in outer.consumers.get(c.v, [])
                 if id(n) not in nxt and not (stacked is not None and n.op_type == "Unsqueeze")]
        if not users and c.v not in outer.graph_outputs:
            continue
        if t == T - 1:
            b.squeeze(Y_h, c.v, [0])
        else:
            b.node("Gather", [Ysq, b.const("t", np.array(t, np.int64))], [c.v], axis=0)
    note = LiftNote(CELLS, chain[-1].v, LIFTED, (
        f"{T} GRU cells over {'frames' if axis == 0 else 'batch-first frames'} of {S!r} lifted "
        f"into one GRU node (hidden_size={first.cell.H}, input_size={first.cell.I}, "
        f"linear_before_reset={first.cell.lbr})"))
    return CellRewrite(b, note, redefined, min(c.order for c in chain))


def _stack_of(outer, outs, opset):
    """(name, axis) when the outputs are stacked in order, Concat(Unsqueeze(v_t, axis), axis)."""
    ups = []
    for v in outs:
        us = [n for n in outer.consumers.get(v, []) if n.op_type == "Unsqueeze"]
        if len(us) != 1:
            return None
        axes = forms.list_arg("Unsqueeze", attrs(us[0]), _consts(outer, us[0]), opset)
        if axes in (None, forms.UNKNOWN) or len(axes) != 1:
            return None
        ups.append((us[0].output[0], axes[0] % 3))
    cats = outer.consumers.get(ups[0][0], [])
    if len(cats) != 1 or cats[0].op_type != "Concat" or list(cats[0].input) != [u for u, _ in ups]:
        return None
    axis = ups[0][1]
    if any(a != axis for _, a in ups) or attr(cats[0], "axis") % 3 != axis or axis not in (0, 1):
        return None
    if any(len(outer.consumers.get(u, [])) != 1 for u, _ in ups):
        return None
    return cats[0].output[0], axis


def _per_frame_head(outer, chain, opset):
    """([(template node, index of the per-frame input)], stack) when every frame's output goes
    through the same frame-wise ops (a Linear per step: ys.append(fc(h))) and the results are
    stacked in order; else None."""
    cur, templates = [c.v for c in chain], []
    for _ in range(64):
        stacked = _stack_of(outer, cur, opset)
        if stacked is not None:
            return (templates, stacked) if templates else None
        nodes = []
        for t, v in enumerate(cur):
            cone = chain[t + 1].cone if not templates and t + 1 < len(chain) else frozenset()
            users = [n for n in outer.consumers.get(v, []) if id(n) not in cone]
            if len(users) != 1 or users[0].op_type not in HEAD_OPS or len(
                    [o for o in users[0].output if o]) != 1 or v in outer.graph_outputs and templates:
                return None
            nodes.append(users[0])
        first = nodes[0]
        k = list(first.input).index(cur[0])
        for t, n in enumerate(nodes):
            same = n.op_type == first.op_type and list(n.attribute) == list(first.attribute) and \
                len(n.input) == len(first.input) and list(n.input).index(cur[t]) == k
            if not same or any(not _same_value(outer, a, b) for i, (a, b) in
                               enumerate(zip(n.input, first.input)) if i != k):
                return None
        if first.op_type == "Gemm" and (k != 0 or attr(first, "transA", 0)):
            return None
        templates.append((first, k))
        cur = [n.output[0] for n in nodes]
    return None


def _same_value(outer, a, b):
    """The same input in two frames' heads: one name, or equal constants."""
    if a == b:
        return True
    va, vb = outer.const.get(a), outer.const.get(b)
    return va is not None and vb is not None and va.shape == vb.shape and np.array_equal(va, vb)


def _vectorized(b, templates, x, outer, opset):
    """The per-frame head ops applied once to x [T, N, F]: Gemm becomes MatMul (+ Add), axis
    attributes move past the new leading time axis."""
    for node, k in templates:
        out = b.name(node.op_type.lower())
        ins = list(node.input)
        ins[k] = x
        if node.op_type == "Gemm":
            w = outer.const.get(ins[1])
            if w is None:
                raise NotGru("a per-frame Gemm whose weight is not a constant")
            w = (w.T if attr(node, "transB", 0) else w) * attr(node, "alpha", 1.0)
            mm = out if len(ins) < 3 or not ins[2] else b.name("matmul")
            b.node("MatMul", [x, b.const("w", w.astype(np.float32))], [mm])
            if mm != out:
                c = ins[2] if attr(node, "beta", 1.0) == 1.0 else b.const(
                    "bias", (outer.const[ins[2]] * attr(node, "beta", 1.0)).astype(np.float32))
                b.node("Add", [mm, c], [out])
        else:
            at = attrs(node)
            axis = forms.softmax_axis(at, opset) if node.op_type in ("Softmax", "LogSoftmax") \
                else at.get("axis")
            if axis is not None and axis >= 0:  # past the new leading time axis
                at["axis"] = axis + 1
            b.node(node.op_type, ins, [out] + [""] * (len(node.output) - 1), **at)
        x = out
    return x


def _single_steps(chain, outer, opset, names):
    """Lone cells (chain of one) whose h is a graph input: one GRU frame each."""
    c = chain[0]
    if len(chain) != 1 or c.h not in {v.name for v in outer.graph.input}:
        return None
    b = Builder(fresh(names, c.v.replace("/", "_").replace(":", "_") + "__gru"), names, opset)
    X = b.unsqueeze(c.x, 0)
    Y = b.name("Y")
    b.gru([X] + b.weights(c.cell) + ["", b.unsqueeze(c.h, 0)], [Y, ""], c.cell)
    b.squeeze(Y, c.v, [0, 1])
    note = LiftNote(CELLS, c.v, LIFTED, (
        f"a GRU cell ({c.x!r}, {c.h!r}) -> {c.v!r} lifted into a one-frame GRU node "
        f"(hidden_size={c.cell.H}, input_size={c.cell.I}, linear_before_reset={c.cell.lbr})"))
    return CellRewrite(b, note, {c.v}, c.order)
