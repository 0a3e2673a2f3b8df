"""lower/lowering.py: graph -> stream plan: which input is time, one pass over the nodes giving each value its meaning (dispatched by what its inputs are), the plan built at the end."""

import numpy as np

from ..errors import InvalidModel, NotStreamable
from ..graph import node_failed
from ..onnx_io import forms
from ..onnx_io.gru_spec import WEIGHT_INPUTS
from ..onnx_io.ops import OpError, apply
from ..onnx_io.shapes import Dims
from . import frames, plumbing, states
from .steps import Fallback, Lowering, build_plan
from .values import LIVE, Constant, Feed, Mismatch, Seq, State, Tiled, Zeros, c_layout, width

PASS_OPS = ("Identity", "Dropout")


def lower(graph, layers, kernel):
    """Lower a graph for streaming, or raise NotStreamable naming the node that needs the whole
    sequence.  layers: {GRU node name: its _core.Gru}."""
    for node in graph.nodes:
        if node.op == "Loop":
            note = next((str(n) for n in graph.notes if n.kind == "loop" and n.node == node.name), "")
            raise NotStreamable(f"node {node.name!r} (Loop): a Loop that is not a GRU cell runs over "
                                f"the whole sequence, iteration by iteration; it cannot stream ({note})")
    grus = [n for n in graph.nodes if n.op == "GRU"]
    if not grus:
        raise NotStreamable("the model has no GRU node: nothing to stream")
    for node in grus:
        if node.spec.fed:
            role = node.spec.fed[0]
            raise NotStreamable(
                f"GRU node {node.name!r}: its input {role} ({node.inputs[WEIGHT_INPUTS[role]]!r}) "
                "is fed at run time; a stream packs its GRUs' weights once, when it is made, and "
                "its calls take no weights")
        if node.spec.direction != 0:
            which = "bidirectional" if node.spec.direction == 2 else "reverse"
            raise NotStreamable(f"{which} GRU node {node.name!r} needs the whole sequence")
    inputs = {a.name: a for a in graph.inputs}
    sources = graph.feeds_of.get(grus[0].inputs[0], set()) & inputs.keys()
    if not sources:
        raise NotStreamable(f"GRU node {grus[0].name!r}: its input X depends on no graph input; "
                            "a stream has nothing to take frames of")
    # the first of them in input order takes step()'s frames; the others are fed beside it
    time_input, *others = [a.name for a in graph.inputs if a.name in sources]
    shape = inputs[time_input].shape
    if shape is None and grus[0].inputs[0] == time_input:
        shape = [None, None, grus[0].spec.input_size]  # undeclared, but a GRU's X has rank 3
    if others and _one_frame(graph, grus[0], inputs[time_input]):
        raise NotStreamable(f"GRU node {grus[0].name!r}: its input X depends on "
                            f"{[time_input] + others}; a single-step model streams one input")
    if _one_frame(graph, grus[0], inputs[time_input]):
        # token ids [N] (one id per slot and frame), or one frame [N, F]
        F = shape[1] if len(shape) > 1 and isinstance(shape[1], int) and shape[1] > 0 else None
        try:
            return Lowerer(graph, layers, kernel, time_input,
                           ("N",) if len(shape) == 1 else ("N", F)).run()
        except Mismatch as e:  # (no other guess to try: the graph adds the time axis itself)
            raise NotStreamable(str(e)) from None
    if shape is None or len(shape) < 2:
        raise NotStreamable(f"input {time_input!r}: a stream needs a declared rank >= 2 (time "
                            "and batch), or one frame of a single-step model ([N, F], or token "
                            "ids [N])")
    first, refused = None, (-1, None)
    for t_axis, n_axis in _time_batch_guesses(shape):
        axes = [d if isinstance(d, int) and d > 0 else None for d in shape]
        static = {"T": axes[t_axis], "N": axes[n_axis]}  # sizes the input declares fixed
        axes[t_axis], axes[n_axis] = "T", "N"
        lw = None
        try:
            named = [a.name for a in graph.inputs if a.name != time_input and a.name not in others
                     and isinstance(shape[t_axis], str) and (a.shape or []).count(shape[t_axis]) == 1]
            extra = {name: _beside_axes(inputs[name], shape[t_axis], n_axis)
                     for name in others + named}
            lw = Lowerer(graph, layers, kernel, time_input, tuple(axes), static, extra)
            return lw.run()
        except Mismatch as e:
            first = first or e
        except NotStreamable as e:
            # a guess of the wrong axes may fail anywhere: the next is tried, and the reason
            # given is that of the guess that followed the graph furthest
            reached = -1 if lw is None else lw.reached
            if reached > refused[0]:
                refused = (reached, e)
    if refused[1] is not None:
        raise refused[1]
    raise NotStreamable(str(first))


