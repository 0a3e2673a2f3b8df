"""interp/run.py: the one interpreter: a graph run node by node (NumPy ops, Loops iteration by iteration, GRU nodes in C), GRU states carried in and out for the Python-path stream."""
from typing import NamedTuple

import numpy as np

from ..errors import InvalidArgument
from ..feeds import coerce_float, coerce_int32
from ..graph import check_outputs, node_failed
from ..onnx_io.ops import OpError, apply
from .loop import run_loop
from .weights import FedLayers


class blas_threads:
    """A context capping NumPy's BLAS at `threads` threads for one call, so a session's
    threads= governs its NumPy ops too (OpenBLAS would use every core).  The cap is
    process-wide while it lasts; it calls the BLAS libraries threadpoolctl finds directly
    (a few microseconds), and only those running more threads than asked."""
    _libs = None  # the process's BLAS controllers, found on the first interpreted call

    def __init__(self, threads):
        if type(self)._libs is None:
            from threadpoolctl import ThreadpoolController  # on first use, not on import

            type(self)._libs = [lc for lc in ThreadpoolController().lib_controllers
                                if lc.user_api == "blas"]
        self.threads, self.capped = threads, []

    def __enter__(self):
        for lc in self._libs:
            n = lc.num_threads
            if n > self.threads:
                lc.set_num_threads(self.threads)
                self.capped.append((lc, n))
        return self

    def __exit__(self, *exc):
        for lc, n in self.capped:
            lc.set_num_threads(n)
        return False


class GruState(NamedTuple):
    """A GRU's carried state over a batch: h [N, H]; fresh [N] marks rows that start from the
    graph's own initial_h instead (slots reset, or never run)."""
    h: np.ndarray
    fresh: np.ndarray


