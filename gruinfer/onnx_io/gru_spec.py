"""onnx_io/gru_spec.py: GRU nodes decoded into canonical form: ONNX-layout float32 weights and checked attributes."""
from typing import NamedTuple

import numpy as np

from ..errors import InvalidModel
from .activations import BY_LOWER_NAME
from .proto import attrs

DIRECTIONS = {"forward": 0, "foward": 0, "reverse": 1, "bidirectional": 2}


WEIGHT_INPUTS = {"W": 1, "R": 2, "B": 3}  # a GRU's weights: role -> input index


class GruSpec(NamedTuple):
    """One GRU node in canonical form: ONNX-layout float32 weights plus decoded attributes.

    fed: the roles among "W", "R", "B" whose values are not known at load (graph inputs, or
    values computed from them): their arrays here are None, and the interpreter packs a layer
    from the values of each call (interp/weights.py)."""
    name: str
    input_size: object        # int; None when W is fed and no declared shape gives its size
    hidden_size: int
    direction: int            # 0 forward, 1 reverse, 2 bidirectional
    linear_before_reset: int
    layout: int
    clip: object              # None or a float > 0
    f: list                   # per direction: (kind, alpha, beta)
    g: list
    W: object                 # [D, 3H, I], or None when fed
    R: object                 # [D, 3H, H], or None when fed
    B: object                 # [D, 6H], or None (no bias, or fed)
    fed: tuple = ()

    @property
    def num_directions(self):
        return 2 if self.direction == 2 else 1

    def weight_shape(self, role):
        """The shape input `role` ("W", "R" or "B") must have (None: a size not known)."""
        D, H, I = self.num_directions, self.hidden_size, self.input_size
        return {"W": [D, 3 * H, I], "R": [D, 3 * H, H], "B": [D, 6 * H]}[role]


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


def gru_spec(node, name, constants, declared=None):
    """Decode a GRU node.  Its W, R and B are constants (initializers, Constant outputs, values
    folded at load) or fed at run time (listed in spec.fed); declared: {graph input name:
    NodeArg} gives the declared type and shape of a fed weight."""
    where = f"GRU node {name!r}"
    at = attrs(node)
    ins = list(node.input) + [""] * (6 - len(node.input))
    if len(node.input) > 6 or len(node.output) > 2:
        raise InvalidModel(f"{where}: a GRU takes at most 6 inputs and gives at most 2 outputs")
    for i, role in ((0, "X"), (1, "W"), (2, "R")):
        if not ins[i]:
            raise InvalidModel(f"{where}: required input {role} is missing")
    declared = declared or {}
    fed = tuple(role for role, i in WEIGHT_INPUTS.items() if ins[i] and ins[i] not in constants)

    def const(i, role):
        if not ins[i] or role in fed:
            arg = declared.get(ins[i])
            if arg is not None and arg.type != "tensor(float)":
                raise InvalidModel(f"{where}: input {role} ({ins[i]!r}) is {arg.type}; gruinfer's "
                                   "GRU computes in float32 only")
            return None
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
    hs = at.get("hidden_size")
    if W is None:
        H, I = _fed_sizes(where, hs, R, _dims(declared.get(ins[1])), _dims(declared.get(ins[2])))
    elif W.ndim != 3 or W.shape[0] != D or W.shape[1] % 3 or W.shape[1] == 0 or W.shape[2] == 0:
        raise InvalidModel(
            f"{where}: input W must have shape [num_directions={D}, 3*hidden_size, input_size], "
            f"got {_shape(W)}")
    else:
        H, I = W.shape[1] // 3, W.shape[2]
    if hs is not None and hs != H:
        raise InvalidModel(
            f"{where}: hidden_size={hs} does not match W of shape {_shape(W)} (3*hidden_size={W.shape[1]})")
    if R is not None and R.shape != (D, 3 * H, H):
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
    spec = GruSpec(name, I, H, direction, lbr, layout, clip, f, g, W, R, B, fed)
    for role, i in WEIGHT_INPUTS.items():
        dims = _dims(declared.get(ins[i])) if role in fed else None
        want = spec.weight_shape(role)
        if dims is not None and (len(dims) != len(want) or any(
                d is not None and w is not None and d != w for d, w in zip(dims, want))):
            raise InvalidModel(f"{where}: input {role} ({ins[i]!r}) is declared of shape "
                               f"{_dims_text(dims)}; the GRU needs {_dims_text(want)}")
    return spec


def _dims(arg):
    """The declared sizes of a graph input (None for a free axis), or None when undeclared."""
    if arg is None or arg.shape is None:
        return None
    return [d if isinstance(d, int) and d > 0 else None for d in arg.shape]


def _dims_text(dims):
    return "[" + ", ".join("?" if d is None else str(d) for d in dims) + "]"


def _fed_sizes(where, hs, R, W_dims, R_dims):
    """(hidden_size, input_size or None) of a GRU whose W is fed: the hidden size from the
    hidden_size attribute, a constant R, or the declared shapes of R and W (their dims or None)."""
    W_dims = W_dims if W_dims is not None and len(W_dims) == 3 else [None] * 3
    R_dims = R_dims if R_dims is not None and len(R_dims) == 3 else [None] * 3
    H = next((h for h in (hs, R.shape[2] if R is not None and R.ndim == 3 else None, R_dims[2],
                          W_dims[1] // 3 if W_dims[1] and W_dims[1] % 3 == 0 else None)
              if h is not None), None)
    if not isinstance(H, int) or H <= 0:
        raise InvalidModel(f"{where}: W is fed at run time and neither a hidden_size attribute nor "
                           "a declared shape of W or R gives the hidden size")
    return H, W_dims[2]
