"""interp/weights.py: GRU weights packed into C layers: once per session for weights known at load, per call for weights given at run time (checked like feeds), the last of those kept per node and reused while the weights stay the same."""
import numpy as np

from .. import _core
from ..errors import InvalidArgument, InvalidModel
from ..feeds import coerce_float
from ..onnx_io.gru_spec import WEIGHT_INPUTS


def build_layer(spec, kernel, threads=1):
    """The packed C layer of a GruSpec; whole-sequence runs of layers with hidden_size >= 512
    share each step among `threads` threads."""
    return _core.Gru(spec.input_size, spec.hidden_size, spec.direction, spec.linear_before_reset,
                     spec.clip, spec.f, spec.g, spec.W, spec.R, spec.B, kernel, spec.name, threads)


def build_layers(graph, kernel, threads=1):
    """{GRU node name: its packed C layer} for every GRU whose weights are known at load, built
    once per session and shared by its runs and streams (the others: FedLayers)."""
    return {n.name: build_layer(n.spec, kernel, threads)
            for n in graph.nodes if n.op == "GRU" and not n.spec.fed}


class FedLayers:
    """The layers of GRUs whose weights come with a call (graph inputs, or overridable
    initializers fed): for each GRU node the last layer packed and copies of the weights it was
    packed from, reused while a call brings the same weights, bit for bit (comparing costs
    about 1/40 of packing).  Shared by a session's threads: an entry is replaced whole."""

    def __init__(self, kernel, threads):
        self.kernel, self.threads = kernel, threads
        self._last = {}  # GRU node name -> (spec holding copies of its weights, layer)

    def layer(self, node, values, input_size):
        """(spec, layer) of a GRU for this call: its W, R and B read from values (the graph's
        values so far), each checked like a feed (float, the exact shape); input_size: the one
        of this call's X (for a spec that does not know it)."""
        spec = node.spec._replace(input_size=input_size, fed=())
        names = {role: node.inputs[i] for role, i in WEIGHT_INPUTS.items()
                 if i < len(node.inputs) and node.inputs[i]}
        weights = {role: coerce_float(values[v], f"GRU node {node.name!r}: input {role} ({v!r})",
                                      spec.weight_shape(role)) for role, v in names.items()}
        last = self._last.get(node.name)
        if last is not None and all(_same(getattr(last[0], r), a) for r, a in weights.items()):
            return last
        spec = spec._replace(**{r: a.copy() for r, a in weights.items()})
        try:
            layer = build_layer(spec, self.kernel, self.threads)
        except InvalidModel as e:
            if e.status != "nonfinite":
                raise
            role = next(r for r, a in weights.items() if not np.isfinite(a).all())
            raise InvalidArgument(
                f"GRU node {node.name!r}: input {role} ({names[role]!r}) "
                "holds NaN or Inf; a GRU's weights must be finite, whatever check_finite says "
                "(the C core packs finite weights only)") from None
        self._last[node.name] = (spec, layer)
        return spec, layer


def _same(a, b):
    """a and b are float32 arrays of one shape holding the same bits (-0.0 is not 0.0)."""
    return a.shape == b.shape and np.array_equal(a.view(np.uint32), b.view(np.uint32))
