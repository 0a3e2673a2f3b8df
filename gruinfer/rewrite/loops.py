"""rewrite/loops.py: rewrite ONNX Loops that provably compute a GRU cell (tf2onnx Keras, jax2onnx flax / Keras-on-JAX) into GRU nodes."""
# A pure ONNX-graph-to-ONNX-graph transformation (onnx and numpy only). Entry point: lift_loops(model).
#
# How a Loop is proved to be a GRU:
# * The loop-carried values are classified: pass-through (weights, the time length), a counter
#   (starts at 0, +1 per step), and exactly one float state h.
# * The body's new state is evaluated symbolically. Every value is an elementwise polynomial
#   over "leaves" with per-column coefficients; a leaf is either a linear map of x (the input
#   row Gather(X, counter)), of h or of a product of leaves (src @ M), or an activation of a
#   polynomial. MatMul, Gemm (alpha, beta, transB), Add, Sub, Mul, Div, Neg, Split, Slice (on
#   columns), Sigmoid, Tanh, Relu, HardSigmoid, Elu, LeakyRelu, ThresholdedRelu, Softsign,
#   Softplus, Clip and Min/Max by a constant, Cast (to float), Identity, and ConstantOfShape of
#   Shape(h) (ones_like, tf_keras' recurrent dropout at inference) are understood;
#   any other op on a step-dependent value means "not provably a GRU". Constants (body
#   initializers, outer initializers, loop-carried constants) are folded with onnx.reference.
#   X may be an outer tensor or a loop-carried value passed through unchanged (jax2onnx's scan).
# * The new state must then equal z*h + (1-z)*g(...) with z and r gate activations of affine
#   forms of x and h, and the candidate either g(x Wh + bh + (r*h) Rh) (reset before,
#   linear_before_reset=0) or g(x Wh + bh + r*(h Rh + rbh)) (reset after, linear_before_reset=1).
#   Weights are read off the polynomial, so which MatMul, Split or Slice produced them does not
#   matter, only what is computed.
# * The trip count and the loop condition must make the loop run exactly T = X.shape[0] steps
#   for every T >= 1; every scan output must be the new state.
# The Loop is then replaced by GRU (+ Squeeze to drop num_directions, + Unsqueeze of a non-zero
# initial state) producing the Loop's output names, so all consumers stay as they were; nodes
# left dead are removed. The last step taken from the scan output (tf2onnx's Slice(Y, -1:),
# jax2onnx's Gather(Y, T - 1) with T - 1 computed from shapes) is read from the GRU's Y_h instead.
#
# flax.nnx.GRUCell (n = tanh(x Wn + b_n + r * (h Rn)), new h = (1 - z) * n + z * h, no recurrent
# bias) is reset-after: linear_before_reset=1 with Rb = 0.
import copy
import hashlib

import numpy as np

import onnx
from onnx import helper, numpy_helper

_INT_MAX = 2 ** 31 - 1
_FOLDABLE_SKIP = {"Loop", "Scan", "If", "RandomNormal", "RandomUniform", "RandomNormalLike",
                  "RandomUniformLike", "Multinomial", "Bernoulli"}


class NotGru(Exception):
    """Why a Loop is not (provably) a GRU cell."""


def lift_loops(model):
    """(new ModelProto, notes): every top-level Loop that provably computes a GRU cell replaced by a GRU node.

    The input model is not modified. Loops that are not provably a GRU cell stay as they were;
    notes (one string per Loop) say what was lifted and why anything was left alone.
    """
    if not isinstance(model, onnx.ModelProto):
        raise TypeError(f"model must be an onnx.ModelProto, not {type(model).__name__}")
    new = copy.deepcopy(model)
    notes = []
    loops = [n for n in new.graph.node if n.op_type == "Loop" and n.domain in ("", "ai.onnx")]
    if not loops:
        return new, notes
    opset = _opset(new)
    try:
        inferred = onnx.shape_inference.infer_shapes(model)
    except Exception:  # shape inference is a help, not a requirement
        inferred = model
    try:
        outer = _Outer(new.graph, inferred.graph, opset)
    except Exception as e:  # a malformed graph: no proof is possible, leave every Loop alone
        return new, [f"Loop {(n.name or f'Loop_{i}')!r} left unchanged: the graph around it could not "
                     f"be read ({type(e).__name__}: {e})" for i, n in enumerate(loops)]
    names = _all_names(new.graph)
    replacements, dropped, inits = {}, set(), []
    for i, loop in enumerate(loops):
        label = loop.name or f"Loop_{i}"
        try:
            cell = _analyse(loop, outer, opset)
            outer.proven[id(loop)] = outer.dim(cell.X, 0)
            nodes, drop, consts = _replacement(loop, cell, outer, opset, names)
        except NotGru as e:
            outer.proven.pop(id(loop), None)
            notes.append(f"Loop {label!r} left unchanged: {e}")
            continue
        except Exception as e:  # malformed nodes (wrong input counts, ...): not provably a GRU either
            outer.proven.pop(id(loop), None)
            notes.append(f"Loop {label!r} left unchanged: its analysis failed ({type(e).__name__}: {e})")
            continue
        replacements[id(loop)] = nodes
        dropped |= drop
        inits.extend(consts)
        notes.append(
            f"Loop {label!r} lifted into GRU (hidden_size={cell.H}, input_size={cell.I}, "
            f"linear_before_reset={cell.lbr}, activations={cell.f[0]}/{cell.g[0]}"
            f"{', zero initial state' if cell.h0 is None else ''})")
    if replacements:
        kept = []
        for n in new.graph.node:
            if id(n) in replacements:
                kept.extend(replacements[id(n)])
            elif id(n) not in dropped:
                kept.append(n)
        del new.graph.node[:]
        new.graph.node.extend(kept)
        new.graph.initializer.extend(inits)
        _prune(new.graph)
        _drop_unread_y(new.graph, {n.name for nodes in replacements.values() for n in nodes
                                   if n.op_type == "GRU"})
        try:
            onnx.checker.check_model(new)
        except Exception as e:  # never hand back a broken graph
            return copy.deepcopy(model), [
                f"lifting produced an invalid graph ({e}); model returned unchanged"] + notes
    return new, notes


# ----------------------------------------------------------------------------- symbolic values

class _Count:
    """An integer scalar: base + off, with base "k" (the step index) or a dim key ("dim", name, axis)."""

    def __init__(self, base, off=0):
        self.base, self.off = base, int(off)


class _RowShape:
    """Shape(v) of a row value v [N, width]: only ConstantOfShape may read it (a constant row)."""

    def __init__(self, width):
        self.width = width


class _Cond:
    """A boolean scalar: the conjunction of terms (lhs, rhs) meaning lhs < rhs, each a _Count or a number."""

    def __init__(self, terms=()):
        self.terms = tuple(terms)


class _ShapeOf:
    """The 1-D shape of a tensor, elements as dim _Counts."""

    def __init__(self, elems):
        self.elems = list(elems)


class _Leaf:
    """A width-K row value: a linear map src @ M (src "x", "h" or a unit monomial _Poly), or an activation."""

    def __init__(self, kind, a, b, key):
        self.kind, self.a, self.b, self.key = kind, a, b, key

    @staticmethod
    def lin(src, M):
        return _Leaf("lin", src, M, ("L", _src_key(src), _digest(M)))

    @staticmethod
    def act(op, params, arg):
        return _Leaf("act", (op, params), arg, ("A", op, params, arg.key))

    @property
    def width(self):
        return self.b.shape[1] if self.kind == "lin" else self.b.width

    def cols(self, idx):
        if self.kind == "lin":
            return _Leaf.lin(self.a, self.b[:, idx])
        return _Leaf.act(self.a[0], self.a[1], self.b.cols(idx))


def _src_key(src):
    return (src,) if isinstance(src, str) else ("p", src.key)


def _digest(a):
    a = np.ascontiguousarray(a, dtype=np.float64)
    return a.shape, hashlib.sha256(a.tobytes()).hexdigest()


