"""compiled.py: a session's lowered C plan written as a .gruinfer file, and such a file read back into the graph, lowering and plan a session streams and runs, without onnx."""
import hashlib

import numpy as np

from . import model_file as mf
from .errors import InvalidArgument, InvalidModel, NotStreamable
from .graph import Graph, Node, NodeArg
from .lower.steps import GruSlot, Lowering, StateUse
from .lower.values import Constant, Seq, State
from .options import ModelMetadata

_META_FIELDS = ModelMetadata.__slots__


def refusals(sess):
    """Why a session's model cannot be compiled (the parts that stay in Python), [] when it can."""
    info = sess.plan_info()
    if not info["streamable"]:
        return [f"the model does not stream frame by frame ({info['reason']})"]
    why = [f"{f.op} {f.node!r}: {f.reason}" if f.node else f"{f.op}: {f.reason}"
           for f in info["fallbacks"]]
    # A file holds one frames input and GRU states: frames fed beside it, and past frames
    # carried for causal Pads/Convs, are stream state version 1 has no place for.
    why += [f"input {n!r} is fed frames beside {info['time_input']!r}"
            for n in info["time_inputs"] if n != info["time_input"]]
    why += [f"node {n!r} carries past frames" for n in info["carries"]]
    return why


def _writer():
    """The installed gruinfer's version, the file's writer."""
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("gruinfer")
    except PackageNotFoundError:
        return "unknown"


def contents(sess):
    """The Contents of a session's compiled file; NotStreamable naming what stays in Python
    when the plan is not wholly in C."""
    why = refusals(sess)
    if why:
        raise NotStreamable("cannot compile: parts of this model run in Python, not in the C "
                            "plan: " + "; ".join(why))
    graph, low, layers = sess._graph, sess._lowering(), sess._interp.layers
    specs = {id(layers[n.name]): n.spec for n in graph.nodes if n.op == "GRU" and n.name in layers}
    index, out_layers, steps = {}, [], []
    for s in low.steps:
        c = s.c_step()
        if c.layer is not None:
            spec = specs[id(c.layer)]
            index.setdefault(id(c.layer), len(out_layers))
            if index[id(c.layer)] == len(out_layers):
                out_layers.append(mf.Layer(spec.input_size, spec.hidden_size, spec.direction,
                                           spec.linear_before_reset, spec.clip, spec.f, spec.g,
                                           spec.W, spec.R, spec.B))
            c = c._replace(layer=index[id(c.layer)])
        steps.append(c)
    arrays = []

    def array(a, what):
        a = np.asarray(a)
        if a.dtype != np.float32:
            raise NotStreamable(f"cannot compile: {what} is a constant of dtype {a.dtype}; a "
                                "compiled file holds float32 tables only")
        arrays.append(a.reshape(-1))
        return [len(arrays) - 1, list(a.shape)]

    outputs = {}
    for name, v in low.outputs.items():
        if isinstance(v, Seq):
            outputs[name] = ["seq", list(v.axes), v.buf, bool(v.last), bool(v.ids)]
        elif isinstance(v, State):
            outputs[name] = ["state", list(v.ks), list(v.axes)]
        else:
            outputs[name] = ["const"] + array(graph.constants[name], f"output {name!r}")
    states = {n: graph.overridable[n] for n in low.state_inputs if n in graph.overridable}
    meta = {
        "inputs": [[a.name, a.shape, a.type] for a in graph.inputs],
        "outputs": [[a.name, a.shape, a.type] for a in graph.outputs],
        "state_initializers": [[a.name, a.shape, a.type] for a in states.values()],
        "time_input": low.time_input, "in_axes": list(low.in_axes), "in_ids": bool(low.in_ids),
        "batch": low.batch, "steps": [s.kind for s in low.steps],
        "grus": [[g.step, g.name, g.hidden, g.layout] for g in low.grus],
        "state_inputs": {n: [[u.gru, u.row, u.layout] for u in us]
                         for n, us in low.state_inputs.items()},
        "lens_inputs": sorted(low.lens_inputs),
        "initial": [[i] + array(h, f"the initial state of GRU {low.grus[i].name!r}")
                    for i, h in low.initial.items()],
        "value_outputs": outputs,
        "metadata": {k: getattr(sess._meta, k) for k in _META_FIELDS},
    }
    names = [(mf.ROLE_INPUT, 0, low.time_input)]
    names += [(mf.ROLE_OUTPUT, v.buf, n) for n, v in low.outputs.items()
              if isinstance(v, Seq) and v.buf is not None]
    names += [(mf.ROLE_STATE, g.step, g.name) for g in low.grus]
    source = hashlib.sha256(sess._source.SerializeToString()).hexdigest()
    return mf.Contents(out_layers, steps, low.plan.input_width, names, arrays, meta, _writer(),
                       source)


