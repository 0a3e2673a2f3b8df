"""stream.py: stateful streams of a lowered graph: Stream runs the C plan, PyStream the declared slower path through the interpreter."""
import functools
import threading
from typing import NamedTuple

import numpy as np

from . import _core
from .errors import InvalidArgument
from .feeds import (as_array, check_dtype, check_output_names, check_shape, coerce_feeds,
                    coerce_float)
from .interp import GruState
from .lower.values import MAX_WIDTH, MERGED, Seq, State

# The most slots a stream takes: GRUINFER_MAX_DIM of src_c/gru.h bounds them as it bounds rows.
MAX_BATCH = MAX_WIDTH


class ChunkOut(NamedTuple):
    """Where a chunk's run writes one step's output: frame (t, n) of it at array element
    t * t_stride + n * n_stride (strides in floats)."""
    array: np.ndarray
    t_stride: int
    n_stride: int


def _id_floats(x):
    """Integer token ids as the float32 the C plan reads (C clamps them out of every table's
    range: _core.ids_to_float); other integer dtypes become int64 first, saturated, not wrapped."""
    if x.dtype == np.uint64:
        x = np.minimum(x, np.iinfo(np.int64).max)
    if x.dtype not in (np.int32, np.int64):
        x = x.astype(np.int64)
    return _core.ids_to_float(x)


def _reopen(session, batch_size, args, state):
    stream = session.stream(batch_size, **args)
    stream.set_state(state)
    return stream


def check_batch_size(batch_size):
    """batch_size as an int in [1, MAX_BATCH] (True and other bools are not sizes), or
    InvalidArgument."""
    if isinstance(batch_size, (bool, np.bool_)) or not isinstance(batch_size, (int, np.integer)) \
            or not 1 <= batch_size <= MAX_BATCH:
        raise InvalidArgument(f"batch_size must be an int in [1, {MAX_BATCH}], got {batch_size!r}")
    return int(batch_size)


def check_slots(slots, batch_size):
    """slots (None: all, an int, or a 1-D sequence of ints) as int64 indices of a stream of
    batch_size slots, each checked; None stays None."""
    if slots is None:
        return None
    idx = as_array(slots, "slots")
    if idx.ndim > 1 or (idx.size and idx.dtype.kind not in "iu"):
        raise InvalidArgument(f"slots must be an int or a list of slot indices, got {slots!r}")
    idx = idx.reshape(-1)
    bad = idx[(idx < 0) | (idx >= batch_size)]  # before int64 could wrap a uint64
    if bad.size:
        raise InvalidArgument(
            f"slot {int(bad[0])} is out of range for a stream of batch_size {batch_size}")
    return idx.astype(np.int64)


def _frame_shape(axes, n):
    """Shape of one frame of a value: its axes with time removed and batch set to n (a merged
    time-and-batch row axis holds n rows per frame)."""
    return tuple(n if a == "N" or a in MERGED else a for a in axes if a != "T")


def _split_rows(axes):
    """axes with a merged row axis ("NT", "TN") written as its two axes."""
    return tuple(b for a in axes for b in (tuple(a) if a in MERGED else (a,)))


def _sizes(axes, T, N):
    return [T * N if a in MERGED else T if a == "T" else N if a == "N" else a for a in axes]


def one_thread(method):
    """A stream call that refuses (InvalidArgument, nothing changed) while another thread's call
    is using the stream, instead of both working on one state."""
    @functools.wraps(method)
    def call(self, *args, **kwargs):
        self._claim()
        try:
            return method(self, *args, **kwargs)
        finally:
            self._release()
    return call


class Forkable:
    """What every stream shares to be copied and pickled: copy.copy forks it (a new stream of
    the same model and batch size in this one's state, independent afterwards, the weights
    shared); a pickle carries its session, batch size and state, so unpickling loads the model
    again (once per pickle however many of its streams it holds).  A stream gives _twin() (a
    fresh stream like it) and, when sess.stream() needs them, _stream_args()."""
    session = None  # the InferenceSession that made the stream: what a pickled stream reloads

    def _stream_args(self):
        return {}

    def __copy__(self):
        twin = self._twin()
        twin.session = self.session
        twin.set_state(self.get_state())
        return twin

    def __deepcopy__(self, memo):
        return self.__copy__()

    def __reduce__(self):
        if self.session is None:
            raise InvalidArgument("only a stream from InferenceSession.stream() pickles")
        return (_reopen, (self.session, self.batch_size, self._stream_args(), self.get_state()))


