"""graph.py: the loaded ONNX graph: typed inputs and outputs, constants, and the nodes in run order with their GRU layers built."""
from dataclasses import dataclass

import numpy as np

from . import _core
from .errors import InvalidModel, UnsupportedOp
from .onnx_import import gru_spec, opset_version, tensor_to_array

SUPPORTED_OPS = ("Constant", "GRU", "Identity")

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


def _node_arg(value_info):
    t = value_info.type.tensor_type
    shape = None
    if t.HasField("shape"):
        shape = [d.dim_value if d.HasField("dim_value") else (d.dim_param or None)
                 for d in t.shape.dim]
    return NodeArg(value_info.name, shape, _ELEM_TYPES.get(t.elem_type, f"tensor({t.elem_type})"))


def _constant_value(node, name):
    from onnx import helper

    where = f"Constant node {name!r}"
    if len(node.attribute) != 1:
        raise InvalidModel(f"{where}: expected exactly one value attribute")
    a = node.attribute[0]
    if a.name == "value":
        return tensor_to_array(a.t, where)
    v = helper.get_attribute_value(a)
    if a.name in ("value_float", "value_floats"):
        return np.asarray(v, dtype=np.float32)
    if a.name in ("value_int", "value_ints"):
        return np.asarray(v, dtype=np.int64)
    raise UnsupportedOp(f"{where}: attribute {a.name!r} is not supported")


@dataclass
class Node:
    """One node to execute: op, ONNX node, and for GRU its decoded spec and packed layer."""
    op: str
    name: str
    proto: object
    spec: object = None
    layer: object = None


class Graph:
    """Everything load time can decide: constants, feeds, and nodes ready to run."""

    def __init__(self, model, kernel=None):
        g = model.graph
        self.opset = opset_version(model)
        self.constants = {}
        for t in g.initializer:
            self.constants[t.name] = tensor_to_array(t, "initializer")
        init_names = set(self.constants)
        self.inputs = [_node_arg(v) for v in g.input if v.name not in init_names]
        self.overridable = {v.name: _node_arg(v) for v in g.input if v.name in init_names}
        self.outputs = [_node_arg(v) for v in g.output]
        if not self.outputs:
            raise InvalidModel("the graph declares no outputs")
        known = set(init_names) | {i.name for i in self.inputs}
        self.nodes = []
        self.producer = {}
        self.alias = {}  # Identity output -> the value it passes on (graph input or initializer included)
        for i, p in enumerate(g.node):
            name = p.name or f"{p.op_type}_{i}"
            if p.domain not in ("", "ai.onnx"):
                raise UnsupportedOp(
                    f"node {name!r}: op {p.domain}.{p.op_type} is not supported "
                    f"(gruinfer runs {', '.join(SUPPORTED_OPS)})")
            if p.op_type not in SUPPORTED_OPS:
                raise UnsupportedOp(
                    f"node {name!r}: op {p.op_type} is not supported "
                    f"(gruinfer runs {', '.join(SUPPORTED_OPS)})")
            for value in p.output:
                if value in known:
                    raise InvalidModel(
                        f"node {name!r} ({p.op_type}): output {value!r} is already defined "
                        "(by a graph input, an initializer or an earlier node)")
            for value in p.input:
                if value and value not in known:
                    raise InvalidModel(
                        f"node {name!r} ({p.op_type}): input {value!r} is not a graph input, "
                        "an initializer or the output of an earlier node")
            node = Node(p.op_type, name, p)
            if p.op_type == "Constant":
                if len(p.output) != 1:
                    raise InvalidModel(f"Constant node {name!r}: expected one output")
                self.constants[p.output[0]] = _constant_value(p, name)
            elif p.op_type == "Identity":
                if len(p.input) != 1 or len(p.output) != 1:
                    raise InvalidModel(f"Identity node {name!r}: expected one input and one output")
                if p.input[0] in self.constants:
                    self.constants[p.output[0]] = self.constants[p.input[0]]
                self.alias[p.output[0]] = self.alias.get(p.input[0], p.input[0])
            else:
                node.spec = gru_spec(p, name, self.constants)
                node.layer = build_layer(node.spec, kernel)
            self.nodes.append(node)
            for value in p.output:
                if value:
                    known.add(value)
                    self.producer[value] = node
        for o in self.outputs:
            if o.name not in known:
                raise InvalidModel(f"graph output {o.name!r} is not produced by any node or input")


def build_layer(spec, kernel):
    """The packed C layer for a GruSpec."""
    return _core.Gru(spec.input_size, spec.hidden_size, spec.direction, spec.linear_before_reset,
                     spec.clip, spec.f, spec.g, spec.W, spec.R, spec.B, kernel, spec.name)
