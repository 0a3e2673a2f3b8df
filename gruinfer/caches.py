"""caches.py: streams of explicit-cache models (GTCRN's conv/tra/inter caches, a (x, h) -> (y, h') step): the pairs of inputs that come back updated as outputs, found or stated, and CacheStream, which keeps them per slot and runs the graph once per call."""
import threading
from typing import NamedTuple

import numpy as np

from .errors import InvalidArgument, NotStreamable
from .feeds import check_dtype, check_output_names, check_shape, coerce_feeds
from .stream import Forkable, PyLocked, check_batch_size, check_slots, one_thread

# An output `name + suffix` (or `prefix + name`) of an input's shape returns that input updated.
SUFFIXES = ("_out", "_new", "_next", "out", "_o", ".out", "_1")
PREFIXES = ("new_", "next_", "out_")


class CachePair(NamedTuple):
    """Graph input `input` comes back updated as graph output `output`; shape: the cache's
    declared shape (one slot's)."""
    input: str
    output: str
    shape: tuple


def _static(arg):
    return arg.shape is not None and all(isinstance(d, int) and d > 0 for d in arg.shape)


def _same_shape(a, b):
    return a.shape is not None and b.shape is not None and len(a.shape) == len(b.shape) and all(
        not (isinstance(x, int) and isinstance(y, int)) or x == y for x, y in zip(a.shape, b.shape))


def find_cache_pairs(graph, state_map=None):
    """The cache pairs of a graph: from state_map ({input: output}) when given, each checked,
    else found by name (x_cache -> x_cache_out, h -> h_out, ...) and shape.  Each cache needs a
    fixed declared shape (a reset slot starts at zeros of it)."""
    inputs, outputs = {a.name: a for a in graph.inputs}, {a.name: a for a in graph.outputs}
    if state_map is None:
        state_map = {}
        for name, arg in inputs.items():
            hits = [o for o in [name + s for s in SUFFIXES] + [p + name for p in PREFIXES]
                    if o in outputs and outputs[o].type == arg.type and _same_shape(arg, outputs[o])]
            if hits:
                state_map[name] = hits[0]
    elif not isinstance(state_map, dict):
        raise InvalidArgument("state_map must be a dict {cache input: updated output}")
    pairs = []
    for i, o in state_map.items():
        if i not in inputs:
            raise InvalidArgument(f"state_map: {i!r} is not a graph input; inputs are "
                                  + ", ".join(map(repr, inputs)))
        if o not in outputs:
            raise InvalidArgument(f"state_map: {o!r} is not a graph output; outputs are "
                                  + ", ".join(map(repr, outputs)))
        if inputs[i].type != "tensor(float)" or not _same_shape(inputs[i], outputs[o]):
            raise InvalidArgument(f"state_map: input {i!r} ({inputs[i].type} {inputs[i].shape}) "
                                  f"and output {o!r} ({outputs[o].type} {outputs[o].shape}) are "
                                  "not one float cache")
        if not _static(inputs[i]):
            raise InvalidArgument(f"cache input {i!r} declares no fixed shape ({inputs[i].shape}): "
                                  "a stream cannot make its initial zeros")
        pairs.append(CachePair(i, o, tuple(inputs[i].shape)))
    if len({p.output for p in pairs}) != len(pairs):
        raise InvalidArgument("state_map: two caches come back as one output")
    if len(pairs) == len(inputs):
        raise InvalidArgument("every graph input is a cache: a stream needs an input of frames")
    return tuple(pairs)


