"""graph.py: the rewritten graph as plain data (typed inputs and outputs, constants, the nodes left to run) and the one reading of a model into it, what load time knows folded in.

Its records are NamedTuples (immutable, named fields): read-only once built, and cheap to define
when gruinfer is imported (a frozen dataclass costs about half a millisecond to define)."""
from dataclasses import dataclass
from typing import NamedTuple

import numpy as np

from .errors import InvalidArgument, InvalidModel, UnsupportedOp
from .onnx_io import shapes
from .onnx_io.budget import LoadBudget
from .onnx_io.gru_spec import GruSpec, gru_spec
from .onnx_io.ops import OPS, OpError, apply
from .onnx_io.proto import attrs, constant_value, declared_dims, opset_version, tensor_to_array

SUPPORTED_OPS = ("Constant", "GRU", "Loop") + tuple(OPS)

_ELEM_TYPES = {1: "tensor(float)", 6: "tensor(int32)", 7: "tensor(int64)", 10: "tensor(float16)",
               11: "tensor(double)", 16: "tensor(bfloat16)"}


@dataclass(frozen=True)
class NodeArg:
    """A graph input or output, as onnxruntime describes it: name, shape (ints, strings or None), type."""
    name: str
    shape: list
    type: str

    def __repr__(self):
        return f"NodeArg(name={self.name!r}, type={self.type!r}, shape={self.shape})"


def node_arg(value_info):
    """The NodeArg of a declared graph input or output."""
    t = value_info.type.tensor_type
    return NodeArg(value_info.name, declared_dims(value_info),
                   _ELEM_TYPES.get(t.elem_type, f"tensor({t.elem_type})"))


class LoopBody(NamedTuple):
    """A Loop body checked at load: its nodes (nested Loops prepared too), its own constants,
    input names (iteration number, condition, carried values) and outputs (condition, carried
    values, scan outputs) with their element types and declared shapes (None: unknown)."""
    nodes: list
    constants: dict
    inputs: list
    outputs: list
    out_dtypes: list
    out_shapes: list


class Node(NamedTuple):
    """One node to execute: op, name, the ONNX node, its decoded attributes, its input and
    output names (tuples: "" for an omitted one); a GRU's spec, a Loop's body."""
    op: str
    name: str
    proto: object
    attrs: dict
    inputs: tuple
    outputs: tuple
    spec: GruSpec = None
    body: LoopBody = None


class Carry(NamedTuple):
    """Past frames a node on the time path reads, which a stream carries from chunk to chunk (a
    causal Pad, a Conv with causal time padding): the last `frames` frames along `axis` of the
    node's input (at="input", a Conv: they replace its time padding) or of its output
    (at="output", a Pad: they replace the padded frames); `fill` before the first frame.
    axes: the axes of the carried tensor as lowering reads them ("T", "N" and sizes)."""
    axis: int
    frames: int
    fill: float
    at: str
    axes: tuple


class Graph(NamedTuple):
    """Everything load time decides: constants (initializers, Constant nodes, values folded at
    load), the inputs a feed gives, the outputs, and the nodes left to run.

    overridable: initializers that are also graph inputs (a feed may replace them at run time;
    their load-time values are in constants).  feeds_of: value -> the feeds (graph inputs,
    overridable initializers) its data depends on; a Shape depends on none.  notes: what the
    rewrites did (rewrite.LiftNote records).  budget: the LoadBudget it was loaded under (its
    loop_iterations bound Loops at run time)."""
    opset: int
    inputs: list
    outputs: list
    overridable: dict
    constants: dict
    nodes: list
    feeds_of: dict
    notes: list
    budget: LoadBudget


def node_failed(node, ins, reason, load):
    """The error for a node whose op refused its inputs: InvalidModel at load, InvalidArgument
    when feeds made it fail."""
    cls, when = (InvalidModel, " at load") if load else (InvalidArgument, "")
    sizes = ", ".join("None" if a is None else str(list(np.shape(a))) for a in ins)
    return cls(f"node {node.name!r} ({node.op}) failed{when}: {reason} (input shapes {sizes})")


def check_outputs(node, outs):
    """UnsupportedOp when the node names an output its op did not give (BatchNormalization's
    training-mode outputs, say): nothing may read a value gruinfer never computed."""
    for k, name in enumerate(node.outputs[len(outs):], len(outs)):
        if name:
            raise UnsupportedOp(f"node {node.name!r} ({node.op}): gruinfer does not compute its "
                                f"output {k} ({name!r})")


