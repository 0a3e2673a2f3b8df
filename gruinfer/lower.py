"""lower.py: graph -> stream plan: exporter plumbing recognised by meaning, GRUs and frame-wise ops mapped to C steps, causality checked."""
from dataclasses import dataclass, field

import numpy as np

from . import _core
from .errors import NotStreamable

# Element-wise ops with a C "act" step: op -> (kind, default alpha, default beta) as in onnx_import.ACTIVATIONS.
ACT_STEPS = {"Sigmoid": (0, 0.0, 0.0), "Tanh": (1, 0.0, 0.0), "Relu": (2, 0.0, 0.0),
             "HardSigmoid": (3, 0.2, 0.5), "LeakyRelu": (4, 0.01, 0.0), "Elu": (8, 1.0, 0.0)}
PASS_OPS = ("Identity", "Dropout")


@dataclass(frozen=True)
class Seq:
    """A tensor on the time path.  axes: per tensor axis "T", "N" or a fixed size; buf: the plan
    buffer holding it frame by frame (0 the plan input, k >= 1 step k-1's output), None when only
    the Python path computes it."""
    axes: tuple
    buf: object = None


@dataclass(frozen=True)
class State:
    """Final states of GRUs ks (indices into Lowering.grus), stacked on axis "L" when several;
    other axes "N", the hidden size or 1."""
    ks: tuple
    axes: tuple


@dataclass(frozen=True)
class Zeros:
    """An all-zero tensor built at run time from shapes (the zero initial state pattern)."""


@dataclass(frozen=True)
class Dims:
    """A 1-D int tensor built from shapes: entries are ints, "T", "N" or None (unknown)."""
    entries: tuple


@dataclass(frozen=True)
class Feed:
    """A graph input other than the frames (an initial state); rows: the slice of axis 0 taken."""
    name: str
    rows: object = None


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
    plan: object = None

    @property
    def lowered(self):
        return not self.not_lowered


def lower(graph, kernel):
    """Lower a graph for streaming, or raise NotStreamable naming the node that needs the whole sequence."""
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
    if shape is None or len(shape) < 2:
        raise NotStreamable(f"input {time_input!r}: a stream needs a declared rank >= 2 (time and batch)")
    first = None
    for t_axis in (0, 1):
        axes = [d if isinstance(d, int) and d > 0 else None for d in shape]
        axes[t_axis], axes[1 - t_axis] = "T", "N"
        try:
            return _Lowerer(graph, kernel, time_input, tuple(axes)).run()
        except _Mismatch as e:
            first = first or e
    raise NotStreamable(str(first))


def _c_layout(axes):
    """True when frames of this tensor are [N, features] rows in one buffer: sizes > 1 after T and N."""
    seen = 0
    for a in axes:
        if a in ("T", "N"):
            seen += 1
        elif a != 1 and seen < 2:
            return False
    return True


def _width(axes):
    return int(np.prod([a for a in axes if a not in ("T", "N")]))


