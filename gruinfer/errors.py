"""errors.py: the exception hierarchy every gruinfer failure maps to."""
from typing import Optional


class GruinferError(Exception):
    """Base class of every error gruinfer raises on purpose.

    status: for an error the C core reported, the short name of its status ("null", "size",
    "attr", "activation", "nomem", "seqlen", "nonfinite", "kernel", "plan", "slot", "index"),
    so callers can tell why without reading the message; None for errors raised in Python.
    (A MemoryError from the C core carries the attribute too.)"""

    status: Optional[str] = None


class InvalidModel(GruinferError, ValueError):
    """The model cannot be loaded: malformed graph, bad weights or attributes, unsupported op."""


class UnsupportedOp(InvalidModel):
    """The graph holds an op gruinfer does not run."""


class NotStreamable(InvalidModel):
    """The model needs the whole sequence (bidirectional or reverse GRU, non-causal op)."""


class InvalidArgument(GruinferError, ValueError):
    """A feed, option or call argument is wrong: name, shape, dtype, value."""


class KernelUnavailable(GruinferError, RuntimeError):
    """The requested kernel is not built in or this CPU cannot run it."""
