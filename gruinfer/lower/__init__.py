"""lower: the time path of a graph read by meaning and lowered to a plan of C steps for streams."""
from .lowering import MERGED, Lowering, Seq, State, lower

__all__ = ["MERGED", "Lowering", "Seq", "State", "lower"]
