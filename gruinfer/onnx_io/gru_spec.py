"""onnx_io/gru_spec.py: loading ONNX models and decoding GRU nodes into canonical weights and attributes."""
from dataclasses import dataclass
import os

import numpy as np

from ..errors import InvalidModel

# ONNX activation names (lower case) -> (C kind, uses alpha, uses beta, default alpha, default beta).
# Defaults are onnxruntime's: its values apply when activation_alpha/beta run out.
ACTIVATIONS = {
    "sigmoid": (0, False, False, 0.0, 0.0),
    "tanh": (1, False, False, 0.0, 0.0),
    "relu": (2, False, False, 0.0, 0.0),
    "hardsigmoid": (3, True, True, 0.2, 0.5),
    "leakyrelu": (4, True, False, 0.01, 0.0),
    "thresholdedrelu": (5, True, False, 0.0, 0.0),
    "scaledtanh": (6, True, True, 0.0, 0.0),
    "affine": (7, True, True, 0.0, 0.0),
    "elu": (8, True, False, 1.0, 0.0),
    "softsign": (9, False, False, 0.0, 0.0),
    "softplus": (10, False, False, 0.0, 0.0),
}
DIRECTIONS = {"forward": 0, "foward": 0, "reverse": 1, "bidirectional": 2}


def load_model(model):
    """An onnx.ModelProto from a path (external data followed), bytes, or a ModelProto."""
    import onnx

    if isinstance(model, onnx.ModelProto):
        return model
    if isinstance(model, (bytes, bytearray, memoryview)):
        try:
            return onnx.load_model_from_string(bytes(model))
        except Exception as e:  # protobuf raises its own DecodeError
            raise InvalidModel(f"bytes are not a valid ONNX model: {e}") from None
    if isinstance(model, (str, os.PathLike)):
        path = os.fspath(model)
        if not os.path.isfile(path):
            raise FileNotFoundError(f"no ONNX model at {path!r}")
        try:
            return onnx.load(path)
        except Exception as e:
            raise InvalidModel(f"{path!r} is not a loadable ONNX model: {e}") from None
    raise TypeError(
        f"model must be a path, bytes or onnx.ModelProto, not {type(model).__name__}")


def opset_version(model):
    for imp in model.opset_import:
        if imp.domain in ("", "ai.onnx"):
            return imp.version
    return 1


def tensor_to_array(tensor, where):
    from onnx import numpy_helper

    try:
        return numpy_helper.to_array(tensor)
    except Exception as e:
        raise InvalidModel(f"{where}: cannot read tensor {tensor.name!r}: {e}") from None


@dataclass
class GruSpec:
    """One GRU node in canonical form: ONNX-layout float32 weights plus decoded attributes."""
    name: str
    input_size: int
    hidden_size: int
    direction: int            # 0 forward, 1 reverse, 2 bidirectional
    linear_before_reset: int
    layout: int
    clip: object              # None or a float > 0
    f: list                   # per direction: (kind, alpha, beta)
    g: list
    W: np.ndarray             # [D, 3H, I]
    R: np.ndarray             # [D, 3H, H]
    B: object                 # [D, 6H] or None

    @property
    def num_directions(self):
        return 2 if self.direction == 2 else 1


def _attrs(node):
    from onnx import helper

    return {a.name: helper.get_attribute_value(a) for a in node.attribute}


def decode_activations(where, names, alphas, betas, D):
    """[(kind, alpha, beta)] for f and g of each direction, consuming alpha/beta as onnxruntime does."""
    if names is None:
        names = ["Sigmoid", "Tanh"] * D
    names = [n.decode() if isinstance(n, bytes) else str(n) for n in names]
    if len(names) != 2 * D:
        raise InvalidModel(
            f"{where}: activations lists {len(names)} functions, expected {2 * D} "
            f"(f and g for each of {D} direction(s))")
    alphas, betas = list(alphas or []), list(betas or [])
    out = []
    for n in names:
        entry = ACTIVATIONS.get(n.lower())
        if entry is None:
            raise InvalidModel(
                f"{where}: unknown activation {n!r}; expected one of "
                + ", ".join(sorted(ACTIVATIONS)))
        kind, uses_a, uses_b, da, db = entry
        a = alphas.pop(0) if uses_a and alphas else da
        b = betas.pop(0) if uses_b and betas else db
        if not (np.isfinite(a) and np.isfinite(b)):
            raise InvalidModel(f"{where}: activation {n!r} has a non-finite alpha or beta")
        out.append((kind, float(a) if uses_a else 0.0, float(b) if uses_b else 0.0))
    return [out[2 * d] for d in range(D)], [out[2 * d + 1] for d in range(D)]