class _StreamBase(Forkable):
    """What both streams share: feeds checked, states by GRU node name, slots reset."""

    def _bind(self, interp, low, cast_feeds, batch_size):
        self._interp, self._graph, self._low = interp, interp.graph, low
        self._cast = cast_feeds
        for i, h0 in low.initial.items():
            if h0.shape[0] not in (1, batch_size):
                raise InvalidArgument(
                    f"GRU node {low.grus[i].name!r}: its constant initial_h holds "
                    f"{h0.shape[0]} rows, a batch size fixed at export: a stream of this model "
                    f"needs batch_size={h0.shape[0]}, not {batch_size}")

        self._declared = {a.name: a for a in self._graph.inputs}
        self._declared.update(self._graph.overridable)

    def _twin(self):
        return type(self)(self._interp, self._low, self.batch_size, self._cast)

    @property
    def input_name(self):
        """The graph input that carries the frames."""
        return self._low.time_input

    def _check_feeds(self, output_names, input_feed):
        graph, low, N = self._graph, self._low, self.batch_size
        names = check_output_names([o.name for o in graph.outputs], output_names)
        feeds = coerce_feeds(self._declared, [a.name for a in graph.inputs], input_feed,
                             required=False, where="stream feed", check_dims=False,
                             cast=self._cast, loose={low.time_input} if low.in_ids else ())
        for name in low.lens_inputs & feeds.keys():
            raise InvalidArgument(
                f"input {name!r} is a sequence_lens: streams advance every slot by every frame, "
                "so it cannot be fed to a stream")
        for name in (set(graph.overridable) - low.state_inputs.keys()) & feeds.keys():
            raise InvalidArgument(
                f"input {name!r} is a weight, packed when the stream was made: it cannot be "
                "fed to a stream (sess.run accepts it)")
        if low.time_input not in feeds:
            raise InvalidArgument(f"missing input {low.time_input!r}")
        x, what = feeds[low.time_input], f"input {low.time_input!r}"
        shape = [N if a == "N" else None if a == "T" else a for a in low.in_axes]
        if low.in_ids:
            x = self._check_ids(x, what)
        if x.dtype.kind == "f":
            x = coerce_float(x, what, shape)
        else:
            check_shape(x, what, shape)
        if low.frames(x) < 1:
            raise InvalidArgument(f"{what}: a chunk needs at least one frame")
        feeds[low.time_input] = x
        for name, axes in low.time_inputs.items():
            if name == low.time_input:
                continue
            if name not in feeds:
                raise InvalidArgument(f"missing input {name!r} (frames of it come with those of "
                                      f"{low.time_input!r})")
            y = self._float(feeds[name], f"input {name!r}",
                            [N if a == "N" else low.frames(x) if a == "T" else a for a in axes])
            feeds[name] = y
        return names, feeds

    def _check_ids(self, x, what):
        """Token ids as a stream takes them: an integer array of any width, or float32 (the
        C plan's own form); float64 only with cast_feeds."""
        if x.dtype.kind in "iu" or x.dtype == np.float32:
            return x
        if x.dtype.kind == "f" and self._cast:
            return x.astype(np.float32)
        raise InvalidArgument(f"{what}: expected token ids (an integer array, or float32), got "
                              f"dtype {x.dtype}")

    def _float(self, x, what, shape):
        """A float32 feed of a stream (frames, states): another floating dtype only with
        cast_feeds, as in sess.run."""
        return coerce_float(check_dtype(x, what, "tensor(float)", self._cast), what, shape)

    def _state_shape(self, name):
        """The shape a feed of state input `name` has: [N, H] when the graph unsqueezes it into
        initial_h, else [rows, N, H] ([N, rows, H] with layout 1) with the rows it declares
        (None when it declares none: at least one more than the highest row a GRU reads)."""
        uses, N = self._low.state_inputs[name], self.batch_size
        H = self._low.grus[uses[0].gru].hidden
        if uses[0].row is None:
            return [N, H]
        ax, declared = 1 if uses[0].layout else 0, self._declared[name].shape
        rows = declared[ax] if declared and len(declared) == 3 and isinstance(declared[ax], int) \
            and declared[ax] > 0 else None
        return [N, rows, H] if ax else [rows, N, H]

    def _state_rows(self, feeds):
        """{GRU index: [N, H] state} set by state-input feeds."""
        low, N, out = self._low, self.batch_size, {}
        for name, uses in low.state_inputs.items():
            if name not in feeds:
                continue
            h = coerce_float(feeds[name], f"input {name!r}", self._state_shape(name))
            for use in uses:
                H, row = low.grus[use.gru].hidden, use.row
                if row is None:  # an [N, H] input the graph unsqueezes into initial_h
                    rows = h
                elif h.shape[1 if use.layout else 0] > row:
                    rows = h[:, row] if use.layout else h[row]
                else:
                    rows = None
                if rows is None or rows.shape != (N, H):
                    raise InvalidArgument(
                        f"input {name!r}: expected an initial state with row {row} of shape "
                        f"[{N}, {H}] on axis {1 if use.layout else 0}, got {list(h.shape)}")
                if not np.isfinite(rows).all():
                    raise InvalidArgument(f"input {name!r} holds NaN or Inf")
                out[use.gru] = np.ascontiguousarray(rows)
        return out

    @one_thread
    def get_state(self):
        """{GRU node name: array [batch_size, hidden_size]}: a copy of every recurrent state."""
        return {g.name: self._get(i) for i, g in enumerate(self._low.grus)}

    @one_thread
    def set_state(self, state):
        """Set states from a dict like get_state() returns (a subset of nodes is allowed).
        Everything is checked before anything is written."""
        if not isinstance(state, dict):
            raise InvalidArgument("state must be a dict {GRU node name: array}")
        index = {g.name: i for i, g in enumerate(self._low.grus)}
        checked = []
        for name, h in state.items():
            if name not in index:
                raise InvalidArgument(
                    f"state for {name!r}: no such GRU node in the stream; nodes are "
                    + ", ".join(map(repr, index)))
            i = index[name]
            h = self._float(h, f"state for GRU node {name!r}", [self.batch_size, self._low.grus[i].hidden])
            if not np.isfinite(h).all():
                raise InvalidArgument(f"state for GRU node {name!r} holds NaN or Inf")
            checked.append((i, h))
        for i, h in checked:
            self._set(i, h)

    def _slots(self, slots):
        return check_slots(slots, self.batch_size)


