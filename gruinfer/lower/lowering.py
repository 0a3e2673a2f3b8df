"""lower/lowering.py: graph -> stream plan: exporter plumbing recognised by meaning, GRUs and frame-wise ops mapped to C steps, causality checked."""
from dataclasses import dataclass, field, replace

import numpy as np

from .. import _core
from ..errors import NotStreamable

# Element-wise ops with a C "act" step: op -> (kind, default alpha, default beta) as in onnx_import.ACTIVATIONS.
ACT_STEPS = {"Sigmoid": (0, 0.0, 0.0), "Tanh": (1, 0.0, 0.0), "Relu": (2, 0.0, 0.0),
             "HardSigmoid": (3, 0.2, 0.5), "LeakyRelu": (4, 0.01, 0.0), "ThresholdedRelu": (5, 1.0, 0.0),
             "Elu": (8, 1.0, 0.0), "Softsign": (9, 0.0, 0.0), "Softplus": (10, 0.0, 0.0)}
# Element-wise ops without a C step: frame-wise, so they stream on the Python path.  Inputs other
# than time-path values must be constants that do not vary along time or batch.
ELEMENTWISE_PY = ("Sqrt", "Neg", "Exp", "Log", "Abs", "Sign", "Floor", "Ceil", "Round", "Reciprocal",
                  "Erf", "Gelu", "Selu", "HardSwish", "Mish", "Celu", "Not", "Pow", "PRelu", "Min",
                  "Max", "Sum", "Mean", "Equal", "Less", "LessOrEqual", "Greater", "GreaterOrEqual",
                  "And", "Or", "Xor", "Where", "Add", "Sub", "Mul", "Div")
# A size cast to a float type becomes a constant.
FLOAT_TYPES = (1, 10, 11, 16)
# Reduce ops -> the first opset that takes their axes as an input.
REDUCE_OPS = {"ReduceMean": 18, "ReduceSum": 13, "ReduceMax": 18, "ReduceMin": 18, "ReduceProd": 18,
              "ReduceSumSquare": 18, "ReduceL2": 18}
PASS_OPS = ("Identity", "Dropout")
# A Reshape that merges time and batch into one row axis ([N, T, F] -> [-1, F]) gives that axis
# "NT" (batch outer) or "TN" (time outer): each frame is still N rows of features, so row-wise
# steps read it as they read [N, F] frames.  TN: every axis symbol holding time or batch.
MERGED = ("NT", "TN")
TN = ("T", "N") + MERGED


@dataclass(frozen=True)
class Seq:
    """A tensor on the time path.  axes: per tensor axis "T", "N", "NT"/"TN" (the two merged, see
    MERGED) or a fixed size; buf: the plan
    buffer holding it frame by frame (0 the plan input, k >= 1 step k-1's output), None when only
    the Python path computes it.
    last: a value computed frame by frame from a GRU's final state (Y_h): its axes have no "T"; the
    graph value of a chunk is its frame after the chunk's last frame.
    ids: token ids (the plan input of an embedding model, fed as float32 integers)."""
    axes: tuple
    buf: object = None
    last: bool = False
    ids: bool = False


@dataclass(frozen=True)
class State:
    """Final states of GRUs ks (indices into Lowering.grus), stacked on axis "L" when several;
    other axes "N", the hidden size or 1."""
    ks: tuple
    axes: tuple


@dataclass(frozen=True)
class Zeros:
    """An all-zero tensor built at run time from shapes (the zero initial state pattern)."""


@dataclass(frozen=True, eq=False)
class Tiled:
    """A constant broadcast along the batch at run time (a learned initial state,
    h0.expand(-1, N, -1)): value has size 1 on axis n, which the batch fills."""
    value: np.ndarray
    n: int


@dataclass(frozen=True)
class Dims:
    """A 1-D int tensor built from shapes: entries are ints, "T", "N" or None (unknown)."""
    entries: tuple


@dataclass(frozen=True)
class Feed:
    """A graph input other than the frames (an initial state); rows: the slice of axis 0 taken;
    unsq: the axis a size-1 axis was inserted at (Unsqueeze or Reshape of an [N, H] input into
    [1, N, H] or [N, 1, H]), None when the value is the input itself."""
    name: str
    rows: object = None
    unsq: object = None


class _Mismatch(Exception):
    """The guess of which input axis is time was wrong (a GRU reads time on another axis)."""


@dataclass
class Lowering:
    """What lowering found: fully in C (plan set) or on the declared Python path (not_lowered)."""
    time_input: str
    in_axes: tuple                   # axes of the time input ("T", "N", sizes)
    outputs: dict                    # graph output -> abstract value (Seq, State, Feed, ...) or "const"
    grus: list                       # per GRU node: (plan step, node name, hidden size, layout)
    steps: list                      # C plan steps, in order
    not_lowered: list                # (node name, op, why) for every node the C plan lacks
    state_inputs: dict = field(default_factory=dict)   # graph input -> [(GRU index, row, layout)]
    lens_inputs: set = field(default_factory=set)
    initial: dict = field(default_factory=dict)        # GRU index -> constant initial_h [1 or N, H]
    reshapes: dict = field(default_factory=dict)       # Reshape node -> (input axes, output axes)
    in_ids: bool = False             # the time input holds token ids (fed to C as float32)
    batch: object = None             # the only batch size the plan follows (a Reshape read it), or None
    plan: object = None

    @property
    def lowered(self):
        return not self.not_lowered

    def frames(self, x):
        """Frames in a chunk x of the time input: its time axis, or 1 when the input is one frame
        (a single-step cell model: the graph adds the time axis itself)."""
        return x.shape[self.in_axes.index("T")] if "T" in self.in_axes else 1


def lower(graph, kernel):
    """Lower a graph for streaming, or raise NotStreamable naming the node that needs the whole sequence."""
    for node in graph.nodes:
        if node.op == "Loop":
            note = next((n for n in graph.loop_notes if repr(node.proto.name) in n), "")
            raise NotStreamable(f"node {node.name!r} (Loop): a Loop that is not a GRU cell runs over "
                                f"the whole sequence, iteration by iteration; it cannot stream ({note})")
    grus = [n for n in graph.nodes if n.op == "GRU"]
    if not grus:
        raise NotStreamable("the model has no GRU node: nothing to stream")
    for node in grus:
        if node.spec.direction != 0:
            which = "bidirectional" if node.spec.direction == 2 else "reverse"
            raise NotStreamable(f"{which} GRU node {node.name!r} needs the whole sequence")
    inputs = {a.name: a for a in graph.inputs}
    sources = graph.feeds_of.get(grus[0].proto.input[0], set()) & inputs.keys()
    if len(sources) != 1:
        raise NotStreamable(
            f"GRU node {grus[0].name!r}: its input X depends on {sorted(sources) or 'no graph input'}; "
            "a stream takes frames of exactly one graph input")
    time_input = sources.pop()
    shape = inputs[time_input].shape
    if shape is None and grus[0].proto.input[0] == time_input:
        shape = [None, None, grus[0].spec.input_size]  # undeclared, but a GRU's X has rank 3
    if shape is None or len(shape) < 2:
        raise NotStreamable(f"input {time_input!r}: a stream needs a declared rank >= 2 (time and batch)")
    if _one_frame(graph, grus[0], inputs[time_input]):
        F = shape[1] if isinstance(shape[1], int) and shape[1] > 0 else None
        return _Lowerer(graph, kernel, time_input, ("N", F)).run()
    first = None
    for t_axis in (0, 1):
        axes = [d if isinstance(d, int) and d > 0 else None for d in shape]
        static = {"T": axes[t_axis], "N": axes[1 - t_axis]}  # sizes the input declares fixed
        axes[t_axis], axes[1 - t_axis] = "T", "N"
        try:
            return _Lowerer(graph, kernel, time_input, tuple(axes), static).run()
        except _Mismatch as e:
            first = first or e
    raise NotStreamable(str(first))