class Interpreter:
    """Runs a graph node by node with its session's layers (those of GRUs whose weights are
    known at load) and options; the layers of weights given at run time come from self.fed."""

    def __init__(self, graph, layers, kernel, threads, check_finite):
        self.graph, self.layers = graph, layers
        self.kernel, self.threads, self.check_finite = kernel, threads, check_finite
        self.fed = FedLayers(kernel, threads)
        self._const_ids = {id(a) for a in graph.constants.values()}

    def execute(self, feeds, states=None, reshapes=None, profile=None, carries=None, past=None):
        """Every graph value for these feeds.  states: {GRU node name: GruState} to start GRUs
        from, replaced by their final states.  reshapes: {Reshape node: (input axes, output
        axes)} with "T"/"N" for time and batch (from lowering): such a Reshape follows the actual
        time and batch sizes, not the ones baked in at export.  profile: a Profiler that is
        told of every node run.  carries: {node: graph.Carry} (from lowering) with past:
        {node: its carried frames}, replaced by the frames after this chunk: those nodes read
        the carried frames instead of their time padding."""
        values = dict(self.graph.constants)
        values.update(feeds)
        with blas_threads(self.threads):
            for node in self.graph.nodes:
                start = profile and profile.now()
                if carries and node.name in carries:
                    self._execute_carried(node, values, carries[node.name], past)
                else:
                    self._execute_node(node, values, feeds, states, reshapes)
                if profile:
                    profile.node(node, start)
        return values

    def _execute_node(self, node, values, feeds, states, reshapes):
        if node.op == "GRU":
            self._run_gru(node, values, feeds, states)
        else:
            for value, a in zip(node.outputs, self.run_node(node, values, reshapes)):
                if value:
                    values[value] = a

    def _execute_carried(self, node, values, carry, past):
        """A causal Pad or Conv of a stream: run without its time padding, on (Conv) or after
        (Pad) the carried frames; past[node] becomes the last carry.frames frames."""
        a, n = carry.axis, carry.frames
        ins = [values[v] if v else None for v in node.inputs]
        at = dict(node.attrs)
        if node.op == "Pad":
            given = len(ins) > 1 and ins[1] is not None
            pads = np.array(ins[1] if given else at["pads"], np.int64)
            pads[a] = 0
            if given:
                ins[1] = pads
            else:
                at["pads"] = [int(p) for p in pads]
        else:  # Conv: its pads attribute lists the spatial axes' begins, then their ends
            pads = list(at.get("pads", [0] * (2 * (ins[0].ndim - 2))))
            pads[a - 2] = 0
            at["pads"] = pads
            ins[0] = np.concatenate([past[node.name], ins[0]], axis=a)
        try:
            outs = apply(node.op, ins, at, self.graph.opset)
        except OpError as e:
            raise node_failed(node, ins, e, load=False) from None
        if node.op == "Pad":
            outs[0] = np.concatenate([past[node.name], outs[0]], axis=a)
        seen = outs[0] if node.op == "Pad" else ins[0]
        past[node.name] = np.ascontiguousarray(
            np.take(seen, range(seen.shape[a] - n, seen.shape[a]), axis=a))
        for value, arr in zip(node.outputs, outs):
            if value:
                values[value] = arr

    def results(self, names, values, feeds):
        """Every result is its own array: never a feed, a constant, a view or another result."""
        out, given = [], {id(a) for a in feeds.values()} | self._const_ids
        for n in names:
            a = values[n]
            out.append(a.copy() if id(a) in given or not a.flags.owndata else a)
            given.add(id(a))
        return out

    def run_node(self, node, values, reshapes=None):
        """Outputs of a non-GRU node given the values so far; errors name the node."""
        ins = [values[v] if v else None for v in node.inputs]
        if reshapes and node.name in reshapes:
            src, dst = reshapes[node.name]
            size = {a: ins[0].shape[i] for i, a in enumerate(src) if a in ("T", "N")}
            return [ins[0].reshape([size.get(a, a) for a in dst])]
        try:
            if node.op == "Loop":
                return run_loop(node.body, ins, values, lambda b, v: self.run_node(b, v, reshapes),
                                self.graph.budget.loop_iterations)
            outs = apply(node.op, ins, node.attrs, self.graph.opset)
        except OpError as e:
            raise node_failed(node, ins, e, load=False) from None
        except InvalidArgument as e:  # a node in the Loop's body: named inside the Loop's
            raise node_failed(node, ins, e, load=False) from None
        check_outputs(node, outs)
        return outs

    def _run_gru(self, node, values, feeds, states=None):
        spec, ins, layer = node.spec, list(node.inputs) + [""] * 6, self.layers.get(node.name)
        where = f"GRU node {node.name!r}"
        I = spec.input_size or "input_size"
        x_shape = ["batch_size", "seq_length", I] if spec.layout else ["seq_length", "batch_size", I]
        X = coerce_float(values[ins[0]], f"{where}: input X ({ins[0]!r})")
        if X.ndim != 3 or 0 in X.shape or X.shape[2] != (spec.input_size or X.shape[2]):
            raise InvalidArgument(
                f"{where}: input X ({ins[0]!r}) must have shape [{', '.join(map(str, x_shape))}] "
                f"with nonzero sizes, got {list(X.shape)}")
        over = self.graph.feeds_of
        if layer is None or any(over.get(v, set()) & feeds.keys() for v in ins[1:4] if v):
            # weights given with this call (graph inputs, overridden initializers)
            spec, layer = self.fed.layer(node, values, X.shape[2])
        D, H = spec.num_directions, spec.hidden_size
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
        outs = list(node.outputs) + ["", ""]
        if states is not None and node.name in states:
            h0 = _inject(h0, states[node.name], spec.layout, N, H, where)
        try:
            Y, Yh = layer.run(X, spec.layout, lens, h0, bool(outs[0]),
                              bool(outs[1]) or states is not None, self.check_finite, node.name)
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
            states[node.name] = GruState(np.ascontiguousarray(Yh.reshape(N, H)), np.zeros(N, bool))


def _inject(h0, state, layout, N, H, where):
    """initial_h for a chunk: the carried state, or the graph's own initial_h (zeros if none) on
    fresh rows."""
    if state.h.shape != (N, H):
        raise InvalidArgument(f"{where}: the stream holds states for batch {state.h.shape[0]}, "
                              f"the chunk has batch {N}")
    base = np.zeros((N, H), np.float32) if h0 is None else (h0[:, 0] if layout else h0[0])
    h = np.where(state.fresh[:, None], base, state.h).astype(np.float32)
    return np.ascontiguousarray(h.reshape((N, 1, H) if layout else (1, N, H)))
