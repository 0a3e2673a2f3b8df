"""_core.pyi: type stubs for the compiled private module (see _core.pyx)."""
from typing import Any, Optional, Protocol, Sequence

import numpy as np

STEP_KINDS: dict[str, int]   # C plan step kinds by name (gruinfer_step_kind_name)
BINARY_OPS: dict[str, int]   # "binary" step operators by name (gruinfer_binary_op)
IN_USE: str                  # the message of a stream call refused while another call uses the stream

def kernel_names() -> list[str]: ...
def kernel_supported(name: str) -> bool: ...
def kernel_default() -> Optional[str]: ...
def ids_to_float(x: np.ndarray) -> np.ndarray: ...

def checksum(data: bytes) -> int: ...

class Model:
    """A compiled .gruinfer file opened by C."""
    writer: str
    source_hash: str
    meta: bytes
    def __init__(self, data: bytes, kernel: Optional[str]) -> None: ...
    def names(self, role: int) -> list[tuple[str, int]]: ...
    def arrays(self) -> list[np.ndarray]: ...
    def plan(self, kinds: list) -> "Plan": ...

class Gru:
    input_size: int
    hidden_size: int
    num_directions: int
    direction: int
    def __init__(self, input_size: int, hidden_size: int, direction: int,
                 linear_before_reset: int, clip: Optional[float], f: list, g: list,
                 W: np.ndarray, R: np.ndarray, B: Optional[np.ndarray], kernel: Optional[str],
                 name: str, threads: int = ...) -> None: ...
    @property
    def kernel(self) -> str: ...
    def run(self, X: np.ndarray, layout: int, seq_lens: Optional[np.ndarray],
            initial_h: Optional[np.ndarray], want_y: bool, want_yh: bool, check_finite: bool,
            name: str) -> tuple[Optional[np.ndarray], Optional[np.ndarray]]: ...

class PlanStep(Protocol):
    """What Plan reads of each step (copied 1:1 into C's gruinfer_step)."""
    kind: str                                  # a key of STEP_KINDS
    input: int                                 # 0: the plan input; k >= 1: step k-1's output
    input2: int                                # a second buffer, or -1: none
    layer: Optional[Gru]                       # the layer of a "gru" step
    ints: Sequence[int]                        # at most 8
    floats: Sequence[float]                    # at most 4
    tables: Sequence[Optional[np.ndarray]]     # at most 2, float32 C-contiguous
    rule: str                                  # the sizes the tables need, for error messages

class Plan:
    steps: list
    input_width: int
    def __init__(self, input_width: int, steps: list, kernel: Optional[str],
                 model: Optional[Model] = ...) -> None: ...
    def width(self, k: int) -> int: ...

class StreamCore:
    plan: Plan
    batch_size: int
    check_finite: bool
    ids_input: bool
    frame_in_shape: tuple
    frame_out_shape: tuple
    def __init__(self, plan: Plan, batch_size: int, step_out: int, frame_in_shape: tuple,
                 frame_out_shape: tuple, check_finite: bool = ...) -> None: ...
    def _claim(self) -> None: ...
    def _release(self) -> None: ...
    def _coerce_frame(self, x: Any) -> np.ndarray: ...
    def step(self, x: Any, out: Optional[np.ndarray] = ...) -> np.ndarray: ...
    def run_chunk(self, x: np.ndarray, T: int, x_st: int, x_sn: int, outs: dict,
                  what: str = ...) -> None: ...
