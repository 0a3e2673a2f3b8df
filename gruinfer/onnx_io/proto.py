"""onnx_io/proto.py: reading ONNX protos, each thing once: models from a path, bytes or a ModelProto; tensors; the opset; attributes; Constant nodes; declared shapes."""
import os

import numpy as np

from ..errors import InvalidModel, UnsupportedOp
from .external import external_tensors, is_external, load_external_data
from .validate import validate_model


def load_model(model, external_data_dir=None):
    """An onnx.ModelProto from a path, bytes, or a ModelProto, checked against the ONNX schemas
    (onnx_io/validate.py) before anything else reads it, its external-data tensors read
    (onnx_io/external.py) from the model file's folder, or from external_data_dir: required
    when bytes or a ModelProto keep tensors in external files (there is no model folder then).
    A ModelProto given is never modified (it is copied when its external data is read)."""
    import onnx

    base = None if external_data_dir is None else os.fspath(external_data_dir)
    if isinstance(model, onnx.ModelProto):
        proto, what = model, "the ModelProto"
    elif isinstance(model, (bytes, bytearray, memoryview)):
        try:
            proto, what = onnx.load_model_from_string(bytes(model)), "the model's bytes"
        except Exception as e:  # the damaged-model boundary: protobuf raises its own DecodeError
            raise InvalidModel(f"bytes are not a valid ONNX model: {e}") from None
    elif isinstance(model, (str, os.PathLike)):
        path = os.fspath(model)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"no ONNX model at {path!r}")
        try:
            proto, what = onnx.load(path, load_external_data=False), None
        except Exception as e:  # the damaged-model boundary (protobuf)
            raise InvalidModel(f"{path!r} is not a loadable ONNX model: {e}") from None
        base = base or os.path.dirname(os.path.abspath(path))
    else:
        raise TypeError(
            f"model must be a path, bytes or onnx.ModelProto, not {type(model).__name__}")
    validate_model(proto)
    tensors = external_tensors(proto.graph)
    if tensors:
        if base is None:
            t = tensors[0]
            raise InvalidModel(
                f"tensor {t.name!r} keeps its data in an external file, and {what} has no "
                "folder to read it from: pass external_data_dir=the folder that holds it")
        if proto is model:
            proto = onnx.ModelProto()
            proto.CopyFrom(model)
            tensors = external_tensors(proto.graph)
        load_external_data(tensors, base)
    return proto


def opset_version(model):
    """The default-domain opset the model imports (1 when it names none)."""
    for imp in model.opset_import:
        if imp.domain in ("", "ai.onnx"):
            return imp.version
    return 1


def tensor_to_array(tensor, where):
    """A TensorProto as a NumPy array, or InvalidModel naming where it was read.  External data
    must have been read by load_model: none is looked for here (not relative to the working
    directory either)."""
    from onnx import numpy_helper

    if is_external(tensor):
        raise InvalidModel(f"{where}: tensor {tensor.name!r} keeps its data in an external file "
                           "that was not read with the model")
    try:
        return numpy_helper.to_array(tensor)
    except Exception as e:  # the damaged-model boundary: a tensor whose bytes do not fit its type
        raise InvalidModel(f"{where}: cannot read tensor {tensor.name!r}: {e}") from None


def attrs(node):
    """Every attribute of a NodeProto by name, decoded (ints, floats, strings as bytes, tensors, graphs)."""
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def attr(node, name, default=None):
    """One attribute of a NodeProto, decoded, or default."""
    from onnx import helper

    for a in node.attribute:
        if a.name == name:
            return helper.get_attribute_value(a)
    return default


def constant_value(node, where):
    """The tensor a Constant node holds (value, value_float(s) or value_int(s))."""
    from onnx import helper

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


def declared_dims(value_info):
    """A ValueInfoProto's declared shape: per axis its size (an int), its name (a str) or None;
    None when no shape is declared."""
    t = value_info.type.tensor_type
    if not value_info.type.HasField("tensor_type") or not t.HasField("shape"):
        return None
    return [d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in t.shape.dim]


def known_sizes(dims):
    """declared_dims with names read as unknown (None): what shape arithmetic can rely on."""
    return None if dims is None else [d if isinstance(d, int) else None for d in dims]
