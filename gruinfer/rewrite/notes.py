"""rewrite/notes.py: LiftNote, the record of what a rewrite did with one pattern (lifted, or left as it was and why)."""
from dataclasses import dataclass

LOOP, CELLS = "loop", "cells"
LIFTED, LEFT = "lifted", "left"


@dataclass(frozen=True)
class LiftNote:
    """One rewrite outcome.  kind: LOOP (a Loop node) or CELLS (GRU cells written as plain ops);
    node: the Loop's name, or the value the cells compute (None when no one node is meant);
    outcome: LIFTED or LEFT; detail: what it became, or why it was left."""
    kind: str
    node: object
    outcome: str
    detail: str

    @property
    def slow(self):
        """A Loop left as it was: it runs iteration by iteration (the declared slow path)."""
        return self.kind == LOOP and self.outcome == LEFT

    def __str__(self):
        if self.kind == CELLS:
            return self.detail
        if self.outcome == LIFTED:
            return f"Loop {self.node!r} lifted into GRU ({self.detail})"
        return (f"Loop {self.node!r} left unchanged: {self.detail}; it runs iteration by "
                "iteration through the NumPy ops (slow, and the model cannot stream)")
