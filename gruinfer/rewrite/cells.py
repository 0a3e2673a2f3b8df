"""rewrite/cells.py: rewrite GRU cells written as plain ops (nn.GRUCell steps, Python or Keras-unrolled loops over a cell) into GRU nodes."""
# A pure ONNX-graph-to-ONNX-graph transformation (onnx and numpy only), run after lift_loops.
# Entry point: lift_cells(model).
#
# * A cell is a value h' computed from exactly two non-constant values x and h by the ops of a GRU
#   cell; the symbolic evaluation of lift_loop proves that h' = GRU(x, h) (which gate is which,
#   reset before or after, biases, activations) and reads the weights off, and a numeric check
#   against onnx.reference guards the proof.  Cells are found in graph order; once h' is proved,
#   it is a leaf for the cells after it.
# * A chain is cells c_1..c_T with the same weights, each starting from the one before.  When
#   c_t reads frame t of one sequence S (Gather(S, t), or Squeeze of Slice or Split of S, along
#   the same axis, t = 0..T-1 with T the length of that axis), the chain becomes one GRU over S
#   (transposed first when the frames are batch-first), starting from h of c_1 (a graph input, or
#   zeros).  The frames'
#   outputs stacked by Unsqueeze + Concat become the GRU's Y (also through the same frame-wise ops
#   on every frame, a head per step, applied once to Y instead); the last one its Y_h; any other
#   use of an output reads its frame of Y.
# * A lone cell whose h is a graph input (a single-step model: x, h in, h' out) becomes a GRU over
#   one frame, Unsqueeze(x, 0); its output is that frame of Y, so such a model streams one frame
#   per call with the state kept in the stream (lower.py: the time input has no time axis).
import copy

import numpy as np

import onnx
from onnx import helper, numpy_helper

from .loops import (NotGru, _Body, _gru_step, _match_cell, _Outer, _Poly, _all_names, _attr,
                        _fresh, _node_reads, _prune, gru_attrs)

# Ops a cell is made of (what lift_loop's symbolic evaluation understands).
CELL_OPS = {"MatMul", "Gemm", "Add", "Sub", "Mul", "Div", "Neg", "Split", "Slice", "Sigmoid", "Tanh",
            "Relu", "HardSigmoid", "Clip", "Cast", "Identity", "Min", "Max", "Elu", "LeakyRelu",
            "ThresholdedRelu", "Softsign", "Softplus"}


class _Found:
    """A proved cell: output v = GRU(x, h) with the weights and attributes of `cell`; cone: the
    ids of the nodes that compute v from x and h; order: the index of v's node in the graph."""

    def __init__(self, v, x, h, cell, cone, order):
        self.v, self.x, self.h, self.cell, self.cone, self.order = v, x, h, cell, cone, order

    def same_weights(self, other):
        a, b = self.cell, other.cell
        return (a.H, a.I, a.lbr, a.f, a.g) == (b.H, b.I, b.lbr, b.f, b.g) and all(
            np.array_equal(p, q) for p, q in ((a.W, b.W), (a.R, b.R), (a.B, b.B)))


