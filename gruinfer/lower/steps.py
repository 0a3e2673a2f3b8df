"""lower/steps.py: the typed plan steps (one record per C step kind, copied 1:1 into a gruinfer_step) and the records a lowering is made of.

The step records are NamedTuples: immutable and named like frozen dataclasses, and about a tenth
of the cost to define (a frozen dataclass takes ~0.5 ms; this room loads on a session's first run)."""
from typing import NamedTuple

import numpy as np

from .. import _core
from ..errors import InvalidModel

# gruinfer_binary_op of src_c/gru.h by name ("rsub" is b - a, "rdiv" b / a).
BINARY_OPS = _core.BINARY_OPS


class CStep(NamedTuple):
    """A step as _core.Plan copies it into a gruinfer_step (see src_c/gru.h for what each kind
    reads): kind (its C name), the input buffers (0: the plan input, k: step k-1's output;
    input2 -1: none), the GRU layer, the kind's ints, floats and tables (float32 arrays), and
    rule: what sizes the tables need, for the error when C refuses them."""
    kind: str
    input: int
    input2: int = -1
    layer: object = None
    ints: tuple = ()
    floats: tuple = ()
    tables: tuple = ()
    rule: str = ""


def _table(a, what):
    if a is not None and not (isinstance(a, np.ndarray) and a.dtype == np.float32
                              and a.flags.c_contiguous):
        raise TypeError(f"{what} must be a C-contiguous float32 array")
    return a


class GruStep(NamedTuple):
    """A forward GRU layer (a _core.Gru) over the frames of buffer `input`: out [H], stateful."""
    input: int
    layer: object
    kind = "gru"

    def c_step(self):
        return CStep(self.kind, self.input, layer=self.layer,
                     rule="a forward GRU whose input size is the input width")


class DenseStep(NamedTuple):
    """out = in . weight^T + bias: weight [out, in], bias [out] or None."""
    input: int
    weight: np.ndarray
    bias: object = None
    kind = "dense"

    def c_step(self):
        w, b = _table(self.weight, "dense weights"), _table(self.bias, "a dense bias")
        return CStep(self.kind, self.input, ints=(w.shape[0],), tables=(w, b),
                     rule="W needs [out, input width] values, the bias [out]")


class ActStep(NamedTuple):
    """out = act(in) element-wise: kind a gruinfer_act_kind (onnx_io.activations), alpha, beta."""
    input: int
    act: int
    alpha: float = 0.0
    beta: float = 0.0
    kind = "act"

    def c_step(self):
        return CStep(self.kind, self.input, ints=(self.act,), floats=(self.alpha, self.beta))


class SoftmaxStep(NamedTuple):
    """Softmax (LogSoftmax when log) over the feature row, max subtracted."""
    input: int
    log: bool = False

    @property
    def kind(self):
        return "logsoftmax" if self.log else "softmax"

    def c_step(self):
        return CStep(self.kind, self.input)


class LayerNormStep(NamedTuple):
    """LayerNormalization over the feature row: scale [w], bias [w] or None, eps."""
    input: int
    scale: np.ndarray
    bias: object
    eps: float
    kind = "layernorm"

    def c_step(self):
        if self.scale is None:
            raise TypeError("layernorm scale must be a float32 array")
        return CStep(self.kind, self.input, floats=(self.eps,),
                     tables=(_table(self.scale, "layernorm scale"), _table(self.bias, "layernorm bias")),
                     rule="scale and bias need the input width's values")


class BinaryStep(NamedTuple):
    """out = in op other element-wise: op a key of BINARY_OPS; other a buffer (as input) of the
    same width, or a constant [w]."""
    input: int
    op: str
    other: object
    kind = "binary"

    def c_step(self):
        if self.op not in BINARY_OPS:
            raise ValueError(f"unknown binary op {self.op!r}")
        if isinstance(self.other, (int, np.integer)):
            if self.other < 0:
                raise InvalidModel(f"plan step (binary): second operand {self.other} is not a buffer")
            return CStep(self.kind, self.input, int(self.other), ints=(BINARY_OPS[self.op],),
                         rule="the second operand is an earlier buffer of the input width")
        if self.other is None:
            raise TypeError("binary needs a second buffer index or a constant")
        return CStep(self.kind, self.input, ints=(BINARY_OPS[self.op],),
                     tables=(_table(self.other, "binary constant"),),
                     rule="the constant needs the input width's values")