def _time_batch_guesses(shape):
    """(time axis, batch axis) guesses for the time input: [T, N, ...], [N, T, ...], then, for
    tensors such as [N, C, T, F], each later axis the input leaves unsized with batch on axis
    0; those whose time axis is unsized and whose batch axis is unsized or 1 first."""
    def unsized(d):
        return not (isinstance(d, int) and d > 0)

    guesses = [(0, 1), (1, 0)] + [(a, 0) for a in range(2, len(shape)) if unsized(shape[a])]
    return sorted(guesses, key=lambda g: not (unsized(shape[g[0]]) and (
        unsized(shape[g[1]]) or shape[g[1]] == 1)))


def _beside_axes(arg, t_dim, n_axis):
    """The axes of an input fed frames beside the time input (one the GRUs read, or one that
    names the time input's time axis): its time axis is the one named as the time input's
    (the same dim_param), batch on the time input's batch axis."""
    shape = arg.shape or []
    named = [i for i, d in enumerate(shape) if isinstance(d, str) and d == t_dim]
    if not isinstance(t_dim, str) or len(named) != 1 or named[0] == n_axis or len(shape) <= n_axis:
        raise Mismatch(
            f"input {arg.name!r} also feeds the GRUs, beside the time input; a stream takes its "
            f"frames too when it names the time axis as the time input does (one axis "
            f"{t_dim!r}), but it declares {shape or 'no shape'}")
    axes = [d if isinstance(d, int) and d > 0 else None for d in shape]
    axes[named[0]], axes[n_axis] = "T", "N"
    return tuple(axes)


def _one_frame(graph, gru, arg):
    """Whether the time input is one frame, [N, F] floats or token ids [N], and the graph makes
    the time axis itself: the first GRU's X is Unsqueeze(., axis 0) of a value computed from it
    (rewrite/cells.py writes single-step cell models so; a decoder step embeds its token first)."""
    ids = arg.type in ("tensor(int64)", "tensor(int32)")
    if arg.shape is None or not (arg.type == "tensor(float)" and len(arg.shape) == 2
                                 or ids and len(arg.shape) in (1, 2)):
        return False
    node = next((n for n in graph.nodes if gru.inputs[0] in n.outputs), None)
    if node is None or node.op != "Unsqueeze":
        return False
    ins = [graph.constants.get(v, forms.UNKNOWN) if v else None for v in node.inputs]
    return forms.list_arg("Unsqueeze", node.attrs, ins, graph.opset) == [0]


