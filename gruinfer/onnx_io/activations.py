"""onnx_io/activations.py: the one table of activations: ONNX name, C kind (gru.h), attribute defaults as an op and inside a GRU, and the NumPy function."""
from typing import NamedTuple

import numpy as np


def _sigmoid(x, alpha, beta):
    e = np.exp(-np.abs(x))
    return np.where(x >= 0, 1 / (1 + e), e / (1 + e))


class Activation(NamedTuple):
    """One activation function.

    name: the ONNX op name (GRU attributes spell it in any case).
    kind: its gruinfer_act_kind in src_c/gru.h.
    params: the attributes it takes, in order ("alpha", "beta"): a GRU's activation_alpha and
    activation_beta lists are consumed in that order, by the functions that take them.
    op_defaults / gru_defaults: their values when an op leaves them out, and when a GRU's lists
    run out (onnxruntime's values; they differ by design, ThresholdedRelu's alpha for one).
    fn(x, alpha, beta): NumPy, in the dtype of x.
    is_op: also a standalone ONNX op (ScaledTanh and Affine exist only inside RNNs).
    (A row of a constant table: a NamedTuple.)"""
    name: str
    kind: int
    params: tuple
    op_defaults: tuple
    gru_defaults: tuple
    fn: object
    is_op: bool = True


ACTIVATIONS = {a.name: a for a in (
    Activation("Sigmoid", 0, (), (), (), _sigmoid),
    Activation("Tanh", 1, (), (), (), lambda x, a, b: np.tanh(x)),
    Activation("Relu", 2, (), (), (), lambda x, a, b: np.maximum(x, 0)),
    Activation("HardSigmoid", 3, ("alpha", "beta"), (0.2, 0.5), (0.2, 0.5),
               lambda x, a, b: np.clip(a * x + b, 0, 1)),
    Activation("LeakyRelu", 4, ("alpha",), (0.01,), (0.01,), lambda x, a, b: np.where(x >= 0, x, a * x)),
    Activation("ThresholdedRelu", 5, ("alpha",), (1.0,), (0.0,), lambda x, a, b: np.where(x > a, x, 0)),
    Activation("ScaledTanh", 6, ("alpha", "beta"), (), (0.0, 0.0),
               lambda x, a, b: a * np.tanh(b * x), is_op=False),
    Activation("Affine", 7, ("alpha", "beta"), (), (0.0, 0.0), lambda x, a, b: a * x + b, is_op=False),
    Activation("Elu", 8, ("alpha",), (1.0,), (1.0,),
               lambda x, a, b: np.where(x >= 0, x, a * np.expm1(np.minimum(x, 0)))),
    Activation("Softsign", 9, (), (), (), lambda x, a, b: x / (1 + np.abs(x))),
    Activation("Softplus", 10, (), (), (), lambda x, a, b: np.logaddexp(0, x)),
)}
# GRU attributes name activations in any case ("sigmoid", "Tanh").
BY_LOWER_NAME = {name.lower(): a for name, a in ACTIVATIONS.items()}
# The activations that are ONNX ops of their own.
OP_ACTIVATIONS = {name: a for name, a in ACTIVATIONS.items() if a.is_op}


def op_params(act, at):
    """(alpha, beta) of an activation op from its attributes, defaults filled in (0.0 where unused)."""
    values = [float(at.get(p, d)) for p, d in zip(act.params, act.op_defaults)]
    return tuple(values + [0.0] * (2 - len(values)))


def apply_op(act, x, at):
    """The op on x with its attributes, in the dtype of x."""
    alpha, beta = op_params(act, at)
    with np.errstate(over="ignore", under="ignore"):
        return np.asarray(act.fn(x, alpha, beta), dtype=x.dtype)
