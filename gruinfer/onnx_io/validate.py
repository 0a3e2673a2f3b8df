"""onnx_io/validate.py: a model checked against the ONNX schemas (onnx.defs) before anything reads it: names are text, opsets known, every default-domain node's attributes of the schema's names, types and required set, its required inputs given, types and dims declared sane, subgraphs in order: what onnx's shape inference and the lifts may then assume."""
import functools
import math

from ..errors import InvalidModel

# Element types a tensor may declare (TensorProto.DataType, UNDEFINED and STRING aside).
_ELEM_TYPES = set(range(1, 8)) | set(range(9, 27))
# The most axes a declared value or tensor may have (ONNX sets no bound; no reader needs more).
_MAX_RANK = 64


def validate_model(model):
    """Raise InvalidModel naming the node, value or attribute when the model does not fit the
    ONNX schemas; returns the default-domain opset.  Runs before every other reading of the
    model (the order check, the lifts, onnx's shape inference)."""
    opset = _opset(model)
    _graph(model.graph, opset, outer=frozenset(), where="the graph")
    return opset


def _opset(model):
    from onnx import defs

    latest = defs.onnx_opset_version()
    found = 1
    for i, imp in enumerate(model.opset_import):
        domain = _text(imp.domain, f"opset_import[{i}] domain")
        if domain in ("", "ai.onnx"):
            if not 1 <= imp.version <= latest:
                raise InvalidModel(f"the model imports default-domain opset {imp.version}; "
                                   f"this onnx knows opsets 1..{latest}")
            found = imp.version
    return found


def _text(s, what):
    """A proto string field as str: protobuf hands back bytes that are not UTF-8 as bytes."""
    if isinstance(s, str):
        return s
    raise InvalidModel(f"{what} is not UTF-8 text: {bytes(s)[:40]!r}")


def _graph(g, opset, outer, where):
    """Check one graph (the main graph or a subgraph that can read `outer` names)."""
    _text(g.name, f"{where}: its name")
    known = set(outer)
    for i, t in enumerate(g.initializer):
        name = _text(t.name, f"{where}: initializer {i}'s name")
        _tensor(t, f"{where}: initializer {name!r}")
        known.add(name)
    for kind, vis in (("input", g.input), ("output", g.output), ("value_info", g.value_info)):
        for i, v in enumerate(vis):
            _value_info(v, f"{where}: {kind} {i}", top=kind != "value_info")
            if kind == "input":
                known.add(v.name)
    for i, node in enumerate(g.node):
        label = _node_label(node, i, where)
        _node(node, label, opset, known)
        known.update(o for o in node.output if o)


def _node_label(node, i, where):
    op = _text(node.op_type, f"{where}: node {i}'s op_type")
    name = _text(node.name, f"{where}: node {i} ({op})'s name")
    _text(node.domain, f"{where}: node {name or i!r} ({op})'s domain")
    label = f"node {name!r} ({op})" if name else f"node {i} ({op})"
    return label if where == "the graph" else f"{label} in {where}"


def _node(node, label, opset, known):
    for k, value in enumerate(node.input):
        value = _text(value, f"{label}: input {k}'s name")
        if value and value not in known:
            raise InvalidModel(f"{label}: input {value!r} is not a graph input, an initializer or "
                               "the output of an earlier node (the graph must be in order, "
                               "without cycles)")
    for k, value in enumerate(node.output):
        value = _text(value, f"{label}: output {k}'s name")
        if value and value in known:
            raise InvalidModel(f"{label}: output {value!r} is already defined (by a graph input, "
                               "an initializer or an earlier node)")
    seen = set()
    for a in node.attribute:
        name = _text(a.name, f"{label}: an attribute's name")
        if name in seen:
            raise InvalidModel(f"{label}: attribute {name!r} is given twice")
        seen.add(name)
        _attribute_values(a, f"{label}: attribute {name!r}", opset, known | set(node.input),
                          finite=node.op_type != "GRU")  # gru_spec says which activation
    schema = _schema(node.op_type, opset) if node.domain in ("", "ai.onnx") else None
    if schema is None:
        return
    attrs = schema_attributes(node.op_type, opset)
    for a in node.attribute:
        if a.name not in attrs:
            raise InvalidModel(f"{label}: attribute {a.name!r} is not one of the op's at opset "
                               f"{opset} ({', '.join(sorted(attrs)) or 'it has none'})")
        want, _ = attrs[a.name]
        if a.type != want:
            raise InvalidModel(f"{label}: attribute {a.name!r} is of type {_type_name(a.type)}; "
                               f"the op takes {_type_name(want)}")
    for name, (_, required) in attrs.items():
        if required and name not in seen:
            raise InvalidModel(f"{label}: required attribute {name!r} is missing")
    _arity(node, label, schema)
    _inputs(node, label, schema)
    _signature(node, label, opset)


