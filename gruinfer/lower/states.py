"""lower/states.py: GRU nodes as plan steps with their initial states, and the ops on their final states (stacked layers, hn[-1], heads over the last state)."""
import numpy as np

from ..errors import NotStreamable
from ..onnx_io import forms
from .reshape import layout_op
from .steps import GruSlot, GruStep, StateUse
from .values import Feed, Mismatch, Seq, State, Tiled, Zeros, perm


def gru(lw, node, ins):
    """A forward GRU node: its plan step, where its initial state comes from, its Y and Y_h."""
    spec, low = node.spec, lw.low
    x = ins[0]
    want = ("N", "T") if spec.layout else ("T", "N")
    if not isinstance(x, Seq) or x.last:
        raise NotStreamable(f"GRU node {node.name!r}: input X is not on the time path")
    if x.ids:
        raise NotStreamable(f"GRU node {node.name!r}: input X is token ids, not features")
    if tuple(x.axes[:2]) != want:
        raise Mismatch(f"GRU node {node.name!r}: input X does not have time on axis "
                       f"{want.index('T')} as the GRU reads it")
    k = len(low.grus)
    low.grus.append(GruSlot(len(low.steps), node.name, spec.hidden_size, spec.layout))
    if x.buf is None:
        lw.python(node, "GRU", "its input is computed on the Python path")
    low.steps.append(GruStep(x.buf, lw.layers[node.name]))
    lens, h0 = (ins + [None] * 6)[4:6]
    if lens is not None:
        if not isinstance(lens, Feed):
            raise NotStreamable(f"GRU node {node.name!r}: a fixed sequence_lens cannot stream")
        low.lens_inputs.add(lens.name)
    start = _initial_state(lw, node, k, h0)
    if start is not None:
        if start.ndim != 2 or start.shape[1] != spec.hidden_size or not start.size:
            # (the whole-sequence run names the expected shape; streams cannot start from it)
            raise NotStreamable(f"GRU node {node.name!r}: its initial_h gives states of shape "
                                f"{list(start.shape)}, not [N, {spec.hidden_size}]")
        low.initial[k] = start
    buf = len(low.steps) if x.buf is not None else None
    H = spec.hidden_size
    y = Seq(("N", "T", 1, H) if spec.layout else ("T", 1, "N", H), buf)
    return [y, State((k,), ("N", 1, H) if spec.layout else (1, "N", H))]


def _initial_state(lw, node, k, h0):
    """Where GRU k starts: a state input (recorded in state_inputs; its load-time value, for an
    overridable initializer, is the constant start), a batch-broadcast or constant initial_h
    ([1 or N, H]), or zeros (None)."""
    layout, low = node.spec.layout, lw.low
    if isinstance(h0, Feed):
        if h0.unsq is not None and h0.unsq != (1 if layout else 0):
            raise NotStreamable(f"GRU node {node.name!r}: initial_h inserts the num_directions "
                                f"axis of input {h0.name!r} at axis {h0.unsq}, not where the GRU "
                                "reads it")
        # row None: the input is [N, H] itself (fed as the graph declares it)
        row = None if h0.unsq is not None else h0.rows or 0
        low.state_inputs.setdefault(h0.name, []).append(StateUse(k, row, layout))
        if h0.name not in lw.g.constants:
            return None
        h = np.asarray(lw.g.constants[h0.name], np.float32)  # an overridable initializer
        if h0.unsq is not None:
            return h
        h = h[h0.rows:h0.rows + 1] if h0.rows is not None else h
        return h[:, 0, :] if layout else h[0]
    if isinstance(h0, Tiled) and h0.n == (0 if layout else 1) and h0.value.ndim == 3 \
            and h0.value.shape[1 - h0.n] == 1:
        return np.asarray(h0.value, np.float32).reshape(1, -1)  # every slot starts there
    if isinstance(h0, np.ndarray):
        h = np.asarray(h0, np.float32)
        if h.ndim != 3 or h.shape[1 if layout else 0] != 1:
            raise NotStreamable(f"GRU node {node.name!r}: its constant initial_h has shape "
                                f"{list(h.shape)}, not one direction's [N, H]")
        return h[:, 0, :] if layout else h[0]
    if h0 is not None and not isinstance(h0, Zeros):
        raise NotStreamable(f"GRU node {node.name!r}: initial_h is computed inside the graph")
    return None


