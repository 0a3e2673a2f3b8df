"""rewrite/evaluate.py: SymbolicEval, demand-driven symbolic evaluation of ONNX nodes over row polynomials (a Loop body, or the plain ops around a GRU cell)."""
from dataclasses import dataclass

import numpy as np

import onnx

from ..onnx_io import forms
from ..onnx_io.budget import check_prover_time
from ..onnx_io.check import arity_error
from ..onnx_io.activations import OP_ACTIVATIONS, op_params
from ..onnx_io.proto import attr, attrs, tensor_to_array
from ..onnx_io.shapes import Dims
from .algebra import Cond, Count, NotGru, Poly, RowShape, clip, less, scalar
from .outer import fold, shape_arith

_INT_MAX = 2 ** 31 - 1


@dataclass(frozen=True)
class Outer:
    """An outer tensor that is neither a constant nor known symbolically (only the input
    sequence may be read from it)."""
    name: str


class SymbolicEval:
    """The symbolic value of any value of `graph` (a GraphProto: a Loop body, or a shell of the
    outer graph's nodes), computed on demand from bindings (name -> symbolic value) and the
    outer graph's constants and shapes."""

    def __init__(self, graph, outer, opset, bindings):
        self.graph, self.outer, self.opset = graph, outer, opset
        self.producer = {}
        for node in graph.node:
            for o in node.output:
                if o:
                    self.producer[o] = node
        self.values = dict(bindings)
        for t in graph.initializer:
            self.values.setdefault(t.name, tensor_to_array(t, "Loop body initializer"))
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
            self.values[name] = v if v is not None else Outer(name)
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
        check_prover_time(where)
        if node.domain not in ("", "ai.onnx"):
            raise NotGru(f"{where}: op domain {node.domain!r}")
        why = arity_error(node, self.opset)
        if why:
            raise NotGru(f"{where}: {why}")
        if op == "Gather":
            return [self._gather(node, where)]
        vals = [self.get(n) if n else None for n in node.input]
        if op == "Constant" or all(isinstance(v, np.ndarray) or v is None for v in vals):
            outs = fold(node, {n: v for n, v in zip(node.input, vals) if n}, self.opset)
            if outs is None:
                raise NotGru(f"{where}: cannot fold constant inputs")
            return outs
        if op == "Shape" and isinstance(vals[0], Poly):  # ones_like(h) of tf_keras' recurrent dropout
            return [RowShape(vals[0].width)]
        if op == "ConstantOfShape" and isinstance(vals[0], RowShape):
            value = attr(node, "value")
            value = tensor_to_array(value, where).reshape(-1)[0] if value is not None else 0.0
            return [np.full((1, vals[0].width), value, np.float64)]
        if any(isinstance(v, Outer) for v in vals):
            bad = next(v.name for v in vals if isinstance(v, Outer))
            raise NotGru(f"{where}: reads outer tensor {bad!r}, which is neither a constant "
                         "nor the input sequence")
        if op == "Identity":
            return [vals[0]]
        if any(isinstance(v, (Count, Cond, Dims, RowShape)) for v in vals):
            return [self._control(node, vals, where)]
        if not any(isinstance(v, Poly) for v in vals):
            raise NotGru(f"{where}: unsupported inputs")
        return self._row_op(node, vals, where)

    def _row_op(self, node, vals, where):
        """An op on row polynomials (and constants)."""
        op, a = node.op_type, vals[0]
        if op in ("Add", "Sub", "Mul", "Div"):
            b = vals[1]
            if op == "Add":
                return [a.plus(b) if isinstance(a, Poly) else b.plus(a)]
            if op == "Sub":
                nb = b.scaled(-1.0) if isinstance(b, Poly) else -np.asarray(b, dtype=np.float64)
                return [a.plus(nb) if isinstance(a, Poly) else nb.plus(a)]
            if op == "Mul":
                return [a.times(b) if isinstance(a, Poly) else b.times(a)]
            if isinstance(b, Poly) or not isinstance(a, Poly):
                raise NotGru(f"{where}: division by a step-dependent value")
            return [a.scaled(1.0 / np.asarray(b, dtype=np.float64))]
        if op in ("Min", "Max") and len(vals) == 2:  # tf.clip_by_value: Maximum(Minimum(v, hi), lo)
            a, c = (vals[1], vals[0]) if isinstance(vals[1], Poly) else vals
            if isinstance(c, Poly) or scalar(np.asarray(c, np.float64)) is None:
                raise NotGru(f"{where}: {op} of two step-dependent values, or by a non-scalar")
            c = float(scalar(np.asarray(c, np.float64)))
            return [clip(a, -np.inf, c, where) if op == "Min" else clip(a, c, np.inf, where)]
        if not isinstance(a, Poly):
            raise NotGru(f"{where}: {op} of a constant by a step-dependent value")
        if op == "Neg":
            return [a.scaled(-1.0)]
        if op == "MatMul":
            if isinstance(vals[1], Poly):
                raise NotGru(f"{where}: MatMul must be a row value times a constant")
            return [a.matmul(vals[1])]
        if op == "Gemm":  # jax2onnx: alpha * A @ B' + beta * C with A the row value, B a constant
            return [self._gemm(node, vals, where)]
        act = OP_ACTIVATIONS.get(op)
        if act is not None:
            return [a.activation(op, op_params(act, attrs(node))[:len(act.params)])]
        if op == "Clip":
            lo, hi = forms.clip_bounds(attrs(node), vals, self.opset)
            if isinstance(lo, Poly) or isinstance(hi, Poly) or lo is forms.UNKNOWN \
                    or hi is forms.UNKNOWN:
                raise NotGru(f"{where}: step-dependent clip bounds")
            lo = -np.inf if lo is None else scalar(np.asarray(lo, np.float64))
            hi = np.inf if hi is None else scalar(np.asarray(hi, np.float64))
            if lo is None or hi is None:
                raise NotGru(f"{where}: clip bounds that are not single numbers")
            return [clip(a, lo, hi, where)]
        if op == "Cast":
            if attr(node, "to") != onnx.TensorProto.FLOAT:
                raise NotGru(f"{where}: cast of a cell value to a non-float type")
            return [a]
        if op == "Split":
            return self._split(node, a, vals, where)
        if op == "Slice":
            return [self._slice(node, a, vals, where)]
        raise NotGru(f"{where}: op {op} is not part of a GRU cell")

    def _gather(self, node, where):
        data, idx = node.input[0], self.get(node.input[1])
        if not isinstance(idx, Count) or idx.base != "k" or idx.off != 0:
            vals = [self.get(n) for n in node.input]
            if all(isinstance(v, np.ndarray) for v in vals):
                outs = fold(node, dict(zip(node.input, vals)), self.opset)
                if outs is not None:
                    return outs[0]
            raise NotGru(f"{where}: Gather is not a read of the input sequence at the current step")
        if attr(node, "axis", 0) != 0:
            raise NotGru(f"{where}: Gather of the input along axis {attr(node, 'axis')}, not time")
        if data in self.producer or data in self.values:
            v = self.get(data)
            if not isinstance(v, Outer):
                raise NotGru(f"{where}: the gathered sequence is not an outer tensor")
            data = v.name
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
        return Poly.source("x", I)

    def _control(self, node, vals, where):
        """Loop control: counts, conditions and shapes."""
        op, a = node.op_type, vals[0]
        if op == "Cast" and isinstance(a, (Count, Cond)):
            return a
        if op in ("Add", "Sub") and isinstance(a, Count) and scalar(vals[1]) is not None:
            c = scalar(vals[1])
            if c != int(c):
                raise NotGru(f"{where}: non-integer step arithmetic")
            return a.plus(int(c) if op == "Add" else -int(c))
        if op == "Add" and isinstance(vals[1], Count) and scalar(a) is not None \
                and scalar(a) == int(scalar(a)):
            return vals[1].plus(int(scalar(a)))
        if op in ("Less", "Greater") and len(vals) == 2:
            c = less(*vals) if op == "Less" else less(vals[1], vals[0])
            if c is not None:
                return c
        if op == "And" and all(isinstance(v, Cond) for v in vals):
            return Cond(vals[0].terms + vals[1].terms)
        if op in ("Slice", "Gather", "Squeeze", "Unsqueeze", "Concat"):
            v = shape_arith(op, attrs(node), vals, self.opset)
            if v is not None:
                return v
        raise NotGru(f"{where}: unrecognised loop-control arithmetic")

    def _gemm(self, node, vals, where):
        a, b = vals[0], vals[1]
        c = vals[2] if len(vals) > 2 else None
        if isinstance(b, Poly) or b is None:
            raise NotGru(f"{where}: Gemm must be a row value times a constant")
        if attr(node, "transA", 0):
            raise NotGru(f"{where}: Gemm with transA=1 on a row value")
        b = np.asarray(b, dtype=np.float64)
        if b.ndim != 2:
            raise NotGru(f"{where}: Gemm by a constant of shape {list(b.shape)}")
        if attr(node, "transB", 0):
            b = b.T
        out = a.matmul(b).scaled(float(attr(node, "alpha", 1.0)))
        beta = float(attr(node, "beta", 1.0))
        if c is None or beta == 0.0:
            return out
        if isinstance(c, Poly):
            return out.plus(c.scaled(beta))
        return out.plus(beta * np.asarray(c, dtype=np.float64))

    def _split(self, node, a, vals, where):
        axis = attr(node, "axis", 0)
        if axis not in (1, -1):
            raise NotGru(f"{where}: Split of a row value along axis {axis}")
        n = len(node.output)
        sizes = forms.list_arg("Split", attrs(node), vals, self.opset)
        if sizes is forms.UNKNOWN:
            raise NotGru(f"{where}: split sizes computed at run time")
        if sizes is None:
            if a.width % n:
                raise NotGru(f"{where}: width {a.width} does not split into {n} equal parts")
            sizes = [a.width // n] * n
        if sum(sizes) != a.width or len(sizes) != n:
            raise NotGru(f"{where}: split sizes {sizes} do not match width {a.width}")
        edges = np.cumsum([0] + list(sizes))
        return [a.cols(np.arange(edges[i], edges[i + 1])) for i in range(n)]

    def _slice(self, node, a, vals, where):
        args = forms.slice_args(attrs(node), vals, self.opset)
        if args is forms.UNKNOWN:
            raise NotGru(f"{where}: non-constant slice bounds")
        idx = np.arange(a.width)
        for s, e, ax, st in zip(*args):
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
