"""rewrite: exporter patterns proved and replaced before the graph is read: Loops and GRU cells written as plain ops become GRU nodes; every outcome is a LiftNote."""
from .cells import lift_cells
from .loops import lift_loops
from .notes import LiftNote

__all__ = ["LiftNote", "lift_cells", "lift_loops", "rewrite"]


def rewrite(model):
    """(model, [LiftNote]): the model with every provable GRU Loop and GRU cell replaced by GRU
    nodes (a new ModelProto when anything changed; the input is never modified)."""
    notes = []
    if any(n.op_type == "Loop" for n in model.graph.node):
        model, notes = lift_loops(model)
    model, cell_notes = lift_cells(model)
    return model, notes + cell_notes