class CompiledInterp:
    """What a stream reads of an interpreter (graph, check_finite, layers) for a compiled
    model, which has no interpreter: a call that would need one is refused."""

    def __init__(self, graph, check_finite):
        self.graph, self.check_finite, self.layers = graph, check_finite, {}

    def execute(self, *args, **kwargs):
        raise InvalidArgument("a compiled model runs on its C plan only; this call needs the "
                              "ONNX model's interpreter (a sequence_lens or weight feed, or an "
                              "input without a whole frame): load the .onnx for it")

    results = execute


class Loaded:
    """A compiled file read back: graph, interpreter stand-in, lowering, metadata, the bytes."""

    def __init__(self, model, kernel, check_finite):
        opened = mf.open_model(model, kernel)
        try:
            self._read(opened, check_finite)
        except (KeyError, TypeError, ValueError, IndexError, AttributeError) as e:
            raise InvalidModel(f"compiled model file: malformed metadata ({type(e).__name__}: "
                               f"{e})") from None
        self.source = opened.data

    def _read(self, opened, check_finite):
        meta, arrays, m = opened.meta, opened.arrays, opened.model
        kinds = [str(k) for k in meta["steps"]]
        plan = m.plan(kinds)
        n_steps = len(kinds)

        def arr(ref):
            i, shape = ref
            a = arrays[i]
            if a.size != int(np.prod(shape, dtype=np.int64)):
                raise ValueError(f"array {i} does not hold shape {shape}")
            return a.reshape(shape)

        def args(rows):
            return [NodeArg(str(n), list(s) if s is not None else None, str(t)) for n, s, t in rows]

        inputs, outputs = args(meta["inputs"]), args(meta["outputs"])
        overridable = {a.name: a for a in args(meta["state_initializers"])}
        low = Lowering(str(meta["time_input"]), _axes(meta["in_axes"]))
        low.in_ids, low.batch = bool(meta["in_ids"]), meta["batch"]
        for step, name, hidden, layout in meta["grus"]:
            if not (0 <= step < n_steps and kinds[step] == "gru" and plan.width(step + 1) == hidden):
                raise ValueError(f"GRU {name!r} is not plan step {step}")
            low.grus.append(GruSlot(int(step), str(name), int(hidden), int(layout)))
        grus = range(len(low.grus))
        for n, uses in meta["state_inputs"].items():
            low.state_inputs[n] = [StateUse(_index(g, grus), row, layout) for g, row, layout in uses]
        low.lens_inputs = set(meta["lens_inputs"])
        for i, *ref in meta["initial"]:
            low.initial[_index(i, grus)] = arr(ref)
        constants = {}
        for name, v in meta["value_outputs"].items():
            if v[0] == "seq":
                buf = v[2] if v[2] is None else _index(v[2], range(n_steps + 1))
                low.outputs[name] = Seq(_axes(v[1]), buf, bool(v[3]), bool(v[4]))
            elif v[0] == "state":
                low.outputs[name] = State(tuple(_index(k, grus) for k in v[1]), _axes(v[2]))
            elif v[0] == "const":
                low.outputs[name], constants[name] = Constant(), arr(v[1:])
            else:
                raise ValueError(f"output {name!r}: unknown kind {v[0]!r}")
        if {a.name for a in outputs} - low.outputs.keys() or "N" not in low.in_axes:
            raise ValueError("outputs or input axes incomplete")
        low.steps = [mf.Step(k) for k in kinds]
        low.plan = plan
        nodes = [Node("GRU", g.name, None, {}, (), ()) for g in low.grus]
        self.graph = Graph(0, inputs, outputs, overridable, constants, nodes, {}, [], None)
        self.interp = CompiledInterp(self.graph, check_finite)
        self.lowering = low
        md = ModelMetadata.__new__(ModelMetadata)
        for k in _META_FIELDS:
            setattr(md, k, meta["metadata"][k])
        self.metadata = md


def _axes(axes):
    return tuple(a if isinstance(a, str) else int(a) for a in axes)


def _index(i, valid):
    if not isinstance(i, int) or i not in valid:
        raise ValueError(f"index {i!r} out of range")
    return i
