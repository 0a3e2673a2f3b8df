"""rewrite/outer.py: the graph around the patterns a rewrite proves: its constants (folded), producers and consumers, declared or inferred shapes, and the symbolic value of shape and count arithmetic."""
import numpy as np

import onnx

from ..errors import InvalidModel
from ..onnx_io import shapes
from ..onnx_io.ops import OPS, OpError, apply
from ..onnx_io.proto import attr, attrs, constant_value, known_sizes, tensor_to_array
from ..onnx_io.validate import shape_inference_safe, validate_model
from .algebra import Cond, Count, less, scalar
from .edit import node_reads

# Ops never folded: control flow and random draws.
_NOT_FOLDED = {"Loop", "Scan", "If", "RandomNormal", "RandomUniform", "RandomNormalLike",
               "RandomUniformLike", "Multinomial", "Bernoulli"}


def fold(node, values, opset):
    """The outputs of a node on constant inputs (values: name -> array), or None when it cannot
    be computed here (an op the NumPy ops lack, control flow, inputs it refuses)."""
    if node.op_type == "Constant":
        try:
            return [constant_value(node, "Constant node")]
        except InvalidModel:  # the graph reader names the node when it gets there
            return None
    if node.op_type in _NOT_FOLDED or node.op_type not in OPS or node.domain not in ("", "ai.onnx"):
        return None
    at = attrs(node)
    if node.op_type == "Split":
        at.setdefault("num_outputs", len(node.output))
    try:
        return [np.asarray(v) for v in apply(node.op_type, [values[n] if n else None
                                                             for n in node.input], at, opset)]
    except OpError:
        return None


def inferred_shapes(model):
    """onnx's shape inference of the model, or the model itself where it refuses (a help, not a
    requirement: shapes it cannot tell stay unknown).  Only a model that passes the schema
    check is shown to it (its C++ crashes the process on some malformed nodes), whoever calls
    the lift: for any other, every shape stays unknown (a session never gets here with one:
    load_model refused it)."""
    try:
        opset = validate_model(model)
    except InvalidModel:
        return model
    if not shape_inference_safe(model, opset):
        return model
    try:
        return onnx.shape_inference.infer_shapes(model)
    except (onnx.shape_inference.InferenceError, onnx.checker.ValidationError, RuntimeError):
        return model  # (RuntimeError: what onnx's C++ raises on a damaged model otherwise)


class OuterGraph:
    """The graph a rewrite reads: constants (non-overridable initializers, Constant nodes,
    folded), producers, consumers, shapes and element types (from shape inference)."""

    def __init__(self, graph, inferred_graph, opset):
        self.graph, self.opset = graph, opset
        inputs = {v.name for v in graph.input}
        self.const = {t.name: tensor_to_array(t, "initializer") for t in graph.initializer
                      if t.name not in inputs}
        self.producer = {}
        for node in graph.node:
            for o in node.output:
                if o:
                    self.producer[o] = node
        for node in graph.node:
            ins = [n for n in node.input if n]
            if node.op_type == "Constant" or (ins and all(n in self.const for n in ins)):
                outs = fold(node, self.const, opset)
                if outs is not None and len(outs) == len(node.output):
                    for name, v in zip(node.output, outs):
                        if name:
                            self.const[name] = v
        self.shapes, self.elem_types = {}, {}
        for v in list(inferred_graph.value_info) + list(inferred_graph.input) + list(inferred_graph.output):
            if v.type.HasField("tensor_type"):
                t = v.type.tensor_type
                if t.elem_type:
                    self.elem_types[v.name] = t.elem_type
                if t.HasField("shape"):
                    self.shapes[v.name] = known_sizes([d.dim_value if d.HasField("dim_value")
                                                       else None for d in t.shape.dim])
        for t in graph.initializer:
            self.elem_types.setdefault(t.name, t.data_type)
        self.consumers = {}
        for node in graph.node:
            for n in node_reads(node):
                self.consumers.setdefault(n, []).append(node)
        self.graph_outputs = {o.name for o in graph.output}
        self.proven = {}  # id(Loop) -> dim key of its step count, for Loops proven to be GRUs

    def used(self, name):
        return bool(name) and (name in self.graph_outputs or bool(self.consumers.get(name)))

    def rank(self, name):
        s = self.shapes.get(name)
        return None if s is None else len(s)

    def dim(self, name, axis):
        """Canonical key for dimension `axis` of `name`, seen through shape-preserving producers."""
        for _ in range(100):
            node = self.producer.get(name)
            if node is None:
                break
            if node.op_type == "Transpose":
                perm = attr(node, "perm")
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

    def value(self, name):
        """Symbolic value of an outer tensor: an array, a Count, shapes.Dims of Counts, a Cond, or
        None (unknown)."""
        if name in self.const:
            return self.const[name]
        node = self.producer.get(name)
        if node is None:
            return None
        op = node.op_type
        if op == "Identity":
            return self.value(node.input[0])
        if op == "Shape":
            r = self.rank(node.input[0])
            if r is None:
                return None
            return shapes.shape_of([Count(self.dim(node.input[0], a)) for a in range(r)], attrs(node))
        vals = [self.value(n) if n else None for n in node.input]
        if op in ("Less", "Greater") and len(vals) == 2:
            return less(*vals) if op == "Less" else less(vals[1], vals[0])
        if op == "And" and len(vals) == 2 and all(isinstance(v, Cond) for v in vals):
            return Cond(vals[0].terms + vals[1].terms)
        if op in ("Add", "Sub") and len(vals) == 2:
            return count_plus(op, *vals)
        return shape_arith(op, attrs(node), vals, self.opset)

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
            val = attr(node, "value")
            return val is None or not np.any(tensor_to_array(val, "ConstantOfShape value"))
        return False


def count_plus(op, a, b):
    """A count (or a one-entry shape of one) plus or minus an integer constant, else None."""
    if op == "Add" and not isinstance(a, (Count, shapes.Dims)):
        a, b = b, a
    c = scalar(b) if isinstance(b, np.ndarray) and b.dtype.kind in "iu" and b.ndim <= 1 else None
    if c is None:
        return None
    c = c if op == "Add" else -c
    if isinstance(a, Count):
        return shapes.Dims((a.plus(c),)) if b.ndim == 1 else a.plus(c)
    if isinstance(a, shapes.Dims) and len(a.entries) == 1 and isinstance(a.entries[0], Count):
        return shapes.Dims((a.entries[0].plus(c),), a.scalar)
    return None


def shape_arith(op, at, vals, opset):
    """Shape ops (Cast, Slice, Gather, Squeeze, Unsqueeze, Concat, Reshape, Expand) on shapes
    and counts, through the one shape tracker; a scalar count comes back as a Count."""
    ins = [shapes.Dims((v,), scalar=True) if isinstance(v, Count) else v for v in vals]
    if op == "Cast" and isinstance(vals[0], (Count, shapes.Dims)):
        return vals[0]  # loop counts stay counts whatever integer type they are cast to
    if not any(isinstance(v, shapes.Dims) for v in ins):
        return None
    out = shapes.track(op, at, ins, opset)
    if out is not None and out.scalar and isinstance(out.entries[0], Count):
        return out.entries[0]
    return out
