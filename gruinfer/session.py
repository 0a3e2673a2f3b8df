"""session.py: InferenceSession, the onnxruntime-compatible entry point: a model loaded through the rooms in order, feeds checked, whole runs on the C plan or the interpreter, streams handed out."""
import os

from . import _core
from .errors import InvalidArgument, KernelUnavailable, NotStreamable
from .feeds import check_output_names, coerce_feeds
from .graph import build_graph
from .interp import Interpreter, build_layers
from .onnx_io.check import check_model
from .onnx_io.proto import load_model, opset_version
from .stream import PyStream, Stream, check_batch_size


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
    external_data_dir: the folder a model's external-data files are read from (default: the
    model file's folder).  Required for bytes or a ModelProto that keep tensors in external
    files; without it such a model is refused (InvalidModel), never read relative to the
    working directory.  Every file must resolve, symbolic links followed, inside that folder
    and be a regular file.

    GRU weights given at run time (W, R or B a graph input, as in ONNX's backend tests, or an
    overridable initializer fed) are checked like feeds (float, exact shapes [D, 3H, I],
    [D, 3H, H], [D, 6H], finite whatever check_finite says) and packed on the interpreter
    path; each GRU node keeps its last packed layer and reuses it while the weights stay the
    same, bit for bit.  Packing costs ~0.13 ms at hidden_size = input_size = 64 and ~3 ms at
    256 (against 0.25 ms and 2.3 ms for a 100-frame, batch-1 run with constant weights);
    a reuse costs a comparison (~0.02 ms, ~0.08 ms).  Such a model cannot stream.
    """

    def __init__(self, model, sess_options=None, providers=None, provider_options=None, *,
                 threads=1, kernel=None, check_finite=True, external_data_dir=None):
        if not isinstance(threads, int) or isinstance(threads, bool) or not 1 <= threads <= 256:
            raise InvalidArgument(f"threads must be an int in [1, 256], got {threads!r}")
        _check_kernel(kernel)
        proto = load_model(model, external_data_dir)
        check_model(proto, opset_version(proto))
        from .rewrite import rewrite  # it imports onnx: when a model loads, not on import gruinfer

        proto, notes = rewrite(proto)
        self._graph = build_graph(proto, notes)
        self._kernel = kernel
        self._interp = Interpreter(self._graph, build_layers(self._graph, kernel, threads), kernel,
                                   threads, bool(check_finite))
        self._declared = {a.name: a for a in self._graph.inputs}
        self._declared.update(self._graph.overridable)
        self._lowered = None

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
        for layer in self._interp.layers.values():
            return layer.kernel
        return self._kernel or _core.kernel_default()

    def run(self, output_names, input_feed, run_options=None):
        """Run the whole graph; returns a list of numpy arrays in the order of output_names (None: all)."""
        names = check_output_names([o.name for o in self._graph.outputs], output_names)
        feeds = coerce_feeds(self._declared, [a.name for a in self._graph.inputs], input_feed)
        low = self._lowering()
        if self._runs_on_plan(low, feeds):
            x = feeds[low.time_input]
            return Stream(self._interp, low, x.shape[low.in_axes.index("N")]).run(names, feeds)
        values = self._interp.execute(feeds, reshapes=None if isinstance(low, Exception) else low.reshapes)
        return self._interp.results(names, values, feeds)

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
          "gru_nodes": the names of the GRU nodes (lifted ones included), the keys of a
          stream's get_state()."""
        from .lower.steps import Fallback

        low = self._lowering()
        notes = self._graph.notes
        slow = [Fallback(n.node, "Loop", n.detail) for n in notes if n.slow]
        info = {"loops": [str(n) for n in notes if n.kind == "loop"],
                "cells": [str(n) for n in notes if n.kind == "cells"],
                "gru_nodes": [n.name for n in self._graph.nodes if n.op == "GRU"]}
        if isinstance(low, Exception):
            run = Fallback(None, "run", f"whole-sequence runs go node by node through the "
                           f"interpreter (GRUs in C): the model cannot stream ({low})")
            return dict(info, streamable=False, lowered=False, steps=[], not_lowered=[],
                        fallbacks=slow + [run], reason=str(low), time_input=None, input_axes=None)
        run = [] if low.lowered else [Fallback(
            None, "run", "whole-sequence runs go node by node through the interpreter (GRUs in "
            "C): the C plan lacks the not_lowered ops")]
        return dict(info, streamable=True, lowered=low.lowered,
                    steps=[s.kind for s in low.steps] if low.lowered else [],
                    not_lowered=list(low.not_lowered), fallbacks=slow + run + list(low.not_lowered),
                    reason=None, time_input=low.time_input, input_axes=low.in_axes)

    def stream(self, batch_size=1):
        """A stream of batch_size independent slots: a Stream over the C plan when the model is
        fully lowered, else a PyStream (stream.lowered False; see plan_info()).  Raises
        NotStreamable for non-causal models."""
        batch_size = check_batch_size(batch_size)
        low = self._lowering()
        if isinstance(low, Exception):
            raise type(low)(str(low))
        if low.batch is not None and batch_size != low.batch:
            raise InvalidArgument(f"batch_size must be {low.batch}: the model's input declares that "
                                  "batch size and a Reshape in it relies on it")
        return (Stream if low.lowered else PyStream)(self._interp, low, batch_size)


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
