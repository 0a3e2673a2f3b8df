"""session.py: InferenceSession, the onnxruntime-compatible entry point: feeds validated, graph run, streams handed out."""
import numpy as np

from . import _core
from .errors import InvalidArgument, KernelUnavailable
from .graph import Graph, build_layer
from .onnx_import import gru_spec, load_model
from .validate import check_shape, coerce_float, coerce_int32


class InferenceSession:
    """Load an ONNX model and run it, with onnxruntime's calling conventions.

    model: a path (external-data tensors are followed), the model's bytes, or an
    onnx.ModelProto.  sess_options, providers and provider_options are accepted
    for drop-in compatibility with onnxruntime.InferenceSession and ignored.

    threads: threads one run may use (1, the default, is what is implemented:
    larger values are accepted and run on one thread).
    kernel: None (GRUINFER_KERNEL if set, else the best for this CPU), or a
    name from gruinfer.kernel_info()["available"], e.g. "ref".
    check_finite: refuse inputs holding NaN or Inf (InvalidArgument) instead of
    propagating them.
    """

    def __init__(self, model, sess_options=None, providers=None, provider_options=None, *,
                 threads=1, kernel=None, check_finite=True):
        if not isinstance(threads, int) or threads < 1:
            raise InvalidArgument(f"threads must be a positive int, got {threads!r}")
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
        self._graph = Graph(load_model(model), kernel)
        self._declared = {a.name: a for a in self._graph.inputs}
        self._declared.update(self._graph.overridable)
        self._lowered = None
        self._fresh = {o for node in self._graph.nodes if node.op == "GRU"
                       for o in node.proto.output if o}

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
        values = dict(self._graph.constants)
        feeds = self._coerce_feeds(input_feed)
        values.update(feeds)
        for node in self._graph.nodes:
            if node.op == "Identity":
                values[node.proto.output[0]] = values[node.proto.input[0]]
            elif node.op == "GRU":
                self._run_gru(node, values, feeds)
        # Every result is its own array: never a feed, a constant, or another result.
        out, given = [], set()
        for n in names:
            a = values[n]
            out.append(a.copy() if id(a) in given or n not in self._fresh else a)
            given.add(id(a))
        return out

    def _run_gru(self, node, values, feeds):
        spec, ins, layer = node.spec, list(node.proto.input) + [""] * 6, node.layer
        where = f"GRU node {node.name!r}"
        if any(self._graph.alias.get(v, v) in feeds for v in ins[1:4] if v):
            # A weight initializer overridden by a feed: pack a layer for this call only.
            spec = gru_spec(node.proto, node.name, values)
            layer = build_layer(spec, self._kernel)
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
        try:
            Y, Yh = layer.run(X, spec.layout, lens, h0, bool(outs[0]), bool(outs[1]),
                                   self._check_finite, node.name)
        except InvalidArgument as e:
            if "NaN" in str(e):
                raise InvalidArgument(f"{where}: input X or initial_h holds NaN or Inf "
                                      "(check_finite=False lets them through)") from None
            raise
        if outs[0]:
            values[outs[0]] = Y
        if outs[1]:
            values[outs[1]] = Yh

    def stream(self, batch_size=1):
        """A Stream of batch_size independent slots; raises NotStreamable for non-causal models."""
        from .stream import Stream, lower_for_stream

        if not isinstance(batch_size, (int, np.integer)) or batch_size < 1:
            raise InvalidArgument(f"batch_size must be a positive int, got {batch_size!r}")
        if self._lowered is None:
            self._lowered = lower_for_stream(self._graph, self._kernel)
        return Stream(self, self._lowered, int(batch_size))
