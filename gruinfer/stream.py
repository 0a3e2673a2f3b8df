"""stream.py: stateful streaming: which graphs can stream (lowering to a C plan), and the Stream that runs one."""
from dataclasses import dataclass, field

import numpy as np

from . import _core
from .errors import InvalidArgument, NotStreamable
from .validate import coerce_float


@dataclass
class Lowered:
    """A graph as a plan of frame-wise C steps, with where each graph value comes from."""
    plan: object
    time_input: str
    layout: int                                          # of the time input: 0 [T, N, I], 1 [N, T, I]
    input_size: int
    grus: list                                           # plan step k -> (node name, hidden size) or None
    kinds: dict                                          # graph value -> ("seq"|"state", k, layout) | ("x",) | ("const",)
    state_inputs: dict = field(default_factory=dict)     # graph input -> (k, layout)
    lens_inputs: set = field(default_factory=set)        # graph inputs that are sequence_lens
    weight_inputs: set = field(default_factory=set)      # overridable initializers packed as weights
    initial: dict = field(default_factory=dict)          # k -> constant initial_h [1 or N, H]
    step_out: int = 0

    def frame_shape(self, kind, n):
        """Shape of one frame of a "seq" or "state" value (time axis removed)."""
        H = self.grus[kind[1]][1]
        return (n, 1, H) if kind[2] else (1, n, H)


def lower_for_stream(graph, kernel):
    """Lower a graph to a plan, or raise NotStreamable saying what needs the whole sequence."""
    kinds = {name: ("const",) for name in graph.constants}
    inputs = {a.name for a in graph.inputs} | set(graph.overridable)
    time_input, layout, input_size = None, 0, 0
    steps, grus = [], []
    state_inputs, lens_inputs, weight_inputs, initial = {}, set(), set(), {}
    for node in graph.nodes:
        p = node.proto
        if node.op == "Constant":
            continue
        if node.op == "Identity":
            if p.input[0] in kinds:
                kinds[p.output[0]] = kinds[p.input[0]]
            continue
        spec, ins = node.spec, list(p.input) + [""] * 6
        if spec.direction != 0:
            which = "bidirectional" if spec.direction == 2 else "reverse"
            raise NotStreamable(f"{which} GRU node {node.name!r} needs the whole sequence")
        x = graph.alias.get(ins[0], ins[0])
        if x not in inputs:
            raise NotStreamable(
                f"GRU node {node.name!r}: input X ({ins[0]!r}) is computed inside the graph; "
                "streams run GRU nodes that read a model input")
        if time_input is None:
            time_input, layout, input_size = x, spec.layout, spec.input_size
        elif x != time_input or spec.layout != layout:
            raise NotStreamable(
                f"GRU node {node.name!r} reads {x!r} with layout {spec.layout}, but the stream "
                f"input is {time_input!r} with layout {layout}: a stream takes one frame input")
        weight_inputs.update(graph.alias.get(v, v) for v in ins[1:4]
                             if graph.alias.get(v, v) in graph.overridable)
        k = len(steps)
        steps.append(("gru", 0, node.layer))
        grus.append((node.name, spec.hidden_size))
        if ins[4]:
            if ins[4] not in inputs:
                raise NotStreamable(
                    f"GRU node {node.name!r}: a fixed sequence_lens cannot stream")
            lens_inputs.add(ins[4])
        if ins[5]:
            src = graph.alias.get(ins[5], ins[5])
            if src not in inputs and src not in graph.constants:
                raise NotStreamable(
                    f"GRU node {node.name!r}: initial_h is computed inside the graph")
            if src in inputs:  # a feed sets the state (an overridable initializer is both)
                state_inputs[src] = (k, spec.layout)
            if src in graph.constants:
                h0 = np.asarray(graph.constants[src], np.float32)
                initial[k] = h0[:, 0, :] if spec.layout else h0[0]
        outs = list(p.output) + ["", ""]
        if outs[0]:
            kinds[outs[0]] = ("seq", k, spec.layout)
        if outs[1]:
            kinds[outs[1]] = ("state", k, spec.layout)
    if not steps:
        raise NotStreamable("the model has no GRU node: nothing to stream")
    for o in graph.outputs:
        if graph.alias.get(o.name, o.name) == time_input:
            kinds[o.name] = ("x",)
        elif o.name not in kinds:
            raise NotStreamable(f"graph output {o.name!r} is not computed frame by frame")
    first = kinds[graph.outputs[0].name]
    if first[0] not in ("seq", "state"):
        raise NotStreamable(
            f"the first graph output {graph.outputs[0].name!r} is not a GRU output, "
            "so step() has nothing to return")
    plan = _core.Plan(input_size, steps, kernel)
    return Lowered(plan, time_input, layout, input_size, grus, kinds, state_inputs,
                   lens_inputs, weight_inputs, initial, first[1])


