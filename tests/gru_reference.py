"""Float64 NumPy reference of the ONNX GRU operator (onnxruntime semantics) and a builder of one-GRU ONNX test models."""
import numpy as np
from onnx import TensorProto, helper, numpy_helper

# Canonical ONNX spellings of the RNN activation functions.
ACTIVATION_NAMES = ("Sigmoid", "Tanh", "Relu", "HardSigmoid", "LeakyRelu", "ThresholdedRelu",
                    "ScaledTanh", "Affine", "Elu", "Softsign", "Softplus")

# lower-case name -> (takes alpha, takes beta, default alpha, default beta).
# The defaults are onnxruntime's, used when activation_alpha/beta run out.
ACTIVATION_PARAMS = {
    "sigmoid": (False, False, 0.0, 0.0),
    "tanh": (False, False, 0.0, 0.0),
    "relu": (False, False, 0.0, 0.0),
    "hardsigmoid": (True, True, 0.2, 0.5),
    "leakyrelu": (True, False, 0.01, 0.0),
    "thresholdedrelu": (True, False, 0.0, 0.0),
    "scaledtanh": (True, True, 0.0, 0.0),
    "affine": (True, True, 0.0, 0.0),
    "elu": (True, False, 1.0, 0.0),
    "softsign": (False, False, 0.0, 0.0),
    "softplus": (False, False, 0.0, 0.0),
}

ROLES = ("X", "W", "R", "B", "sequence_lens", "initial_h")


def takes_alpha(name):
    return ACTIVATION_PARAMS[name.lower()][0]


def takes_beta(name):
    return ACTIVATION_PARAMS[name.lower()][1]


def apply_activation(name, x, alpha, beta):
    """One ONNX RNN activation function, element-wise, in float64."""
    n = name.lower()
    x = np.asarray(x, dtype=np.float64)
    if n == "sigmoid":
        return np.where(x >= 0, 1.0 / (1.0 + np.exp(-np.abs(x))),
                        np.exp(-np.abs(x)) / (1.0 + np.exp(-np.abs(x))))
    if n == "tanh":
        return np.tanh(x)
    if n == "relu":
        return np.maximum(x, 0.0)
    if n == "hardsigmoid":
        return np.clip(alpha * x + beta, 0.0, 1.0)
    if n == "leakyrelu":
        return np.where(x >= 0, x, alpha * x)
    if n == "thresholdedrelu":
        return np.where(x > alpha, x, 0.0)  # onnxruntime: strictly greater
    if n == "scaledtanh":
        return alpha * np.tanh(beta * x)
    if n == "affine":
        return alpha * x + beta
    if n == "elu":
        return np.where(x >= 0, x, alpha * np.expm1(np.minimum(x, 0.0)))
    if n == "softsign":
        return x / (1.0 + np.abs(x))
    if n == "softplus":
        return np.logaddexp(0.0, x)
    raise ValueError(f"unknown activation {name!r}")


def resolve_activations(names, alphas=None, betas=None):
    """[(name, alpha, beta)] per function: alpha/beta consumed in order by the functions that take them."""
    alphas, betas = list(alphas or []), list(betas or [])
    out = []
    for name in names:
        ta, tb, da, db = ACTIVATION_PARAMS[name.lower()]
        a = float(alphas.pop(0)) if ta and alphas else da
        b = float(betas.pop(0)) if tb and betas else db
        out.append((name, a, b))
    return out


