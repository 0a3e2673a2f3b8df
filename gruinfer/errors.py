"""errors.py: the exception hierarchy every gruinfer failure maps to."""


class GruinferError(Exception):
    """Base class of every error gruinfer raises on purpose.

    status: for an error the C core reported, its status by a short name ("nonfinite", "size",
    "index", ...; see _core.pyx), so callers tell why without reading the message; else None."""
    status = None


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