class _Poly:
    """A float [N, K] row tensor: sum of const, linear and monomial terms with per-column coefficients.

    terms: key -> ("c", coef) | ("l", src, M) | ("m", leaves, coef); coef [K], M [width(src), K].
    A degree-1 monomial of a linear leaf is always kept as an "l" term (coefficient folded into M).
    """

    def __init__(self, width, terms=None):
        self.width = width
        self.terms = {}
        for t in (terms or []):
            self._add(t)
        self._key = None

    @staticmethod
    def source(name, width):
        return _Poly(width, [("l", name, np.eye(width))])

    def _add(self, t):
        if t[0] == "c":
            k = ("c",)
        elif t[0] == "l":
            k = ("l", _src_key(t[1]))
        else:
            k = ("m", tuple(leaf.key for leaf in t[1]))
        old = self.terms.get(k)
        if old is not None:
            if t[0] == "l":
                t = ("l", t[1], old[2] + t[2])
            else:
                t = t[:-1] + (old[-1] + t[-1],)
        if not np.any(t[-1]):
            self.terms.pop(k, None)
        else:
            self.terms[k] = t

    @property
    def key(self):
        if self._key is None:
            items = []
            for k, t in self.terms.items():
                items.append((repr(k), _digest(t[-1])))
            self._key = (self.width, tuple(sorted(items)))
        return self._key

    def const(self):
        t = self.terms.get(("c",))
        return t[1] if t else np.zeros(self.width)

    # -- arithmetic
    def plus(self, other):
        if isinstance(other, _Poly):
            if other.width != self.width:
                raise NotGru("adding values of different widths")
            return _Poly(self.width, list(self.terms.values()) + list(other.terms.values()))
        return _Poly(self.width, list(self.terms.values()) + [("c", _row_const(other, self.width))])

    def scaled(self, v):
        v = _row_const(v, self.width)
        out = []
        for t in self.terms.values():
            if t[0] == "l":
                out.append(("l", t[1], t[2] * v[None, :]))
            else:
                out.append(t[:-1] + (t[-1] * v,))
        return _Poly(self.width, out)

    def cols(self, idx):
        idx = np.asarray(idx, dtype=np.int64)
        out = []
        for t in self.terms.values():
            if t[0] == "c":
                out.append(("c", t[1][idx]))
            elif t[0] == "l":
                out.append(("l", t[1], t[2][:, idx]))
            else:
                out.extend(_mono([leaf.cols(idx) for leaf in t[1]], t[2][idx]))
        return _Poly(len(idx), out)

    def matmul(self, A):
        A = np.asarray(A, dtype=np.float64)
        if A.ndim != 2 or A.shape[0] != self.width:
            raise NotGru(f"MatMul of a [N, {self.width}] row value by a constant of shape {list(A.shape)}")
        out = []
        for t in self.terms.values():
            if t[0] == "c":
                out.append(("c", t[1] @ A))
            elif t[0] == "l":
                out.append(("l", t[1], t[2] @ A))
            else:
                unit = _Poly(self.width, [("m", t[1], np.ones(self.width))])
                out.append(("l", unit, t[2][:, None] * A))
        return _Poly(A.shape[1], out)

    def times(self, other):
        if not isinstance(other, _Poly):
            return self.scaled(other)
        if other.width != self.width:
            raise NotGru("multiplying values of different widths")
        out = []
        for a in self.terms.values():
            la, ca = _as_mono(a, self.width)
            for b in other.terms.values():
                lb, cb = _as_mono(b, self.width)
                out.extend(_mono(la + lb, ca * cb))
        return _Poly(self.width, out)

    def activation(self, op, params=()):
        return _Poly(self.width, [("m", (_Leaf.act(op, tuple(params), self),), np.ones(self.width))])


def _as_mono(t, width):
    if t[0] == "c":
        return [], t[1]
    if t[0] == "l":
        return [_Leaf.lin(t[1], t[2])], np.ones(width)
    return list(t[1]), t[2]


def _mono(leaves, coef):
    """Normalised term(s) for coef * prod(leaves)."""
    leaves = sorted(leaves, key=lambda leaf: repr(leaf.key))
    if not leaves:
        return [("c", coef)]
    if len(leaves) == 1 and leaves[0].kind == "lin":
        return [("l", leaves[0].a, leaves[0].b * coef[None, :])]
    return [("m", tuple(leaves), coef)]


def _row_const(c, width):
    """A constant broadcast against a [N, width] row value, as a [width] vector (or NotGru)."""
    c = np.asarray(c, dtype=np.float64)
    if c.ndim > 2 or (c.ndim == 2 and c.shape[0] != 1) or (c.ndim >= 1 and c.shape[-1] not in (1, width)):
        raise NotGru(f"a constant of shape {list(c.shape)} does not broadcast as a per-column vector")
    return np.broadcast_to(c.reshape(-1) if c.ndim else c, (width,)).astype(np.float64)


# Activations with one alpha attribute and its ONNX default.
_ALPHA_ACTS = {"Elu": 1.0, "LeakyRelu": 0.01, "ThresholdedRelu": 1.0}


def _clip(a, lo, hi, where):
    """Clip(a, lo, hi) as an activation leaf; a clip of a clip is one clip of both bounds."""
    if lo > hi:
        raise NotGru(f"{where}: clip bounds {lo} > {hi}")
    terms = list(a.terms.values())
    if len(terms) == 1 and terms[0][0] == "m" and len(terms[0][1]) == 1 and _ones(terms[0][2]):
        leaf = terms[0][1][0]
        if leaf.kind == "act" and leaf.a[0] == "Clip":
            lo0, hi0 = leaf.a[1]
            lo, hi = max(lo, lo0), min(hi, hi0)
            if lo > hi:
                raise NotGru(f"{where}: nested clips with disjoint bounds")
            return leaf.b.activation("Clip", (lo, hi))
    return a.activation("Clip", (lo, hi))


# ----------------------------------------------------------------------------- outer graph

def _opset(model):
    for imp in model.opset_import:
        if imp.domain in ("", "ai.onnx"):
            return imp.version
    return 1


def _attr(node, name, default=None):
    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def _fold(node, values, opset):
    """Run one node on constant inputs with onnx.reference; returns its outputs or None."""
    from onnx.reference import ReferenceEvaluator

    if node.op_type in _FOLDABLE_SKIP or node.domain not in ("", "ai.onnx"):
        return None
    if any(a.type in (onnx.AttributeProto.GRAPH, onnx.AttributeProto.GRAPHS) for a in node.attribute):
        return None
    try:
        ev = ReferenceEvaluator(node, opsets={"": opset})
        feeds = {n: values[n] for n in node.input if n}
        return [np.asarray(v) for v in ev.run(None, feeds)]
    except Exception:
        return None