def _shape(a):
    return "[" + ", ".join(str(d) for d in a.shape) + "]"


def gru_spec(node, name, constants):
    """Decode a GRU node; W, R and B must be constants (initializers or Constant outputs)."""
    where = f"GRU node {name!r}"
    at = _attrs(node)
    ins = list(node.input) + [""] * (6 - len(node.input))
    if len(node.input) > 6 or len(node.output) > 2:
        raise InvalidModel(f"{where}: a GRU takes at most 6 inputs and gives at most 2 outputs")
    for i, role in ((0, "X"), (1, "W"), (2, "R")):
        if not ins[i]:
            raise InvalidModel(f"{where}: required input {role} is missing")

    def const(i, role):
        if not ins[i]:
            return None
        if ins[i] not in constants:
            raise InvalidModel(
                f"{where}: input {role} ({ins[i]!r}) must be an initializer or a Constant; "
                "weights fed at run time are not supported")
        a = np.asarray(constants[ins[i]])
        if a.dtype != np.float32:
            raise InvalidModel(f"{where}: input {role} is {a.dtype}; gruinfer's GRU computes in "
                               "float32 only (export the model in float32)")
        return np.ascontiguousarray(a)

    W, R, B = const(1, "W"), const(2, "R"), const(3, "B")
    direction_name = at.get("direction", b"forward")
    direction_name = direction_name.decode() if isinstance(direction_name, bytes) else direction_name
    if direction_name not in DIRECTIONS:
        raise InvalidModel(
            f"{where}: direction {direction_name!r} must be forward, reverse or bidirectional")
    direction = DIRECTIONS[direction_name]
    D = 2 if direction == 2 else 1
    if W.ndim != 3 or W.shape[0] != D or W.shape[1] % 3 or W.shape[1] == 0 or W.shape[2] == 0:
        raise InvalidModel(
            f"{where}: input W must have shape [num_directions={D}, 3*hidden_size, input_size], "
            f"got {_shape(W)}")
    H, I = W.shape[1] // 3, W.shape[2]
    hs = at.get("hidden_size")
    if hs is not None and hs != H:
        raise InvalidModel(
            f"{where}: hidden_size={hs} does not match W of shape {_shape(W)} (3*hidden_size={W.shape[1]})")
    if R.shape != (D, 3 * H, H):
        raise InvalidModel(f"{where}: input R must have shape [{D}, {3 * H}, {H}], got {_shape(R)}")
    if B is not None and B.shape != (D, 6 * H):
        raise InvalidModel(f"{where}: input B must have shape [{D}, {6 * H}], got {_shape(B)}")
    lbr = at.get("linear_before_reset", 0)
    if lbr not in (0, 1):
        raise InvalidModel(f"{where}: linear_before_reset must be 0 or 1, got {lbr}")
    layout = at.get("layout", 0)
    if layout not in (0, 1):
        raise InvalidModel(f"{where}: layout must be 0 or 1, got {layout}")
    clip = at.get("clip")
    if clip is not None and not (np.isfinite(clip) and clip > 0):
        raise InvalidModel(f"{where}: clip must be a positive number, got {clip}")
    f, g = decode_activations(where, at.get("activations"), at.get("activation_alpha"),
                              at.get("activation_beta"), D)
    for arr, role in ((W, "W"), (R, "R"), (B, "B")):
        if arr is not None and not np.isfinite(arr).all():
            raise InvalidModel(f"{where}: input {role} holds NaN or Inf")
    return GruSpec(name, I, H, direction, lbr, layout, clip, f, g, W, R, B)
