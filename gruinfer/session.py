"""session.py: InferenceSession, the onnxruntime-compatible entry point: feeds validated, graph run, streams handed out."""
import numpy as np

from . import _core
from .errors import InvalidArgument, KernelUnavailable
from .graph import Graph, build_layer
from .onnx_io.gru_spec import gru_spec, load_model
from .feeds import check_shape, coerce_float, coerce_int32


class InferenceSession:
    """Load an ONNX model and run it, with onnxruntime's calling conventions.

    model: a path (external-data tensors are followed), the model's bytes, or an
    onnx.ModelProto.  sess_options, providers and provider_options are accepted
    for drop-in compatibility with onnxruntime.InferenceSession and ignored.

    threads: threads one call may use (default 1): GRU layers with hidden_size
    >= 512 split each time step's GEMMs and gate math across them, in whole-
    sequence runs and in stream calls of a few million multiply-adds or more
    (the threads are started per call).
    kernel: None (GRUINFER_KERNEL if set, else the best for this CPU), or a
    name from gruinfer.kernel_info()["available"], e.g. "ref".
    check_finite: refuse inputs holding NaN or Inf (InvalidArgument) instead of
    propagating them.
    """

    def __init__(self, model, sess_options=None, providers=None, provider_options=None, *,
                 threads=1, kernel=None, check_finite=True):
        if not isinstance(threads, int) or isinstance(threads, bool) or not 1 <= threads <= 256:
            raise InvalidArgument(f"threads must be an int in [1, 256], got {threads!r}")
        if kernel is not None:
            if kernel not in _core.kernel_names():
                raise KernelUnavailable(
                    f"unknown kernel {kernel!r}; built in: {', '.join(_core.kernel_names())}")
            if not _core.kernel_supported(kernel):
                raise KernelUnavailable(f"kernel {kernel!r} is built in but this CPU cannot run it")
        elif _core.kernel_default() is None:
            import os
            raise KernelUnavailable(
                f"GRUINFER_KERNEL={os.environ.get('GRUINFER_KERNEL')!r} names no kernel this CPU "
                f"runs; built in: {', '.join(_core.kernel_names())}")
        self._threads = threads
        self._kernel = kernel
        self._check_finite = bool(check_finite)
        self._graph = Graph(load_model(model), kernel, threads)
        self._declared = {a.name: a for a in self._graph.inputs}
        self._declared.update(self._graph.overridable)
        self._lowered = None
        self._const_ids = {id(a) for a in self._graph.constants.values()}

    def get_inputs(self):
        """The inputs a feed must give (initializers that are also inputs are left out, as in onnxruntime)."""
        return list(self._graph.inputs)

    def get_outputs(self):
        return list(self._graph.outputs)

    def get_overridable_initializers(self):
        return list(self._graph.overridable.values())

    def get_providers(self):
        return ["CPUExecutionProvider"]

    @property
    def kernel(self):
        """Name of the kernel this session's layers run."""
        for node in self._graph.nodes:
            if node.layer is not None:
                return node.layer.kernel
        return self._kernel or _core.kernel_default()

    def _coerce_feeds(self, input_feed, required=True, where="feed", check_dims=True):
        if not isinstance(input_feed, dict):
            raise InvalidArgument(f"input_feed must be a dict of name -> array, got "
                                  f"{type(input_feed).__name__}")
        feeds = {}
        for name, value in input_feed.items():
            arg = self._declared.get(name)
            if arg is None:
                raise InvalidArgument(
                    f"{where}: {name!r} is not a graph input; inputs are "
                    + ", ".join(repr(a.name) for a in self._graph.inputs))
            what = f"input {name!r}"
            if arg.type == "tensor(int32)":
                arr = coerce_int32(value, what)
            elif arg.type == "tensor(float)":
                arr = coerce_float(value, what)
            else:
                arr = np.asarray(value)
            if arg.shape is not None:
                check_shape(arr, what, [d if check_dims and isinstance(d, int) and d > 0 else None
                                        for d in arg.shape])
            feeds[name] = arr
        if required:
            missing = [a.name for a in self._graph.inputs if a.name not in feeds]
            if missing:
                raise InvalidArgument("missing input(s) " + ", ".join(repr(m) for m in missing))
        return feeds

    def _output_names(self, output_names):
        all_out = [o.name for o in self._graph.outputs]
        if output_names is None:
            return all_out
        if isinstance(output_names, str):
            raise InvalidArgument("output_names must be a list of names or None, not a string")
        names = list(output_names)
        for n in names:
            if n not in all_out:
                raise InvalidArgument(
                    f"{n!r} is not a graph output; outputs are " + ", ".join(map(repr, all_out)))
        return names

    def run(self, output_names, input_feed, run_options=None):
        """Run the whole graph; returns a list of numpy arrays in the order of output_names (None: all)."""
        names = self._output_names(output_names)
        feeds = self._coerce_feeds(input_feed)
        low = self._lowering()
        if self._runs_on_plan(low, feeds):
            from .stream import Stream

            x = feeds[low.time_input]
            return Stream(self, low, x.shape[low.in_axes.index("N")]).run(names, feeds)
        values = self._execute(feeds, reshapes=None if isinstance(low, Exception) else low.reshapes)
        return self._results(names, values, feeds)

    def _runs_on_plan(self, low, feeds):
        """Whether a whole-sequence run goes through the C plan (a fresh stream over the whole
        input): the model is fully lowered and no feed needs the interpreter (sequence_lens,
        an overridden weight)."""
        if isinstance(low, Exception) or not low.lowered or low.lens_inputs & feeds.keys():
            return False
        if (set(self._graph.overridable) - low.state_inputs.keys()) & feeds.keys():
            return False
        x = feeds.get(low.time_input)
        return x is not None and x.ndim == len(low.in_axes) and low.frames(x) >= 1

    def _execute(self, feeds, states=None, reshapes=None):
        """Every graph value for these feeds.  states: {GRU node name: (h [N, H], fresh [N] bool)}
        to start GRUs from (fresh rows keep the graph's own initial_h); replaced by the final states.
        reshapes: see Graph.run_op."""
        values = dict(self._graph.constants)
        values.update(feeds)
        for node in self._graph.nodes:
            if node.op == "GRU":
                self._run_gru(node, values, feeds, states)
            else:
                outs = self._graph.run_op(node, values, reshapes=reshapes)
                for value, a in zip(node.proto.output, outs):
                    if value:
                        values[value] = a
        return values

    def _results(self, names, values, feeds):
        """Every result is its own array: never a feed, a constant, a view or another result."""
        out, given = [], {id(a) for a in feeds.values()} | self._const_ids
        for n in names:
            a = values[n]
            out.append(a.copy() if id(a) in given or not a.flags.owndata else a)
            given.add(id(a))
        return out

    def _run_gru(self, node, values, feeds, states=None):
        spec, ins, layer = node.spec, list(node.proto.input) + [""] * 6, node.layer
        where = f"GRU node {node.name!r}"
        over = self._graph.feeds_of
        if any(over.get(v, set()) & feeds.keys() for v in ins[1:4] if v):
            # A weight initializer overridden by a feed: pack a layer for this call only.
            spec = gru_spec(node.proto, node.name, values)
            layer = build_layer(spec, self._kernel, self._threads)
        D, H, I = spec.num_directions, spec.hidden_size, spec.input_size
        x_shape = ["batch_size", "seq_length", I] if spec.layout else ["seq_length", "batch_size", I]
        X = values[ins[0]]
        X = coerce_float(X, f"{where}: input X ({ins[0]!r})")
        if X.ndim != 3 or X.shape[2] != I or X.shape[0] == 0 or X.shape[1] == 0:
            raise InvalidArgument(
                f"{where}: input X ({ins[0]!r}) must have shape [{', '.join(map(str, x_shape))}] "
                f"with nonzero sizes, got {list(X.shape)}")
        T, N = (X.shape[1], X.shape[0]) if spec.layout else X.shape[:2]
        lens = None
        if ins[4]:
            lens = coerce_int32(values[ins[4]], f"{where}: input sequence_lens ({ins[4]!r})", [N])
            if lens.size and (lens.min() < 0 or lens.max() > T):
                raise InvalidArgument(
                    f"{where}: sequence_lens values must lie in [0, seq_length={T}], "
                    f"got min {lens.min()} and max {lens.max()}")
        h0 = None
        if ins[5]:
            h0 = coerce_float(values[ins[5]], f"{where}: input initial_h ({ins[5]!r})",
                              [N, D, H] if spec.layout else [D, N, H])
        outs = list(node.proto.output) + ["", ""]
        if states is not None and node.name in states:
            h0 = _inject(h0, states[node.name], spec.layout, N, H, where)
        try:
            Y, Yh = layer.run(X, spec.layout, lens, h0, bool(outs[0]),
                              bool(outs[1]) or states is not None, self._check_finite, node.name)
        except InvalidArgument as e:
            if e.status == "nonfinite":
                raise InvalidArgument(f"{where}: input X or initial_h holds NaN or Inf "
                                      "(check_finite=False lets them through)") from None
            raise
        if outs[0]:
            values[outs[0]] = Y
        if outs[1]:
            values[outs[1]] = Yh
        if states is not None:
            states[node.name] = (np.ascontiguousarray(Yh.reshape(N, H)), np.zeros(N, bool))

    def _lowering(self):
        """The stream lowering (cached), or the NotStreamable it raised."""
        from .errors import NotStreamable
        from .lower import lower

        if self._lowered is None:
            try:
                self._lowered = lower(self._graph, self._kernel)
            except NotStreamable as e:
                self._lowered = e
            except Exception as e:  # a graph shape lowering does not know: reported, never hidden
                self._lowered = NotStreamable(f"lowering failed ({type(e).__name__}: {e}); the "
                                              "whole-sequence run does not depend on it")
        return self._lowered

    def plan_info(self):
        """How this model streams: {"streamable", "lowered" (every op in the C plan), "steps"
        (C plan step kinds), "not_lowered" ([(node, op, why)]: what runs on the Python path),
        "reason" (why it cannot stream, or None), "loops" (what became of each Loop: Keras
        GRU loops are lifted into GRU nodes at load), "cells" (GRU cells written as plain ops,
        e.g. nn.GRUCell steps or unrolled loops, lifted into GRU nodes at load)}."""
        low = self._lowering()
        loops, cells = list(self._graph.loop_notes), list(self._graph.cell_notes)
        if isinstance(low, Exception):
            return {"streamable": False, "lowered": False, "steps": [], "not_lowered": [],
                    "reason": str(low), "loops": loops, "cells": cells}
        return {"streamable": True, "lowered": low.lowered,
                "steps": [step[0] for step in low.steps] if low.lowered else [],
                "not_lowered": list(low.not_lowered), "reason": None, "loops": loops,
                "cells": cells}

    def stream(self, batch_size=1):
        """A stream of batch_size independent slots: a Stream over the C plan when the model is
        fully lowered, else a PyStream (stream.lowered False; see plan_info()).  Raises
        NotStreamable for non-causal models."""
        from .stream import PyStream, Stream

        if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise InvalidArgument(f"batch_size must be a positive int, got {batch_size!r}")
        low = self._lowering()
        if isinstance(low, Exception):
            raise type(low)(str(low))
        if low.batch is not None and batch_size != low.batch:
            raise InvalidArgument(f"batch_size must be {low.batch}: the model's input declares that "
                                  "batch size and a Reshape in it relies on it")
        return (Stream if low.lowered else PyStream)(self, low, int(batch_size))


def _inject(h0, state, layout, N, H, where):
    """initial_h for a chunk: the carried state, or the graph's own initial_h (zeros if none) on fresh rows."""
    h, fresh = state
    if h.shape != (N, H):
        raise InvalidArgument(f"{where}: the stream holds states for batch {h.shape[0]}, "
                              f"the chunk has batch {N}")
    base = np.zeros((N, H), np.float32) if h0 is None else (h0[:, 0] if layout else h0[0])
    h = np.where(fresh[:, None], base, h).astype(np.float32)
    return np.ascontiguousarray(h.reshape((N, 1, H) if layout else (1, N, H)))