class ConcatStep(NamedTuple):
    """out = [in | other] along the row: other an earlier buffer of any width."""
    input: int
    other: int
    kind = "concat"

    def c_step(self):
        return CStep(self.kind, self.input, int(self.other),
                     rule="the second operand is an earlier buffer")


class ClipStep(NamedTuple):
    """out = min(max(in, lo), hi); lo, hi may be -/+inf."""
    input: int
    lo: float
    hi: float
    kind = "clip"

    def c_step(self):
        return CStep(self.kind, self.input, floats=(self.lo, self.hi))


class EmbedStep(NamedTuple):
    """Rows of table [V, D] looked up by the token ids of the plan input (buffer 0)."""
    table: np.ndarray
    input: int = 0
    kind = "embed"

    def c_step(self):
        t = self.table
        if not (isinstance(t, np.ndarray) and t.ndim == 2):
            raise TypeError("an embedding table must be a C-contiguous float32 [V, D] array")
        return CStep(self.kind, self.input, ints=t.shape, tables=(_table(t, "an embedding table"),),
                     rule="the table [V, D] is read with the ids of the plan input")


def build_plan(input_width, steps, kernel):
    """The C plan of typed steps (C checks every size)."""
    return _core.Plan(input_width, [s.c_step() for s in steps], kernel)


# ----------------------------------------------------------------------------- the lowering

class Fallback(NamedTuple):
    """A part of the model on a slower path, and why: node (None for the graph as a whole), op."""
    node: object
    op: str
    reason: str


class GruSlot(NamedTuple):
    """A GRU node in the plan: the index of its step, its node name, hidden size and layout."""
    step: int
    name: str
    hidden: int
    layout: int


class StateUse(NamedTuple):
    """A graph input that sets the initial state of GRU number gru (an index into
    Lowering.grus): row `row` of its axis 0 (axis 1 when layout), or the whole input when row is
    None (an [N, H] input the graph unsqueezes)."""
    gru: int
    row: object
    layout: int


class Lowering:
    """What lowering found: fully in C (plan set) or on the declared Python path (not_lowered).
    Filled in by lower.lowering.Lowerer as it reads the graph, read-only afterwards."""
    __slots__ = ("time_input", "in_axes", "outputs", "grus", "steps", "not_lowered", "state_inputs",
                 "lens_inputs", "initial", "reshapes", "in_ids", "batch", "plan", "time_inputs",
                 "carries")

    def __init__(self, time_input, in_axes):
        self.time_input = time_input
        self.in_axes = in_axes          # axes of the time input ("T", "N", sizes)
        self.outputs = {}               # graph output -> values.Seq, State, ... or Constant
        self.grus = []                  # GruSlot per GRU node, in plan order
        self.steps = []                 # typed steps of the C plan, in order
        self.not_lowered = []           # Fallback for every node the C plan lacks
        self.state_inputs = {}          # graph input -> [StateUse]
        self.lens_inputs = set()        # graph inputs that are a GRU's sequence_lens
        self.initial = {}               # GRU index -> constant initial_h [1 or N, H]
        self.reshapes = {}              # Reshape node -> (input axes, output axes)
        self.in_ids = False             # the time input holds token ids (fed to C as float32)
        self.batch = None               # the only batch size the plan follows (a Reshape read it)
        self.plan = None                # the _core.Plan, when every step is in C
        self.time_inputs = {time_input: in_axes}  # every input fed frames -> its axes
        self.carries = {}               # node -> graph.Carry: past frames a stream carries

    @property
    def lowered(self):
        return not self.not_lowered

    def frames(self, x):
        """Frames in a chunk x of the time input: its time axis, or 1 when the input is one frame
        (a single-step cell model: the graph adds the time axis itself)."""
        return x.shape[self.in_axes.index("T")] if "T" in self.in_axes else 1