def _arity(node, label, schema):
    """The node has as many inputs and outputs as its schema allows."""
    for what, n, lo, hi in (("inputs", len(node.input), schema.min_input, schema.max_input),
                            ("outputs", len(node.output), schema.min_output, schema.max_output)):
        if not lo <= n <= hi:
            bound = f"{lo}" if lo == hi else f"at most {hi}" if n > hi else f"at least {lo}"
            formal = list(schema.inputs if what == "inputs" else schema.outputs)
            missing = f"{what[:-1]} {formal[n].name} ({what[:-1]} {n}) is missing: " \
                if n < lo and n < len(formal) else ""
            raise InvalidModel(f"{label}: {missing}it has {n} {what}; the op has {bound} {what}")


# Control-flow ops: (attribute, inputs its body takes, outputs it gives) as functions of the
# node's input and output counts (Loop: M, cond, N carried -> body (i, cond, N) -> (cond, N, K
# scanned); Scan from opset 9: body inputs and outputs match the node's; If: no inputs).
_BODIES = {
    "Loop": (("body",), lambda ni, no, opset: (ni, no + 1)),
    "Scan": (("body",), lambda ni, no, opset: (ni - (opset < 9), no)),
    "If": (("then_branch", "else_branch"), lambda ni, no, opset: (0, no)),
}


def _signature(node, label, opset):
    """A Loop, Scan or If body takes and gives the values the node passes it (onnx's shape
    inference indexes them without checking)."""
    if node.op_type not in _BODIES:
        return
    names, counts = _BODIES[node.op_type]
    n_in, n_out = counts(len(node.input), len(node.output), opset)
    for a in node.attribute:
        if a.name in names:
            g = a.g
            if len(g.input) != n_in or len(g.output) != n_out:
                raise InvalidModel(f"{label}: its {a.name} takes {len(g.input)} inputs and gives "
                                   f"{len(g.output)} outputs; the node's inputs and outputs make "
                                   f"it {n_in} and {n_out}")


def shape_inference_safe(model, opset):
    """Whether every node, in every subgraph, is a default-domain op with a schema at the
    model's opset: only then is onnx's shape inference shown a (validated) model, since its
    C++ trusts what a schema it does not apply would have checked."""
    def fine(g):
        for node in g.node:
            if node.domain not in ("", "ai.onnx") or _schema(node.op_type, opset) is None:
                return False
            if not all(fine(a.g) for a in node.attribute if a.HasField("g")) or \
                    not all(fine(b) for a in node.attribute for b in a.graphs):
                return False
        return True
    return fine(model.graph)


def _inputs(node, label, schema):
    """Inputs the schema requires are named (an empty name is an omitted optional input)."""
    from onnx.defs import OpSchema

    formal = list(schema.inputs)
    for k, value in enumerate(node.input):
        if value:
            continue
        p = formal[min(k, len(formal) - 1)] if formal else None
        if p is None or p.option != OpSchema.FormalParameterOption.Optional:
            raise InvalidModel(f"{label}: input {p.name if p else k} (input {k}) is missing: the op "
                               "requires it, but its name is empty")


@functools.lru_cache(maxsize=None)
def _schema(op, opset):
    from onnx import defs

    try:
        return defs.get_schema(op, opset, "")
    except defs.SchemaError:  # an op with no schema at this opset: graph.py refuses it by name
        return None


@functools.lru_cache(maxsize=None)
def schema_attributes(op, opset):
    """{attribute name: (AttributeProto type as an int, required)} of a default-domain op."""
    s = _schema(op, opset)
    return {} if s is None else {a.name: (int(a.type), bool(a.required)) for a in s.attributes.values()}