@dataclass(frozen=True, eq=False)
class _CStep:
    """One plan step as _core.Plan copies it into C's generic step (see _core.Plan)."""
    kind: str
    input: int
    input2: int = -1
    layer: object = None
    ints: tuple = ()
    floats: tuple = ()
    tables: tuple = ()
    rule: str = ""


def _c_step(step):
    """A step tuple of Lowering.steps as _core.Plan takes it (an adapter until the steps are
    typed themselves)."""
    kind, buf, args = step[0], step[1], step[2:]
    if kind == "gru":
        return _CStep(kind, buf, layer=args[0], rule="a forward GRU whose input size is the input width")
    if kind == "dense":
        return _CStep(kind, buf, ints=(args[0].shape[0],), tables=args,
                      rule="W needs [out, input width] values, the bias [out]")
    if kind == "act":
        return _CStep(kind, buf, ints=args[0][:1], floats=args[0][1:])
    if kind == "layernorm":
        return _CStep(kind, buf, floats=args[2:], tables=args[:2],
                      rule="scale and bias need the input width's values")
    if kind == "binary" and isinstance(args[1], np.ndarray):
        return _CStep(kind, buf, ints=(_core.BINARY_OPS[args[0]],), tables=args[1:],
                      rule="the constant needs the input width's values")
    if kind == "binary":
        return _CStep(kind, buf, args[1], ints=(_core.BINARY_OPS[args[0]],),
                      rule="the second operand is an earlier buffer of the input width")
    if kind == "embed":
        return _CStep(kind, buf, ints=args[0].shape, tables=args,
                      rule="the table [V, D] is read with the ids of the plan input")
    return _CStep(kind, buf, floats=args)  # softmax, logsoftmax: nothing; clip: lo, hi


def _one_frame(graph, gru, arg):
    """Whether the time input is one frame [N, F] and the graph makes the time axis itself:
    the first GRU's X is Unsqueeze(., axis 0) of a rank-2 float value (lift_cells writes
    single-step cell models so)."""
    if arg.type != "tensor(float)" or arg.shape is None or len(arg.shape) != 2:
        return False
    node = next((n for n in graph.nodes if gru.proto.input[0] in n.proto.output), None)
    if node is None or node.op != "Unsqueeze":
        return False
    axes = node.attrs.get("axes") if graph.opset < 13 else \
        graph.constants.get(node.proto.input[1]) if len(node.proto.input) > 1 else None
    return axes is not None and [int(a) for a in np.reshape(axes, -1)] == [0]


def _c_layout(axes):
    """True when frames of this tensor are [N, features] rows in one buffer: sizes > 1 after T and N
    (after N alone for a value from final states, which has no T axis)."""
    seen, need = 0, sum(a in TN for a in axes)
    for a in axes:
        if a in TN:
            seen += 1
        elif a != 1 and seen < need:
            return False
    return True


def _width(axes):
    return int(np.prod([a for a in axes if a not in TN]))


def _time_axis(axes):
    """Index of the axis holding time ("T" or a merged row axis), None for a value from final states."""
    return next((i for i, a in enumerate(axes) if a == "T" or a in MERGED), None)