class _Outer:
    """The outer graph: constants (non-overridable initializers, Constant nodes, folded), producers, shapes."""

    def __init__(self, graph, inferred_graph, opset):
        self.graph, self.opset = graph, opset
        inputs = {v.name for v in graph.input}
        self.const = {t.name: numpy_helper.to_array(t) for t in graph.initializer if t.name not in inputs}
        self.producer = {}
        for node in graph.node:
            for o in node.output:
                if o:
                    self.producer[o] = node
        for node in graph.node:
            if node.op_type == "Loop":
                continue
            ins = [n for n in node.input if n]
            if node.op_type == "Constant" or (ins and all(n in self.const for n in ins)):
                outs = _fold(node, self.const, opset)
                if outs is not None and len(outs) == len(node.output):
                    for name, v in zip(node.output, outs):
                        if name:
                            self.const[name] = v
        self.shapes, self.elem_types = {}, {}
        for v in list(inferred_graph.value_info) + list(inferred_graph.input) + list(inferred_graph.output):
            t = v.type.tensor_type
            if v.type.HasField("tensor_type"):
                if t.elem_type:
                    self.elem_types[v.name] = t.elem_type
                if t.HasField("shape"):
                    self.shapes[v.name] = [d.dim_value if d.HasField("dim_value") else None for d in t.shape.dim]
        for t in graph.initializer:
            self.elem_types.setdefault(t.name, t.data_type)
        self.consumers = {}
        for node in graph.node:
            for n in _node_reads(node):
                self.consumers.setdefault(n, []).append(node)
        self.graph_outputs = {o.name for o in graph.output}
        self.proven = {}  # id(Loop) -> dim key of its step count, for Loops proven to be GRUs

    def used(self, name):
        return bool(name) and (name in self.graph_outputs or bool(self.consumers.get(name)))

    def dim(self, name, axis):
        """Canonical key for dimension `axis` of `name`, seen through shape-preserving producers."""
        seen = 0
        while seen < 100:
            seen += 1
            node = self.producer.get(name)
            if node is None:
                break
            if node.op_type == "Transpose":
                perm = _attr(node, "perm")
                rank = self.rank(node.input[0])
                if perm is None:
                    if rank is None:
                        break
                    perm = list(range(rank))[::-1]
                if axis < 0 or axis >= len(perm):
                    break
                name, axis = node.input[0], perm[axis]
            elif node.op_type in ("Identity", "ReverseSequence"):
                name = node.input[0]
            elif node.op_type == "Loop" and id(node) in self.proven and axis == 0 \
                    and list(node.output).index(name) >= len(node.input) - 2:
                # a scan output of a Loop proven to run exactly T = its input's length steps
                return self.proven[id(node)]
            else:
                break
        return ("dim", name, axis)

    def rank(self, name):
        s = self.shapes.get(name)
        return None if s is None else len(s)

    def value(self, name):
        """Symbolic value of an outer tensor: ndarray, _Count, _ShapeOf, _Cond, or None (unknown)."""
        if name in self.const:
            return self.const[name]
        node = self.producer.get(name)
        if node is None:
            return None
        op = node.op_type
        if op == "Identity":
            return self.value(node.input[0])
        if op == "Shape":
            start, end = _attr(node, "start", 0), _attr(node, "end")
            r = self.rank(node.input[0])
            if r is None:
                return None
            return _ShapeOf([_Count(self.dim(node.input[0], a)) for a in range(r)][start:end])
        if op == "Cast":
            v = self.value(node.input[0])
            return v if isinstance(v, (_Count, _ShapeOf)) else None
        if op in ("Slice", "Gather", "Squeeze", "Unsqueeze", "Concat"):
            return _shape_op(node, [self.value(n) if n else None for n in node.input], self.opset)
        if op == "Less":
            a, b = (self.value(n) for n in node.input)
            return _less(a, b)
        if op == "Greater":
            a, b = (self.value(n) for n in node.input)
            return _less(b, a)
        if op == "And":
            a, b = (self.value(n) for n in node.input)
            if isinstance(a, _Cond) and isinstance(b, _Cond):
                return _Cond(a.terms + b.terms)
        if op in ("Add", "Sub"):  # a count (or a one-element shape) plus or minus an integer
            if len(node.input) != 2:
                return None
            a, b = (self.value(n) for n in node.input)
            if op == "Add" and not isinstance(a, (_Count, _ShapeOf)):
                a, b = b, a
            c = _scalar(b) if isinstance(b, np.ndarray) and b.dtype.kind in "iu" and b.ndim <= 1 else None
            if c is None:
                return None
            c = c if op == "Add" else -c
            if isinstance(a, _Count):
                out = _Count(a.base, a.off + c)
                return _ShapeOf([out]) if b.ndim == 1 else out
            if isinstance(a, _ShapeOf) and len(a.elems) == 1 and isinstance(a.elems[0], _Count):
                return _ShapeOf([_Count(a.elems[0].base, a.elems[0].off + c)])
            return None
        if op in ("Reshape", "Expand"):  # one integer between the shapes [] and [1]
            a, shape = self.value(node.input[0]), self.const.get(node.input[1])
            if shape is None or shape.dtype.kind not in "iu":
                return None
            vector = isinstance(a, _ShapeOf)
            if vector and len(a.elems) == 1 and isinstance(a.elems[0], _Count):
                a = a.elems[0]
            if not isinstance(a, _Count):
                return None
            shape = [int(d) for d in shape.reshape(-1)]
            if op == "Reshape":
                return a if shape == [] else _ShapeOf([a]) if shape in ([1], [-1]) else None
            if shape in ([], [1]):  # Expand broadcasts: [1] stays [1], a scalar takes the target
                return _ShapeOf([a]) if vector or shape == [1] else a
            return None
        return None

    def is_zero(self, name):
        """True if `name` is provably all zeros (a zero constant, or Expand/ConstantOfShape of zeros)."""
        v = self.const.get(name)
        if v is not None:
            return v.dtype.kind == "f" and not np.any(v)
        node = self.producer.get(name)
        if node is None:
            return False
        if node.op_type in ("Expand", "Identity"):
            return self.is_zero(node.input[0])
        if node.op_type == "ConstantOfShape":
            val = _attr(node, "value")
            return val is None or not np.any(numpy_helper.to_array(val))
        return False


def _scalar(v):
    if isinstance(v, np.ndarray) and v.size == 1 and v.dtype.kind in "iuf":
        return v.reshape(()).item()
    return None


def _less(a, b):
    """lhs < rhs as a _Cond when both sides are counts or numbers, else None."""
    sides = []
    for v in (a, b):
        if isinstance(v, _Count):
            sides.append(v)
        elif _scalar(v) is not None:
            sides.append(_scalar(v))
        else:
            return None
    return _Cond([tuple(sides)])


def _shape_op(node, vals, opset):
    """Slice/Gather/Squeeze/Unsqueeze/Concat on shape vectors and counts."""
    op = node.op_type

    def elems(v):
        if isinstance(v, _ShapeOf):
            return list(v.elems)
        if isinstance(v, np.ndarray) and v.ndim <= 1 and v.dtype.kind in "iu":
            return [int(e) for e in v.reshape(-1)]
        if isinstance(v, _Count):
            return [v]
        return None

    if op == "Slice":
        e = elems(vals[0]) if isinstance(vals[0], _ShapeOf) else None
        if e is None:
            return None
        if opset < 10:
            starts, ends, axes, steps = (_attr(node, "starts"), _attr(node, "ends"),
                                         _attr(node, "axes", [0]), [1])
        else:
            rest = [(_scalar_list(v) if v is not None else None) for v in vals[1:]] + [None] * 4
            starts, ends = rest[0], rest[1]
            axes = rest[2] if len(node.input) > 3 and node.input[3] else [0]
            steps = rest[3] if len(node.input) > 4 and node.input[4] else [1]
        if None in (starts, ends, axes, steps) or list(axes) not in ([0], [-1]) or list(steps) != [1]:
            return None
        return _ShapeOf(e[slice(starts[0], ends[0])])
    if op == "Gather":
        e = elems(vals[0]) if isinstance(vals[0], _ShapeOf) else None
        idx = vals[1]
        if e is None or not isinstance(idx, np.ndarray) or idx.dtype.kind not in "iu":
            return None
        try:
            picked = [e[int(i)] for i in idx.reshape(-1)]
        except IndexError:
            return None
        return picked[0] if idx.ndim == 0 else _ShapeOf(picked)
    if op == "Squeeze":
        if isinstance(vals[0], _ShapeOf) and len(vals[0].elems) == 1:
            return vals[0].elems[0] if isinstance(vals[0].elems[0], _Count) else None
        return None
    if op == "Unsqueeze":
        if isinstance(vals[0], _Count):
            return _ShapeOf([vals[0]])
        return None
    if op == "Concat":
        parts = [elems(v) for v in vals]
        if any(p is None for p in parts) or not any(isinstance(v, _ShapeOf) for v in vals):
            return None
        return _ShapeOf([e for p in parts for e in p])
    return None


def _scalar_list(v):
    if isinstance(v, np.ndarray) and v.dtype.kind in "iu":
        return [int(e) for e in v.reshape(-1)]
    return None