def _type_name(t):
    from onnx import AttributeProto

    return AttributeProto.AttributeType.Name(t) if t in AttributeProto.AttributeType.values() \
        else f"<unknown type {t}>"


def _attribute_values(a, where, opset, known, finite=True):
    """The attribute's value, of whatever type it declares, is well formed: strings are text,
    floats are not nan (a GRU's are checked by gru_spec), tensors and graphs checked in turn."""
    from onnx import AttributeProto as A

    if a.type not in A.AttributeType.values() or a.type == A.UNDEFINED:
        raise InvalidModel(f"{where} declares no known type ({a.type})")
    if a.type == A.STRING:
        _attr_text(a.s, where)
    elif a.type == A.STRINGS:
        for s in a.strings:
            _attr_text(s, where)
    elif a.type in (A.FLOAT, A.FLOATS) and finite:
        for f in ([a.f] if a.type == A.FLOAT else a.floats):
            if math.isnan(f):
                raise InvalidModel(f"{where} is nan")
    elif a.type == A.INTS and len(a.ints) > 1 << 16:
        raise InvalidModel(f"{where} holds {len(a.ints)} ints")
    elif a.type == A.TENSOR:
        _tensor(a.t, where)
    elif a.type == A.TENSORS:
        for t in a.tensors:
            _tensor(t, where)
    elif a.type == A.GRAPH:
        _graph(a.g, opset, frozenset(known), f"the subgraph of {where}")
    elif a.type == A.GRAPHS:
        for k, g in enumerate(a.graphs):
            _graph(g, opset, frozenset(known), f"subgraph {k} of {where}")
    elif a.type in (A.SPARSE_TENSOR, A.SPARSE_TENSORS, A.TYPE_PROTO, A.TYPE_PROTOS):
        raise InvalidModel(f"{where} is of type {_type_name(a.type)}, which gruinfer does not read")


def _attr_text(b, where):
    try:
        b.decode("utf-8")
    except UnicodeDecodeError:
        raise InvalidModel(f"{where} is not UTF-8 text: {b[:40]!r}") from None


def _tensor(t, where):
    """A TensorProto's declared type and dims (its data is read, and checked, by tensor_to_array)."""
    _text(t.name, f"{where}: its name")
    if t.data_type not in _ELEM_TYPES:
        raise InvalidModel(f"{where}: tensor {t.name!r} has no element type gruinfer reads "
                           f"(data_type {t.data_type})")
    if len(t.dims) > _MAX_RANK or any(d < 0 for d in t.dims):
        raise InvalidModel(f"{where}: tensor {t.name!r} has dims {list(t.dims)[:8]}: at most "
                           f"{_MAX_RANK} sizes >= 0")
    n = 1
    for d in t.dims:
        n *= d
    if n >= 1 << 62:
        raise InvalidModel(f"{where}: tensor {t.name!r} has dims {list(t.dims)}: too many elements")
    for e in t.external_data:
        _text(e.key, f"{where}: tensor {t.name!r}'s external-data key")
        _text(e.value, f"{where}: tensor {t.name!r}'s external-data {e.key}")


def _value_info(v, where, top):
    """A declared value: a text name, and a tensor type with a known element type and dims >= 0
    (graph inputs and outputs must be tensors: gruinfer reads and gives nothing else)."""
    name = _text(v.name, f"{where}'s name")
    what = f"{where} ({name!r})"
    kind = v.type.WhichOneof("value")
    if kind is None:
        return
    if kind != "tensor_type":
        if top:
            raise InvalidModel(f"{what} is a {kind}: gruinfer takes and gives tensors only")
        return
    t = v.type.tensor_type
    if t.elem_type and t.elem_type not in _ELEM_TYPES:
        raise InvalidModel(f"{what} declares element type {t.elem_type}, which is not one ONNX has")
    if t.HasField("shape"):
        if len(t.shape.dim) > _MAX_RANK:
            raise InvalidModel(f"{what} declares {len(t.shape.dim)} axes (at most {_MAX_RANK})")
        for k, d in enumerate(t.shape.dim):
            if d.HasField("dim_value") and d.dim_value < 0:
                raise InvalidModel(f"{what} declares size {d.dim_value} for axis {k}: sizes are >= 0")
            _text(d.dim_param, f"{what}: the name of axis {k}")