class Stream(_core.StreamCore):
    """batch_size independent streams (slots) of one model, advanced together.

    State lives in the engine: run() and step() carry it from call to call.
    A failed call raises and leaves every slot's state as it was.  A stream is
    for one thread at a time; make one stream per thread (the session itself is
    shared safely).

    step(x, out=None): x is one frame of the model input, shape [batch_size,
    input_size]; returns the first graph output for that frame with the time
    axis removed (written into `out`, a float32 C-contiguous array of that
    shape, when given).  One call into C, no allocation when `out` is given.
    """

    def __new__(cls, session, lowered, batch_size):
        first = lowered.kinds[session._graph.outputs[0].name]
        return super().__new__(cls, lowered.plan, batch_size, lowered.step_out,
                               (batch_size, lowered.input_size),
                               lowered.frame_shape(first, batch_size), session._check_finite)

    def __init__(self, session, lowered, batch_size):
        self._session = session
        self._low = lowered
        for k, h0 in lowered.initial.items():
            if h0.shape[0] not in (1, batch_size):
                raise InvalidArgument(
                    f"GRU node {lowered.grus[k][0]!r}: its constant initial_h holds "
                    f"{h0.shape[0]} rows; a stream of batch_size {batch_size} needs 1 or {batch_size}")
        self.reset()

    @property
    def input_name(self):
        """The graph input that carries the frames."""
        return self._low.time_input

    def run(self, output_names, input_feed):
        """Advance every slot by a chunk of k >= 1 frames given as in sess.run; state carries over.

        Inputs that only set initial states may be omitted; when given they set
        the state before the chunk.  Returns the chunk's outputs (Y_h-like
        outputs: the state after the chunk)."""
        sess, low, N = self._session, self._low, self.batch_size
        names = sess._output_names(output_names)
        feeds = sess._coerce_feeds(input_feed, required=False, where="stream feed",
                                   check_dims=False)
        for name in low.lens_inputs & feeds.keys():
            raise InvalidArgument(
                f"input {name!r} is a sequence_lens: streams advance every slot by every frame, "
                "so it cannot be fed to a stream")
        for name in low.weight_inputs & feeds.keys():
            raise InvalidArgument(
                f"input {name!r} is a GRU weight, packed when the stream was made: it cannot be "
                "fed to a stream (sess.run accepts it)")
        if low.time_input not in feeds:
            raise InvalidArgument(f"missing input {low.time_input!r}")
        x = feeds[low.time_input]
        what = f"input {low.time_input!r}"
        x = coerce_float(x, what, [N, None, low.input_size] if low.layout
                         else [None, N, low.input_size])
        T = x.shape[1] if low.layout else x.shape[0]
        if T < 1:
            raise InvalidArgument(f"{what}: a chunk needs at least one frame")
        x_st, x_sn = (low.input_size, T * low.input_size) if low.layout else (N * low.input_size, low.input_size)
        new_states = {}
        for name, (k, lay) in low.state_inputs.items():
            if name in feeds:
                H = low.grus[k][1]
                h = coerce_float(feeds[name], f"input {name!r}", [N, 1, H] if lay else [1, N, H])
                if not np.isfinite(h).all():
                    raise InvalidArgument(f"input {name!r} holds NaN or Inf")
                new_states[k] = np.ascontiguousarray(h.reshape(N, H))
        results, outs = {}, {}
        for n in names:
            kind = low.kinds[n]
            if kind[0] == "seq" and kind[1] not in outs:
                H = low.grus[kind[1]][1]
                arr = np.empty((N, T, 1, H) if kind[2] else (T, 1, N, H), np.float32)
                outs[kind[1]] = (arr, H, T * H) if kind[2] else (arr, N * H, H)
        saved = {k: self._get_state(k, low.grus[k][1]) for k in new_states}
        try:
            for k, h in new_states.items():
                self._set_state(k, h)
            self.run_chunk(x, T, x_st, x_sn, outs)
        except BaseException:
            for k, h in saved.items():
                self._set_state(k, h)
            raise
        given = set()
        for n in names:
            kind = low.kinds[n]
            if kind[0] == "seq":
                a = outs[kind[1]][0]
            elif kind[0] == "state":
                a = self._get_state(kind[1], low.grus[kind[1]][1]).reshape(
                    low.frame_shape(kind, N))
            elif kind[0] == "x":
                a = x
            else:
                a = np.asarray(sess._graph.constants[n])
            results[n] = a.copy() if id(a) in given or kind[0] in ("x", "const") else a
            given.add(id(a))
        return [results[n] for n in names]

    def get_state(self):
        """{GRU node name: array [batch_size, hidden_size]}: a copy of every recurrent state."""
        return {name: self._get_state(k, H) for k, (name, H) in enumerate(self._low.grus)}

    def set_state(self, state):
        """Set states from a dict like get_state() returns (a subset of nodes is allowed).
        Everything is checked before anything is written."""
        if not isinstance(state, dict):
            raise InvalidArgument("state must be a dict {GRU node name: array}")
        index = {name: (k, H) for k, (name, H) in enumerate(self._low.grus)}
        checked = []
        for name, h in state.items():
            if name not in index:
                raise InvalidArgument(
                    f"state for {name!r}: no such GRU node in the stream; nodes are "
                    + ", ".join(map(repr, index)))
            k, H = index[name]
            h = coerce_float(h, f"state for GRU node {name!r}", [self.batch_size, H])
            if not np.isfinite(h).all():
                raise InvalidArgument(f"state for GRU node {name!r} holds NaN or Inf")
            checked.append((k, h))
        for k, h in checked:
            self._set_state(k, h)

    def reset(self, slots=None):
        """Put the given slots (all when None) back to their initial state; others are untouched."""
        if slots is not None:
            idx = np.asarray(slots)
            if idx.size == 0:
                return
            if idx.dtype.kind not in "iu" or idx.ndim > 1:
                raise InvalidArgument(f"slots must be a list of slot indices, got {slots!r}")
            idx = idx.reshape(-1).astype(np.int64)
            bad = idx[(idx < 0) | (idx >= self.batch_size)]
            if bad.size:
                raise InvalidArgument(
                    f"slot {int(bad[0])} is out of range for a stream of batch_size {self.batch_size}")
            slots = idx
        self._reset(slots)
        rows = range(self.batch_size) if slots is None else slots
        for k, h0 in self._low.initial.items():
            for r in rows:
                self._set_slot_state(k, int(r), np.ascontiguousarray(h0[r if h0.shape[0] > 1 else 0]))