def _node_reads(node):
    """Names a node reads: its inputs and, for control flow, the outer names its subgraphs use."""
    reads = [n for n in node.input if n]
    for a in node.attribute:
        if a.type == onnx.AttributeProto.GRAPH:
            reads.extend(_graph_free_names(a.g))
        elif a.type == onnx.AttributeProto.GRAPHS:
            for g in a.graphs:
                reads.extend(_graph_free_names(g))
    return reads


def _graph_free_names(g):
    defined = {v.name for v in g.input} | {t.name for t in g.initializer}
    defined |= {t.values.name for t in g.sparse_initializer}
    free = []
    for node in g.node:
        free.extend(n for n in _node_reads(node) if n not in defined)
        defined.update(node.output)
    free.extend(o.name for o in g.output if o.name not in defined)
    return free


def _all_names(graph):
    names = set()

    def walk(g):
        names.update(v.name for v in g.input)
        names.update(v.name for v in g.output)
        names.update(t.name for t in g.initializer)
        names.update(v.name for v in g.value_info)
        for node in g.node:
            names.update(node.input)
            names.update(node.output)
            names.add(node.name)
            for a in node.attribute:
                if a.type == onnx.AttributeProto.GRAPH:
                    walk(a.g)
                elif a.type == onnx.AttributeProto.GRAPHS:
                    for sg in a.graphs:
                        walk(sg)
    walk(graph)
    return names


# ----------------------------------------------------------------------------- the loop body

