"""interp: the declared slow path: graphs run node by node through the NumPy ops, Loops iteration by iteration, GRU nodes in C."""
from .run import GruState, Interpreter
from .weights import build_layer, build_layers

__all__ = ["GruState", "Interpreter", "build_layer", "build_layers"]
