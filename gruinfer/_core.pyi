"""_core.pyi: type stubs for the compiled private module (see _core.pyx)."""
from typing import Any, Optional

import numpy as np

def kernel_names() -> list[str]: ...
def kernel_supported(name: str) -> bool: ...
def kernel_default() -> Optional[str]: ...

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

class Plan:
    steps: list
    input_width: int
    def __init__(self, input_width: int, steps: list, kernel: Optional[str]) -> None: ...
    def width(self, k: int) -> int: ...

class StreamCore:
    plan: Plan
    batch_size: int
    check_finite: bool
    def step(self, x: Any, out: Optional[np.ndarray] = ...) -> np.ndarray: ...
    def run_chunk(self, x: np.ndarray, T: int, x_st: int, x_sn: int, outs: dict) -> None: ...