class _Body:
    """Demand-driven symbolic evaluation of a Loop body."""

    def __init__(self, body, outer, opset, bindings):
        self.body, self.outer, self.opset = body, outer, opset
        self.producer = {}
        for node in body.node:
            for o in node.output:
                if o:
                    self.producer[o] = node
        self.values = dict(bindings)
        for t in body.initializer:
            self.values.setdefault(t.name, numpy_helper.to_array(t))
        self.X = None       # outer name of the gathered input sequence
        self.I = None
        self._stack = set()

    def get(self, name):
        if name in self.values:
            return self.values[name]
        if name in self._stack:
            raise NotGru(f"cycle at {name!r}")
        node = self.producer.get(name)
        if node is None:  # an outer-scope name
            v = self.outer.value(name)
            self.values[name] = v if v is not None else ("outer", name)
            return self.values[name]
        self._stack.add(name)
        try:
            outs = self._eval(node)
        finally:
            self._stack.discard(name)
        for o, v in zip(node.output, outs):
            if o:
                self.values[o] = v
        return self.values[name]

    def _eval(self, node):
        op = node.op_type
        where = f"{op} node {node.name or node.output[0]!r}"
        if node.domain not in ("", "ai.onnx"):
            raise NotGru(f"{where}: op domain {node.domain!r}")
        if op == "Gather":
            return [self._gather(node, where)]
        vals = [self.get(n) if n else None for n in node.input]
        if op == "Constant" or all(isinstance(v, np.ndarray) or v is None for v in vals):
            consts = {n: v for n, v in zip(node.input, vals) if n}
            outs = _fold(node, consts, self.opset)
            if outs is None:
                raise NotGru(f"{where}: cannot fold constant inputs")
            return outs
        if op == "Shape" and isinstance(vals[0], _Poly):  # ones_like(h) of tf_keras' recurrent dropout
            return [_RowShape(vals[0].width)]
        if op == "ConstantOfShape" and isinstance(vals[0], _RowShape):
            value = _attr(node, "value")
            value = numpy_helper.to_array(value).reshape(-1)[0] if value is not None else 0.0
            return [np.full((1, vals[0].width), value, np.float64)]
        if any(isinstance(v, tuple) for v in vals):
            bad = [v[1] for v in vals if isinstance(v, tuple)]
            raise NotGru(f"{where}: reads outer tensor {bad[0]!r}, which is neither a constant "
                         "nor the input sequence")
        if op == "Identity":
            return [vals[0]]
        if any(isinstance(v, (_Count, _Cond, _ShapeOf)) for v in vals):
            return [self._control(node, vals, where)]
        polys = [v for v in vals if isinstance(v, _Poly)]
        if not polys:
            raise NotGru(f"{where}: unsupported inputs")
        a = vals[0]
        if op in ("Add", "Sub", "Mul", "Div"):
            b = vals[1]
            if op == "Add":
                return [a.plus(b) if isinstance(a, _Poly) else b.plus(a)]
            if op == "Sub":
                nb = b.scaled(-1.0) if isinstance(b, _Poly) else -np.asarray(b, dtype=np.float64)
                return [a.plus(nb) if isinstance(a, _Poly) else nb.plus(a)]
            if op == "Mul":
                return [a.times(b) if isinstance(a, _Poly) else b.times(a)]
            if isinstance(b, _Poly) or not isinstance(a, _Poly):
                raise NotGru(f"{where}: division by a step-dependent value")
            return [a.scaled(1.0 / np.asarray(b, dtype=np.float64))]
        if op == "Neg":
            return [a.scaled(-1.0)]
        if op == "MatMul":
            if not isinstance(a, _Poly) or isinstance(vals[1], _Poly):
                raise NotGru(f"{where}: MatMul must be a row value times a constant")
            return [a.matmul(vals[1])]
        if op == "Gemm":  # jax2onnx: alpha * A @ B' + beta * C with A the row value, B a constant
            return [self._gemm(node, vals, where)]
        if op in ("Sigmoid", "Tanh", "Relu", "Softsign", "Softplus"):
            return [a.activation(op)]
        if op in _ALPHA_ACTS:
            return [a.activation(op, (float(_attr(node, "alpha", _ALPHA_ACTS[op])),))]
        if op == "HardSigmoid":
            return [a.activation(op, (float(_attr(node, "alpha", 0.2)), float(_attr(node, "beta", 0.5))))]
        if op == "Clip":
            if self.opset < 11:
                lo, hi = _attr(node, "min", -np.inf), _attr(node, "max", np.inf)
            else:
                lo = vals[1] if len(vals) > 1 and vals[1] is not None else -np.inf
                hi = vals[2] if len(vals) > 2 and vals[2] is not None else np.inf
                if isinstance(lo, _Poly) or isinstance(hi, _Poly):
                    raise NotGru(f"{where}: step-dependent clip bounds")
            return [_clip(a, float(np.asarray(lo)), float(np.asarray(hi)), where)]
        if op in ("Min", "Max") and len(vals) == 2:  # tf.clip_by_value: Maximum(Minimum(v, hi), lo)
            if isinstance(vals[1], _Poly) or not isinstance(a, _Poly):
                a, c = (vals[1], vals[0]) if isinstance(vals[1], _Poly) else (a, vals[1])
            else:
                c = vals[1]
            if isinstance(c, _Poly) or _scalar(np.asarray(c, np.float64)) is None:
                raise NotGru(f"{where}: {op} of two step-dependent values, or by a non-scalar")
            c = float(_scalar(np.asarray(c, np.float64)))
            return [_clip(a, -np.inf, c, where) if op == "Min" else _clip(a, c, np.inf, where)]
        if op == "Cast":
            if _attr(node, "to") != onnx.TensorProto.FLOAT:
                raise NotGru(f"{where}: cast of a cell value to a non-float type")
            return [a]
        if op == "Split":
            return self._split(node, a, vals, where)
        if op == "Slice":
            return [self._slice(node, a, vals, where)]
        raise NotGru(f"{where}: op {op} is not part of a GRU cell")

    def _gather(self, node, where):
        data, idx = node.input[0], self.get(node.input[1])
        if not isinstance(idx, _Count) or idx.base != "k" or idx.off != 0:
            vals = [self.get(n) for n in node.input]
            if all(isinstance(v, np.ndarray) for v in vals):
                outs = _fold(node, dict(zip(node.input, vals)), self.opset)
                if outs is not None:
                    return outs[0]
            raise NotGru(f"{where}: Gather is not a read of the input sequence at the current step")
        if _attr(node, "axis", 0) != 0:
            raise NotGru(f"{where}: Gather of the input along axis {_attr(node, 'axis')}, not time")
        if data in self.producer or data in self.values:
            v = self.get(data)
            if not (isinstance(v, tuple) and v[0] == "outer"):
                raise NotGru(f"{where}: the gathered sequence is not an outer tensor")
            data = v[1]
        if self.X is not None and self.X != data:
            raise NotGru(f"{where}: the body reads two different input sequences")
        if self.outer.rank(data) != 3:
            raise NotGru(f"{where}: the input sequence {data!r} is not known to be 3-D [T, N, I]")
        I = self.outer.shapes[data][2]
        if I is None:
            I = self.I
        if I is None:
            raise NotGru(f"{where}: the input width of {data!r} is unknown")
        self.X, self.I = data, I
        return _Poly.source("x", I)

    def _control(self, node, vals, where):
        op = node.op_type
        a = vals[0]
        if op == "Cast" and isinstance(a, (_Count, _Cond)):
            return a
        if op in ("Add", "Sub") and isinstance(a, _Count) and _scalar(vals[1]) is not None:
            c = _scalar(vals[1])
            if c != int(c):
                raise NotGru(f"{where}: non-integer step arithmetic")
            return _Count(a.base, a.off + int(c) * (1 if op == "Add" else -1))
        if op == "Add" and isinstance(vals[1], _Count) and _scalar(a) is not None and _scalar(a) == int(_scalar(a)):
            return _Count(vals[1].base, vals[1].off + int(_scalar(a)))
        if op in ("Less", "Greater"):
            c = _less(*vals) if op == "Less" else _less(vals[1], vals[0])
            if c is not None:
                return c
        if op == "And" and all(isinstance(v, _Cond) for v in vals):
            return _Cond(vals[0].terms + vals[1].terms)
        if op in ("Slice", "Gather", "Squeeze", "Unsqueeze", "Concat"):
            v = _shape_op(node, vals, self.opset)
            if v is not None:
                return v
        raise NotGru(f"{where}: unrecognised loop-control arithmetic")

    def _gemm(self, node, vals, where):
        a, b = vals[0], vals[1]
        c = vals[2] if len(vals) > 2 else None
        if not isinstance(a, _Poly) or isinstance(b, _Poly) or b is None:
            raise NotGru(f"{where}: Gemm must be a row value times a constant")
        if _attr(node, "transA", 0):
            raise NotGru(f"{where}: Gemm with transA=1 on a row value")
        b = np.asarray(b, dtype=np.float64)
        if b.ndim != 2:
            raise NotGru(f"{where}: Gemm by a constant of shape {list(b.shape)}")
        if _attr(node, "transB", 0):
            b = b.T
        out = a.matmul(b).scaled(float(_attr(node, "alpha", 1.0)))
        beta = float(_attr(node, "beta", 1.0))
        if c is None or beta == 0.0:
            return out
        if isinstance(c, _Poly):
            return out.plus(c.scaled(beta))
        return out.plus(beta * np.asarray(c, dtype=np.float64))

    def _split(self, node, a, vals, where):
        axis = _attr(node, "axis", 0)
        if axis not in (1, -1):
            raise NotGru(f"{where}: Split of a row value along axis {axis}")
        n = len(node.output)
        if self.opset < 13:
            sizes = _attr(node, "split")
        else:
            sizes = _scalar_list(vals[1]) if len(vals) > 1 and vals[1] is not None else None
        if sizes is None:
            if a.width % n:
                raise NotGru(f"{where}: width {a.width} does not split into {n} equal parts")
            sizes = [a.width // n] * n
        if sum(sizes) != a.width or len(sizes) != n:
            raise NotGru(f"{where}: split sizes {sizes} do not match width {a.width}")
        edges = np.cumsum([0] + list(sizes))
        return [a.cols(np.arange(edges[i], edges[i + 1])) for i in range(n)]

    def _slice(self, node, a, vals, where):
        if self.opset < 10:
            starts, ends = _attr(node, "starts"), _attr(node, "ends")
            axes = _attr(node, "axes", list(range(len(starts))))
            steps = [1] * len(starts)
        else:
            starts, ends = _scalar_list(vals[1]), _scalar_list(vals[2])
            axes = _scalar_list(vals[3]) if len(vals) > 3 and vals[3] is not None else None
            steps = _scalar_list(vals[4]) if len(vals) > 4 and vals[4] is not None else None
            if starts is None or ends is None:
                raise NotGru(f"{where}: non-constant slice bounds")
            axes = list(range(len(starts))) if axes is None else axes
            steps = [1] * len(starts) if steps is None else steps
        idx = np.arange(a.width)
        for s, e, ax, st in zip(starts, ends, axes, steps):
            if ax in (0, -2):
                if s != 0 or st != 1 or e < _INT_MAX:
                    raise NotGru(f"{where}: Slice over the batch axis")
            elif ax in (1, -1):
                if st <= 0:
                    raise NotGru(f"{where}: Slice with step {st}")
                idx = idx[slice(s, e, st)]
            else:
                raise NotGru(f"{where}: Slice of a row value along axis {ax}")
        if len(idx) == 0:
            raise NotGru(f"{where}: empty slice")
        return a.cols(idx)


# ----------------------------------------------------------------------------- proving the cell

class _Cell:
    """What the replacement needs: weights, attributes, and how Loop outputs map to GRU outputs."""


def _analyse(loop, outer, opset):
    body = _attr(loop, "body")
    if body is None:
        raise NotGru("no body")
    n_in, n_out = len(loop.input), len(body.output)
    n_carried = n_in - 2
    n_scan = n_out - 1 - n_carried
    if n_carried < 1 or n_scan < 0 or len(body.input) != n_in or len(loop.output) != n_carried + n_scan:
        raise NotGru("inputs and outputs do not match the Loop signature")
    bin_names = [v.name for v in body.input]
    bout_names = [v.name for v in body.output]

    def resolve(name):  # follow Identity chains in the body
        prod = {o: n for n in body.node for o in n.output}
        while name in prod and prod[name].op_type == "Identity":
            name = prod[name].input[0]
        return name

    bindings = {bin_names[0]: _Count("k", 0)}
    kinds = []
    for j in range(n_carried):
        bi, bo, init = bin_names[2 + j], bout_names[1 + j], loop.input[2 + j]
        if resolve(bo) == bi:
            kinds.append("pass")
            v = outer.value(init) if init else None
            bindings[bi] = v if v is not None else ("outer", init)
        else:
            kinds.append(None)
    # Counters: next = current + 1, starting from the constant 0.
    probe = _Body(body, outer, opset, dict(bindings, **{bin_names[1]: _Cond()}))
    for j in range(n_carried):
        if kinds[j] is None:
            bi, bo, init = bin_names[2 + j], bout_names[1 + j], loop.input[2 + j]
            iv = outer.const.get(init)
            node = {o: n for n in body.node for o in n.output}.get(resolve(bo))
            if (iv is not None and iv.dtype.kind in "iu" and iv.size == 1 and int(iv.reshape(())) == 0
                    and node is not None and node.op_type == "Add"):
                other = [n for n in node.input if n != bi]
                if len(other) == 1 and bi in node.input and _scalar(probe.get(other[0])) == 1:
                    kinds[j] = "count"
                    bindings[bi] = _Count("k", 0)
    state = [j for j in range(n_carried) if kinds[j] is None]
    if len(state) != 1:
        raise NotGru(f"expected exactly one recurrent state, found {len(state)} non-constant "
                     "loop-carried values that are not counters")
    s = state[0]
    h_in, h_out, h0 = bin_names[2 + s], bout_names[1 + s], loop.input[2 + s]
    H = _state_width(body, h_in, h0, outer)
    bindings[h_in] = _Poly.source("h", H)
    cond_init = outer.value(loop.input[1]) if loop.input[1] else _Cond()
    if not isinstance(cond_init, _Cond):
        v = cond_init
        if isinstance(v, np.ndarray) and v.dtype == np.bool_ and v.size == 1 and bool(v.reshape(())):
            cond_init = _Cond()
        else:
            raise NotGru("the initial loop condition is not recognised")
    bindings[bin_names[1]] = cond_init
    ev = _Body(body, outer, opset, bindings)
    ev.I = _input_width_hint(body, ev)
    new_h = ev.get(h_out)
    if not isinstance(new_h, _Poly) or new_h.width != H:
        raise NotGru("the new state is not a row value of the state's width")
    if ev.X is None:
        raise NotGru("the body does not read an input sequence at the current step")
    cell = _match_cell(new_h, H, ev.I)
    T = outer.dim(ev.X, 0)
    _prove_trip_count(loop, outer, ev, T, cond_init)
    for k in range(n_scan):
        name = bout_names[1 + n_carried + k]
        if not outer.used(loop.output[n_carried + k]):
            continue
        v = ev.get(name)
        if not isinstance(v, _Poly) or v.key != new_h.key:
            raise NotGru(f"scan output {k} ({name!r}) is not the new state")
    for j in range(n_carried):
        if j != s and kinds[j] != "pass" and outer.used(loop.output[j]):
            raise NotGru(f"the final value of loop counter {j} is used after the loop")
    if outer.elem_types.get(ev.X) != onnx.TensorProto.FLOAT:
        raise NotGru(f"the input sequence {ev.X!r} is not known to be float32")
    cell.X = ev.X
    cell.h0 = None if outer.is_zero(h0) else h0
    cell.state_out = loop.output[s]
    cell.scan_outs = [loop.output[n_carried + k] for k in range(n_scan)]
    cell.passthrough = [(loop.output[j], loop.input[2 + j]) for j in range(n_carried) if kinds[j] == "pass"]
    used_scans = [bout_names[1 + n_carried + k] for k in range(n_scan) if outer.used(cell.scan_outs[k])]
    _self_check(body, outer, opset, cell, kinds, loop, s, [h_out] + used_scans)
    return cell


def _gru_step(cell, x, h):
    """One ONNX GRU step in NumPy (float64) with the extracted weights."""
    def act(spec, v):
        op, a, b = spec
        if op == "Sigmoid":
            return 1 / (1 + np.exp(-v))
        if op == "Tanh":
            return np.tanh(v)
        if op == "Relu":
            return np.maximum(v, 0)
        if op == "Softsign":
            return v / (1 + np.abs(v))
        if op == "Softplus":
            return np.logaddexp(0, v)
        if op == "Elu":
            return np.where(v >= 0, v, a * np.expm1(np.minimum(v, 0)))
        if op == "LeakyRelu":
            return np.where(v >= 0, v, a * v)
        if op == "ThresholdedRelu":
            return np.where(v > a, v, 0)
        return np.clip(a * v + b, 0, 1)

    H = cell.H
    W, R, B = (a[0].astype(np.float64) for a in (cell.W, cell.R, cell.B))
    gx = x @ W.T + B[:3 * H]
    gh = h @ R.T + B[3 * H:]
    z = act(cell.f, gx[:, :H] + gh[:, :H])
    r = act(cell.f, gx[:, H:2 * H] + gh[:, H:2 * H])
    if cell.lbr:
        c = act(cell.g, gx[:, 2 * H:] + r * gh[:, 2 * H:])
    else:
        c = act(cell.g, gx[:, 2 * H:] + (r * h) @ R[2 * H:].T + B[5 * H:])
    return z * h + (1 - z) * c


def _self_check(body, outer, opset, cell, kinds, loop, s, checked):
    """Run the original body (onnx.reference) for two steps and compare with the extracted GRU.

    A guard against mistakes in the symbolic proof: NotGru if they disagree or the body cannot run.
    """
    from onnx.reference import ReferenceEvaluator

    T, N = 3, 2
    rng = np.random.default_rng(12345)
    X = rng.standard_normal((T, N, cell.I)).astype(np.float32)
    h = (0.5 * rng.standard_normal((N, cell.H))).astype(np.float32)
    np_types = {onnx.TensorProto.INT32: np.int32, onnx.TensorProto.INT64: np.int64,
                onnx.TensorProto.FLOAT: np.float32, onnx.TensorProto.DOUBLE: np.float64,
                onnx.TensorProto.BOOL: np.bool_}

    def concrete(v, elem_type):
        if isinstance(v, np.ndarray):
            return v
        if isinstance(v, _Count) and v.base != "k":
            return np.array(T + v.off, dtype=np_types.get(elem_type, np.int64))
        if isinstance(v, _Cond):
            return np.array(True)
        return None

    g = copy.deepcopy(body)
    defined = {v.name for v in g.input} | {t.name for t in g.initializer}
    for node in g.node:
        defined.update(node.output)
    free = sorted({n for n in _graph_free_names(body) if n not in defined})
    feeds_outer = {}
    for name in free:
        if name == cell.X:
            feeds_outer[name] = X
            continue
        v = concrete(outer.value(name), outer.elem_types.get(name))
        if v is None:
            raise NotGru(f"self-check: no value for outer tensor {name!r}")
        feeds_outer[name] = v
    for name, v in feeds_outer.items():
        g.input.append(helper.make_tensor_value_info(name, helper.np_dtype_to_tensor_dtype(v.dtype), None))
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", opset)])
    try:
        ev = ReferenceEvaluator(m)
    except Exception as e:
        raise NotGru(f"self-check: the body does not load in onnx.reference ({e})") from None
    for k in range(2):
        feeds = dict(feeds_outer)
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
                if val is None and loop.input[j] == cell.X:  # the sequence carried through (jax2onnx)
                    val = X
                if val is None:
                    val = feeds_outer.get(loop.input[j])
                if val is None:
                    raise NotGru(f"self-check: no value for loop input {loop.input[j]!r}")
                feeds[v.name] = val
        try:
            got = dict(zip([o.name for o in body.output], ev.run(None, feeds)))
        except Exception as e:
            raise NotGru(f"self-check: the body does not run in onnx.reference ({e})") from None
        want = _gru_step(cell, X[k].astype(np.float64), h.astype(np.float64))
        for name in checked:
            if got[name].shape != want.shape or not np.allclose(got[name], want, rtol=1e-4, atol=1e-5):
                raise NotGru("self-check: the body and the extracted GRU disagree")
        h = got[checked[0]].astype(np.float32)


def _state_width(body, h_in, h0, outer):
    for shape in (_vi_shape(body, h_in), outer.shapes.get(h0)):
        if shape and len(shape) != 2:
            raise NotGru(f"the recurrent state has rank {len(shape)}, not 2 ([N, H])")
    for shape in (_vi_shape(body, h_in), outer.shapes.get(h0)):
        if shape and shape[1]:
            return shape[1]
    v = outer.const.get(h0)
    if v is not None and v.ndim >= 1:
        return v.shape[-1]
    for node in body.node:  # h @ R: R's first dimension (its second for Gemm with transB=1)
        if node.op_type in ("MatMul", "Gemm") and node.input[0] == h_in:
            axis = 1 if node.op_type == "Gemm" and _attr(node, "transB", 0) else 0
            for t in body.initializer:
                if t.name == node.input[1] and len(t.dims) == 2:
                    return t.dims[axis]
            w = outer.const.get(node.input[1])
            if w is not None and w.ndim == 2:
                return w.shape[axis]
    raise NotGru("cannot determine the state width")


def _vi_shape(graph, name):
    for v in list(graph.input) + list(graph.value_info):
        if v.name == name and v.type.HasField("tensor_type") and v.type.tensor_type.HasField("shape"):
            return [d.dim_value if d.HasField("dim_value") else None for d in v.type.tensor_type.shape.dim]
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
                return w.shape[1 if node.op_type == "Gemm" and _attr(node, "transB", 0) else 0]
    return None


def _gate(leaf):
    """(ONNX activation, alpha, beta, argument _Poly, scale) with scale * leaf == act(argument).

    scale is 1 except for Keras 3's hard_sigmoid, exported as Clip(a, 0, u) * (1/u) == HardSigmoid(1/u, 0)(a)
    (tf_keras' clip_by_value(0.2 a + 0.5, 0, 1) is that with u = 1).
    Returns None when leaf is not (a multiple of) an activation ONNX's GRU offers.
    """
    if leaf.kind != "act":
        return None
    op, params = leaf.a
    if op in ("Sigmoid", "Tanh", "Relu", "Softsign", "Softplus"):
        return op, None, None, leaf.b, 1.0
    if op in _ALPHA_ACTS:
        return op, params[0], None, leaf.b, 1.0
    if op == "HardSigmoid":
        return op, params[0], params[1], leaf.b, 1.0
    if op == "Clip":
        lo, hi = params
        if lo == 0.0 and np.isfinite(hi) and hi > 0:
            return "HardSigmoid", 1.0 / hi, 0.0, leaf.b, 1.0 / hi
    return None


def _affine(p, H, I, what):
    """(Wx [I, H], Wh [H, H], b [H]) for p == x Wx + h Wh + b, else NotGru."""
    Wx, Wh = np.zeros((I, H)), np.zeros((H, H))
    for k, t in p.terms.items():
        if t[0] == "l" and t[1] == "x":
            Wx = t[2]
        elif t[0] == "l" and t[1] == "h":
            Wh = t[2]
        elif t[0] != "c":
            raise NotGru(f"the {what} pre-activation is not affine in x and h")
    if Wx.shape != (I, H) or Wh.shape != (H, H):
        raise NotGru(f"the {what} weights have unexpected shapes")
    return Wx, Wh, p.const()


def _ones(c):
    return np.allclose(c, 1.0, rtol=1e-6, atol=0)


def _match_cell(P, H, I):
    """Read a GRU out of the new-state polynomial P (or NotGru)."""
    if I is None:
        raise NotGru("the input width is unknown")
    hkey = _Leaf.lin("h", np.eye(H)).key
    form = "the new state is not of the form z*h + (1-z)*candidate"
    zs = [t for t in P.terms.values() if t[0] == "m" and len(t[1]) == 2
          and sum(leaf.key == hkey for leaf in t[1]) == 1]
    cand = [t for t in P.terms.values() if t[0] == "m" and len(t[1]) == 1]
    mixed = [t for t in P.terms.values() if t[0] == "m" and len(t[1]) == 2 and not any(t is z for z in zs)]
    if len(P.terms) != 3 or len(zs) != 1 or len(cand) != 1 or len(mixed) != 1:
        raise NotGru(form)
    z_leaf = [leaf for leaf in zs[0][1] if leaf.key != hkey][0]
    c_leaf = cand[0][1][0]
    if {leaf.key for leaf in mixed[0][1]} != {z_leaf.key, c_leaf.key}:
        raise NotGru(form)
    zg, cg = _gate(z_leaf), _gate(c_leaf)
    if zg is None:
        raise NotGru("the update gate z is not an activation ONNX's GRU supports")
    if cg is None:
        raise NotGru("the candidate is not an activation ONNX's GRU supports")
    if not (_ones(zs[0][2] / zg[4]) and _ones(cand[0][2] / cg[4])
            and _ones(-mixed[0][2] / (zg[4] * cg[4]))):
        raise NotGru(form + " (the coefficients of z*h, candidate and z*candidate do not match)")
    Wz, Rz, bz = _affine(zg[3], H, I, "update gate")
    # The candidate's argument: x Wh + bh + (r*h) Rh  or  x Wh + bh + r*(h Rh + rbh).
    A = cg[3]
    Wh, bh = np.zeros((I, H)), A.const()
    r_leaf, lbr, Rh, rbh = None, None, None, np.zeros(H)
    r_terms = []
    for k, t in A.terms.items():
        if t[0] == "c":
            continue
        if t[0] == "l" and t[1] == "x":
            Wh = t[2]
        elif t[0] == "l" and isinstance(t[1], _Poly):  # (r*h) @ M
            src = t[1]
            sterm = list(src.terms.values())
            if len(sterm) != 1 or sterm[0][0] != "m" or len(sterm[0][1]) != 2 or not _ones(sterm[0][2]):
                raise NotGru("the candidate mixes in a product that is not r*h")
            keys = [leaf.key for leaf in sterm[0][1]]
            if keys.count(hkey) != 1:
                raise NotGru("the candidate's recurrent product is not r*h")
            r_terms.append(("before", [leaf for leaf in sterm[0][1] if leaf.key != hkey][0], t[2]))
        elif t[0] == "m" and len(t[1]) == 2:  # r * (h @ Rh)
            lins = [leaf for leaf in t[1] if leaf.kind == "lin" and leaf.a == "h"]
            if len(lins) != 1:
                raise NotGru("the candidate holds a product that is not r*(h Rh)")
            other = [leaf for leaf in t[1] if leaf is not lins[0]][0]
            r_terms.append(("after", other, lins[0].b * t[2][None, :]))
        elif t[0] == "m" and len(t[1]) == 1:  # r * rbh
            r_terms.append(("after_bias", t[1][0], t[2]))
        else:
            raise NotGru("the candidate's argument is not x Wh + bh + (r*h) Rh or x Wh + bh + r*(h Rh + rbh)")
    modes = {m for m, _, _ in r_terms}
    if modes == {"before"} and len(r_terms) == 1:
        lbr, r_leaf, M = 0, r_terms[0][1], r_terms[0][2]
    elif modes in ({"after"}, {"after", "after_bias"}) and sum(m == "after" for m, _, _ in r_terms) == 1 \
            and len(r_terms) == len(modes):
        lbr = 1
        r_leaf, M = [(leaf, m_) for m, leaf, m_ in r_terms if m == "after"][0]
        bias = [(leaf, c) for m, leaf, c in r_terms if m == "after_bias"]
        if bias:
            if bias[0][0].key != r_leaf.key:
                raise NotGru("the reset-after bias is not multiplied by the reset gate")
            rbh = bias[0][1]
    else:
        raise NotGru("no reset gate found in the candidate (or more than one recurrent product)")
    rg = _gate(r_leaf)
    if rg is None:
        raise NotGru("the reset gate is not an activation ONNX's GRU supports")
    rscale = rg[4]
    if (zg[0], zg[1], zg[2]) != (rg[0], rg[1], rg[2]):
        raise NotGru(f"the update gate uses {zg[0]} but the reset gate {rg[0]}; ONNX's GRU has one f for both")
    Rh = M / rscale
    rbh = rbh / rscale
    Wr, Rr, br = _affine(rg[3], H, I, "reset gate")
    if Wh.shape != (I, H) or Rh.shape != (H, H):
        raise NotGru("the candidate weights have unexpected shapes")
    cell = _Cell()
    cell.H, cell.I, cell.lbr = H, I, lbr
    cell.f, cell.g = (zg[0], zg[1], zg[2]), (cg[0], cg[1], cg[2])
    W = np.concatenate([Wz.T, Wr.T, Wh.T])[None]
    R = np.concatenate([Rz.T, Rr.T, Rh.T])[None]
    B = np.concatenate([bz, br, bh, np.zeros(2 * H), rbh])[None]
    cell.W, cell.R, cell.B = (a.astype(np.float32) for a in (W, R, B))
    return cell


def _prove_trip_count(loop, outer, ev, T, cond_init):
    """NotGru unless the loop runs exactly T steps for every T >= 1 (for the one T of an input
    whose length is fixed, when the shapes fix it)."""
    static = outer.shapes.get(ev.X, [None])[0]

    def off(c):
        """c - T, when c is the sequence length plus a constant (a fixed length compared as a number)."""
        if isinstance(c, _Count) and c.base == T:
            return c.off
        v = _scalar(c) if isinstance(c, np.ndarray) else _scalar_num(c)
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
        if not (off(rhs) is not None and _scalar_num(lhs) is not None and _scalar_num(lhs) < 1 + off(rhs)):
            raise NotGru("the initial loop condition is not 'the sequence is non-empty'")
    body = _attr(loop, "body")
    cond = ev.get(body.output[0].name)
    if not isinstance(cond, _Cond):
        raise NotGru("the loop condition is not a comparison of the step with the sequence length")
    stops = False
    for lhs, rhs in cond.terms:
        if off(rhs) is None:
            raise NotGru("the loop condition compares with something other than the sequence length")
        if isinstance(lhs, _Count) and lhs.base == "k":
            if lhs.off > off(rhs) + 1:
                raise NotGru("the loop condition ends the loop early")
            stops = stops or lhs.off == off(rhs) + 1
        elif _scalar_num(lhs) is not None:
            if not _scalar_num(lhs) < 2 + off(rhs):
                raise NotGru("the loop condition can end the loop early")
        else:
            raise NotGru("the loop condition is not recognised")
    if not (bounded or stops):
        raise NotGru("nothing bounds the loop to the sequence length")


def _scalar_num(v):
    return v if isinstance(v, (int, float)) else None


# ----------------------------------------------------------------------------- rewriting

def _fresh(names, base):
    name, i = base, 0
    while name in names:
        i += 1
        name = f"{base}_{i}"
    names.add(name)
    return name


def _replacement(loop, cell, outer, opset, names):
    """(nodes to put where the Loop was, ids of nodes to drop, new initializers)."""
    base = (loop.name or "loop").replace("/", "_")
    inits = []

    def const(tag, arr):
        name = _fresh(names, f"{base}__gru_{tag}")
        inits.append(numpy_helper.from_array(np.asarray(arr), name))
        return name

    def squeeze(src, dst, axis):
        if opset >= 13:
            return helper.make_node("Squeeze", [src, const(f"axes{axis}", np.array([axis], np.int64))], [dst],
                                    name=_fresh(names, f"{base}__squeeze"))
        return helper.make_node("Squeeze", [src], [dst], axes=[axis], name=_fresh(names, f"{base}__squeeze"))

    nodes = []
    gru_in = [cell.X, const("W", cell.W), const("R", cell.R), const("B", cell.B), ""]
    if cell.h0 is not None:
        h0 = _fresh(names, f"{base}__gru_initial_h")
        if opset >= 13:
            nodes.append(helper.make_node("Unsqueeze", [cell.h0, const("axes0", np.array([0], np.int64))],
                                          [h0], name=_fresh(names, f"{base}__unsqueeze")))
        else:
            nodes.append(helper.make_node("Unsqueeze", [cell.h0], [h0], axes=[0],
                                          name=_fresh(names, f"{base}__unsqueeze")))
        gru_in.append(h0)
    while gru_in and gru_in[-1] == "":
        gru_in.pop()
    # Keras' return_sequences=False takes Slice(Y, -1:, axis 0): that is Y_h. Let Y_h produce it.
    used_scans = [s for s in cell.scan_outs if outer.used(s)]
    last_step, last_row = [], []
    T = outer.dim(cell.X, 0)
    for s in used_scans:
        for c in outer.consumers.get(s, []):
            if s in outer.graph_outputs:
                continue
            if _is_last_step_slice(c, outer, opset):
                last_step.append(c)
            elif c.op_type == "Gather" and c.input[0] == s and _is_last_step_index(c, outer, T):
                last_row.append(c)  # jax2onnx (Keras on JAX): Gather(Y, T - 1) is Y_h without its first axis
    y = _fresh(names, f"{base}__gru_Y")
    y_h = _fresh(names, f"{base}__gru_Y_h")
    if last_step:
        y_h = last_step[0].output[0]
    after = []
    for c in last_step[1:]:
        after.append(helper.make_node("Identity", [y_h], [c.output[0]], name=_fresh(names, f"{base}__last")))
    for c in last_row:
        after.append(squeeze(y_h, c.output[0], 0))
    sliced = {id(c) for c in last_step + last_row}
    scan_still_used = any(s in outer.graph_outputs or any(id(c) not in sliced for c in outer.consumers.get(s, []))
                          for s in used_scans)
    outs = [y if scan_still_used else "", y_h]
    nodes.append(helper.make_node("GRU", gru_in, outs, name=_fresh(names, f"{base}__gru"),
                                  **gru_attrs(cell)))
    if scan_still_used:
        first = True
        for s in used_scans:
            if first:
                nodes.append(squeeze(y, s, 1))
                first_name, first = s, False
            else:
                nodes.append(helper.make_node("Identity", [first_name], [s], name=_fresh(names, f"{base}__scan")))
    if outer.used(cell.state_out):
        nodes.append(squeeze(y_h, cell.state_out, 0))
    for out, init in cell.passthrough:
        if outer.used(out):
            nodes.append(helper.make_node("Identity", [init], [out], name=_fresh(names, f"{base}__pass")))
    nodes.extend(after)
    return nodes, sliced, inits


def gru_attrs(cell):
    """The attributes of a forward GRU node computing `cell` (lift_cells writes them too)."""
    attrs = dict(hidden_size=cell.H, linear_before_reset=cell.lbr, direction="forward",
                 activations=[cell.f[0], cell.g[0]])
    alphas = [a for a in (cell.f[1], cell.g[1]) if a is not None]
    betas = [b for b in (cell.f[2], cell.g[2]) if b is not None]
    if alphas:
        attrs["activation_alpha"] = alphas
    if betas:
        attrs["activation_beta"] = betas
    return attrs


def _is_last_step_index(node, outer, T):
    """Gather(v, i, axis=0) with i the scalar -1 or T - 1: the last time step of v, time axis dropped."""
    if (_attr(node, "axis", 0) or 0) != 0:
        return False
    i = outer.value(node.input[1])
    if isinstance(i, _Count):
        return i.base == T and i.off == -1
    return isinstance(i, np.ndarray) and i.ndim == 0 and i.dtype.kind in "iu" and int(i) == -1


def _is_last_step_slice(node, outer, opset):
    """Slice(v, starts=[-1], ends=[>= INT_MAX], axes=[0], steps=[1]): the last time step of v."""
    if node.op_type != "Slice" or opset < 10:
        return False
    vals = [outer.const.get(n) if n else None for n in node.input[1:]]
    vals += [None] * (4 - len(vals))
    starts, ends, axes, steps = (None if v is None else _scalar_list(v) for v in vals)
    if len(node.input) > 3 and node.input[3] and axes is None:
        return False
    if len(node.input) > 4 and node.input[4] and steps is None:
        return False
    return (starts == [-1] and ends is not None and len(ends) == 1 and ends[0] >= _INT_MAX
            and (axes in (None, [0])) and (steps in (None, [1])))


def _drop_unread_y(graph, ours):
    """Blank the Y output of the lifted GRU nodes (names in ours) once nothing reads it (only a pruned Shape did)."""
    reads = {o.name for o in graph.output}
    for n in graph.node:
        reads.update(_node_reads(n))
    for n in graph.node:
        if n.name in ours and n.op_type == "GRU" and n.output[0] and n.output[0] not in reads:
            n.output[0] = ""


def _prune(graph):
    """Drop nodes whose outputs nobody reads, then initializers and value_info nobody names."""
    outputs = {o.name for o in graph.output}
    while True:
        reads = set(outputs)
        for n in graph.node:
            reads.update(_node_reads(n))
        keep = [n for n in graph.node if any(o in reads for o in n.output if o)]
        if len(keep) == len(graph.node):
            break
        del graph.node[:]
        graph.node.extend(keep)
    reads = set(outputs)
    produced = set()
    for n in graph.node:
        reads.update(_node_reads(n))
        produced.update(n.output)
    inputs = {v.name for v in graph.input}
    inits = [t for t in graph.initializer if t.name in reads or t.name in inputs]
    del graph.initializer[:]
    graph.initializer.extend(inits)
    vis = [v for v in graph.value_info if v.name in produced]
    del graph.value_info[:]
    graph.value_info.extend(vis)
