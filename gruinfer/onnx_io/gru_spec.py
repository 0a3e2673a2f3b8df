"""onnx_io/gru_spec.py: GRU nodes decoded into canonical form: ONNX-layout float32 weights and checked attributes."""
from typing import NamedTuple

import numpy as np

from ..errors import InvalidModel
from .activations import BY_LOWER_NAME
from .proto import attrs

DIRECTIONS = {"forward": 0, "foward": 0, "reverse": 1, "bidirectional": 2}


class GruSpec(NamedTuple):
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
        act = BY_LOWER_NAME.get(n.lower())
        if act is None:
            raise InvalidModel(
                f"{where}: unknown activation {n!r}; expected one of "
                + ", ".join(sorted(BY_LOWER_NAME)))
        lists = {"alpha": alphas, "beta": betas}
        values = [lists[p].pop(0) if lists[p] else d for p, d in zip(act.params, act.gru_defaults)]
        if not all(np.isfinite(v) for v in values):
            raise InvalidModel(f"{where}: activation {n!r} has a non-finite alpha or beta")
        values = [float(v) for v in values] + [0.0] * (2 - len(values))
        out.append((act.kind, values[0], values[1]))
    return [out[2 * d] for d in range(D)], [out[2 * d + 1] for d in range(D)]


def _shape(a):
    return "[" + ", ".join(str(d) for d in a.shape) + "]"


def gru_spec(node, name, constants):
    """Decode a GRU node; W, R and B must be constants (initializers or Constant outputs)."""
    where = f"GRU node {name!r}"
    at = attrs(node)
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
