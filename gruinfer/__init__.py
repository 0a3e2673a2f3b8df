"""gruinfer: C-accelerated GRU inference for ONNX models, whole sequences and stateful streams."""
import os as _os

try:
    from . import _core
except ImportError as _e:  # no silent slow path: without the C core there is no gruinfer
    raise ImportError(
        "gruinfer's C extension (gruinfer._core) failed to import; reinstall with "
        "`pip install .` from the source tree so the extension is built: " + str(_e)) from _e

from .errors import (GruinferError, InvalidArgument, InvalidModel, KernelUnavailable,
                     NotStreamable, UnsupportedOp)
from .binding import IOBinding
from .clib import get_include, get_library_dir
from .graph import NodeArg
from .onnx_io.budget import LoadBudget
from .options import (ExecutionMode, GraphOptimizationLevel, ModelMetadata, RunOptions,
                      SessionOptions, get_available_providers, get_device)
from .session import InferenceSession
from .stream import Stream

__version__ = "0.1.0"

__all__ = ["InferenceSession", "Stream", "NodeArg", "LoadBudget", "SessionOptions", "RunOptions",
           "ModelMetadata", "IOBinding", "GraphOptimizationLevel", "ExecutionMode",
           "get_available_providers", "get_device", "kernel_info", "get_include",
           "get_library_dir", "GruinferError",
           "InvalidArgument", "InvalidModel", "KernelUnavailable", "NotStreamable",
           "UnsupportedOp", "compile", "__version__"]


def kernel_info():
    """Which kernels are built in, which this CPU runs, and which one new sessions use.

    {"selected": name or None, "available": [...], "supported": [...],
     "env": value of GRUINFER_KERNEL or None}.  "selected" is None when
    GRUINFER_KERNEL names a kernel that is unknown or unsupported here."""
    names = _core.kernel_names()
    return {
        "selected": _core.kernel_default(),
        "available": names,
        "supported": [n for n in names if _core.kernel_supported(n)],
        "env": _os.environ.get("GRUINFER_KERNEL"),
    }


def compile(model, path, **session_args):  # noqa: A001 (the name the issue gives it)
    """Compile an ONNX model (path, bytes or ModelProto) into a .gruinfer file at path that
    InferenceSession loads without onnx; session_args as InferenceSession takes them.
    NotStreamable, naming what stays in Python, when its plan is not wholly in C."""
    InferenceSession(model, **session_args).save(path)