def state_op(lw, node, ins):
    """Final states: Concat of single states along their size-1 axis stacks layers ("L");
    layout ops on one state follow its N and H axes."""
    op, at, x = node.op, node.attrs, ins[0]
    if any(isinstance(a, Seq) and not a.last for a in ins):
        raise NotStreamable(f"node {node.name!r} ({op}): combines a GRU's final state with "
                            "per-frame values, so every frame needs the whole sequence")
    if any(isinstance(a, State) and not a.ks for a in ins):  # already on the Python path
        return _unknown_state(lw, node)
    single = all(isinstance(a, State) and len(a.ks) == 1 and a.axes == x.axes for a in ins)
    if op == "Concat" and single and x.axes[at["axis"] % len(x.axes)] == 1:
        axis = at["axis"] % len(x.axes)
        return State(tuple(a.ks[0] for a in ins), x.axes[:axis] + ("L",) + x.axes[axis + 1:])
    if op == "Transpose" and isinstance(x, State):
        return State(x.ks, tuple(x.axes[p] for p in perm(node, len(x.axes))))
    if op in ("Squeeze", "Unsqueeze", "Reshape") and isinstance(x, State) and len(x.ks) == 1:
        return State(x.ks, layout_op(lw, node, ins, x))
    if op in ("Gather", "Slice") and isinstance(x, State) and all(
            isinstance(a, np.ndarray) or a is None for a in ins[1:]):
        picked = _pick_state(lw, node, ins, x)
        if picked is not None:
            return picked
    if all(len(a.ks) == 1 for a in ins if isinstance(a, State)):
        # Frame-wise ops on final states: after each frame, a final state is that frame's GRU
        # output, so they run as frame steps whose chunk value is the chunk's last frame.
        return lw.node(node, [_last_of(lw, a) if isinstance(a, State) else a for a in ins])
    return _unknown_state(lw, node)


def _unknown_state(lw, node):
    """A value of final states only that the Python path computes from the carried states
    (after a chunk they are the states after every frame streamed so far)."""
    lw.python(node, node.op, "an op on final states the C stream does not reproduce")
    return [State((), ("?",))] * len(node.outputs)


def _last_of(lw, st):
    """A single GRU's final state as a frame-wise value (its GRU step's output buffer)."""
    step = lw.low.grus[st.ks[0]].step
    return Seq(st.axes, step + 1 if lw.low.steps[step].input is not None else None, last=True)


def _pick_state(lw, node, ins, x):
    """hn[-1]-style selection of one layer's final state (a Gather or Slice on the "L" axis,
    or of the only row of a size-1 axis), or None when it is something else."""
    op, at, r = node.op, node.attrs, len(x.axes)
    if op == "Gather":
        axis, idx = at.get("axis", 0) % r, np.asarray(ins[1])
        size = len(x.ks) if x.axes[axis] == "L" else x.axes[axis]
        picked = forms.ints(idx, f"Gather node {node.name!r}: its indices")
        if len(picked) != 1 or not isinstance(size, int) or not -size <= picked[0] < size:
            return None
        i = picked[0] % size
        ks = (x.ks[i],) if x.axes[axis] == "L" else x.ks
        axes = x.axes[:axis] + ((1,) if idx.ndim else ()) + x.axes[axis + 1:]
        return State(ks, axes) if len(ks) == 1 or "L" in axes else None
    args = forms.slice_args(at, ins, lw.g.opset)
    if args is forms.UNKNOWN:
        return None
    starts, ends, axes_, steps = args
    if len(axes_) != 1 or steps[0] != 1:
        return None
    axis = int(axes_[0]) % r
    if x.axes[axis] != "L":
        return None
    rows = list(range(len(x.ks)))[slice(int(starts[0]), int(ends[0]))]
    if len(rows) != 1:
        return None
    return State((x.ks[rows[0]],), x.axes[:axis] + (1,) + x.axes[axis + 1:])
