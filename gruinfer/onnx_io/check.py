"""onnx_io/check.py: structure checks run before the lifts read a graph: every node's input and output counts fit its ONNX schema, and what attributes alone decide (Einsum equations, ScatterND reductions, ConvTranspose auto_pad), in Loop bodies too (validate.py checks the rest of the schema and the order)."""
import functools

from ..errors import InvalidModel
from .limits import text
from .ops_conv import transpose_auto_pad
from .ops_tensor import einsum_terms, scatter_nd_reduction
from .proto import attrs


def check_model(model, opset):
    """Every node fits its schema's arity (onnx_io.validate, run when the model was loaded, has
    checked names, attributes, types and order: every value defined once, before it is read)."""
    check_structure(model.graph, opset)


def check_structure(g, opset, parent=None):
    """Before anything reads the graph (the lifts run onnx's shape inference, which aborts the
    process on some malformed nodes, e.g. a Split with fewer num_outputs than outputs): every
    node's input and output counts fit its ONNX schema, a Split's num_outputs its outputs, in
    Loop bodies too.  gru_spec checks GRU nodes itself."""
    from onnx import AttributeProto, helper

    for i, p in enumerate(g.node):
        name = p.name or (f"{parent}/{p.op_type}_{i}" if parent else f"{p.op_type}_{i}")
        if p.domain in ("", "ai.onnx") and p.op_type != "GRU":
            _check_arity(p, name, opset)
            _check_attributes(p, name, opset)
        for a in p.attribute:
            if p.op_type == "Split" and a.name == "num_outputs" and a.i != len(p.output):
                raise InvalidModel(f"node {name!r} (Split): num_outputs={a.i} but it has "
                                   f"{len(p.output)} outputs")
            if a.type == AttributeProto.GRAPH:
                check_structure(a.g, opset, p.name or f"{p.op_type}_{i}")
            elif a.type == AttributeProto.GRAPHS:
                for sub in helper.get_attribute_value(a):
                    check_structure(sub, opset, p.name or f"{p.op_type}_{i}")


def _check_arity(p, name, opset):
    """The node's input and output counts fit its ONNX schema at this opset."""
    why = arity_error(p, opset)
    if why:
        raise InvalidModel(f"node {name!r} ({p.op_type}): {why}")


def _check_attributes(p, name, opset):
    """What an op's attributes alone decide, checked at load: an Einsum's equation fits its
    inputs, a ScatterND's reduction exists at this opset, a ConvTranspose's auto_pad is known
    and not given with pads."""
    if p.op_type not in ("Einsum", "ScatterND", "ConvTranspose"):
        return
    at = attrs(p)
    try:
        if p.op_type == "Einsum":
            if "equation" not in at:
                raise ValueError("it has no equation")
            einsum_terms(at["equation"], len(p.input))
        elif p.op_type == "ScatterND":
            scatter_nd_reduction(at, opset)
        else:
            transpose_auto_pad(at)
    except ValueError as e:
        what = f" equation {text(at['equation'])!r}:" if p.op_type == "Einsum" and "equation" in at else ""
        raise InvalidModel(f"node {name!r} ({p.op_type}):{what} {e}") from None


def arity_error(p, opset):
    """Why a default-domain node's input or output count does not fit its ONNX schema at this
    opset, or None (also for an op without a schema: the op's own checks remain)."""
    counts = _counts(p.op_type, opset)
    if counts is None:
        return None
    lo_in, hi_in, lo_out, hi_out = counts
    if lo_in <= len(p.input) <= hi_in and lo_out <= len(p.output) <= hi_out:
        return None
    return (f"{len(p.input)} inputs and {len(p.output)} outputs; opset {opset} allows "
            f"{lo_in}..{hi_in} inputs and {lo_out}..{hi_out} outputs")


@functools.lru_cache(maxsize=None)
def _counts(op, opset):
    from onnx import defs

    try:
        s = defs.get_schema(op, opset, "")
    except defs.SchemaError:  # an unknown op, or none this early
        return None
    return s.min_input, s.max_input, s.min_output, s.max_output
