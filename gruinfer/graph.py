"""graph.py: the loaded ONNX graph: typed inputs and outputs, constants (folded at load), and the nodes left to run, GRU layers built."""
from dataclasses import dataclass

import numpy as np

from . import _core
from .errors import InvalidArgument, InvalidModel, UnsupportedOp
from .onnx_io.gru_spec import gru_spec, opset_version, tensor_to_array
from .onnx_io.ops import OPS

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
    """One node to execute: op, ONNX node, decoded attributes, and for GRU its spec and packed layer."""
    op: str
    name: str
    proto: object
    attrs: dict = None
    spec: object = None
    layer: object = None
    body: object = None       # Loop: its loop_run.Body


class Graph:
    """Everything load time can decide: constants, feeds, and nodes ready to run."""

    def __init__(self, model, kernel=None, threads=1):
        _check_structure(model.graph, opset_version(model))
        self.loop_notes = []  # what lift_loops did with each Loop (Keras GRUs become GRU nodes)
        if any(n.op_type == "Loop" for n in model.graph.node):
            from .rewrite.loops import lift_loops
            model, self.loop_notes = lift_loops(model)
        from .rewrite.cells import lift_cells
        model, self.cell_notes = lift_cells(model)  # GRU cells written as plain ops -> GRU nodes
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
        # Partly known shapes and 1-D int values (None: unknown entry), enough to fold the
        # Shape -> Slice -> Mul arithmetic unoptimised exports use to rebuild weights.
        # Of the declared input sizes only those past the first two axes are taken (feature sizes,
        # which runs check): the first two hold time and batch, which streams let vary.
        self.shapes = {v.name: [d.dim_value if i >= 2 and d.HasField("dim_value") and d.dim_value > 0
                                else None for i, d in enumerate(v.type.tensor_type.shape.dim)]
                       for v in g.input
                       if v.name not in init_names and v.type.tensor_type.HasField("shape")}
        self.partial = {}
        # value -> the feeds (graph inputs, overridable initializers) its data depends on (a Shape
        # depends on none).  Values of overridable initializers alone are folded for load-time use
        # (GRU weights) but their nodes still run.
        self.feeds_of = {name: {name} for name in list(self.overridable) + [a.name for a in self.inputs]}
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
            node = Node(p.op_type, name, p, _attrs(p))
            reads = list(p.input)
            if p.op_type == "Loop":
                node.body, free = self._body(node, known)
                reads += free
            over = set() if p.op_type == "Shape" else set().union(
                *(self.feeds_of.get(v, ()) for v in reads))
            if p.op_type == "Constant":
                if len(p.output) != 1:
                    raise InvalidModel(f"Constant node {name!r}: expected one output")
                self.constants[p.output[0]] = _constant_value(p, name)
                node = None
            elif p.op_type == "GRU":
                node.spec = gru_spec(p, name, self.constants)
                node.layer = build_layer(node.spec, kernel, threads)
            else:
                if p.op_type == "Identity":
                    if len(p.input) != 1 or len(p.output) != 1:
                        raise InvalidModel(f"Identity node {name!r}: expected one input and one output")
                if p.op_type == "Split":
                    node.attrs.setdefault("num_outputs", len(p.output))
                if all(v in self.constants for v in reads if v):
                    for value, a in zip(p.output, self.run_op(node, self.constants, load=True)):
                        if value:
                            self.constants[value] = a
                    if not over:
                        node = None  # folded: nothing left to run
                else:
                    self._infer(node)
            if node is not None:
                self.nodes.append(node)
            for value in p.output:
                if value:
                    known.add(value)
                    if over:
                        self.feeds_of[value] = over
        for o in self.outputs:
            if o.name not in known:
                raise InvalidModel(f"graph output {o.name!r} is not produced by any node or input")

    def _body(self, node, known):
        """The checked body of a Loop left by lift_loops (it is not a GRU cell: it runs iteration
        by iteration, see loop_run.py), and the outer values it reads."""
        from .interp.loop import Body

        g, where = node.attrs.get("body"), f"Loop node {node.name!r}"
        if g is None or len(node.proto.input) < 2 or len(g.input) != len(node.proto.input) or \
                len(g.output) != len(node.proto.output) + 1 or \
                len(node.proto.output) < len(node.proto.input) - 2:
            raise InvalidModel(f"{where}: its body does not match its inputs and outputs")
        note = next((n for n in self.loop_notes if repr(node.proto.name) in n), None)
        if note:
            self.loop_notes[self.loop_notes.index(note)] = note + "; it runs iteration by iteration " \
                "through the NumPy ops (slow, and the model cannot stream)"
        consts = {t.name: tensor_to_array(t, f"{where}: body initializer") for t in g.initializer}
        inner = set(consts) | {v.name for v in g.input}
        nodes, free = [], []
        for i, p in enumerate(g.node):
            name = p.name or f"{node.name}/{p.op_type}_{i}"
            if p.domain not in ("", "ai.onnx") or p.op_type not in SUPPORTED_OPS or p.op_type == "GRU":
                raise UnsupportedOp(
                    f"node {name!r} in the body of {where}: op {p.op_type} is not supported in a "
                    f"Loop body (gruinfer runs {', '.join(o for o in SUPPORTED_OPS if o != 'GRU')})")
            b = Node(p.op_type, name, p, _attrs(p))
            reads = list(p.input)
            if p.op_type == "Loop":
                b.body, sub_free = self._body(b, known | inner)
                reads += sub_free
            for v in reads:
                if v and v not in inner:
                    if v not in known:
                        raise InvalidModel(f"node {name!r} in the body of {where}: input {v!r} is "
                                           "not defined in the body or before the Loop")
                    free.append(v)
            if p.op_type == "Constant":
                consts[p.output[0]] = _constant_value(p, name)
            else:
                if p.op_type == "Split":
                    b.attrs.setdefault("num_outputs", len(p.output))
                nodes.append(b)
            inner.update(o for o in p.output if o)
        for o in g.output:
            if o.name not in inner:
                if o.name not in known:
                    raise InvalidModel(f"{where}: body output {o.name!r} is not defined")
                free.append(o.name)
        from onnx import helper

        dtypes = [helper.tensor_dtype_to_np_dtype(o.type.tensor_type.elem_type or 1) for o in g.output]
        shapes = [_node_arg(o).shape for o in g.output]
        shapes = [s if s is not None and all(isinstance(d, int) and d > 0 for d in s) else None
                  for s in shapes]
        return Body(nodes, consts, [v.name for v in g.input], [o.name for o in g.output], dtypes,
                    shapes), free

    def _infer(self, node):
        """Record what load time knows of a non-constant node's outputs; fold a Shape it fully knows."""
        p, at, op = node.proto, node.attrs, node.op
        ins = list(p.input)

        def part(v):
            if v in self.constants and np.ndim(self.constants[v]) <= 1:
                return [int(e) for e in np.asarray(self.constants[v]).reshape(-1)]
            return self.partial.get(v)

        out = p.output[0]
        if op == "Shape" and ins[0] in self.shapes:
            dims = self.shapes[ins[0]]
            start, end = at.get("start", 0), at.get("end", len(dims))
            known = dims[slice(start, end)]
            if None in known:
                self.partial[out] = known
            else:
                self.constants[out] = np.asarray(known, np.int64)
        elif op == "Concat" and all(part(v) is not None for v in ins):
            self._known(out, [e for v in ins for e in part(v)])
        elif op in ("Reshape", "Squeeze", "Unsqueeze") and part(ins[0]) is not None \
                and len(part(ins[0])) == 1:
            self.partial[out] = part(ins[0])
        elif op == "Gather" and ins[0] in self.partial and ins[1] in self.constants:
            dims = self.partial[ins[0]]
            idx = np.asarray(self.constants[ins[1]])
            if all(-len(dims) <= int(i) < len(dims) for i in idx.reshape(-1)):  # else run_op says why
                self._known(out, [dims[int(i)] for i in idx.reshape(-1)], idx.shape)
        elif op == "ConstantOfShape" and part(ins[0]) is not None:
            self.shapes[out] = part(ins[0])
        elif op == "Expand" and ins[0] in self.constants and part(ins[1]) is not None:
            target, have = part(ins[1]), list(np.shape(self.constants[ins[0]]))
            have = [1] * (len(target) - len(have)) + have
            self.shapes[out] = [h if t == 1 else t if h == 1 else None for t, h in zip(target, have)]

    def _known(self, out, entries, shape=None):
        """A 1-D int value from shapes: a constant once every entry is known (x.shape[-1] ** -0.5
        then folds), else partly known."""
        if None in entries:
            self.partial[out] = entries
        else:
            self.constants[out] = np.asarray(entries, np.int64).reshape(shape if shape is not None else -1)

    def run_op(self, node, values, load=False, reshapes=None):
        """Outputs of a non-GRU node given the values so far; errors name the node.
        reshapes: {Reshape node: (input axes, output axes)} with "T"/"N" for time and batch, from
        lowering: such a Reshape follows the actual time and batch, not the sizes baked in at export."""
        ins = [values[v] if v else None for v in node.proto.input]
        while ins and ins[-1] is None:
            ins.pop()
        if reshapes and node.name in reshapes:
            src, dst = reshapes[node.name]
            size = {a: ins[0].shape[i] for i, a in enumerate(src) if a in ("T", "N")}
            return [ins[0].reshape([size.get(a, a) for a in dst])]
        try:
            if node.op == "Loop":
                from .interp.loop import run_loop
                return run_loop(node, ins, values, lambda b, v: self.run_op(b, v, load, reshapes))
            return OPS[node.op](ins, node.attrs, self.opset)
        except (ValueError, IndexError, TypeError, KeyError, ArithmeticError, AttributeError) as e:
            # AttributeError: an optional input left empty where the op needs it
            e = (f"missing attribute {e}" if isinstance(e, KeyError) else
                 "a required input is missing" if isinstance(e, AttributeError) else e)
            cls, when = (InvalidModel, "at load") if load else (InvalidArgument, "")
            shapes = ", ".join("None" if a is None else str(list(np.shape(a))) for a in ins)
            raise cls(f"node {node.name!r} ({node.op}) failed{' ' + when if when else ''}: "
                      f"{e} (input shapes {shapes})") from None