def build_graph(model, notes=(), budget=None):
    """The Graph of a (rewritten) model: every node checked (op supported, inputs defined before
    use, GRU specs, Loop bodies), constants folded (within the load budget when the caller
    holds the load to one: onnx_io.budget.loading)."""
    return _Reader(model, list(notes), budget or LoadBudget()).graph


class _Reader:
    """One pass over the nodes in order: what each value is known to be at load."""

    def __init__(self, model, notes, budget):
        g = model.graph
        self.opset = opset_version(model)
        self.constants = {t.name: tensor_to_array(t, "initializer") for t in g.initializer}
        init_names = set(self.constants)
        inputs = [node_arg(v) for v in g.input if v.name not in init_names]
        overridable = {v.name: node_arg(v) for v in g.input if v.name in init_names}
        outputs = [node_arg(v) for v in g.output]
        self.declared = {a.name: a for a in inputs}  # for GRU weights fed at run time
        if not outputs:
            raise InvalidModel("the graph declares no outputs")
        # Shapes load time knows in part (None: unknown).  Of the declared input sizes only
        # those past the first two axes are taken (feature sizes, which runs check): the first
        # two hold time and batch, which streams let vary.
        self.shapes = {a.name: [d if i >= 2 and isinstance(d, int) and d > 0 else None
                                for i, d in enumerate(a.shape)]
                       for a in inputs if a.shape is not None}
        self.partial = {}  # value -> shapes.Dims with an entry not known at load
        self.feeds_of = {name: {name} for name in list(overridable) + [a.name for a in inputs]}
        known = init_names | {a.name for a in inputs}
        nodes = []
        for i, p in enumerate(g.node):
            node = self.node(p, p.name or f"{p.op_type}_{i}", known)
            if node is not None:
                nodes.append(node)
            known.update(v for v in p.output if v)
        for o in outputs:
            if o.name not in known:
                raise InvalidModel(f"graph output {o.name!r} is not produced by any node or input")
        self.graph = Graph(self.opset, inputs, outputs, overridable, self.constants, nodes,
                           self.feeds_of, notes, budget)

    def node(self, p, name, known):
        """The Node for p, or None when it is folded away (a Constant, or computed at load)."""
        _check_node(p, name)
        node = _node(p, name)
        reads = list(node.inputs)
        if p.op_type == "Loop":
            body, free = _loop_body(node, known)
            node = node._replace(body=body)
            reads += free
        over = set() if p.op_type == "Shape" else set().union(
            *(self.feeds_of.get(v, ()) for v in reads))
        for value in node.outputs:
            if value and over:
                self.feeds_of[value] = over
        if p.op_type == "Constant":
            self.constants[node.outputs[0]] = constant_value(p, f"Constant node {name!r}")
            return None
        if p.op_type == "GRU":
            return node._replace(spec=gru_spec(p, name, self.constants, self.declared))
        if p.op_type != "Loop" and all(v in self.constants for v in reads if v):
            ins = [self.constants[v] if v else None for v in node.inputs]
            try:
                outs = apply(p.op_type, ins, node.attrs, self.opset)
            except OpError as e:
                raise node_failed(node, ins, e, load=True) from None
            check_outputs(node, outs)
            for value, a in zip(node.outputs, outs):
                if value:
                    self.constants[value] = a
            # values of overridable initializers are folded for load-time use (GRU weights),
            # but their node still runs: a feed may replace them
            return node if over else None
        self.track(node)
        return node

    def track(self, node):
        """Record what load time knows of a node's outputs from shapes: a Shape, or arithmetic on
        shapes, it fully knows becomes a constant."""
        out = node.outputs[0]

        def known(v):
            return self.constants[v] if v in self.constants else self.partial.get(v)

        ins = [known(v) if v else None for v in node.inputs]
        if node.op == "Shape":
            dims = shapes.shape_of(self.shapes[node.inputs[0]], node.attrs) \
                if node.inputs[0] in self.shapes else None
        elif node.op == "ConstantOfShape":
            dims = None
            entries = shapes.entries_of(ins[0])
            if entries is not None:
                self.shapes[out] = entries
        elif node.op == "Expand" and isinstance(ins[0], np.ndarray):
            dims, target = None, shapes.entries_of(ins[1])
            if target is not None:
                have = [1] * (len(target) - ins[0].ndim) + list(ins[0].shape)
                self.shapes[out] = [h if t == 1 else t if h == 1 else None
                                    for t, h in zip(target, have)]
        elif any(isinstance(a, shapes.Dims) for a in ins):
            dims = shapes.track(node.op, node.attrs, ins, self.opset)
        else:
            dims = None
        if dims is not None:
            if dims.known:
                self.constants[out] = dims.array()
            else:
                self.partial[out] = dims


