"""tools/cbuild.py: how to compile the C library in src_c/ without Python's build (sources, setup.py's per-ISA flags, the compiler, link flags); used by tests/test_c_api.py and benchmarks/cbench.py."""
import ast
import os
import platform
import shlex
import shutil
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
SRC = ROOT / "src_c"
IS_X86_64 = platform.machine().lower() in ("x86_64", "amd64", "x86-64")
LINK_FLAGS = ["-lm", "-pthread"]  # team.c starts threads


class BuildFailed(Exception):
    """The C library (or a program using it) could not be built."""


def compiler():
    """The C compiler command: $CC if set (may carry arguments), else cc / gcc / clang on PATH."""
    cc = os.environ.get("CC", "").strip()
    if cc:
        cmd = shlex.split(cc)
        if shutil.which(cmd[0]):
            return cmd
        raise BuildFailed(f"CC={cc!r} is set but {cmd[0]!r} is not an executable on PATH")
    for name in ("cc", "gcc", "clang"):
        path = shutil.which(name)
        if path:
            return [path]
    raise BuildFailed("no C compiler found (set CC or install cc/gcc/clang)")


def setup_py():
    """setup.py's syntax tree: its literals are read, setup() is never run."""
    return ast.parse((ROOT / "setup.py").read_text())


def isa_flags():
    """{kernel file name: the flags only it is compiled with}, setup.py's ISA_FLAGS literal."""
    for node in setup_py().body:
        if (isinstance(node, ast.Assign) and len(node.targets) == 1
                and isinstance(node.targets[0], ast.Name) and node.targets[0].id == "ISA_FLAGS"):
            try:
                return ast.literal_eval(node.value)
            except ValueError:
                break
    raise BuildFailed("setup.py has no ISA_FLAGS literal to read the kernel flags from")


def library_sources():
    """Every C file of the library this machine builds (the x86 kernels on x86-64 only)."""
    srcs = sorted(SRC.glob("*.c"))
    if IS_X86_64:
        srcs += sorted((SRC / "x86").glob("*.c"))
    return srcs
