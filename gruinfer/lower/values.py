"""lower/values.py: what lowering knows of each graph value (on the time path, a final state, a feed, shapes, a run-time zero or broadcast) and the axis vocabulary they share.

The records are NamedTuples (immutable, named fields: a frozen dataclass costs ten times as much
to define, and streams import this module with gruinfer); lowering reads them only by field,
never as tuples, and refuses them where a constant array is expected."""
from typing import NamedTuple

import numpy as np

from ..errors import NotStreamable
from ..onnx_io.shapes import Dims

# A Reshape that merges time and batch into one row axis ([N, T, F] -> [-1, F]) gives that axis
# "NT" (batch outer) or "TN" (time outer): each frame is still N rows of features, so row-wise
# steps read it as they read [N, F] frames.  TN: every axis symbol holding time or batch.
MERGED = ("NT", "TN")
TN = ("T", "N") + MERGED


class Seq(NamedTuple):
    """A tensor on the time path.  axes: per tensor axis "T", "N", "NT"/"TN" (the two merged, see
    MERGED) or a fixed size; buf: the plan buffer holding it frame by frame (0 the plan input,
    k >= 1 step k-1's output), None when only the Python path computes it.
    last: a value computed frame by frame from a GRU's final state (Y_h): its axes have no "T";
    the graph value of a chunk is its frame after the chunk's last frame.
    ids: token ids (the plan input of an embedding model, fed as float32 integers).
    past: frames before the chunk's first that the value also holds (a causal Pad's output,
    which only a Conv over time may read)."""
    axes: tuple
    buf: object = None
    last: bool = False
    ids: bool = False
    past: int = 0


class State(NamedTuple):
    """Final states of GRUs ks (indices into Lowering.grus), stacked on axis "L" when several;
    other axes "N", the hidden size or 1.  No ks: final states only the Python path computes."""
    ks: tuple
    axes: tuple


class Zeros:
    """An all-zero tensor built at run time from shapes (the zero initial state pattern)."""
    __slots__ = ()


class Tiled(NamedTuple):
    """A constant broadcast along the batch at run time (a learned initial state,
    h0.expand(-1, N, -1)): value has size 1 on axis n, which the batch fills."""
    value: np.ndarray
    n: int


class Feed(NamedTuple):
    """A graph input other than the frames (an initial state); rows: the slice of axis 0 taken;
    unsq: the axis a size-1 axis was inserted at (Unsqueeze or Reshape of an [N, H] input into
    [1, N, H] or [N, 1, H]), None when the value is the input itself."""
    name: str
    rows: object = None
    unsq: object = None

    @property
    def whole(self):
        """The input itself, neither sliced nor unsqueezed."""
        return self.rows is None and self.unsq is None


class Constant:
    """A graph output that is a constant: the same array every run."""
    __slots__ = ()


# Abstract values computed at run time (everything but constants, arrays, and None).
LIVE = (Seq, State, Zeros, Dims, Feed, Tiled)


class Mismatch(Exception):
    """The guess of which input axis is time was wrong (a GRU reads time on another axis)."""


def c_layout(axes):
    """True when frames of this tensor are [N, features] rows in one buffer: sizes > 1 after T and N
    (after N alone for a value from final states, which has no T axis)."""
    seen, need = 0, sum(a in TN for a in axes)
    for a in axes:
        if a in TN:
            seen += 1
        elif a != 1 and seen < need:
            return False
    return True


# The widest frame row a C plan takes (GRUINFER_MAX_DIM in src_c/gru.h).
MAX_WIDTH = 1 << 20


def width(axes):
    """Floats per row of one frame: the product of the feature sizes (NotStreamable past what a
    C plan takes)."""
    w = int(np.prod([a for a in axes if a not in TN], dtype=np.float64))
    if w > MAX_WIDTH:
        raise NotStreamable(f"a frame row of {w} floats is wider than a C plan takes ({MAX_WIDTH})")
    return w


def time_axis(axes):
    """Index of the axis holding time ("T" or a merged row axis), None for a value from final states."""
    return next((i for i, a in enumerate(axes) if a == "T" or a in MERGED), None)


def perm(node, rank):
    """A Transpose's permutation (reversed axes by default), checked to be one."""
    p = list(node.attrs.get("perm") or reversed(range(rank)))
    if sorted(p) != list(range(rank)):
        raise NotStreamable(f"node {node.name!r} (Transpose): perm {p} is not a permutation of "
                            f"{rank} axes")
    return p