def _check_structure(g, opset, parent=None):
    """Before anything reads the graph (the lifts run onnx's shape inference, which aborts the
    process on some malformed nodes, e.g. a Split with fewer num_outputs than outputs): every
    node's input and output counts fit its ONNX schema, a Split's num_outputs its outputs, in
    Loop bodies too.  gru_spec checks GRU nodes itself."""
    from onnx import AttributeProto, helper

    for i, p in enumerate(g.node):
        name = p.name or (f"{parent}/{p.op_type}_{i}" if parent else f"{p.op_type}_{i}")
        if p.domain in ("", "ai.onnx") and p.op_type != "GRU":
            _check_arity(p, name, opset)
        for a in p.attribute:
            if p.op_type == "Split" and a.name == "num_outputs" and a.i != len(p.output):
                raise InvalidModel(f"node {name!r} (Split): num_outputs={a.i} but it has "
                                   f"{len(p.output)} outputs")
            if a.type == AttributeProto.GRAPH:
                _check_structure(a.g, opset, p.name or f"{p.op_type}_{i}")
            elif a.type == AttributeProto.GRAPHS:
                for sub in helper.get_attribute_value(a):
                    _check_structure(sub, opset, p.name or f"{p.op_type}_{i}")


def _attrs(node):
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def _check_arity(p, name, opset):
    """The node's input and output counts fit its ONNX schema at this opset."""
    from onnx import defs

    try:
        schema = defs.get_schema(p.op_type, opset, "")
    except Exception:  # no schema this early: the op's own checks remain
        return
    if not (schema.min_input <= len(p.input) <= schema.max_input
            and schema.min_output <= len(p.output) <= schema.max_output):
        raise InvalidModel(
            f"node {name!r} ({p.op_type}): {len(p.input)} inputs and {len(p.output)} outputs; "
            f"opset {opset} allows {schema.min_input}..{schema.max_input} inputs and "
            f"{schema.min_output}..{schema.max_output} outputs")


def build_layer(spec, kernel, threads=1):
    """The packed C layer for a GruSpec; whole-sequence runs of layers with hidden_size >= 512
    share each step among `threads` threads."""
    return _core.Gru(spec.input_size, spec.hidden_size, spec.direction, spec.linear_before_reset,
                     spec.clip, spec.f, spec.g, spec.W, spec.R, spec.B, kernel, spec.name, threads)