def _node(p, name):
    """The Node of a NodeProto: attributes decoded (a Split's num_outputs filled in)."""
    at = attrs(p)
    if p.op_type == "Split":
        at.setdefault("num_outputs", len(p.output))
    return Node(p.op_type, name, p, at, tuple(p.input), tuple(p.output))


def _check_node(p, name):
    """p's op is one gruinfer runs, with the arity it needs here (onnx_io.check ran before the
    rewrites: every input is defined before it)."""
    if p.domain not in ("", "ai.onnx"):
        raise UnsupportedOp(f"node {name!r}: op {p.domain}.{p.op_type} is not supported "
                            f"(gruinfer runs {', '.join(SUPPORTED_OPS)})")
    if p.op_type not in SUPPORTED_OPS:
        raise UnsupportedOp(f"node {name!r}: op {p.op_type} is not supported "
                            f"(gruinfer runs {', '.join(SUPPORTED_OPS)})")
    if p.op_type == "Identity" and (len(p.input) != 1 or len(p.output) != 1):
        raise InvalidModel(f"Identity node {name!r}: expected one input and one output")
    if p.op_type == "Constant" and len(p.output) != 1:
        raise InvalidModel(f"Constant node {name!r}: expected one output")


def _loop_body(node, known):
    """The checked body of a Loop the rewrites left (it is not a GRU cell: it runs iteration by
    iteration, see interp/loop.py), and the outer values it reads."""
    from onnx import helper

    g, where = node.attrs.get("body"), f"Loop node {node.name!r}"
    if g is None or len(node.inputs) < 2 or len(g.input) != len(node.inputs) or \
            len(g.output) != len(node.outputs) + 1 or \
            len(node.outputs) < len(node.inputs) - 2:
        raise InvalidModel(f"{where}: its body does not match its inputs and outputs")
    consts = {t.name: tensor_to_array(t, f"{where}: body initializer") for t in g.initializer}
    inner = set(consts) | {v.name for v in g.input}
    nodes, free = [], []
    for i, p in enumerate(g.node):
        name = p.name or f"{node.name}/{p.op_type}_{i}"
        if p.domain not in ("", "ai.onnx") or p.op_type not in SUPPORTED_OPS or p.op_type == "GRU":
            raise UnsupportedOp(
                f"node {name!r} in the body of {where}: op {p.op_type} is not supported in a "
                f"Loop body (gruinfer runs {', '.join(o for o in SUPPORTED_OPS if o != 'GRU')})")
        b = _node(p, name)
        reads = list(b.inputs)
        if p.op_type == "Loop":
            body, sub_free = _loop_body(b, known | inner)
            b = b._replace(body=body)
            reads += sub_free
        for v in reads:
            if v and v not in inner:
                if v not in known:
                    raise InvalidModel(f"node {name!r} in the body of {where}: input {v!r} is "
                                       "not defined in the body or before the Loop")
                free.append(v)
        if p.op_type == "Constant":
            consts[p.output[0]] = constant_value(p, f"Constant node {name!r}")
        else:
            nodes.append(b)
        inner.update(o for o in p.output if o)
    for o in g.output:
        if o.name not in inner:
            if o.name not in known:
                raise InvalidModel(f"{where}: body output {o.name!r} is not defined")
            free.append(o.name)
    dtypes = [helper.tensor_dtype_to_np_dtype(o.type.tensor_type.elem_type or 1) for o in g.output]
    sizes = [declared_dims(o) for o in g.output]
    sizes = [s if s is not None and all(isinstance(d, int) and d > 0 for d in s) else None
             for s in sizes]
    return LoopBody(nodes, consts, [v.name for v in g.input], [o.name for o in g.output], dtypes,
                    sizes), free