class _Lowerer:
    """One pass over the nodes in order, giving each value an abstract meaning and the plan its steps."""

    def __init__(self, graph, kernel, time_input, in_axes, static=None):
        self.g, self.kernel = graph, kernel
        self.low = Lowering(time_input, in_axes, {}, [], [], [])
        # time and batch sizes the time input declares fixed; a Reshape whose target only
        # matches through them (read as that axis) is followed in C only: see self.pinned
        self.static = {a: d for a, d in (static or {}).items() if d}
        self.pinned = None
        in_type = next(a for a in graph.inputs if a.name == time_input).type
        ids = in_type in ("tensor(int64)", "tensor(int32)")
        rows = _c_layout(in_axes) and None not in in_axes and (in_type == "tensor(float)" or ids)
        self.val = {time_input: Seq(in_axes, 0 if rows else None, ids=ids)}
        self.low.in_ids = ids
        if self.val[time_input].buf is None:
            self._python(None, "input", f"frames of {time_input!r} are not float rows [N, features]")
        for a in graph.inputs:
            if a.name != time_input:
                self.val[a.name] = Feed(a.name)
        for name in graph.overridable:
            self.val[name] = Feed(name)
        self.consumers = {}
        for node in graph.nodes:
            for v in node.proto.input:
                self.consumers[v] = self.consumers.get(v, 0) + 1

    def _python(self, node, op, why):
        self.low.not_lowered.append((node.name if node else None, node.op if node else op, why))

    def get(self, v, node):
        if not v:
            return None
        if v in self.val:
            return self.val[v]
        if v in self.g.constants:
            return self.g.constants[v]
        raise NotStreamable(f"node {node.name!r} ({node.op}): input {v!r} is computed from graph "
                            "inputs in a way streams do not follow")

    def run(self):
        for node in self.g.nodes:
            ins = [self.get(v, node) for v in node.proto.input]
            live = [a for a in ins if isinstance(a, (Seq, State, Zeros, Dims, Feed))]
            if node.op in PASS_OPS and isinstance(ins[0], Feed):
                outs = [ins[0]]
            elif all(isinstance(a, Feed) and a.name in self.g.overridable for a in live) \
                    and all(v in self.g.constants for v in node.proto.output if v):
                continue  # constants and overridable initializers only (weights): folded at load
            else:
                outs = self.node(node, ins)
            for v, a in zip(node.proto.output, outs):
                if v:
                    self.val[v] = a
        low = self.low
        for o in self.g.outputs:
            a = self.val.get(o.name, "const") if o.name not in self.g.constants else "const"
            if isinstance(a, Seq) and a.buf == 0 and a.axes != low.in_axes:
                self._python(None, "output", f"output {o.name!r} reshapes the input")
            elif isinstance(a, (Zeros, Dims, Feed)):
                self._python(None, "output", f"output {o.name!r} is not computed by the plan")
            low.outputs[o.name] = a
        head = low.outputs[self.g.outputs[0].name]
        if not (isinstance(head, Seq) and head.buf != 0 or isinstance(head, State) and len(head.ks) == 1):
            raise NotStreamable(
                f"the first graph output {self.g.outputs[0].name!r} is not computed frame by frame "
                "from a GRU, so step() has nothing to return")
        if self.pinned and not low.lowered:
            raise NotStreamable(self.pinned + "; the plan is not all in C, and the Python path "
                                "cannot follow that size through chunks of other sizes")
        if low.lowered:
            low.plan = _core.Plan(_width(low.in_axes), [_c_step(s) for s in low.steps], self.kernel)
        return low

    # ------------------------------------------------------------------ nodes
    def node(self, node, ins):
        op, at, name = node.op, node.attrs, node.name
        x = ins[0]
        n_out = len(node.proto.output)
        if op == "GRU":
            return self.gru(node, ins)
        if op == "Shape":
            return [self.shape(x, at)]
        if op in ("ConstantOfShape", "Expand") and _zero_fill(node, ins):
            return [Zeros()]
        if op == "Expand" and isinstance(x, np.ndarray) and isinstance(ins[1], Dims):
            return [self.tiled(node, x, ins[1])]
        if isinstance(x, Tiled) and op in ("Slice", "Identity"):
            if op == "Identity":
                return [x]
            args = _slice_args(node, ins, self.g.opset)
            if args is None or x.n in [a % x.value.ndim for a in args[2]]:
                raise NotStreamable(f"node {name!r} (Slice): slices a batch-broadcast constant in a "
                                    "way streams do not follow")
            return [Tiled(self.g.run_op(node, {node.proto.input[0]: x.value,
                                              **{v: a for v, a in zip(node.proto.input[1:], ins[1:])}})[0],
                          x.n)]
        if op == "Cast" and isinstance(x, Dims) and at.get("to") in FLOAT_TYPES and all(
                isinstance(e, int) for e in x.entries):
            # sizes known here turned into numbers (y.shape[-1] ** -0.5): constants from now on
            return self.g.run_op(node, {node.proto.input[0]: np.asarray(x.entries, np.int64)})
        if ins and all(isinstance(a, np.ndarray) or a is None for a in ins) and op not in ("GRU", "Loop"):
            # every input known here (sizes turned constants, a Shape of a shape): computed now
            return self.g.run_op(node, dict(zip(node.proto.input, ins)))
        if not any(isinstance(a, (Seq, State)) for a in ins) and (
                isinstance(x, Dims) or op in ("Concat", "Mul") and any(isinstance(a, Dims) for a in ins)):
            return [self.dims(node, ins)]
        if isinstance(x, Zeros) and op in ("Slice", "Reshape", "Squeeze", "Unsqueeze", "Transpose",
                                           "Identity", "Cast"):
            return [Zeros()]
        if isinstance(x, Feed) and op == "Slice" and (x.rows is None or x.unsq is not None):
            return [self.slice_feed(node, ins)]
        if isinstance(x, Feed) and op in ("Unsqueeze", "Reshape") and x.rows is None \
                and x.unsq is None:
            return [self.unsqueeze_feed(node, ins)]
        if op in PASS_OPS and isinstance(x, (Seq, State)):
            return [x] + [None] * (n_out - 1)
        if isinstance(x, State) or any(isinstance(a, State) for a in ins):
            out = self.state_op(node, ins)
            return out if isinstance(out, list) else [out]
        if op == "Gather" and isinstance(ins[1], Seq) and not isinstance(x, Seq) \
                and at.get("axis", 0) == 0:
            if isinstance(x, Feed) and x.rows is None and x.name in self.g.constants:
                x = self.g.constants[x.name]  # an overridable table: packed, as GRU weights are
            return [self.embed(node, x, ins[1])]
        seqs = [a for a in ins if isinstance(a, Seq)]
        if seqs:  # a weight the exporter also listed as an input: packed, as GRU weights are
            ins = [self.g.constants[a.name] if isinstance(a, Feed) and a.rows is None and a.unsq is None
                   and a.name in self.g.overridable and a.name in self.g.constants else a for a in ins]
        if any(a.ids for a in seqs):
            self._python(node, op, "an op on token ids other than an embedding lookup")
            return [Seq(x.axes if isinstance(x, Seq) else seqs[0].axes, None)] * n_out
        if not seqs or any(isinstance(a, (Feed, Zeros)) for a in ins):
            raise NotStreamable(f"node {name!r} ({op}): its inputs are computed at run time in a way "
                                "streams do not follow")
        return self.frame_op(node, ins, seqs)

    def shape(self, x, at):
        if isinstance(x, np.ndarray):
            entries = list(x.shape)
        elif isinstance(x, Seq):
            entries = list(x.axes)
        elif isinstance(x, State):
            entries = [len(x.ks) if a == "L" else a for a in x.axes]
        elif isinstance(x, Dims):  # a shape's shape: known
            return np.asarray([len(x.entries)], np.int64)[at.get("start", 0):at.get("end", 1)]
        else:
            return Dims((None,))
        return Dims(tuple(entries[at.get("start", 0):at.get("end", len(entries))]))

    def dims(self, node, ins):
        """Shape arithmetic: entries followed through Gather, Slice, Concat, Mul, Squeeze, ..."""
        op = node.op

        def entries(a):
            if isinstance(a, Dims):
                return list(a.entries)
            if isinstance(a, np.ndarray) and a.dtype.kind in "iu":
                return [int(e) for e in a.reshape(-1)]
            return None

        x = entries(ins[0])
        if op in ("Squeeze", "Unsqueeze", "Reshape", "Cast", "Identity") and x is not None:
            return Dims(tuple(x))
        if op == "Gather" and isinstance(ins[1], np.ndarray):
            return Dims(tuple(x[int(i)] for i in ins[1].reshape(-1)))
        if op == "Slice" and self.g.opset >= 10 and all(isinstance(a, np.ndarray) for a in ins[1:]):
            steps = int(ins[4][0]) if len(ins) > 4 else 1
            return Dims(tuple(x[int(ins[1][0]):int(ins[2][0]):steps]))
        if op == "Concat":
            parts = [entries(a) for a in ins]
            if None not in parts:
                return Dims(tuple(e for p in parts for e in p))
        if op == "Mul":
            a, b = entries(ins[0]), entries(ins[1])
            if a is not None and b is not None and len(a) == len(b):
                return Dims(tuple(p * q if isinstance(p, int) and isinstance(q, int)
                                  else p if q == 1 else q if p == 1 else None
                                  for p, q in zip(a, b)))
        if op == "Equal":  # TorchScript's expand(-1, N, -1): Where(Equal(shape, -1), 1, shape)
            a, b = entries(ins[0]), entries(ins[1])
            if a is not None and b is not None and len(a) == len(b):
                return Dims(tuple(_size_equal(p, q) for p, q in zip(a, b)))
        if op == "Where":
            c, a, b = (entries(v) if not (isinstance(v, np.ndarray) and v.dtype == bool)
                       else [bool(e) for e in v.reshape(-1)] for v in ins)
            if None not in (c, a, b) and len(c) == len(a) == len(b) and None not in c:
                return Dims(tuple(p if k else q for k, p, q in zip(c, a, b)))
        return Dims((None,))

    def slice_feed(self, node, ins):
        """One row of axis 0 of a state input (PyTorch's per-layer h0[l:l+1]); the whole of a
        size-1 axis inserted by an Unsqueeze keeps the input as it is."""
        args, feed = _slice_args(node, ins, self.g.opset), ins[0]
        if args is not None and len(args[0]) == 1 and args[3][0] == 1:
            (start,), (end,), (axis,), _ = args
            if feed.unsq is not None and axis == feed.unsq and start == 0 and end >= 1:
                return feed
            if feed.rows is None and feed.unsq is None and axis == 0 and 0 <= start and end == start + 1:
                return Feed(feed.name, start)
        raise NotStreamable(f"node {node.name!r} (Slice): initial states are taken from input "
                            f"{feed.name!r} in a way streams do not follow (one row of axis 0 only)")

    def unsqueeze_feed(self, node, ins):
        """Unsqueeze (or Reshape to [1, N, H] / [N, 1, H]) of an [N, H] state input: the GRU's
        initial_h is that input with a size-1 axis inserted, so its stream feed stays [N, H]."""
        op, name, feed = node.op, node.name, ins[0]
        arg = next((a for a in self.g.inputs if a.name == feed.name), None) \
            or self.g.overridable.get(feed.name)
        shape = arg.shape if arg is not None else None

        def refuse(why):
            raise NotStreamable(f"node {name!r} ({op}): initial states are taken from input "
                                f"{feed.name!r} in a way streams do not follow ({why})")

        if shape is None or len(shape) != 2:
            refuse("an Unsqueeze or Reshape of an input declared [N, H] only")
        H = shape[1] if isinstance(shape[1], int) and shape[1] > 0 else None
        if op == "Unsqueeze":
            spec = node.attrs.get("axes") if self.g.opset < 13 else (ins[1] if len(ins) > 1 else None)
            if not isinstance(spec, (list, tuple, np.ndarray)) or np.size(spec) != 1:
                refuse("one inserted axis only")
            axis = int(np.asarray(spec).reshape(-1)[0]) % 3
        else:
            target = ins[1]
            if isinstance(target, Dims) or not isinstance(target, np.ndarray) or target.size != 3:
                refuse("a Reshape to a constant [1, -1, H] or [-1, 1, H] only")
            target = [int(e) for e in target.reshape(-1)]
            if node.attrs.get("allowzero", 0) or 0 in target or target[2] <= 0 \
                    or (H is not None and target[2] != H) or target.count(1) < 1:
                refuse("a Reshape to a constant [1, -1, H] or [-1, 1, H] only")
            n = shape[0] if isinstance(shape[0], int) and shape[0] > 0 else -1
            if target[:2] == [1, -1] or (n > 1 and target[:2] == [1, n]):
                axis = 0
            elif target[:2] == [-1, 1] or (n > 1 and target[:2] == [n, 1]):
                axis = 1
            else:
                refuse("a Reshape to a constant [1, -1, H] or [-1, 1, H] only")
        if axis == 2:
            refuse("a size-1 axis after the hidden one")
        return Feed(feed.name, None, axis)

    def tiled(self, node, c, target):
        """Expand of a constant to a shape whose only run-time entry is the batch, on an axis
        where the constant has size 1."""
        entries = list(target.entries)
        shape = [1] * (len(entries) - c.ndim) + list(c.shape)
        if len(entries) < c.ndim or entries.count("N") != 1:
            raise NotStreamable(f"node {node.name!r} (Expand): expands a constant to a shape "
                                "streams do not follow")
        n = entries.index("N")
        if shape[n] != 1 or any(e not in (1, d) for i, (e, d) in enumerate(zip(entries, shape)) if i != n):
            raise NotStreamable(f"node {node.name!r} (Expand): expands a constant to a shape "
                                "streams do not follow")
        return Tiled(np.asarray(c).reshape(shape), n)

    def embed(self, node, table, ids):
        """Gather of a constant [V, ...] float table by the token ids: a C embed step."""
        axes = ids.axes + tuple(np.shape(table)[1:])
        table = np.asarray(table)
        if not (ids.ids and ids.buf == 0 and _c_layout(ids.axes) and table.ndim >= 1
                and table.dtype == np.float32 and 1 <= table.shape[0] <= 1 << 24):
            self._python(node, "Gather", "a lookup the C embed step does not cover (it reads float32 "
                         "tables [V, ...] with the token ids the stream is fed)")
            return Seq(axes, None)
        if not np.isfinite(table).all():
            raise NotStreamable(f"node {node.name!r} (Gather): the embedding table holds NaN or Inf, "
                                "which the C embed step refuses")
        tab = np.ascontiguousarray(table.reshape(table.shape[0], -1))
        self.low.steps.append(("embed", 0, tab))
        return Seq(axes, len(self.low.steps))

    # ------------------------------------------------------------------ GRU
    def gru(self, node, ins):
        spec, low = node.spec, self.low
        x = ins[0]
        want = ("N", "T") if spec.layout else ("T", "N")
        if not isinstance(x, Seq) or x.last:
            raise NotStreamable(f"GRU node {node.name!r}: input X is not on the time path")
        if x.ids:
            raise NotStreamable(f"GRU node {node.name!r}: input X is token ids, not features")
        if tuple(x.axes[:2]) != want:
            raise _Mismatch(f"GRU node {node.name!r}: input X does not have time on axis "
                            f"{want.index('T')} as the GRU reads it")
        k = len(low.grus)
        low.grus.append((len(low.steps), node.name, spec.hidden_size, spec.layout))
        if x.buf is None:
            self._python(node, "GRU", "its input is computed on the Python path")
        low.steps.append(("gru", x.buf, node.layer))
        lens, h0 = (ins + [None] * 6)[4:6]
        if lens is not None:
            if not isinstance(lens, Feed):
                raise NotStreamable(f"GRU node {node.name!r}: a fixed sequence_lens cannot stream")
            low.lens_inputs.add(lens.name)
        if isinstance(h0, Feed):
            if h0.unsq is not None and h0.unsq != (1 if spec.layout else 0):
                raise NotStreamable(f"GRU node {node.name!r}: initial_h inserts the num_directions "
                                    f"axis of input {h0.name!r} at axis {h0.unsq}, not where the GRU "
                                    "reads it")
            # row None: the input is [N, H] itself (fed as the graph declares it)
            row = None if h0.unsq is not None else h0.rows or 0
            low.state_inputs.setdefault(h0.name, []).append((k, row, spec.layout))
            if h0.name in self.g.constants:  # an overridable initializer: also the default start
                h = np.asarray(self.g.constants[h0.name], np.float32)
                if h0.unsq is not None:
                    low.initial[k] = h
                else:
                    h = h[h0.rows or 0:(h0.rows or 0) + 1] if h0.rows is not None else h
                    low.initial[k] = h[:, 0, :] if spec.layout else h[0]
        elif isinstance(h0, Tiled) and h0.n == (0 if spec.layout else 1) and h0.value.ndim == 3 \
                and h0.value.shape[1 - h0.n] == 1:
            low.initial[k] = np.asarray(h0.value, np.float32).reshape(1, -1)  # every slot starts there
        elif isinstance(h0, np.ndarray):
            h = np.asarray(h0, np.float32)
            if h.ndim != 3 or h.shape[1 if spec.layout else 0] != 1:
                raise NotStreamable(f"GRU node {node.name!r}: its constant initial_h has shape "
                                    f"{list(h.shape)}, not one direction's [N, H]")
            low.initial[k] = h[:, 0, :] if spec.layout else h[0]
        elif h0 is not None and not isinstance(h0, Zeros):
            raise NotStreamable(f"GRU node {node.name!r}: initial_h is computed inside the graph")
        start = low.initial.get(k)
        if start is not None and (start.ndim != 2 or start.shape[1] != spec.hidden_size or not start.size):
            # (the whole-sequence run names the expected shape; streams cannot start from it)
            raise NotStreamable(f"GRU node {node.name!r}: its initial_h gives states of shape "
                                f"{list(start.shape)}, not [N, {spec.hidden_size}]")
        buf = len(low.steps) if x.buf is not None else None
        H = spec.hidden_size
        y = Seq(("N", "T", 1, H) if spec.layout else ("T", 1, "N", H), buf)
        return [y, State((k,), ("N", 1, H) if spec.layout else (1, "N", H))]

    # ------------------------------------------------------------------ final states
    def state_op(self, node, ins):
        """Final states: Concat of single states along their size-1 axis stacks layers ("L");
        layout ops on one state follow its N and H axes."""
        op, at, x = node.op, node.attrs, ins[0]
        if any(isinstance(a, Seq) and not a.last for a in ins):
            raise NotStreamable(f"node {node.name!r} ({op}): combines a GRU's final state with "
                                "per-frame values, so every frame needs the whole sequence")
        if any(isinstance(a, State) and not a.ks for a in ins):  # already on the Python path
            return self.unknown_state(node)
        single = all(isinstance(a, State) and len(a.ks) == 1 and a.axes == x.axes for a in ins)
        if op == "Concat" and single and x.axes[at["axis"] % len(x.axes)] == 1:
            axis = at["axis"] % len(x.axes)
            return State(tuple(a.ks[0] for a in ins), x.axes[:axis] + ("L",) + x.axes[axis + 1:])
        if op == "Transpose" and isinstance(x, State):
            return State(x.ks, tuple(x.axes[p] for p in _perm(node, len(x.axes))))
        if op in ("Squeeze", "Unsqueeze", "Reshape") and isinstance(x, State) and len(x.ks) == 1:
            return State(x.ks, self.layout_op(node, ins, x))
        if op in ("Gather", "Slice") and isinstance(x, State) and all(
                isinstance(a, np.ndarray) or a is None for a in ins[1:]):
            picked = self.pick_state(node, ins, x)
            if picked is not None:
                return picked
        if all(len(a.ks) == 1 for a in ins if isinstance(a, State)):
            # Frame-wise ops on final states: after each frame, a final state is that frame's GRU
            # output, so they run as frame steps whose chunk value is the chunk's last frame.
            ins = [self.last_of(a) if isinstance(a, State) else a for a in ins]
            return self.node(node, ins)
        return self.unknown_state(node)

    def unknown_state(self, node):
        """A value of final states only that the Python path computes from the carried states
        (after a chunk they are the states after every frame streamed so far)."""
        self._python(node, node.op, "an op on final states the C stream does not reproduce")
        return [State((), ("?",))] * len(node.proto.output)

    def last_of(self, st):
        """A single GRU's final state as a frame-wise value (its GRU step's output buffer)."""
        step = self.low.grus[st.ks[0]][0]
        return Seq(st.axes, step + 1 if self.low.steps[step][1] is not None else None, last=True)

    def pick_state(self, node, ins, x):
        """hn[-1]-style selection of one layer's final state (a Gather or Slice on the "L" axis,
        or of the only row of a size-1 axis), or None when it is something else."""
        op, at, r = node.op, node.attrs, len(x.axes)
        if op == "Gather":
            axis, idx = at.get("axis", 0) % r, np.asarray(ins[1])
            size = len(x.ks) if x.axes[axis] == "L" else x.axes[axis]
            if idx.size != 1 or not isinstance(size, int) or not -size <= int(idx.reshape(-1)[0]) < size:
                return None
            i = int(idx.reshape(-1)[0]) % size
            ks = (x.ks[i],) if x.axes[axis] == "L" else x.ks
            axes = x.axes[:axis] + ((1,) if idx.ndim else ()) + x.axes[axis + 1:]
            return State(ks, axes) if len(ks) == 1 or "L" in axes else None
        args = _slice_args(node, ins, self.g.opset)
        if args is None:
            return None
        starts, ends, axes_, steps = args
        if len(axes_) != 1 or steps[0] != 1:
            return None
        axis = int(axes_[0]) % r
        if x.axes[axis] != "L":
            return None
        rows = list(range(len(x.ks)))[slice(int(starts[0]), int(ends[0]))]
        if len(rows) != 1:
            return None
        return State((x.ks[rows[0]],), x.axes[:axis] + (1,) + x.axes[axis + 1:])

    # ------------------------------------------------------------------ frame-wise ops
    def frame_op(self, node, ins, seqs):
        op, at, name = node.op, node.attrs, node.name
        x = seqs[0]
        t = _time_axis(x.axes)  # None: a value from final states
        if any(a.last != x.last for a in seqs):
            raise NotStreamable(f"node {name!r} ({op}): combines values from a GRU's final state (or "
                                "the last frame) with per-frame values, so every frame needs the "
                                "whole sequence")

        def python(why, axes=None):
            self._python(node, op, why)
            return [Seq(axes if axes is not None else x.axes, None, last=x.last)] * len(node.proto.output)

        def not_streamable(why):
            raise NotStreamable(f"node {name!r} ({op}): {why}; it needs the whole sequence")

        if any(isinstance(a, Dims) for a in ins) and op not in ("Reshape", "Expand", "Slice"):
            not_streamable("combines a time-path value with a number computed from shapes that "
                           "streams do not know (such as the sequence length)")

        if op in ACT_STEPS:
            kind, da, db = ACT_STEPS[op]
            act = (kind, float(at.get("alpha", da)), float(at.get("beta", db)))
            return self.step(x, ("act", x.buf, act), x.axes, node, "element-wise")
        if op in ("Transpose", "Squeeze", "Unsqueeze", "Reshape"):
            axes = self.layout_op(node, ins, x)
            feats = lambda ax: [a for a in ax if a != 1 and a not in TN]
            keep = feats(axes) == feats(x.axes)
            if x.buf is not None and keep and _c_layout(axes):
                return [replace(x, axes=axes)]
            return python("moves feature axes (no C copy step)", axes)
        if op in ("MatMul", "Gemm") and ins[0] is x and len(seqs) == 1:
            w = np.asarray(ins[1], np.float32)
            if op == "Gemm":
                if at.get("transA", 0):
                    not_streamable("Gemm with transA reads across frames")
                w = (w.T if at.get("transB", 0) else w) * at.get("alpha", 1.0)
            if w.ndim != 2 or x.axes[-1] in TN or x.axes[-1] != w.shape[0]:
                not_streamable("a matrix product that is not over the feature axis")
            bias = None
            if op == "Gemm" and len(ins) > 2 and ins[2] is not None:
                bias = np.broadcast_to(np.asarray(ins[2], np.float32) * at.get("beta", 1.0),
                                       (w.shape[1],))
            axes = x.axes[:-1] + (w.shape[1],)
            if not _c_layout(x.axes) or x.buf is None:
                return python("a matrix product on a value the plan does not hold", axes)
            return self.step(x, ("dense", x.buf, np.ascontiguousarray(w.T),
                                 None if bias is None else np.ascontiguousarray(bias)), axes, node)
        if op in ("Add", "Sub", "Mul", "Div") and len(seqs) == 1:
            c = np.asarray(ins[1] if ins[0] is x else ins[0])
            if c.ndim > len(x.axes) or (t is not None and c.ndim >= len(x.axes) - t
                                        and c.shape[t - len(x.axes)] != 1):
                not_streamable("a constant that varies along the time axis")
            return self.affine(node, x, c, swapped=ins[0] is not x)
        if op in ("Add", "Sub", "Mul", "Div", "Pow") and len(seqs) == 2 and (t is None or all(
                _time_axis(a.axes) is not None
                and len(a.axes) - _time_axis(a.axes) == len(x.axes) - t for a in seqs)):
            a, b = seqs if ins[0] is seqs[0] else seqs[::-1]
            if a.axes != b.axes and any(c in MERGED for s in seqs for c in s.axes):
                not_streamable("combines rows of merged time and batch with a value of another "
                               "layout")
            if op == "Pow" or a.axes != b.axes or a.buf is None or b.buf is None \
                    or not _c_layout(a.axes):
                return python("element-wise op on two time-path values of different layouts "
                              "(the C binary step takes two buffers of the same shape)")
            return self.step(x, ("binary", a.buf, op.lower(), b.buf), x.axes, node)
        if op in ("Softmax", "LogSoftmax"):
            axis = at.get("axis", -1 if self.g.opset >= 13 else 1) % len(x.axes)
            if t is not None and ((axis == t) if self.g.opset >= 13 else (axis <= t)):
                not_streamable("normalises over the time axis")
            over = {axis} if self.g.opset >= 13 else set(range(axis, len(x.axes)))
            if not self.row_op(x, over):
                return python(f"{op} over part of a frame (the C step normalises whole feature rows)")
            return self.step(x, (op.lower(), x.buf), x.axes, node)
        if op == "LayerNormalization":
            axis = at.get("axis", -1) % len(x.axes)
            if t is not None and axis <= t:
                not_streamable("normalises over the time axis")
            over = set(range(axis, len(x.axes)))
            outs = {o.name for o in self.g.outputs}
            if any(v and (self.consumers.get(v) or v in outs) for v in node.proto.output[1:]) \
                    or ins[0] is not x or not self.row_op(x, over) \
                    or not all(isinstance(a, np.ndarray) or a is None for a in ins[1:]):
                return python("LayerNormalization over part of a frame, or with its mean and "
                              "inverse deviation outputs used (the C step normalises whole rows)")
            shape = [x.axes[i] for i in sorted(over)]
            try:
                scale, bias = (None if a is None else np.ascontiguousarray(
                    np.broadcast_to(np.asarray(a, np.float32), shape).reshape(-1))
                    for a in (ins + [None])[1:3])
            except ValueError:
                return python("LayerNormalization with a scale or bias that is not per feature")
            return self.step(x, ("layernorm", x.buf, scale, bias, float(at.get("epsilon", 1e-5))),
                             x.axes, node)
        if op == "Clip":
            if self.g.opset < 11:
                lo, hi = at.get("min"), at.get("max")
            else:
                lo, hi = (ins + [None, None])[1:3]
            if ins[0] is not x or any(b is not None and (not isinstance(b, (np.ndarray, float, int))
                                                         or np.size(b) != 1) for b in (lo, hi)):
                return python("Clip with bounds that are not constant scalars")
            lo = -np.inf if lo is None else float(np.asarray(lo).reshape(-1)[0])
            hi = np.inf if hi is None else float(np.asarray(hi).reshape(-1)[0])
            return self.step(x, ("clip", x.buf, lo, hi), x.axes, node)
        if op in REDUCE_OPS or op in ("ArgMax", "ArgMin", "GlobalAveragePool"):
            if op == "GlobalAveragePool":
                axes = range(2, len(x.axes))
            elif op in REDUCE_OPS:
                axes = at.get("axes") if self.g.opset < REDUCE_OPS[op] else (ins[1] if len(ins) > 1 else None)
                if axes is not None and not isinstance(axes, (list, tuple, np.ndarray)):
                    not_streamable("reduces over axes computed at run time")
                axes = range(len(x.axes)) if axes is None or not np.size(axes) else np.reshape(axes, -1)
            else:
                axes = [at.get("axis", 0)]
            axes = {int(a) % len(x.axes) for a in axes}
            if any(x.axes[a] in TN for a in axes):
                not_streamable("reduces over the time or batch axis")
            keep = at.get("keepdims", 1) or op == "GlobalAveragePool"
            return python(f"{op} over features (no C step)",
                          tuple(1 if i in axes else a for i, a in enumerate(x.axes) if keep or i not in axes))
        if op in ELEMENTWISE_PY:
            return python(f"{op} (no C step)", self.elementwise_axes(node, ins, seqs, not_streamable))
        if op == "Cast":
            if at.get("to") == 1:
                return [x]  # float to float: nothing to do
            return python("Cast on the time path")
        if op == "Expand" and ins[0] is x:
            return python("Expand over features (no C step)", self.expand_axes(node, ins[1], x,
                                                                                not_streamable))
        if op in ("Gather", "Slice") and ins[0] is x and not x.last:
            last = self.last_frame(node, ins, x)
            if last is not None:
                return [last]
        if op in ("Split", "Concat", "Gather", "Slice"):
            if op != "Slice":
                axes = [at.get("axis", 0)]
            else:
                args = _slice_args(node, ins, self.g.opset)
                if args is None:
                    not_streamable("slices with bounds computed at run time")
                axes = args[2]
            if any(x.axes[int(a) % len(x.axes)] in TN for a in axes):
                not_streamable("works along the time or batch axis")
            if op == "Concat" and any(not isinstance(a, Seq) or len(a.axes) != len(x.axes) for a in ins):
                not_streamable("joins time-path values with constants or values of another rank")
            return [python(f"{op} over features (no C step)", a)[0] for a in self.feature_axes(node, ins, x)]
        if op in ("Conv", "Pad", "CumSum"):
            not_streamable({"Conv": "a convolution mixes neighbouring frames",
                            "Pad": "pads along an axis that may be time",
                            "CumSum": "a cumulative sum streams do not carry"}[op])
        not_streamable("its effect on the time axis is not known")

    def last_frame(self, node, ins, x):
        """y[-1] (Gather -1 on the time axis) or y[-1:] (Slice -1: on it): the last frame, which a
        stream gives as a value from final states (its frame after each chunk), or None."""
        at, t = node.attrs, x.axes.index("T") if "T" in x.axes else None
        if t is None:
            return None
        if node.op == "Gather":
            idx = ins[1]
            if not isinstance(idx, np.ndarray) or idx.size != 1 or int(idx.reshape(-1)[0]) != -1 \
                    or at.get("axis", 0) % len(x.axes) != t:
                return None
            axes = x.axes[:t] + ((1,) if idx.ndim else ()) + x.axes[t + 1:]
        else:
            args = _slice_args(node, ins, self.g.opset)
            if args is None:
                return None
            found = False
            for s_, e, a, st in zip(*args):
                a, big = a % len(x.axes), e >= (1 << 31) - 1
                if a == t and s_ == -1 and big and st == 1:
                    found = True
                elif a == t or not (s_ == 0 and st == 1 and (big or (
                        isinstance(x.axes[a], int) and e >= x.axes[a]))):
                    return None  # anything but the whole of the other axes
            if not found:
                return None
            axes = x.axes[:t] + (1,) + x.axes[t + 1:]
        return Seq(axes, x.buf, last=True)

    def expand_axes(self, node, target, x, not_streamable):
        """Axes of Expand(x, target) when it broadcasts only feature axes of x (F.normalize's
        per-frame norm expanded back to Shape(y)): time and batch stay where they are."""
        entries = list(target.entries) if isinstance(target, Dims) else \
            [int(e) for e in np.reshape(target, -1)] if isinstance(target, np.ndarray) else None
        if entries is None or len(entries) > len(x.axes):
            not_streamable("an Expand to a shape streams do not follow")
        entries = [1] * (len(x.axes) - len(entries)) + entries
        axes = []
        for a, e in zip(x.axes, entries):
            if a in TN:
                if e not in (1, a):
                    if e != self._static_size(a):
                        not_streamable("an Expand along the time or batch axis")
                    self.pin(f"node {node.name!r} (Expand): reads {e}, the fixed size of the "
                             f"input's {a} axis")
                axes.append(a)
            elif not isinstance(e, int) or (a != 1 and e not in (1, a)):
                not_streamable("an Expand to a shape streams do not follow")
            else:
                axes.append(a if e == 1 else e)
        return tuple(axes)

    def elementwise_axes(self, node, ins, seqs, not_streamable):
        """Output axes of an element-wise op on time-path values of one layout and constants."""
        x = seqs[0]
        if any(a.axes != x.axes for a in seqs):
            not_streamable("combines time-path values of different layouts")
        axes = list(x.axes)
        for c in ins:
            if c is None or isinstance(c, Seq):
                continue
            shape = np.shape(c)
            if len(shape) > len(axes):
                not_streamable("broadcasts a time-path value against a constant of higher rank")
            for i, d in enumerate(shape, len(axes) - len(shape)):
                if axes[i] in TN and d != 1:
                    not_streamable("a constant that varies along the time or batch axis")
                if axes[i] not in TN and d != 1:
                    if axes[i] not in (1, d):
                        not_streamable(f"a constant of shape {list(shape)} that does not broadcast")
                    axes[i] = d
        return tuple(axes)

    def feature_axes(self, node, ins, x):
        """Output axes of Slice, Split, Concat or Gather working on feature axes only."""
        op, at, axes = node.op, node.attrs, list(x.axes)
        if op == "Concat":
            a = at.get("axis", 0) % len(axes)
            axes[a] = sum(s.axes[a] for s in ins)
            return [tuple(axes)]
        if op == "Gather":
            a, idx = at.get("axis", 0) % len(axes), np.asarray(ins[1])
            return [tuple(axes[:a] + list(idx.shape) + axes[a + 1:])]
        if op == "Split":
            a = at.get("axis", 0) % len(axes)
            n = len(node.proto.output)
            sizes = at.get("split") if self.g.opset < 13 else (ins[1] if len(ins) > 1 else None)
            if sizes is None:
                size = -(-axes[a] // n)
                sizes = [min(size, axes[a] - i * size) for i in range(n)]
            return [tuple(axes[:a] + [int(d)] + axes[a + 1:]) for d in np.reshape(sizes, -1)]
        for s_, e, a, st in zip(*_slice_args(node, ins, self.g.opset)):
            a = a % len(axes)
            axes[a] = len(range(*slice(s_, e, st).indices(axes[a])))
        return [tuple(axes)]

    def row_op(self, x, over):
        """True when axes `over` of x are exactly its feature row: no time or batch axis among
        them, and every feature axis of size > 1 inside them."""
        return _c_layout(x.axes) and all(x.axes[i] not in TN for i in over) and all(
            i in over for i, a in enumerate(x.axes) if a != 1 and a not in TN)

    def step(self, x, step, axes, node, what=None):
        if x.buf is None:
            self._python(node, node.op, "its input is computed on the Python path")
            return [Seq(axes, None, last=x.last)]
        self.low.steps.append(step)
        return [Seq(axes, len(self.low.steps), last=x.last)]

    def affine(self, node, x, c, swapped):
        """x (+-*/) a per-feature or scalar constant: a C binary step with the constant copied
        (Add or Sub right after a bias-free dense step joins it as its bias)."""
        op, F = node.op, x.axes[-1]
        if x.buf is None:
            self._python(node, op, "its input is computed on the Python path")
            return [Seq(x.axes, None, last=x.last)]
        w = _width(x.axes)
        if not _c_layout(x.axes) or not (c.size == 1 or (c.size == F == w and c.shape[-1] == F)):
            self._python(node, op, "a constant that is not per feature")
            return [Seq(x.axes, None, last=x.last)]
        c = np.ascontiguousarray(np.broadcast_to(np.asarray(c, np.float32).reshape(-1), (w,)))
        prev = self.low.steps[x.buf - 1] if x.buf else None
        src = node.proto.input[1 if swapped else 0]
        if (op == "Add" or op == "Sub" and not swapped) and prev and prev[0] == "dense" and prev[3] is None \
                and self.consumers.get(src, 0) == 1 and x.buf == len(self.low.steps) \
                and src not in {o.name for o in self.g.outputs}:
            # MatMul + Add: the bias joins the dense step.
            self.low.steps[-1] = prev[:3] + (c if op == "Add" else np.ascontiguousarray(-c),)
            return [x]
        kind = ("r" if swapped and op in ("Sub", "Div") else "") + op.lower()
        return self.step(x, ("binary", x.buf, kind, c), x.axes, node)

    def layout_op(self, node, ins, x):
        """Output axes of Transpose/Squeeze/Unsqueeze/Reshape on a time-path value, by meaning."""
        op, at, name = node.op, node.attrs, node.name
        axes = list(x.axes)
        consts = [a for a in ins[1:]]
        if op == "Transpose":
            return tuple(axes[p] for p in _perm(node, len(axes)))
        if op == "Reshape" and not any(a in ("N",) + MERGED for a in axes):
            raise NotStreamable(f"node {name!r} (Reshape): reshapes a value without a batch axis")
        if op in ("Squeeze", "Unsqueeze"):
            spec = at.get("axes") if self.g.opset < 13 else (consts[0] if consts else None)
            if spec is None:
                raise NotStreamable(f"node {name!r} (Squeeze): squeezes every size-1 axis, which "
                                    "may include time or batch; it cannot stream")
            spec = [int(a) for a in np.asarray(spec).reshape(-1)]
            frame = "T" not in self.low.in_axes  # the time input is one frame: see _one_frame
            if op == "Squeeze":
                drop = {a % len(axes) for a in spec}
                if any(axes[a] != 1 and not (frame and axes[a] == "T") for a in drop):
                    raise NotStreamable(f"node {name!r} (Squeeze): squeezes the time, batch or a "
                                        "feature axis; it cannot stream")
                return tuple(a for i, a in enumerate(axes) if i not in drop)
            if frame and spec == [0] and "T" not in axes:
                return ("T",) + tuple(axes)  # one frame gets its time axis: the GRU's X
            rank = len(axes) + len(spec)
            for a in sorted(s % rank for s in spec):
                axes.insert(a, 1)
            return tuple(axes)
        target = consts[0]
        if isinstance(target, Dims):
            target = list(target.entries)
        elif isinstance(target, np.ndarray):
            target = [int(e) for e in target.reshape(-1)]
        else:
            raise NotStreamable(f"node {name!r} (Reshape): its target shape is not known")
        if not at.get("allowzero", 0):
            target = [axes[i] if e == 0 and i < len(axes) else e for i, e in enumerate(target)]
        out = self.reshape_axes(name, axes, target)
        if not any(a in MERGED for a in tuple(axes) + out):
            # (merged rows take no export-time sizes: the graph's own target is right at run time)
            self.low.reshapes[name] = (tuple(axes), out)
        return out

    def reshape_axes(self, name, axes, target):
        """Reshape by meaning: time and batch keep their order (export-time sizes baked into the
        target are read as them), feature sizes must multiply out; size-1 axes come and go.
        Time and batch next to each other may merge into one row axis ([N, T, F] -> [-1, F]: "NT")
        and a merged row axis may split back (to sizes from shapes, e.g. Shape(y)[:2] + [F])."""
        where = f"node {name!r} (Reshape): "
        src = [a for a in axes if a != 1]
        tn = [a for a in src if a in TN]
        if src[:len(tn)] != tn:
            raise NotStreamable(where + "features come before time or batch; cannot tell which "
                                "axis is time after it")
        feat = int(np.prod([a for a in src if a not in TN]))
        rows = "".join(tn)  # the time and batch letters in order, e.g. "NT"
        merged = tn in (["NT"], ["TN"])
        if self.static.get("N") == 1 and (merged or sorted(tn) == ["N", "T"]):
            if not merged:
                try:
                    return self._reshape_rows(where, tn, target, feat, baked=True)
                except NotStreamable:
                    pass
            out = self._one_slot(where, target, feat, baked=not merged,
                                 after=not merged or rows == "TN")
            if out is not None:
                return out
        if any(a in MERGED for a in tn):
            # rows merged before: kept merged, or split back into batch and time (no baked sizes)
            try:
                return self._reshape_rows(where, [rows], target, feat, baked=False)
            except NotStreamable:
                return self._reshape_rows(where, list(rows), target, feat, baked=False)
        try:
            return self._reshape_rows(where, tn, target, feat, baked=True)
        except NotStreamable as e:
            if len(rows) != 2:
                raise
            try:  # time and batch merged into one row axis: rows are frames x slots
                return self._reshape_rows(where, [rows], target, feat, baked=False)
            except NotStreamable:
                raise NotStreamable(f"{e}; nor does it merge time and batch alone into one row "
                                    "axis (it moves them into features or features into rows)") from None

    def _one_slot(self, where, target, feat, baked, after):
        """A fixed batch of 1: the rows are the frames, so the target is read with time alone and
        the batch is a size-1 entry beside time (after it when `after`, else before; the other
        side when there is none).  tf2onnx writes the Transpose of a fixed batch of 1 as such a
        Reshape ([1, T, F] -> [-1, 1, F]); torch.export bakes the size into a reshape back."""
        try:
            out = self._reshape_rows(where, ["T"], target, feat, baked)
        except NotStreamable:
            return None
        t = out.index("T")
        later = [i for i, a in enumerate(out) if a == 1 and i > t]
        earlier = [i for i, a in enumerate(out) if a == 1 and i < t][::-1]
        side = (later or earlier) if after else (earlier or later)
        if not side:
            return None
        self.pin(where + "places the batch axis of a fixed batch of 1")
        return out[:side[0]] + ("N",) + out[side[0] + 1:]

    def _static_size(self, sym):
        """The fixed size of row axis sym ("T", "N", or merged "NT"/"TN") the input declares, or None."""
        sizes = [self.static.get(a) for a in sym]
        return int(np.prod(sizes)) if all(sizes) else None

    def pin(self, why):
        """A Reshape matched through a fixed size: the stream follows it in C (the plan is row-wise),
        for chunks of any length; the batch size stays the declared one (sess.stream checks)."""
        self.pinned = self.pinned or why
        self.low.batch = self.static.get("N")

    def _reshape_rows(self, where, groups, target, feat, baked):
        """Output axes when the leading non-1 target entries are the row axes `groups` ("T", "N",
        or a merged "NT"/"TN") and the others the features.  baked: an int > 1 may stand for a row
        axis (an export-time size); otherwise row entries are the axis itself (from a Shape) or
        unknown (-1), and sizes must determine the rows."""
        out, it, rest, row_entries = [], iter(groups), [], []
        for e in target:
            if e == 1:
                out.append(1)
            elif len(out) - out.count(1) < len(groups):
                sym = next(it)
                if e not in (sym, -1, None) and not (baked and isinstance(e, int) and e > 1):
                    if not (isinstance(e, int) and e == self._static_size(sym)):
                        raise NotStreamable(where + f"cannot match {e} to the {sym} axis")
                    self.pin(where + f"reads {e}, the fixed size of the input's {sym} axis")
                out.append(sym)
                row_entries.append(e)
            else:
                if isinstance(e, str):
                    raise NotStreamable(where + f"the {e} axis lands among the features, which "
                                        "mixes time or batch into frames")
                out.append(e)
                rest.append(len(out) - 1)
        if len(out) - out.count(1) - len(rest) != len(groups):
            raise NotStreamable(where + "cannot tell which axes are time and batch (an export-time "
                                "size of 1 may be baked into the target); it cannot stream")
        unknown = [i for i in rest if out[i] in (-1, None) or not isinstance(out[i], int)]
        known = int(np.prod([out[i] for i in rest if i not in unknown]))
        if len(unknown) > 1 or (unknown and feat % known) or (not unknown and known != feat):
            raise NotStreamable(where + f"feature sizes {[out[i] for i in rest]} do not match {feat}")
        open_rows = sum(e in (-1, None) for e in row_entries)
        if not baked and (open_rows > 1 or open_rows and unknown):
            raise NotStreamable(where + "cannot tell the time and batch sizes from its target")
        for i in unknown:
            out[i] = feat // known
        return tuple(out)


def _size_equal(p, q):
    """Whether two shape entries are equal: known for two ints, one axis symbol with itself, or
    a symbol (a size >= 1) against an int below 1; else None."""
    if isinstance(p, int) and isinstance(q, int):
        return p == q
    if isinstance(p, str) and p == q:
        return True
    sym, num = (p, q) if isinstance(p, str) else (q, p)
    return False if isinstance(sym, str) and isinstance(num, int) and num < 1 else None


def _perm(node, rank):
    """A Transpose's permutation (reversed axes by default), checked to be one."""
    perm = list(node.attrs.get("perm") or reversed(range(rank)))
    if sorted(perm) != list(range(rank)):
        raise NotStreamable(f"node {node.name!r} (Transpose): perm {perm} is not a permutation of "
                            f"{rank} axes")
    return perm


def _slice_args(node, ins, opset):
    """A Slice's (starts, ends, axes, steps) as lists of ints in either opset form (axes and
    steps filled in), or None when a bound is not a constant."""
    at = node.attrs
    if opset < 10:
        starts, ends, axes, steps = at.get("starts"), at.get("ends"), at.get("axes"), None
        if starts is None or ends is None:
            return None
    else:
        pad = list(ins) + [None] * (5 - len(ins))
        if pad[1] is None or pad[2] is None or \
                any(v is not None and not isinstance(v, np.ndarray) for v in pad[1:5]):
            return None
        starts, ends, axes, steps = (None if v is None else np.reshape(v, -1) for v in pad[1:5])
    starts, ends = [int(v) for v in starts], [int(v) for v in ends]
    axes = list(range(len(starts))) if axes is None else [int(v) for v in axes]
    steps = [1] * len(starts) if steps is None else [int(v) for v in steps]
    if not len(starts) == len(ends) == len(axes) == len(steps):
        return None
    return starts, ends, axes, steps


def _zero_fill(node, ins):
    """ConstantOfShape or Expand that builds an all-zero tensor from run-time shapes."""
    if node.op == "ConstantOfShape":
        v = node.attrs.get("value")
        if v is not None:
            from onnx import numpy_helper
            v = numpy_helper.to_array(v)
        return isinstance(ins[0], Dims) and (v is None or not np.any(v))
    return isinstance(ins[0], np.ndarray) and not np.any(ins[0]) and isinstance(ins[1], Dims)
