"""lower: the time path of a graph read by meaning and lowered to a plan of typed C steps for streams."""
from .lowering import lower
from .steps import Fallback, GruSlot, Lowering, StateUse
from .values import MERGED, Seq, State

__all__ = ["Fallback", "GruSlot", "Lowering", "MERGED", "Seq", "State", "StateUse", "lower"]