def lift_cells(model):
    """(new ModelProto, notes): GRU cells written as plain ops replaced by GRU nodes.

    The input model is not modified; notes say what was lifted.  A model without cells comes
    back as it is (the same object)."""
    g = model.graph
    ops = [n.op_type for n in g.node]
    if not (any(op in ops for op in ("Sigmoid", "HardSigmoid", "Clip", "Min")) and
            ops.count("MatMul") + ops.count("Gemm") >= 2 and ops.count("Mul") >= 2):
        return model, []  # no gate activation, two matrix products and two products: no cell
    opset = next((i.version for i in model.opset_import if i.domain in ("", "ai.onnx")), 1)
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:  # shape inference is a help, not a requirement
        inferred = model
    try:
        outer = _Outer(g, inferred.graph, opset)
        found = _find_cells(g, outer, opset)
    except Exception:  # a graph the analysis cannot read: nothing is lifted
        return model, []
    if not found:
        return model, []
    new = copy.deepcopy(model)
    names = _all_names(new.graph)
    plans, notes = [], []
    for chain in _chains(found):
        try:
            plan = _sequence(chain, outer, opset, names) or _single_steps(chain, outer, opset, names)
        except NotGru:
            plan = None
        if plan:
            plans.append(plan)
            notes.append(plan[2])
    if not plans:
        return model, []
    _rewrite(new.graph, plans)
    try:
        onnx.checker.check_model(new)
    except Exception as e:  # never hand back a broken graph
        return model, [f"GRU cells found but not lifted: the rewritten graph is invalid ({e})"]
    return new, notes


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
        src = leaves(v)
        if len(src) != 2 or outer.elem_types.get(v, onnx.TensorProto.FLOAT) != onnx.TensorProto.FLOAT:
            continue
        for x, h in (tuple(src), tuple(src)[::-1]):
            H = _width(outer, h, g) or _width(outer, v, g)
            I = _width(outer, x, g)
            if not H or not I or _width(outer, v, g) not in (None, H):
                continue
            ev = evaluators.get((x, h))
            if ev is None:
                ev = evaluators[(x, h)] = _Body(_shell(g), outer, opset,
                                                {x: _Poly.source("x", I), h: _Poly.source("h", H)})
                ev.I = I
            try:
                p = ev.get(v)
                if not isinstance(p, _Poly) or p.width != H:
                    continue
                cell = _match_cell(p, H, I)
                cone = _cone(producer, outer, x, h, v)
                _check(g, cone, outer, opset, x, h, v, cell)
            except NotGru:
                continue
            except Exception:  # an op the evaluation does not take apart: not a cell
                continue
            cells[v] = _Found(v, x, h, cell, {id(n) for n in cone}, order)
            found.append(cells[v])
            leaves_of.clear()  # v is a leaf from now on
            break
    return found


def _shell(g):
    """The graph's nodes without its initializers (constants come from _Outer, which leaves
    out initializers a feed may override)."""
    shell = onnx.GraphProto()
    shell.node.extend(g.node)
    return shell


def _width(outer, name, g):
    """The last dimension of a rank-2 row value: from shape inference, else from the weights of
    a MatMul or Gemm that reads it (None when neither says)."""
    shape = outer.shapes.get(name)
    if shape is not None and len(shape) == 2 and shape[1]:
        return shape[1]
    for n in outer.consumers.get(name, []):
        if n.op_type in ("MatMul", "Gemm") and n.input[0] == name and n.input[1] in outer.const:
            w = outer.const[n.input[1]]
            if w.ndim == 2:
                return w.shape[1 if n.op_type == "Gemm" and _attr(n, "transB", 0) else 0]
    return None


def _cone(producer, outer, x, h, v):
    """The nodes that compute v from x, h and constants, in graph order."""
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
    """Run the cell's nodes (onnx.reference) on random x and h against the extracted GRU."""
    from onnx.reference import ReferenceEvaluator

    index = {id(n): i for i, n in enumerate(g.node)}
    cone = sorted(cone, key=lambda n: index[id(n)])
    used = {i for n in cone for i in n.input if i}
    inits = [numpy_helper.from_array(np.asarray(outer.const[n]), n) for n in sorted(used)
             if n in outer.const and n not in (x, h)]
    sub = helper.make_graph(cone, "cell", [helper.make_tensor_value_info(x, onnx.TensorProto.FLOAT, None),
                                           helper.make_tensor_value_info(h, onnx.TensorProto.FLOAT, None)],
                            [helper.make_tensor_value_info(v, onnx.TensorProto.FLOAT, None)], inits)
    m = helper.make_model(sub, opset_imports=[helper.make_opsetid("", opset)])
    rng = np.random.default_rng(2024)
    xs = rng.standard_normal((3, cell.I)).astype(np.float32)
    hs = (0.5 * rng.standard_normal((3, cell.H))).astype(np.float32)
    try:
        (got,) = ReferenceEvaluator(m).run(None, {x: xs, h: hs})
    except Exception as e:
        raise NotGru(f"self-check: the cell does not run in onnx.reference ({e})") from None
    want = _gru_step(cell, xs.astype(np.float64), hs.astype(np.float64))
    if got.shape != want.shape or not np.allclose(got, want, rtol=1e-4, atol=1e-5):
        raise NotGru("self-check: the cell and the extracted GRU disagree")


