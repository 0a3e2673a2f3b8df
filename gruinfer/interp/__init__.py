"""interp: the declared slow path: graphs run node by node through the NumPy ops, Loops iteration by iteration, GRU nodes in C."""
