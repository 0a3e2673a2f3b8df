"""session.py: InferenceSession, the onnxruntime-compatible entry point: a model loaded through the rooms in order, feeds checked, whole runs on the C plan or the interpreter, streams handed out."""
import os
import threading

from . import _core
from .binding import IOBinding
from .caches import CacheStream, find_cache_pairs
from .errors import GruinferError, InvalidArgument, KernelUnavailable, NotStreamable
from .feeds import check_output_names, coerce_feeds
from .graph import build_graph
from .interp import Interpreter, build_layers
from .model_file import is_compiled
from .onnx_io.budget import check_load_budget, loading
from .onnx_io.check import check_model
from .onnx_io.proto import load_model, opset_version
from .options import ModelMetadata, check_run_options, normalize_providers, session_options
from .profile import Profiler
from .stream import PyStream, Stream, check_batch_size


class InferenceSession:
    """Load an ONNX model and run it, with onnxruntime's calling conventions.

    model: a path (external-data tensors are followed), the model's bytes, or an
    onnx.ModelProto.
    sess_options: a gruinfer.SessionOptions (intra_op_num_threads, enable_profiling and
    optimized_model_filepath are read; see its docstring).  providers, provider_options:
    as onnxruntime takes them; gruinfer runs on the CPU, so any other provider named is warned
    about (UserWarning) and skipped, as onnxruntime does with a provider it was not built with.

    threads: threads one call may use (default: sess_options.intra_op_num_threads, else 1):
    GRU layers with hidden_size >= 512 split each time step's GEMMs and gate math across
    them, in whole-sequence runs and in stream calls of a few million multiply-adds or more
    (the threads are started per call); on the node-by-node path NumPy's BLAS is capped at
    as many for the call.
    kernel: None (GRUINFER_KERNEL if set, else the best for this CPU), or a
    name from gruinfer.kernel_info()["available"], e.g. "ref".
    check_finite: refuse inputs holding NaN or Inf (InvalidArgument) instead of
    propagating them.
    cast_feeds: as in onnxruntime, a feed must have the element type its input declares (an
    array of float64 for a tensor(float) input is refused, InvalidArgument); cast_feeds=True
    converts arrays of another floating or integer dtype instead (a copy of the feed per call).
    Lists and scalars are converted either way.  Streams follow the same rule.
    external_data_dir: the folder a model's external-data files are read from (default: the
    model file's folder).  Required for bytes or a ModelProto that keep tensors in external
    files; without it such a model is refused (InvalidModel), never read relative to the
    working directory.  Every file must resolve, symbolic links followed, inside that folder
    and be a regular file.

    A session is shared safely by many threads, and pickles (by its model, external data
    included, and options: the copy loads the model again), so it goes to worker processes;
    it keeps the loaded model for that, one more copy of its weights in memory.

    GRU weights given at run time (W, R or B a graph input, as in ONNX's backend tests, or an
    overridable initializer fed) are checked like feeds (float, exact shapes [D, 3H, I],
    [D, 3H, H], [D, 6H], finite whatever check_finite says) and packed on the interpreter
    path; each GRU node keeps its last packed layer and reuses it while the weights stay the
    same, bit for bit.  Packing costs ~0.13 ms at hidden_size = input_size = 64 and ~3 ms at
    256 (against 0.25 ms and 2.3 ms for a 100-frame, batch-1 run with constant weights);
    a reuse costs a comparison (~0.02 ms, ~0.08 ms).  Such a model cannot stream.
    load_budget: a gruinfer.LoadBudget (None: its defaults): what constant folding at load may
    allocate, how long the lifts may prove, how many iterations a Loop may run.
    """

    def __init__(self, model, sess_options=None, providers=None, provider_options=None, *,
                 threads=None, kernel=None, check_finite=True, cast_feeds=False,
                 external_data_dir=None, load_budget=None):
        self._options = session_options(sess_options)
        self._providers = normalize_providers(providers, provider_options)
        threads = _threads(threads, self._options)
        _check_kernel(kernel)
        budget = check_load_budget(load_budget)
        self._kernel, self._cast = kernel, bool(cast_feeds)
        self._args = dict(threads=threads, kernel=kernel, check_finite=bool(check_finite),
                          cast_feeds=self._cast, load_budget=budget)
        self._lowered = None
        if is_compiled(model):
            from .compiled import Loaded  # a .gruinfer file: no onnx, no interpreter

            done = Loaded(model, kernel, bool(check_finite))
            self._source, self._meta, self._graph = done.source, done.metadata, done.graph
            self._interp, self._lowered = done.interp, done.lowering
        else:
            self._source, self._meta, self._graph, self._interp = _from_onnx(
                model, self._options, external_data_dir, budget, kernel, threads, check_finite)
        self._declared = {a.name: a for a in self._graph.inputs}
        self._declared.update(self._graph.overridable)
        self._profiler = Profiler(self._options.profile_file_prefix) \
            if self._options.enable_profiling else None

    def save(self, path):
        """Write the model's lowered C plan as a compiled .gruinfer file (src_c/MODEL_FORMAT.md)
        that InferenceSession loads without onnx; NotStreamable, naming what stays in Python,
        when the plan is not wholly in C."""
        from .compiled import contents
        from .model_file import encode

        data = self._source if isinstance(self._source, bytes) else encode(contents(self))
        with open(path, "wb") as fh:
            fh.write(data)

    def __reduce__(self):
        """Pickled as its model's bytes and options; unpickling loads the model again (and does
        not write optimized_model_filepath again)."""
        options = session_options(self._options)
        options.optimized_model_filepath = ""
        src = self._source if isinstance(self._source, bytes) else self._source.SerializeToString()
        return (_restore_session, (src, options, self._providers,
                                   self._args))

    def get_inputs(self):
        """The inputs a feed must give (initializers that are also inputs are left out, as in onnxruntime)."""
        return list(self._graph.inputs)

    def get_outputs(self):
        return list(self._graph.outputs)

    def get_overridable_initializers(self):
        return list(self._graph.overridable.values())

    def get_providers(self):
        return list(self._providers)

    def get_provider_options(self):
        """{provider: {option: value}}, as given for the CPU provider (gruinfer reads none)."""
        return {k: dict(v) for k, v in self._providers.items()}

    def set_providers(self, providers=None, provider_options=None):
        """As in onnxruntime: providers other than the CPU's are warned about and skipped."""
        self._providers = normalize_providers(providers, provider_options)

    def disable_fallback(self):
        """Accepted for onnxruntime's API: with only the CPU provider there is nothing to fall
        back from (gruinfer's own slower paths are listed by plan_info()["fallbacks"])."""

    def enable_fallback(self):
        """Accepted for onnxruntime's API; see disable_fallback."""

    def get_session_options(self):
        """A copy of the options the session was made with."""
        return session_options(self._options)

    def get_modelmeta(self):
        """The model's metadata: producer_name, graph_name, domain, description,
        graph_description, version, custom_metadata_map."""
        return self._meta

    def io_binding(self):
        """An IOBinding for run_with_iobinding (inputs and preallocated outputs bound by name)."""
        return IOBinding(self)

    def run_with_iobinding(self, iobinding, run_options=None):
        """Run with the inputs and outputs bound in iobinding; results land in the outputs'
        bound buffers (copied into them) or in iobinding.get_outputs()."""
        if not isinstance(iobinding, IOBinding) or iobinding.session is not self:
            raise InvalidArgument("run_with_iobinding needs an IOBinding from this session's "
                                  "io_binding()")
        iobinding.store(self.run(iobinding.output_names(), iobinding.inputs(), run_options))

    def run_async(self, output_names, input_feed, callback, user_data, run_options=None):
        """Run on another thread; then callback(results, user_data, error) is called there, with
        error "" on success, and on failure results [] and the error's message (as in
        onnxruntime).  Returns at once."""
        if not callable(callback):
            raise InvalidArgument("run_async: callback must be callable")

        def work():
            try:
                results, err = self.run(output_names, input_feed, run_options), ""
            except (GruinferError, MemoryError) as e:
                results, err = [], str(e)
            callback(results, user_data, err)

        threading.Thread(target=work, name="gruinfer-run-async", daemon=True).start()

    def end_profiling(self):
        """Write the profile of the runs so far (sess_options.enable_profiling) as a Chrome
        trace (JSON) named after profile_file_prefix and return its path; profiling stops.
        Returns "" when profiling is off, as onnxruntime does."""
        if self._profiler is None:
            return ""
        path, self._profiler = self._profiler.write(), None
        return path

    def get_profiling_start_time_ns(self):
        """When profiling started (time.perf_counter_ns clock), 0 when it is off."""
        return 0 if self._profiler is None else self._profiler.start_ns

    @property
    def kernel(self):
        """Name of the kernel this session's layers run."""
        for layer in self._interp.layers.values():
            return layer.kernel
        return self._kernel or _core.kernel_default()

    def run(self, output_names, input_feed, run_options=None):
        """Run the whole graph; returns a list of numpy arrays in the order of output_names
        (None or []: every output, as in onnxruntime).  run_options: a gruinfer.RunOptions."""
        check_run_options(run_options)
        names = check_output_names([o.name for o in self._graph.outputs], output_names)
        feeds = coerce_feeds(self._declared, [a.name for a in self._graph.inputs], input_feed,
                             cast=self._cast)
        low = self._lowering()
        prof = self._profiler
        start = prof.now() if prof else 0
        on_plan = self._runs_on_plan(low, feeds)
        if on_plan:
            x = feeds[low.time_input]
            out = Stream(self._interp, low, x.shape[low.in_axes.index("N")],
                         self._cast).run(names, feeds)
        else:
            values = self._interp.execute(
                feeds, reshapes=None if isinstance(low, Exception) else low.reshapes,
                profile=prof)
            out = self._interp.results(names, values, feeds)
        if prof:
            prof.run(start, feeds, on_plan)
        return out

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

    def _lowering(self):
        """The stream lowering (cached), or the NotStreamable it raised."""
        if self._lowered is None:
            from .lower.lowering import lower  # the room loads when a session first lowers

            try:
                self._lowered = lower(self._graph, self._interp.layers, self._kernel)
            except NotStreamable as e:
                self._lowered = e
        return self._lowered

    def _caches(self):
        """The cache pairs found by name and shape ((), also when a cache has no fixed shape)."""
        try:
            return find_cache_pairs(self._graph)
        except InvalidArgument:
            return ()

    def plan_info(self):
        """How this model runs and streams:
          "streamable", "reason" (why it cannot stream, or None);
          "lowered" (every op in the C plan), "steps" (C plan step kinds);
          "not_lowered": Fallback records (node, op, reason) for what streams on the Python path;
          "fallbacks": every slower path this model takes, as Fallback records: Loops that run
          iteration by iteration, whole-sequence runs that go through the interpreter (op
          "run"), then the not_lowered ops (feeds of sequence_lens or of an overridden weight
          also send a whole run to the interpreter, call by call);
          "loops", "cells": what became of each Loop and of the GRU cells written as plain ops
          (lifted into GRU nodes at load, or why not), as text;
          "time_input", "input_axes": the input streams take frames of and its axes ("T" time,
          "N" batch, ints: feature sizes), None when it cannot stream;
          "time_inputs": {input: its axes} for every input fed frames (the time input and any
          fed beside it), {} when it cannot stream;
          "carries": {node: graph.Carry} for the causal Pads and Convs over time whose past
          frames a stream keeps (keys of get_state() beside the GRU nodes);
          "gru_nodes": the names of the GRU nodes (lifted ones included), the keys of a
          stream's get_state();
          "caches": for a model that does not stream frame by frame, the CachePair records
          (input, output, shape) of the explicit caches sess.stream() keeps (a CacheStream
          running the whole graph per call through the interpreter), else []."""
        from .lower.steps import Fallback

        low = self._lowering()
        notes = self._graph.notes
        slow = [Fallback(n.node, "Loop", n.detail) for n in notes if n.slow]
        info = {"loops": [str(n) for n in notes if n.kind == "loop"],
                "cells": [str(n) for n in notes if n.kind == "cells"],
                "gru_nodes": [n.name for n in self._graph.nodes if n.op == "GRU"]}
        info["caches"] = list(self._caches()) if isinstance(low, Exception) else []
        if isinstance(low, Exception):
            run = Fallback(None, "run", f"whole-sequence runs go node by node through the "
                           f"interpreter (GRUs in C): the model cannot stream ({low})")
            return dict(info, streamable=False, lowered=False, steps=[], not_lowered=[],
                        fallbacks=slow + [run], reason=str(low), time_input=None, input_axes=None,
                        time_inputs={}, carries={})
        run = [] if low.lowered else [Fallback(
            None, "run", "whole-sequence runs go node by node through the interpreter (GRUs in "
            "C): the C plan lacks the not_lowered ops")]
        return dict(info, streamable=True, lowered=low.lowered,
                    steps=[s.kind for s in low.steps] if low.lowered else [],
                    not_lowered=list(low.not_lowered), fallbacks=slow + run + list(low.not_lowered),
                    reason=None, time_input=low.time_input, input_axes=low.in_axes,
                    time_inputs=dict(low.time_inputs), carries=dict(low.carries))

    def stream(self, batch_size=1, state_map=None):
        """A stream of batch_size independent slots: a Stream over the C plan when the model is
        fully lowered, else a PyStream (stream.lowered False; see plan_info()).  A model that
        does not stream frame by frame but takes explicit caches that come back updated (GTCRN's
        conv_cache -> conv_cache_out, ...) gives a CacheStream keeping them (pairs found by name
        and shape, or stated: state_map={"conv_cache": "conv_cache_out", ...}).  Raises
        NotStreamable for other non-causal models."""
        batch_size = check_batch_size(batch_size)
        low = self._lowering()
        if state_map is not None and not (isinstance(low, Exception) or (
                isinstance(state_map, dict) and state_map.keys() <= low.state_inputs.keys())):
            low = NotStreamable("state_map names caches the frame-wise lowering does not keep")
        if isinstance(low, Exception):
            pairs = find_cache_pairs(self._graph, state_map) if state_map is not None else \
                self._caches()
            if not pairs:
                raise type(low)(str(low))
            s = CacheStream(self._interp, pairs, batch_size, self._cast)
            s.session = self
            return s
        if low.batch is not None and batch_size != low.batch:
            raise InvalidArgument(f"batch_size must be {low.batch}: the model's input declares that "
                                  "batch size and a Reshape in it relies on it")
        s = (Stream if low.lowered else PyStream)(self._interp, low, batch_size, self._cast)
        s.session = self
        return s