def _chains(found):
    """Cells grouped into chains c_1 -> c_2 -> ... (same weights, each starting from the one before)."""
    by_v = {c.v: c for c in found}
    nxt = {}
    for c in found:
        prev = by_v.get(c.h)
        if prev is not None and prev.same_weights(c) and prev.v not in nxt:
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
    """(sequence, axis, index) when `name` is one frame of a rank-3 sequence: Gather(S, t, axis),
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
        axis = _attr(node, "axis", 0) % 3
        t = int(idx)
        if t < 0:
            T = (outer.shapes.get(node.input[0]) or [None] * 3)[axis]
            if not T:
                return None
            t += T
        return node.input[0], axis, t
    if node.op_type != "Squeeze":
        return None
    axes = _attr(node, "axes") if opset < 13 else (
        outer.const.get(node.input[1]) if len(node.input) > 1 else None)
    if axes is None or np.size(axes) != 1:
        return None
    src = outer.producer.get(node.input[0])
    if src is None or outer.rank(src.input[0]) != 3:
        return None
    axis = int(np.reshape(axes, -1)[0]) % 3
    if src.op_type == "Split":
        if _attr(src, "axis", 0) % 3 != axis:
            return None
        sizes = _attr(src, "split") if opset < 13 else (
            outer.const.get(src.input[1]) if len(src.input) > 1 and src.input[1] else None)
        if sizes is not None and any(int(s) != 1 for s in np.reshape(sizes, -1)):
            return None
        T = (outer.shapes.get(src.input[0]) or [None] * 3)[axis]
        if sizes is None and T != len(src.output):
            return None
        return src.input[0], axis, list(src.output).index(node.input[0]), len(src.output)
    if src.op_type == "Slice" and opset >= 10:
        vals = [outer.const.get(i) if i else None for i in src.input[1:5]] + [None] * 4
        starts, ends, axes_, steps = vals[:4]
        if starts is None or ends is None or np.size(starts) != 1:
            return None
        ax = int(np.reshape(axes_, -1)[0]) % 3 if axes_ is not None else 0
        step = int(np.reshape(steps, -1)[0]) if steps is not None else 1
        t = int(np.reshape(starts, -1)[0])
        if ax != axis or step != 1 or t < 0 or int(np.reshape(ends, -1)[0]) != t + 1:
            return None
        return src.input[0], axis, t
    return None


def _sequence(chain, outer, opset, names):
    """The rewrite of a chain over every frame of one sequence, or None."""
    frames = [_frame_of(outer, c.x, opset) for c in chain]
    if any(f is None for f in frames):
        return None
    S, axis = frames[0][0], frames[0][1]
    T = len(chain)
    if axis not in (0, 1) or any(f[:2] != (S, axis) or f[2] != t for t, f in enumerate(frames)):
        return None
    length = frames[0][3] if len(frames[0]) > 3 else (outer.shapes.get(S) or [None] * 3)[axis]
    if length != T:
        return None  # the cells read only some frames of S (or its length is not known)
    first = chain[0]
    h0 = None if outer.is_zero(first.h) else first.h
    if h0 is not None and outer.rank(h0) not in (None, 2):
        return None
    base = _fresh(names, (chain[-1].v.split("/")[0] or "cell").replace(":", "_") + "__gru")
    b = _Builder(base, names, opset)
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
    dropped = {c.v for c in chain}
    heads = None if stacked is not None else _per_frame_head(outer, chain, opset)
    if heads is not None:  # the same frame-wise ops on every frame's output, then stacked
        templates, stacked = heads
        Ysq = b.vectorized(templates, Ysq, outer, opset)
    if stacked is not None:
        out, stack_axis = stacked
        if stack_axis == 0:
            b.node("Identity", [Ysq], [out])
        else:
            b.node("Transpose", [Ysq], [out], perm=[1, 0, 2])
        dropped.add(out)
    for t, c in enumerate(chain):
        nxt = chain[t + 1].cone if t + 1 < T else set()
        users = [n for n in outer.consumers.get(c.v, [])
                 if id(n) not in nxt and not (stacked is not None and n.op_type == "Unsqueeze")]
        if not users and c.v not in outer.graph_outputs:
            continue
        if t == T - 1:
            b.squeeze(Y_h, c.v, [0])
        else:
            b.node("Gather", [Ysq, b.const("t", np.array(t, np.int64))], [c.v], axis=0)
    note = (f"{T} GRU cells over {'frames' if axis == 0 else 'batch-first frames'} of {S!r} lifted "
            f"into one GRU node (hidden_size={first.cell.H}, input_size={first.cell.I}, "
            f"linear_before_reset={first.cell.lbr})")
    return b.nodes, b.inits, note, dropped, min(c.order for c in chain)


def _stack_of(outer, outs, opset):
    """(name, axis) when the outputs are stacked in order, Concat(Unsqueeze(v_t, axis), axis)."""
    ups = []
    for v in outs:
        us = [n for n in outer.consumers.get(v, []) if n.op_type == "Unsqueeze"]
        if len(us) != 1:
            return None
        axes = _attr(us[0], "axes") if opset < 13 else outer.const.get(us[0].input[1])
        if axes is None or np.size(axes) != 1:
            return None
        ups.append((us[0].output[0], int(np.reshape(axes, -1)[0]) % 3))
    cats = outer.consumers.get(ups[0][0], [])
    if len(cats) != 1 or cats[0].op_type != "Concat" or list(cats[0].input) != [u for u, _ in ups]:
        return None
    axis = ups[0][1]
    if any(a != axis for _, a in ups) or _attr(cats[0], "axis") % 3 != axis or axis not in (0, 1):
        return None
    if any(len(outer.consumers.get(u, [])) != 1 for u, _ in ups):
        return None
    return cats[0].output[0], axis


# Frame-wise ops a per-frame head may hold, applied once to all frames [T, N, F] instead.
HEAD_OPS = {"MatMul", "Gemm", "Add", "Sub", "Mul", "Div", "Relu", "Tanh", "Sigmoid", "LeakyRelu",
            "Elu", "HardSigmoid", "Softplus", "Softsign", "Softmax", "LogSoftmax", "Identity", "Clip",
            "Dropout"}


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
            cone = chain[t + 1].cone if not templates and t + 1 < len(chain) else set()
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
        if first.op_type == "Gemm" and (k != 0 or _attr(first, "transA", 0)):
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


def _single_steps(chain, outer, opset, names):
    """Lone cells (chain of one) whose h is a graph input: one GRU frame each."""
    c = chain[0]
    if len(chain) != 1 or c.h not in {v.name for v in outer.graph.input}:
        return None
    b = _Builder(_fresh(names, c.v.replace("/", "_").replace(":", "_") + "__gru"), names, opset)
    X = b.unsqueeze(c.x, 0)
    Y = b.name("Y")
    b.gru([X] + b.weights(c.cell) + ["", b.unsqueeze(c.h, 0)], [Y, ""], c.cell)
    b.squeeze(Y, c.v, [0, 1])
    note = (f"a GRU cell ({c.x!r}, {c.h!r}) -> {c.v!r} lifted into a one-frame GRU node "
            f"(hidden_size={c.cell.H}, input_size={c.cell.I}, linear_before_reset={c.cell.lbr})")
    return b.nodes, b.inits, note, {c.v}, c.order


class _Builder:
    """New nodes and initializers with fresh names."""

    def __init__(self, base, names, opset):
        self.base, self.names, self.opset = base, names, opset
        self.nodes, self.inits = [], []

    def name(self, tag):
        return _fresh(self.names, f"{self.base}_{tag}")

    def const(self, tag, arr):
        n = self.name(tag)
        self.inits.append(numpy_helper.from_array(np.asarray(arr), n))
        return n

    def node(self, op, ins, outs, **attrs):
        self.nodes.append(helper.make_node(op, ins, outs, name=self.name(op.lower()), **attrs))

    def weights(self, cell):
        return [self.const("W", cell.W), self.const("R", cell.R), self.const("B", cell.B)]

    def unsqueeze(self, src, axis):
        out = self.name("unsq")
        if self.opset >= 13:
            self.node("Unsqueeze", [src, self.const("axes", np.array([axis], np.int64))], [out])
        else:
            self.node("Unsqueeze", [src], [out], axes=[axis])
        return out

    def squeeze(self, src, out, axes):
        if self.opset >= 13:
            self.node("Squeeze", [src, self.const("axes", np.array(axes, np.int64))], [out])
        else:
            self.node("Squeeze", [src], [out], axes=list(axes))

    def vectorized(self, templates, x, outer, opset):
        """The per-frame head ops applied once to x [T, N, F]: Gemm becomes MatMul (+ Add), axis
        attributes move past the new leading time axis."""
        for node, k in templates:
            out = self.name(node.op_type.lower())
            ins = list(node.input)
            ins[k] = x
            if node.op_type == "Gemm":
                w = outer.const.get(ins[1])
                if w is None:
                    raise NotGru("a per-frame Gemm whose weight is not a constant")
                w = (w.T if _attr(node, "transB", 0) else w) * _attr(node, "alpha", 1.0)
                mm = out if len(ins) < 3 or not ins[2] else self.name("matmul")
                self.node("MatMul", [x, self.const("w", w.astype(np.float32))], [mm])
                if mm != out:
                    c = ins[2] if _attr(node, "beta", 1.0) == 1.0 else self.const(
                        "bias", (outer.const[ins[2]] * _attr(node, "beta", 1.0)).astype(np.float32))
                    self.node("Add", [mm, c], [out])
            else:
                attrs = {a.name: helper.get_attribute_value(a) for a in node.attribute}
                if "axis" in attrs and attrs["axis"] >= 0:
                    attrs["axis"] += 1
                elif node.op_type in ("Softmax", "LogSoftmax") and "axis" not in attrs and opset < 13:
                    attrs["axis"] = 2  # the default 1 of a [N, F] frame
                self.node(node.op_type, ins, [out] + [""] * (len(node.output) - 1), **attrs)
            x = out
        return x

    def gru(self, ins, outs, cell):
        while ins and ins[-1] == "":
            ins = ins[:-1]
        self.nodes.append(helper.make_node("GRU", ins, outs, name=self.name("gru"), **gru_attrs(cell)))


def _rewrite(graph, plans):
    """Put each plan's nodes where its first cell began; drop the producers of the names they
    now produce; prune what is left dead."""
    nodes = list(graph.node)
    redefined = set().union(*(p[3] for p in plans))
    at = {}
    for p in plans:
        at.setdefault(p[4], []).append(p)
    kept = []
    for i, n in enumerate(nodes):
        for p in at.get(i, []):
            kept.extend(p[0])
        if not any(o in redefined for o in n.output):
            kept.append(n)
    # a plan's nodes read only names defined before its first cell, and define names read
    # after it: a stable topological sort restores order where a first cell began late
    kept = _topological(kept, {v.name for v in graph.input} | {t.name for t in graph.initializer}
                        | {t.name for p in plans for t in p[1]})
    del graph.node[:]
    graph.node.extend(kept)
    for p in plans:
        graph.initializer.extend(p[1])
    _prune(graph)


def _topological(nodes, defined):
    """nodes in an order where every input is defined first, as close to the given order as can be."""
    defined = set(defined)
    out, waiting = [], list(nodes)
    while waiting:
        rest = []
        for n in waiting:
            if all(i in defined for i in _node_reads(n)):
                out.append(n)
                defined.update(o for o in n.output if o)
            else:
                rest.append(n)
        if len(rest) == len(waiting):  # a name nothing defines: leave the order to the checker
            return out + rest
        waiting = rest
    return out
