"""tools/cbuild.py: how to compile the C library in src_c/ without Python's build (sources and per-ISA flags read from src_c/sources.mk, the compiler, link flags); used by setup.py, tests/test_c_api.py and benchmarks/cbench.py."""
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


def sources_mk():
    """{name: [words]} of src_c/sources.mk, the one list of C files and per-ISA flags (its
    `NAME = words` lines; comments and blank lines skipped)."""
    out = {}
    for line in (SRC / "sources.mk").read_text().splitlines():
        line = line.split("#", 1)[0].strip()
        if line:
            name, eq, words = line.partition("=")
            if not eq:
                raise BuildFailed(f"src_c/sources.mk: not a `NAME = words` line: {line!r}")
            out[name.strip()] = words.split()
    return out


def base_cflags():
    """The flags every library file is compiled with (sources.mk's BASE_CFLAGS)."""
    return sources_mk()["BASE_CFLAGS"]


def isa_flags():
    """{kernel file name: the flags only it is compiled with}, sources.mk's FLAGS_<stem> lines."""
    mk = sources_mk()
    return {Path(f).name: mk.get("FLAGS_" + Path(f).stem, []) for f in mk["X86_SOURCES"]}


def library_sources(x86_64=IS_X86_64):
    """Every C file of the library, as sources.mk lists them: the x86 kernels on x86-64 only."""
    mk = sources_mk()
    return [SRC / f for f in mk["LIB_SOURCES"] + (mk["X86_SOURCES"] if x86_64 else [])]