def _from_onnx(model, options, external_data_dir, budget, kernel, threads, check_finite):
    """The ONNX path: (the model as kept, its metadata, the graph, the interpreter with the
    packed layers), loaded, checked and rewritten under the budget."""
    with loading(budget):
        proto = load_model(model, external_data_dir)
        check_model(proto, opset_version(proto))
        source, meta = _own_copy(proto, model), ModelMetadata(proto)
        from .rewrite import rewrite  # it imports onnx: when a model loads, not on import gruinfer

        proto, notes = rewrite(proto)
        if options.optimized_model_filepath:
            import onnx

            onnx.save(proto, options.optimized_model_filepath)
        graph = build_graph(proto, notes, budget)
    interp = Interpreter(graph, build_layers(graph, kernel, threads), kernel, threads,
                         bool(check_finite))
    return source, meta, graph, interp


def _restore_session(model, options, providers, args):
    return InferenceSession(model, options, list(providers.items()), **args)


def _own_copy(proto, model):
    """The loaded model as the session keeps it: never the caller's ModelProto, which the
    caller may change afterwards."""
    if proto is model:
        import onnx

        own = onnx.ModelProto()
        own.CopyFrom(proto)
        return own
    return proto


def _threads(threads, options):
    """The session's thread count: `threads` when given (it must agree with a nonzero
    intra_op_num_threads), else the options'."""
    if threads is None:
        return options.threads()
    if not isinstance(threads, int) or isinstance(threads, bool) or not 1 <= threads <= 256:
        raise InvalidArgument(f"threads must be an int in [1, 256], got {threads!r}")
    if options.intra_op_num_threads not in (0, threads):
        raise InvalidArgument(f"threads={threads} disagrees with sess_options."
                              f"intra_op_num_threads={options.intra_op_num_threads}")
    return threads


def _check_kernel(kernel):
    if kernel is not None:
        if kernel not in _core.kernel_names():
            raise KernelUnavailable(
                f"unknown kernel {kernel!r}; built in: {', '.join(_core.kernel_names())}")
        if not _core.kernel_supported(kernel):
            raise KernelUnavailable(f"kernel {kernel!r} is built in but this CPU cannot run it")
    elif _core.kernel_default() is None:
        raise KernelUnavailable(
            f"GRUINFER_KERNEL={os.environ.get('GRUINFER_KERNEL')!r} names no kernel this CPU "
            f"runs; built in: {', '.join(_core.kernel_names())}")
