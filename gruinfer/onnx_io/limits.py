"""onnx_io/limits.py: the size bound every op that creates a tensor from sizes it is given checks first."""
import numpy as np

# The most elements an op may create from sizes it is given (1 GiB of float32).
MAX_ELEMENTS = 1 << 28


def check_size(shape):
    """shape, or ValueError when a tensor of that shape would hold more than MAX_ELEMENTS."""
    n = int(np.prod([max(int(d), 0) for d in shape], dtype=np.float64))
    if n > MAX_ELEMENTS:
        raise ValueError(f"a tensor of shape {list(shape)} ({n} elements) is too large "
                         f"(at most {MAX_ELEMENTS})")
    return shape


def text(value):
    """A string attribute (bytes, as onnx decodes it, or str) as str."""
    return value.decode() if isinstance(value, bytes) else str(value)