class Stream(_StreamBase, _core.StreamCore):
    """batch_size independent streams (slots) of one model, advanced together by the C plan.

    State lives in the engine: run() and step() carry it from call to call.
    A failed call raises and leaves every slot's state as it was.  A stream is
    for one thread at a time; make one stream per thread (the session itself is
    shared safely): a call made while another thread's call is using the stream
    raises InvalidArgument and changes nothing.

    step(x, out=None): x is one frame of the model input (the input with its
    time axis removed, e.g. [batch_size, input_size]); returns the first graph
    output for that frame with the time axis removed (written into `out`, a
    float32 C-contiguous array of that shape, when given).  One call into C, no
    allocation when `out` is given (and, for a model taking token ids, when x
    is float32; int ids are converted).  When that output is computed from a
    GRU's final state (e.g. Linear(hn[-1])), step returns its value after this
    frame.
    """
    lowered = True

    def __new__(cls, interp, low, batch_size, cast_feeds=False):
        check_batch_size(batch_size)
        head = low.outputs[interp.graph.outputs[0].name]
        step_out = head.buf - 1 if isinstance(head, Seq) else low.grus[head.ks[0]].step
        return super().__new__(cls, low.plan, batch_size, step_out,
                               _frame_shape(low.in_axes, batch_size),
                               _frame_shape(head.axes, batch_size), interp.check_finite)

    def __init__(self, interp, low, batch_size, cast_feeds=False):
        self._bind(interp, low, cast_feeds, batch_size)
        self.ids_input = bool(low.in_ids)
        self.reset()

    def _coerce_frame(self, x):
        """step()'s slow path: a frame converted to float32 C-contiguous, or InvalidArgument."""
        if not self._low.in_ids:
            return self._float(x, "step input", self.frame_in_shape)
        x = self._check_ids(as_array(x, "step input"), "step input")
        return coerce_float(_id_floats(x) if x.dtype.kind in "iu" else x, "step input",
                            self.frame_in_shape)

    def _get(self, i):
        return self._get_state(self._low.grus[i].step, self._low.grus[i].hidden)

    def _set(self, i, h):
        self._set_state(self._low.grus[i].step, h)

    @one_thread
    def run(self, output_names, input_feed):
        """Advance every slot by a chunk of k >= 1 frames given as in sess.run; state carries over.

        Inputs that only set initial states may be omitted; when given they set
        the state before the chunk.  Returns the chunk's outputs (Y_h-like
        outputs, and values computed from them such as a Dense over the final
        state: their value after the chunk's last frame, i.e. what sess.run
        gives over every frame streamed so far)."""
        low, N = self._low, self.batch_size
        names, feeds = self._check_feeds(output_names, input_feed)
        x = feeds[low.time_input]
        if low.in_ids:
            x = coerce_float(_id_floats(x) if x.dtype.kind in "iu" else x,
                             f"input {low.time_input!r}")
        n, T = low.in_axes.index("N"), low.frames(x)
        x_st = x.strides[low.in_axes.index("T")] // 4 if "T" in low.in_axes else 0
        new_states = self._state_rows(feeds)
        outs, arrays = {}, {}
        wanted = [low.outputs[name] for name in names]
        # Per-frame outputs first: a value from final states whose buffer is also wanted whole
        # is that array's last frame.
        for a in sorted((a for a in wanted if isinstance(a, Seq) and a.buf), key=lambda a: a.last):
            if a.buf - 1 in outs:
                continue
            axes = _split_rows(a.axes)  # merged rows: filled as [N, T, ...] or [T, N, ...]
            arr = np.empty(_sizes(axes, T, N), np.float32)
            # a final-state value: every frame writes the same place, the chunk's last one stays
            st = 0 if a.last or "T" not in axes else arr.strides[axes.index("T")] // 4
            arrays[a.buf] = (arr, axes)
            outs[a.buf - 1] = ChunkOut(arr, st, arr.strides[axes.index("N")] // 4)
        saved = {i: self._get(i) for i in new_states}
        try:
            for i, h in new_states.items():
                self._set(i, h)
            self.run_chunk(x, T, x_st, x.strides[n] // 4, outs, f"input {low.time_input!r}")
        except BaseException:
            for i, h in saved.items():
                self._set(i, h)
            raise
        results, given = [], set()
        for name in names:
            a = low.outputs[name]
            if isinstance(a, Seq) and a.buf:
                arr, axes = arrays[a.buf]
                want = _split_rows(a.axes)
                r = arr if axes == want else _relayout(arr, axes, want, T, N)
                if want != a.axes:  # merged rows: [T * N, ...] or [N * T, ...]
                    r = r.reshape(_sizes(a.axes, T, N))
            elif isinstance(a, Seq):
                r = np.array(feeds[low.time_input])
            elif isinstance(a, State):
                r = _arrange(np.stack([self._get(i) for i in a.ks]), a.axes)
            else:
                r = np.array(self._graph.constants[name])
            base = r if r.base is None else r.base  # views of one chunk array are that array
            results.append(r.copy() if id(base) in given else r)
            given.add(id(base))
        return results

    @one_thread
    def reset(self, slots=None):
        """Put the given slots (all when None) back to their initial state; others are untouched."""
        idx = self._slots(slots)
        if idx is not None and idx.size == 0:
            return
        self._reset(idx)
        rows = range(self.batch_size) if idx is None else idx
        for i, h0 in self._low.initial.items():
            for r in rows:
                self._set_slot_state(self._low.grus[i].step, int(r),
                                     np.ascontiguousarray(h0[r if h0.shape[0] > 1 else 0]))


def _relayout(arr, src, dst, T, N):
    """One plan buffer's chunk array laid out along src, as another value of the same buffer
    with axes dst: the last frame when dst has no time axis; time/batch order and size-1 axes
    as dst has them (feature axes are the same rows in both)."""
    if "T" in src and "T" not in dst:
        arr, src = np.take(arr, T - 1, axis=src.index("T")), tuple(a for a in src if a != "T")
    s_tn, d_tn = [a for a in src if a in ("T", "N")], [a for a in dst if a in ("T", "N")]
    arr = arr.reshape([T if a == "T" else N for a in s_tn] + [-1])
    arr = arr.transpose([s_tn.index(a) for a in d_tn] + [len(s_tn)])
    return np.ascontiguousarray(arr).reshape([T if a == "T" else N if a == "N" else a for a in dst])


def _arrange(h, axes):
    """Stacked states h [L, N, H] laid out along axes ("L", "N", the hidden size, 1s)."""
    order = [a for a in axes if a in ("L", "N") or (a != 1 and a not in ("T",))]
    canon = ["L", "N", "H"]
    sym = ["H" if a not in ("L", "N") else a for a in order]
    if "L" not in sym:
        h, canon = h[0], canon[1:]
    if "H" not in sym:  # hidden size 1
        h, canon = h[..., 0], canon[:-1]
    h = h.transpose([canon.index(s) for s in sym])
    return np.ascontiguousarray(h).reshape([h.shape[sym.index("L")] if a == "L" else
                                            h.shape[sym.index("N")] if a == "N" else
                                            1 if a == 1 else h.shape[sym.index("H")] for a in axes])


class PyLocked:
    """The in-use flag of a stream written in Python: as StreamCore._claim, a lock (self._busy,
    made by the stream's __init__) taken without waiting, so two threads cannot both pass."""

    def _claim(self):
        if not self._busy.acquire(blocking=False):
            raise InvalidArgument(_core.IN_USE)

    def _release(self):
        self._busy.release()


class PyStream(PyLocked, _StreamBase):
    """A stream on the declared slower path (stream.lowered is False, sess.plan_info() says why):
    each chunk runs through the graph interpreter with GRU states carried in and out.
    Same API as Stream; causal by construction (lowering checked every op on the time path)."""
    lowered = False

    def __init__(self, interp, low, batch_size, cast_feeds=False):
        check_batch_size(batch_size)
        self._bind(interp, low, cast_feeds, batch_size)
        self.batch_size = batch_size
        self.frame_in_shape = _frame_shape(low.in_axes, batch_size)
        self._states, self._past = {}, {}
        self._busy = threading.Lock()
        self.reset()

    def _past_shape(self, name):
        carry = self._low.carries[name]
        return tuple(carry.frames if a == "T" else self.batch_size if a == "N" else a
                     for a in carry.axes)

    def _get(self, i):
        low = self._low
        st = self._states[low.grus[i].name]
        base = low.initial.get(i, np.zeros((1, st.h.shape[1]), np.float32))
        return np.where(st.fresh[:, None], base, st.h).astype(np.float32)

    def _set(self, i, h):
        self._states[self._low.grus[i].name] = GruState(np.array(h, np.float32),
                                                        np.zeros(self.batch_size, bool))

    @one_thread
    def reset(self, slots=None):
        idx = self._slots(slots)
        for g in self._low.grus:
            st = self._states.get(g.name)
            h = st.h if st else np.zeros((self.batch_size, g.hidden), np.float32)
            fresh = np.ones(self.batch_size, bool) if idx is None or st is None else st.fresh.copy()
            if idx is not None:
                fresh[idx] = True
            self._states[g.name] = GruState(h, fresh)
        for name, carry in self._low.carries.items():
            past = np.full(self._past_shape(name), carry.fill, np.float32)
            if idx is not None and name in self._past:  # (a fresh array: a copy may share the old)
                keep = np.ones(self.batch_size, bool)
                keep[idx] = False
                n = carry.axes.index("N")
                sel = (slice(None),) * n + (keep,)
                past[sel] = self._past[name][sel]
            self._past[name] = past

    @one_thread
    def get_state(self):
        """{GRU node name: [batch_size, hidden_size]} and, for each causal Pad or Conv over
        time, {its node name: the past frames it carries}: copies."""
        out = {g.name: self._get(i) for i, g in enumerate(self._low.grus)}
        out.update((name, past.copy()) for name, past in self._past.items())
        return out

    @one_thread
    def set_state(self, state):
        """As Stream.set_state; carried frames (get_state's other entries) too.  Everything is
        checked before anything is written."""
        if not isinstance(state, dict):
            raise InvalidArgument("state must be a dict {GRU node name: array}")
        past = {}
        for name in state.keys() & self._past.keys():
            a = self._float(state[name], f"state for node {name!r} (its past frames)",
                            list(self._past_shape(name)))
            if not np.isfinite(a).all():
                raise InvalidArgument(f"state for node {name!r} holds NaN or Inf")
            past[name] = np.array(a, np.float32)
        _StreamBase.set_state.__wrapped__(self, {k: v for k, v in state.items() if k not in past})
        self._past.update(past)

    @one_thread
    def run(self, output_names, input_feed):
        """As Stream.run, through the graph interpreter."""
        results, self._states, self._past = self._advance(output_names, input_feed)
        return results

    def _advance(self, output_names, input_feed):
        """A chunk's results and the states after it, the stream's own left as they were."""
        graph, low, N = self._graph, self._low, self.batch_size
        names, feeds = self._check_feeds(output_names, input_feed)
        states = dict(self._states)
        for i, h in self._state_rows(feeds).items():
            states[low.grus[i].name] = GruState(h, np.zeros(N, bool))
        for name in low.state_inputs.keys() - feeds.keys() - graph.constants.keys():
            feeds[name] = self._zero_state_feed(name)
        for name in low.lens_inputs:  # every slot advances by every frame
            feeds[name] = np.full(N, low.frames(feeds[low.time_input]), np.int32)
        missing = [a.name for a in graph.inputs if a.name not in feeds]
        if missing:
            raise InvalidArgument("missing input(s) " + ", ".join(repr(m) for m in missing))
        past = dict(self._past)
        values = self._interp.execute(feeds, states, low.reshapes, carries=low.carries, past=past)
        return self._interp.results(names, values, feeds), states, past

    def _zero_state_feed(self, name):
        """An unfed state input: zeros, where fresh (reset) slots start as on the C plan; the
        carried slots do not read it."""
        rows = 1 + max(use.row or 0 for use in self._low.state_inputs[name])
        return np.zeros([rows if d is None else d for d in self._state_shape(name)], np.float32)

    @one_thread
    def step(self, x, out=None):
        """One frame of the input (time axis removed); the first output for it (into `out` when
        given).  A model fed frames of several inputs takes a dict {input name: frame}."""
        low, first = self._low, self._graph.outputs[0].name
        head = low.outputs[first]
        (y,), states, past = self._advance([first], self._one_frame(x))
        if isinstance(head, Seq) and not head.last and "T" in head.axes:
            y = np.squeeze(y, axis=head.axes.index("T"))
        if out is not None and not (isinstance(out, np.ndarray) and out.shape == y.shape
                                    and out.dtype == np.float32 and out.flags.c_contiguous
                                    and out.flags.writeable):
            raise InvalidArgument(
                f"out must be a writeable C-contiguous float32 array of shape {y.shape}")
        self._states, self._past = states, past
        if out is None:
            return y
        out[...] = y
        return out

    def _one_frame(self, x):
        """step()'s frame(s) as the feeds of a one-frame chunk."""
        low = self._low
        if len(low.time_inputs) > 1:
            if not isinstance(x, dict) or x.keys() != low.time_inputs.keys():
                raise InvalidArgument(
                    "this stream takes frames of " + ", ".join(map(repr, low.time_inputs))
                    + ": step() takes a dict {input name: frame}")
            return {name: np.expand_dims(
                self._float(x[name], f"step input {name!r}", _frame_shape(axes, self.batch_size)),
                axes.index("T")) for name, axes in low.time_inputs.items()}
        if low.in_ids:
            x = self._check_ids(as_array(x, "step input"), "step input")
            check_shape(x, "step input", self.frame_in_shape)
        else:
            x = self._float(x, "step input", self.frame_in_shape)
        if "T" in low.in_axes:
            x = np.expand_dims(x, low.in_axes.index("T"))
        return {low.time_input: x}