class CacheStream(PyLocked, Forkable):
    """batch_size independent slots of an explicit-cache model (stream.lowered False: the graph
    runs through the interpreter, once per slot and call; plan_info()["caches"] lists the pairs).

    Feeds and results have the model's own shapes, with slot n at index n of their first axis
    (which the model declares 1 or free: with batch_size 1 they are exactly the model's).  The
    caches live in the stream: get_state()/set_state() give and take them by input name as
    [batch_size, ...] arrays, reset(slots) zeroes them, and a cache fed to run() replaces the
    state before that call.  A refused call raises and leaves every slot as it was."""
    lowered = False

    def __init__(self, interp, pairs, batch_size, cast_feeds=False):
        self.batch_size = check_batch_size(batch_size)
        self._interp, self._graph, self._pairs, self._cast = interp, interp.graph, pairs, cast_feeds
        self._declared = {a.name: a for a in self._graph.inputs}
        self._declared.update(self._graph.overridable)
        cached = {p.input for p in pairs}
        self._frames = [a.name for a in self._graph.inputs if a.name not in cached]
        for a in list(self._graph.inputs) + list(self._graph.outputs) if batch_size > 1 else ():
            lead = a.shape[0] if a.shape else None
            if not a.shape or isinstance(lead, int) and lead != 1:
                raise InvalidArgument(f"batch_size must be 1: {a.name!r} ({a.shape}) has no first "
                                      "axis of size 1 or free to hold the slots")
        self._state = {}
        self._busy = threading.Lock()
        self.reset()

    @property
    def input_name(self):
        """The one input that is not a cache (None when there are several)."""
        return self._frames[0] if len(self._frames) == 1 else None

    def _slot_shape(self, p):
        return (self.batch_size,) + p.shape[1:] if self.batch_size > 1 else p.shape

    @one_thread
    def reset(self, slots=None):
        """Zero the caches of the given slots (all when None)."""
        idx = self._slots(slots)
        for p in self._pairs:
            if idx is None or p.input not in self._state:
                self._state[p.input] = np.zeros(self._slot_shape(p), np.float32)
            else:
                h = self._state[p.input].copy()
                h[idx] = 0.0
                self._state[p.input] = h

    def _slots(self, slots):
        return check_slots(slots, self.batch_size)

    @one_thread
    def get_state(self):
        """{cache input name: a copy of its [batch_size, ...] cache}."""
        return {k: v.copy() for k, v in self._state.items()}

    @one_thread
    def set_state(self, state):
        """Set caches from a dict like get_state() gives (a subset allowed); all checked first."""
        self._state.update(self._checked(state))

    def _checked(self, state):
        """The caches a set_state or a fed cache gives, each checked, as float32 copies."""
        if not isinstance(state, dict):
            raise InvalidArgument("state must be a dict {cache input name: array}")
        shapes = {p.input: self._slot_shape(p) for p in self._pairs}
        new = {}
        for name, h in state.items():
            if name not in shapes:
                raise InvalidArgument(f"state for {name!r}: not a cache of this stream; caches are "
                                      + ", ".join(map(repr, shapes)))
            what = f"state for cache {name!r}"
            h = check_dtype(h, what, "tensor(float)", self._cast)
            check_shape(h, what, list(shapes[name]))
            if not np.isfinite(h).all():
                raise InvalidArgument(f"{what} holds NaN or Inf")
            new[name] = np.array(h, np.float32)
        return new

    @one_thread
    def run(self, output_names, input_feed):
        """One call of the graph per slot with the caches fed from the stream; the caches come
        back updated.  Returns the outputs asked for (None: all), slots along the first axis."""
        names = check_output_names([o.name for o in self._graph.outputs], output_names)
        feeds = coerce_feeds(self._declared, self._frames, input_feed, required=False,
                             where="stream feed", check_dims=False, cast=self._cast)
        for name in set(self._frames) & feeds.keys():
            declared = self._declared[name].shape
            if declared is not None:
                check_shape(feeds[name], f"input {name!r}", [
                    self.batch_size if i == 0 and self.batch_size > 1 else
                    d if isinstance(d, int) and d > 0 else None for i, d in enumerate(declared)])
        missing = [n for n in self._frames if n not in feeds]
        if missing:
            raise InvalidArgument("missing input(s) " + ", ".join(map(repr, missing)))
        given = self._checked({p.input: feeds.pop(p.input) for p in self._pairs
                               if p.input in feeds})
        results, self._state = self._advance(names, feeds, dict(self._state, **given))
        return results

    def _advance(self, names, feeds, caches):
        """Every slot's results and caches after one call from these caches; the stream's own
        left as they were."""
        N = self.batch_size
        for name, x in feeds.items():
            if N > 1 and (x.ndim == 0 or x.shape[0] != N):
                raise InvalidArgument(f"input {name!r}: a stream of batch_size {N} takes its slots "
                                      f"on the first axis, got shape {list(x.shape)}")
        per_slot = []
        for n in range(N):
            f = {k: v[n:n + 1] if N > 1 else v for k, v in feeds.items()}
            f.update({p.input: caches[p.input][n:n + 1] if N > 1 else caches[p.input]
                      for p in self._pairs})
            values = self._interp.execute(f)
            want = names + [p.output for p in self._pairs]
            per_slot.append(self._interp.results(want, values, f))
        joined = [r[0] if N == 1 else np.concatenate([s[k] for s in per_slot])
                  for k, r in enumerate(zip(*per_slot))]
        state = {p.input: np.asarray(joined[len(names) + k], np.float32)
                 for k, p in enumerate(self._pairs)}
        for p in self._pairs:
            if state[p.input].shape != self._slot_shape(p):
                raise NotStreamable(f"output {p.output!r} came back as {list(state[p.input].shape)}, "
                                    f"not its cache {p.input!r}'s shape {list(self._slot_shape(p))}")
        return joined[:len(names)], state

    def step(self, x, out=None):
        """One call with x as the one non-cache input; the first output that is not a cache
        (into `out` when given, a writeable float32 array of its shape)."""
        if self.input_name is None:
            raise InvalidArgument(f"step needs a model with one input besides its caches; this one "
                                  f"takes {', '.join(map(repr, self._frames))}: use run()")
        cached = {p.output for p in self._pairs}
        first = next((o.name for o in self._graph.outputs if o.name not in cached),
                     self._graph.outputs[0].name)
        (y,) = self.run([first], {self.input_name: x})
        if out is None:
            return y
        if not (isinstance(out, np.ndarray) and out.shape == y.shape and out.dtype == y.dtype
                and out.flags.writeable):
            raise InvalidArgument(f"out must be a writeable {y.dtype} array of shape {y.shape}")
        out[...] = y
        return out

    def _twin(self):
        return CacheStream(self._interp, self._pairs, self.batch_size, self._cast)

    def _stream_args(self):
        return {"state_map": {p.input: p.output for p in self._pairs}}
