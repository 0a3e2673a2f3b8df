"""onnx_io/budget.py: the load budgets (the bytes constant folding may make, the time the lifts' provers may take, the iterations a Loop may run) and the meter that holds a loading model to them."""
import contextlib
import contextvars
import time
from dataclasses import dataclass

from ..errors import InvalidArgument, InvalidModel

MIB = 1 << 20


@dataclass(frozen=True)
class LoadBudget:
    """What loading (and running) one model may spend; InferenceSession(load_budget=...).

    tensor_bytes: the most any one tensor folded at load may hold (default 128 MiB);
    folded_bytes: the most all the tensors folded while a model loads may hold together
      (default 512 MiB; every pass that folds counts: the lifts fold what they read, then the
      graph reader folds what is left);
    prover_seconds: the time the lifts (Loop -> GRU, GRU cells -> GRU) may take to prove
      a model's patterns (default 10 s);
    loop_iterations: the most iterations a Loop that was not lifted may run in one call
      (default 2**16), whatever its trip count or condition says.
    Exceeding a load budget raises InvalidModel naming the node and the budget; a Loop past
    loop_iterations raises InvalidArgument when the run reaches it, as a node failing at run
    time does."""
    tensor_bytes: int = 128 * MIB
    folded_bytes: int = 512 * MIB
    prover_seconds: float = 10.0
    loop_iterations: int = 1 << 16

    def __post_init__(self):
        for name in ("tensor_bytes", "folded_bytes", "loop_iterations"):
            v = getattr(self, name)
            if not isinstance(v, int) or isinstance(v, bool) or v < 0:
                raise InvalidArgument(f"LoadBudget.{name} must be an int >= 0, got {v!r}")
        v = self.prover_seconds
        if not isinstance(v, (int, float)) or isinstance(v, bool) or not v >= 0:
            raise InvalidArgument(f"LoadBudget.prover_seconds must be a number >= 0, got {v!r}")


def check_load_budget(budget):
    """The LoadBudget to use: the default for None."""
    if budget is None:
        return LoadBudget()
    if not isinstance(budget, LoadBudget):
        raise InvalidArgument(f"load_budget must be a gruinfer.LoadBudget or None, not "
                              f"{type(budget).__name__}")
    return budget


class BudgetExceeded(Exception):
    """Folding a node would pass a load budget; the message names the budget.  ops.apply turns
    it into an OpError, so a lift does not fold the node and the graph reader names it."""


class _Meter:
    """What the model loading in this context has spent of its budget."""

    def __init__(self, budget):
        self.budget = budget
        self.folded = 0
        self.deadline = time.monotonic() + budget.prover_seconds


_current = contextvars.ContextVar("gruinfer_load_meter", default=None)


@contextlib.contextmanager
def loading(budget):
    """Hold what runs inside (one model's load, in this thread) to budget."""
    token = _current.set(_Meter(budget))
    try:
        yield
    finally:
        _current.reset(token)


def before_fold(elements, itemsize):
    """Refuse (BudgetExceeded) to fold a node whose largest output may hold `elements` of
    `itemsize` bytes, when it would pass tensor_bytes; nothing outside a load."""
    m = _current.get()
    if m is not None and elements * itemsize > m.budget.tensor_bytes:
        raise BudgetExceeded(f"folding it at load would make a tensor of {elements} elements "
                             f"({_size(elements * itemsize)}), over the load budget tensor_bytes="
                             f"{_size(m.budget.tensor_bytes)}")


def charge_fold(nbytes):
    """Count `nbytes` of folded outputs against folded_bytes (BudgetExceeded past it)."""
    m = _current.get()
    if m is None:
        return
    m.folded += nbytes
    if m.folded > m.budget.folded_bytes:
        raise BudgetExceeded(f"constants folded at load reach {_size(m.folded)}, over the load "
                             f"budget folded_bytes={_size(m.budget.folded_bytes)}")


def check_prover_time(where):
    """InvalidModel when the lifts' provers have used up prover_seconds (nothing outside a load)."""
    m = _current.get()
    if m is not None and time.monotonic() > m.deadline:
        raise InvalidModel(f"{where}: proving the model's GRU patterns took over "
                           f"{m.budget.prover_seconds} s, the load budget prover_seconds")


def _size(n):
    return f"{n / MIB:.1f} MiB" if n >= MIB else f"{n} bytes"