class Lowerer:
    """One pass over the nodes in order, giving each value an abstract meaning and the plan its
    steps.  The rooms beside this one (plumbing, states, frames, reshape) read and extend it."""

    def __init__(self, graph, layers, kernel, time_input, in_axes, static=None, extra=None):
        self.g, self.layers, self.kernel = graph, layers, kernel
        self.reached = -1  # the index of the node being read (how far the pass got)
        self.low = Lowering(time_input, in_axes)
        self.low.time_inputs.update(extra or {})
        # time and batch sizes the time input declares fixed; a Reshape whose target only
        # matches through them (read as that axis) is followed in C only: see self.pinned
        self.static = {a: d for a, d in (static or {}).items() if d}
        self.pinned = None
        in_type = next(a for a in graph.inputs if a.name == time_input).type
        ids = in_type in ("tensor(int64)", "tensor(int32)")
        rows = c_layout(in_axes) and None not in in_axes and (in_type == "tensor(float)" or ids)
        self.val = {time_input: Seq(in_axes, 0 if rows else None, ids=ids)}
        self.low.in_ids = ids
        if self.val[time_input].buf is None:
            self.python(None, "input", f"frames of {time_input!r} are not float rows [N, features]")
        for a in graph.inputs:
            if a.name in (extra or {}):
                self.val[a.name] = Seq(extra[a.name], None)
                self.python(None, "input", f"frames of {a.name!r} are fed beside those of "
                            f"{time_input!r} (the C plan takes one input)")
            elif a.name != time_input:
                self.val[a.name] = Feed(a.name)
        for name in graph.overridable:
            self.val[name] = Feed(name)
        self.consumers = {}
        for node in graph.nodes:
            for v in node.inputs:
                self.consumers[v] = self.consumers.get(v, 0) + 1

    # ------------------------------------------------------------------ what the rooms use
    def python(self, node, op, why):
        """Record a node (or the input, an output) the C plan lacks: the stream takes the
        Python path."""
        self.low.not_lowered.append(Fallback(node.name if node else None, node.op if node else op, why))

    def emit(self, step, axes, last=False):
        """Append a typed step; the Seq of its output buffer."""
        self.low.steps.append(step)
        return Seq(axes, len(self.low.steps), last=last)

    def pin(self, why):
        """A Reshape matched through a fixed size: the stream follows it in C (the plan is row-wise),
        for chunks of any length; the batch size stays the declared one (sess.stream checks)."""
        self.pinned = self.pinned or why
        self.low.batch = self.static.get("N")

    def compute(self, node, ins):
        """The outputs of a node whose inputs are all known here (constants)."""
        try:
            return apply(node.op, ins, node.attrs, self.g.opset)
        except OpError as e:
            raise NotStreamable(str(node_failed(node, ins, e, load=False))) from None

    def get(self, v, node):
        if not v:
            return None
        if v in self.val:
            return self.val[v]
        if v in self.g.constants:
            return self.g.constants[v]
        raise NotStreamable(f"node {node.name!r} ({node.op}): input {v!r} is computed from graph "
                            "inputs in a way streams do not follow")

    # ------------------------------------------------------------------ the pass
    def run(self):
        g, low = self.g, self.low
        for self.reached, node in enumerate(g.nodes):
            ins = [self.get(v, node) for v in node.inputs]
            live = [a for a in ins if isinstance(a, LIVE)]
            if node.op in PASS_OPS and isinstance(ins[0], Feed):
                outs = [ins[0]]
            elif all(isinstance(a, Feed) and a.name in g.overridable for a in live) \
                    and all(v in g.constants for v in node.outputs if v):
                continue  # constants and overridable initializers only (weights): folded at load
            else:
                outs = self.node(node, ins)
            for v, a in zip(node.outputs, outs):
                if v:
                    self.val[v] = a
        for o in g.outputs:
            a = Constant() if o.name in g.constants else self.val.get(o.name, Constant())
            if isinstance(a, Seq) and a.past:
                raise NotStreamable(f"output {o.name!r} holds the frames a causal Pad puts "
                                    "before each chunk")
            if isinstance(a, Seq) and a.buf == 0 and a.axes != low.in_axes:
                self.python(None, "output", f"output {o.name!r} reshapes the input")
            elif isinstance(a, (Zeros, Dims, Feed)) or isinstance(a, np.ndarray) and o.name not in g.constants:
                # (an array known here from declared sizes is not one of the graph's constants,
                # which is all a Stream hands back for an output off the time path)
                self.python(None, "output", f"output {o.name!r} is not computed by the plan")
            low.outputs[o.name] = a
        head = low.outputs[g.outputs[0].name]
        if not (isinstance(head, Seq) and head.buf != 0 or isinstance(head, State) and len(head.ks) == 1):
            raise NotStreamable(
                f"the first graph output {g.outputs[0].name!r} is not computed frame by frame "
                "from a GRU, so step() has nothing to return")
        if self.pinned and not low.lowered:
            raise NotStreamable(self.pinned + "; the plan is not all in C, and the Python path "
                                "cannot follow that size through chunks of other sizes")
        if low.lowered:
            try:
                low.plan = build_plan(width(low.in_axes), low.steps, self.kernel)
            except InvalidModel as e:  # C refused a table (NaN or Inf in a head's weights, ...)
                raise NotStreamable(f"the C plan refuses the model: {e}") from None
        return low

    def node(self, node, ins):
        """The abstract outputs of one node, by what its inputs are: a GRU; a Shape; time-path
        values or final states (frames, states); otherwise shapes, run-time constants and
        feeds (plumbing)."""
        if node.op == "GRU":
            return states.gru(self, node, ins)
        if node.op == "Shape":
            return [plumbing.shape(ins[0], node.attrs)]
        if any(isinstance(a, (Seq, State)) for a in ins):
            return self.temporal(node, ins)
        return plumbing.static(self, node, ins)

    def temporal(self, node, ins):
        """A node reading time-path values or final states."""
        op, x, n_out = node.op, ins[0], len(node.outputs)
        if op in PASS_OPS and isinstance(x, (Seq, State)):
            return [x] + [None] * (n_out - 1)
        if any(isinstance(a, State) for a in ins):
            out = states.state_op(self, node, ins)
            return out if isinstance(out, list) else [out]
        if op == "Gather" and isinstance(ins[1], Seq) and not isinstance(x, Seq) \
                and node.attrs.get("axis", 0) == 0:
            if isinstance(x, Feed) and x.rows is None and x.name in self.g.constants:
                x = self.g.constants[x.name]  # an overridable table: packed, as GRU weights are
            return [frames.embed(self, node, x, ins[1])]
        seqs = [a for a in ins if isinstance(a, Seq)]
        # a weight the exporter also listed as an input: packed, as GRU weights are
        ins = [self.g.constants[a.name] if isinstance(a, Feed) and a.whole and a.name in self.g.overridable
               and a.name in self.g.constants else a for a in ins]
        if any(a.ids for a in seqs):
            self.python(node, op, "an op on token ids other than an embedding lookup")
            return [Seq(x.axes if isinstance(x, Seq) else seqs[0].axes, None)] * n_out
        if any(isinstance(a, (Feed, Zeros, Tiled)) for a in ins):
            raise NotStreamable(f"node {node.name!r} ({op}): its inputs are computed at run time in a way "
                                "streams do not follow")
        return frames.frame_op(self, node, ins, seqs)
