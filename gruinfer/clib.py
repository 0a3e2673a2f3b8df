"""gruinfer.clib: where the installed package keeps the C library's header and static library, for C programs and extensions that link the same libgruinfer."""
from pathlib import Path

_HERE = Path(__file__).resolve().parent


def _existing(path, what):
    if not path.is_file():
        raise FileNotFoundError(f"{what} is not in this gruinfer install ({path}); "
                                "it is built with the extension (pip install .)")
    return str(path.parent)


def get_include():
    """The directory holding gru.h, the C API: pass it as -I."""
    return _existing(_HERE / "include" / "gru.h", "gru.h")


def get_library_dir():
    """The directory holding libgruinfer.a (static, position-independent): pass it as -L, then
    link with -lgruinfer -lm -pthread."""
    return _existing(_HERE / "lib" / "libgruinfer.a", "libgruinfer.a")