def gru_reference(X, W, R, B=None, sequence_lens=None, initial_h=None, *, direction="forward",
                  linear_before_reset=0, layout=0, clip=None, activations=None,
                  activation_alpha=None, activation_beta=None, hidden_size=None):
    """(Y, Y_h) of the ONNX GRU operator in float64, shaped for `layout`.

    Short rows follow onnxruntime: Y is 0 past a row's length, Y_h is the state after the
    row's last valid step (0 for a zero-length row), reverse runs over the valid prefix."""
    if isinstance(direction, bytes):
        direction = direction.decode()
    X = np.asarray(X, dtype=np.float64)
    W = np.asarray(W, dtype=np.float64)
    R = np.asarray(R, dtype=np.float64)
    if layout:
        X = X.transpose(1, 0, 2)
    T, N, _ = X.shape
    D = 2 if direction == "bidirectional" else 1
    H = W.shape[1] // 3
    if hidden_size is not None:
        assert hidden_size == H, (hidden_size, W.shape)
    B = np.zeros((D, 6 * H)) if B is None else np.asarray(B, dtype=np.float64)
    if initial_h is None:
        h0 = np.zeros((D, N, H))
    else:
        h0 = np.asarray(initial_h, dtype=np.float64)
        if layout:
            h0 = h0.transpose(1, 0, 2)
    lens = np.full(N, T, dtype=np.int64) if sequence_lens is None else np.asarray(sequence_lens)
    if activations is None:
        activations = ["Sigmoid", "Tanh"] * D
    assert len(activations) == 2 * D, activations
    acts = resolve_activations([a.decode() if isinstance(a, bytes) else a for a in activations],
                               activation_alpha, activation_beta)

    def pre(v):
        return v if clip is None else np.clip(v, -clip, clip)

    Y = np.zeros((T, D, N, H))
    Y_h = np.zeros((D, N, H))
    for d in range(D):
        reverse = direction == "reverse" or (direction == "bidirectional" and d == 1)
        fname, fa, fb = acts[2 * d]
        gname, ga, gb = acts[2 * d + 1]
        Wz, Wr, Wh = W[d, :H], W[d, H:2 * H], W[d, 2 * H:]
        Rz, Rr, Rh = R[d, :H], R[d, H:2 * H], R[d, 2 * H:]
        Wbz, Wbr, Wbh, Rbz, Rbr, Rbh = (B[d, k * H:(k + 1) * H] for k in range(6))
        for n in range(N):
            L = int(lens[n])
            h = h0[d, n].copy()
            steps = range(L - 1, -1, -1) if reverse else range(L)
            for t in steps:
                x = X[t, n]
                z = apply_activation(fname, pre(Wz @ x + Rz @ h + Wbz + Rbz), fa, fb)
                r = apply_activation(fname, pre(Wr @ x + Rr @ h + Wbr + Rbr), fa, fb)
                if linear_before_reset:
                    hc = Wh @ x + r * (Rh @ h + Rbh) + Wbh
                else:
                    hc = Wh @ x + Rh @ (r * h) + Rbh + Wbh
                hc = apply_activation(gname, pre(hc), ga, gb)
                h = (1.0 - z) * hc + z * h
                Y[t, d, n] = h
            Y_h[d, n] = h if L > 0 else 0.0
    if layout:
        return Y.transpose(2, 0, 1, 3), Y_h.transpose(1, 0, 2)
    return Y, Y_h


def reference_outputs(inputs, attrs):
    """gru_reference applied to the role -> array and attribute dicts that make_gru_model takes."""
    kw = {k: v for k, v in (attrs or {}).items()
          if v is not None and k not in ("output_sequence",)}
    args = {r: inputs.get(r) for r in ROLES}
    return gru_reference(args["X"], args["W"], args["R"], args["B"], args["sequence_lens"],
                         args["initial_h"], **kw)


def _value_info(name, arr, dynamic=False):
    elem = TensorProto.INT32 if name == "sequence_lens" else TensorProto.FLOAT
    shape = [f"{name}_d{i}" for i in range(arr.ndim)] if dynamic else list(arr.shape)
    return helper.make_tensor_value_info(name, elem, shape)


def _as_onnx_array(role, value):
    return np.asarray(value, dtype=np.int32 if role == "sequence_lens" else np.float32)


def make_gru_model(inputs, attrs=None, *, outputs=("Y", "Y_h"), opset=14,
                   initializers=("W", "R", "B"), dynamic_inputs=False, node_name="gru"):
    """An ONNX ModelProto holding one GRU node.

    inputs: role ("X", "W", "R", "B", "sequence_lens", "initial_h") -> array; a role that is
    absent or None is left out of the node.  Roles listed in `initializers` become
    initializers, the others graph inputs; every value is named after its role.
    attrs: GRU attributes (None values skipped).  outputs: which of "Y", "Y_h" the node
    produces, in the order the graph declares them."""
    present = [r for r in ROLES if inputs.get(r) is not None]
    last = max(ROLES.index(r) for r in present)
    node_inputs = [r if inputs.get(r) is not None else "" for r in ROLES[:last + 1]]
    node_outputs = [o if o in outputs else "" for o in ("Y", "Y_h")]
    while node_outputs and not node_outputs[-1]:
        node_outputs.pop()
    attributes = {k: v for k, v in (attrs or {}).items() if v is not None}
    node = helper.make_node("GRU", node_inputs, node_outputs, name=node_name, **attributes)
    graph_inputs, inits = [], []
    for r in present:
        arr = _as_onnx_array(r, inputs[r])
        if r in initializers:
            inits.append(numpy_helper.from_array(arr, r))
        else:
            graph_inputs.append(_value_info(r, arr, dynamic_inputs))
    graph_outputs = [helper.make_tensor_value_info(o, TensorProto.FLOAT,
                                                   [f"{o}_d{i}" for i in range(4 if o == "Y" else 3)])
                     for o in outputs]
    graph = helper.make_graph([node], "gru_test", graph_inputs, graph_outputs, initializer=inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def feeds_for(inputs, initializers=("W", "R", "B")):
    """The feed dict for a make_gru_model model: every present role that is not an initializer."""
    return {r: _as_onnx_array(r, v) for r, v in inputs.items()
            if v is not None and r not in initializers}