class _Lowerer:
    """One pass over the nodes in order, giving each value an abstract meaning and the plan its steps."""

    def __init__(self, graph, kernel, time_input, in_axes):
        self.g, self.kernel = graph, kernel
        self.low = Lowering(time_input, in_axes, {}, [], [], [])
        rows = _c_layout(in_axes) and None not in in_axes and \
            next(a for a in graph.inputs if a.name == time_input).type == "tensor(float)"
        self.val = {time_input: Seq(in_axes, 0 if rows else None)}
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
        if low.lowered:
            low.plan = _core.Plan(_width(low.in_axes), low.steps, self.kernel)
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
        if isinstance(x, Dims) or (op in ("Concat", "Mul") and any(isinstance(a, Dims) for a in ins)):
            return [self.dims(node, ins)]
        if isinstance(x, Zeros) and op in ("Slice", "Reshape", "Squeeze", "Unsqueeze", "Transpose",
                                           "Identity", "Cast"):
            return [Zeros()]
        if isinstance(x, Feed) and op == "Slice" and x.rows is None:
            return [self.slice_feed(node, ins)]
        if op in PASS_OPS and isinstance(x, (Seq, State)):
            return [x] + [None] * (n_out - 1)
        if isinstance(x, State) or any(isinstance(a, State) for a in ins):
            return [self.state_op(node, ins)]
        if op == "Gather" and isinstance(ins[1], Seq) and not isinstance(x, Seq) \
                and at.get("axis", 0) == 0:
            # An embedding table read with token ids: frame-wise; needs a C gather step.
            self._python(node, op, "embedding lookup (no C gather step)")
            return [Seq(ins[1].axes + tuple(np.shape(x)[1:]), None)]
        seqs = [a for a in ins if isinstance(a, Seq)]
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
        return Dims((None,))

    def slice_feed(self, node, ins):
        starts, ends = (np.asarray(a).reshape(-1) for a in ins[1:3])
        axes = np.asarray(ins[3]).reshape(-1) if len(ins) > 3 and ins[3] is not None else [0]
        if list(axes) != [0] or len(starts) != 1 or ends[0] != starts[0] + 1 or starts[0] < 0:
            raise NotStreamable(f"node {node.name!r} (Slice): initial states are taken from input "
                                f"{ins[0].name!r} in a way streams do not follow (one row of axis 0 only)")
        return Feed(ins[0].name, int(starts[0]))

    # ------------------------------------------------------------------ GRU
    def gru(self, node, ins):
        spec, low = node.spec, self.low
        x = ins[0]
        want = ("N", "T") if spec.layout else ("T", "N")
        if not isinstance(x, Seq):
            raise NotStreamable(f"GRU node {node.name!r}: input X is not on the time path")
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
            low.state_inputs.setdefault(h0.name, []).append((k, h0.rows or 0, spec.layout))
            if h0.name in self.g.constants:  # an overridable initializer: also the default start
                h = np.asarray(self.g.constants[h0.name], np.float32)
                h = h[h0.rows or 0:(h0.rows or 0) + 1] if h0.rows is not None else h
                low.initial[k] = h[:, 0, :] if spec.layout else h[0]
        elif isinstance(h0, np.ndarray):
            h = np.asarray(h0, np.float32)
            low.initial[k] = h[:, 0, :] if spec.layout else h[0]
        elif h0 is not None and not isinstance(h0, Zeros):
            raise NotStreamable(f"GRU node {node.name!r}: initial_h is computed inside the graph")
        buf = len(low.steps) if x.buf is not None else None
        H = spec.hidden_size
        y = Seq(("N", "T", 1, H) if spec.layout else ("T", 1, "N", H), buf)
        return [y, State((k,), ("N", 1, H) if spec.layout else (1, "N", H))]

    # ------------------------------------------------------------------ final states
    def state_op(self, node, ins):
        """Final states: Concat of single states along their size-1 axis stacks layers ("L");
        layout ops on one state follow its N and H axes."""
        op, at, x = node.op, node.attrs, ins[0]
        single = all(isinstance(a, State) and len(a.ks) == 1 and a.axes == x.axes for a in ins)
        if op == "Concat" and single and x.axes[at["axis"] % len(x.axes)] == 1:
            axis = at["axis"] % len(x.axes)
            return State(tuple(a.ks[0] for a in ins), x.axes[:axis] + ("L",) + x.axes[axis + 1:])
        if op == "Transpose" and isinstance(x, State):
            perm = at.get("perm") or list(reversed(range(len(x.axes))))
            return State(x.ks, tuple(x.axes[p] for p in perm))
        if op in ("Squeeze", "Unsqueeze", "Reshape") and isinstance(x, State) and len(x.ks) == 1:
            return State(x.ks, self.layout_op(node, ins, x))
        self._python(node, op, "an op on final states the C stream does not reproduce")
        return State((), ("?",))

    # ------------------------------------------------------------------ frame-wise ops
    def frame_op(self, node, ins, seqs):
        op, at, name = node.op, node.attrs, node.name
        x = seqs[0]
        t = x.axes.index("T")

        def python(why, axes=None):
            self._python(node, op, why)
            return [Seq(axes if axes is not None else x.axes, None)] * len(node.proto.output)

        def not_streamable(why):
            raise NotStreamable(f"node {name!r} ({op}): {why}; it needs the whole sequence")

        if op in ACT_STEPS:
            kind, da, db = ACT_STEPS[op]
            act = (kind, float(at.get("alpha", da)), float(at.get("beta", db)))
            return self.step(x, ("act", x.buf, act), x.axes, node, "element-wise")
        if op in ("Transpose", "Squeeze", "Unsqueeze", "Reshape"):
            axes = self.layout_op(node, ins, x)
            feats = lambda ax: [a for a in ax if a not in (1, "T", "N")]
            keep = feats(axes) == feats(x.axes)
            if x.buf is not None and keep and _c_layout(axes):
                return [Seq(axes, x.buf)]
            return python("moves feature axes (no C copy step)", axes)
        if op in ("MatMul", "Gemm") and ins[0] is x and len(seqs) == 1:
            w = np.asarray(ins[1], np.float32)
            if op == "Gemm":
                if at.get("transA", 0):
                    not_streamable("Gemm with transA reads across frames")
                w = (w.T if at.get("transB", 0) else w) * at.get("alpha", 1.0)
            if w.ndim != 2 or x.axes[-1] in ("T", "N") or x.axes[-1] != w.shape[0]:
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
            if c.ndim > len(x.axes) or (c.ndim >= len(x.axes) - t and c.shape[t - len(x.axes)] != 1):
                not_streamable("a constant that varies along the time axis")
            return self.affine(node, x, c, swapped=ins[0] is not x)
        if op in ("Add", "Sub", "Mul", "Div", "Pow") and len(seqs) == 2 and all(
                len(a.axes) - a.axes.index("T") == len(x.axes) - t for a in seqs):
            return python("element-wise op on two time-path values (no C step for two buffers)")
        if op in ("Softmax", "LogSoftmax"):
            axis = at.get("axis", -1 if self.g.opset >= 13 else 1) % len(x.axes)
            if (axis == t) if self.g.opset >= 13 else (axis <= t):
                not_streamable("normalises over the time axis")
            return python(f"{op} (no C step)")
        if op == "LayerNormalization":
            if at.get("axis", -1) % len(x.axes) <= t:
                not_streamable("normalises over the time axis")
            return python("LayerNormalization (no C step)")
        if op in ("Clip", "Sqrt", "Neg", "Exp", "Log") or op == "Pow" and ins[0] is x \
                and np.size(ins[1]) == 1:
            return python(f"{op} (no C act kind)")
        if op == "ReduceMean":
            axes = at.get("axes") if self.g.opset < 18 else (ins[1] if len(ins) > 1 else None)
            axes = range(len(x.axes)) if axes is None or not np.size(axes) else np.reshape(axes, -1)
            axes = {int(a) % len(x.axes) for a in axes}
            if any(x.axes[a] in ("T", "N") for a in axes):
                not_streamable("reduces over the time or batch axis")
            keep = at.get("keepdims", 1)
            return python("ReduceMean over features (no C step)",
                          tuple(1 if i in axes else a for i, a in enumerate(x.axes) if keep or i not in axes))
        if op == "Cast":
            if at.get("to") == 1:
                return [x]  # float to float: nothing to do
            return python("Cast on the time path")
        if op in ("Split", "Concat", "Gather", "Slice"):
            if op != "Slice":
                axes = [at.get("axis", 0)]
            elif self.g.opset < 10:
                axes = at.get("axes", range(len(at["starts"])))
            else:
                axes = np.asarray(ins[3]).reshape(-1) if len(ins) > 3 and ins[3] is not None \
                    else range(len(np.asarray(ins[1]).reshape(-1)))
            if any(x.axes[int(a) % len(x.axes)] in ("T", "N") for a in axes):
                not_streamable("works along the time or batch axis")
            return python(f"{op} over features (no C step)")
        not_streamable("its effect on the time axis is not known")

    def step(self, x, step, axes, node, what=None):
        if x.buf is None:
            self._python(node, node.op, "its input is computed on the Python path")
            return [Seq(axes, None)]
        self.low.steps.append(step)
        return [Seq(axes, len(self.low.steps))]

    def affine(self, node, x, c, swapped):
        """x (+-*/) a per-feature constant as a dense step (diagonal W, bias)."""
        op, F = node.op, x.axes[-1]
        if x.buf is None:
            self._python(node, op, "its input is computed on the Python path")
            return [Seq(x.axes, None)]
        if not isinstance(F, int) or (c.size not in (1, F)) or \
                (c.size == F and c.shape[-1] != F):
            self._python(node, op, "a constant that is not per feature")
            return [Seq(x.axes, None)]
        c = np.broadcast_to(np.asarray(c, np.float32).reshape(-1), (F,))
        one = np.ones(F, np.float32)
        scale, bias = {
            "Add": (one, c), "Sub": (-one if swapped else one, c if swapped else -c),
            "Mul": (c, None), "Div": (None, None) if swapped else (1 / c, None)}[op]
        if scale is None:
            self._python(node, op, "a constant divided by a time-path value")
            return [Seq(x.axes, None)]
        prev = self.low.steps[x.buf - 1] if x.buf else None
        src = node.proto.input[1 if swapped else 0]
        if (op == "Add" or op == "Sub" and not swapped) and prev and prev[0] == "dense" and prev[3] is None \
                and self.consumers.get(src, 0) == 1 and x.buf == len(self.low.steps) \
                and src not in {o.name for o in self.g.outputs}:
            # MatMul + Add: the bias joins the dense step.
            self.low.steps[-1] = prev[:3] + (np.ascontiguousarray(bias),)
            return [Seq(x.axes, x.buf)]
        w = np.ascontiguousarray(np.diag(scale).astype(np.float32))
        return self.step(x, ("dense", x.buf, w, None if bias is None else np.ascontiguousarray(bias)),
                         x.axes, node)

    def layout_op(self, node, ins, x):
        """Output axes of Transpose/Squeeze/Unsqueeze/Reshape on a time-path value, by meaning."""
        op, at, name = node.op, node.attrs, node.name
        axes = list(x.axes)
        consts = [a for a in ins[1:]]
        if op == "Transpose":
            perm = at.get("perm") or list(reversed(range(len(axes))))
            return tuple(axes[p] for p in perm)
        if op == "Reshape" and "N" not in axes:
            raise NotStreamable(f"node {name!r} (Reshape): reshapes a value without a batch axis")
        if op in ("Squeeze", "Unsqueeze"):
            spec = at.get("axes") if self.g.opset < 13 else (consts[0] if consts else None)
            if spec is None:
                raise NotStreamable(f"node {name!r} (Squeeze): squeezes every size-1 axis, which "
                                    "may include time or batch; it cannot stream")
            spec = [int(a) for a in np.asarray(spec).reshape(-1)]
            if op == "Squeeze":
                drop = {a % len(axes) for a in spec}
                if any(axes[a] != 1 for a in drop):
                    raise NotStreamable(f"node {name!r} (Squeeze): squeezes the time, batch or a "
                                        "feature axis; it cannot stream")
                return tuple(a for i, a in enumerate(axes) if i not in drop)
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
        self.low.reshapes[name] = (tuple(axes), out)
        return out

    def reshape_axes(self, name, axes, target):
        """Reshape by meaning: time and batch keep their order (export-time sizes baked into the
        target are read as them), feature sizes must multiply out; size-1 axes come and go."""
        where = f"node {name!r} (Reshape): "
        src = [a for a in axes if a != 1]
        tn = [a for a in src if a in ("T", "N")]
        if src[:len(tn)] != tn:
            raise NotStreamable(where + "features come before time or batch; cannot tell which "
                                "axis is time after it")
        feat = int(np.prod([a for a in src if a not in ("T", "N")]))
        out, it, rest = [], iter(tn), []
        for e in target:
            if e == 1:
                out.append(1)
            elif len(out) - out.count(1) < len(tn):
                sym = next(it)
                if e not in (sym, -1, None) and not (isinstance(e, int) and e > 1):
                    raise NotStreamable(where + f"cannot match {e} to the {sym} axis")
                out.append(sym)
            else:
                out.append(e)
                rest.append(len(out) - 1)
        if len(out) - out.count(1) - len(rest) != len(tn):
            raise NotStreamable(where + "cannot tell which axes are time and batch (an export-time "
                                "size of 1 may be baked into the target); it cannot stream")
        unknown = [i for i in rest if out[i] in (-1, None) or not isinstance(out[i], int)]
        known = int(np.prod([out[i] for i in rest if i not in unknown]))
        if len(unknown) > 1 or (unknown and feat % known) or (not unknown and known != feat):
            raise NotStreamable(where + f"feature sizes {[out[i] for i in rest]} do not match {feat}")
        for i in unknown:
            out[i] = feat // known
        return tuple(out)


def _zero_fill(node, ins):
    """ConstantOfShape or Expand that builds an all-zero tensor from run-time shapes."""
    if node.op == "ConstantOfShape":
        v = node.attrs.get("value")
        if v is not None:
            from onnx import numpy_helper
            v = numpy_helper.to_array(v)
        return isinstance(ins[0], Dims) and (v is None or not np.any(v))
    return isinstance(ins[0], np.ndarray) and not np.any(ins[0]) and isinstance(ins[1], Dims)
