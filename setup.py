"""setup.py: the extension list (C files and per-ISA flags from src_c/sources.mk, read by tools/cbuild.py), plus the static libgruinfer and gru.h shipped as package data for gruinfer.get_include()/get_library_dir() (GRUINFER_NATIVE=1 adds -march=native for local builds; GRUINFER_DEBUG=1 keeps debug info, which builds otherwise strip)."""
import os
import shutil
import subprocess
import sys

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "tools"))
from cbuild import ROOT, base_cflags, isa_flags, library_sources  # noqa: E402

C_SOURCES = [str(p.relative_to(ROOT)) for p in library_sources()]
ISA_FLAGS = isa_flags()
BASE_FLAGS = base_cflags() if sys.platform != "win32" else []
if os.environ.get("GRUINFER_NATIVE") == "1":
    BASE_FLAGS.append("-march=native")  # local builds only: GRUINFER_NATIVE=1
STRIP = sys.platform not in ("win32", "darwin") and os.environ.get("GRUINFER_DEBUG") != "1"


class BuildExt(build_ext):
    """Adds the per-ISA flags to the kernel files they belong to, and to no other file; then
    archives the library's objects (not _core's) as gruinfer/lib/libgruinfer.a beside
    gruinfer/include/gru.h, so C code links the very library the extension runs."""

    def build_extensions(self):
        compile_one = self.compiler._compile

        def _compile(obj, src, ext, cc_args, extra_postargs, pp_opts):
            extra = ISA_FLAGS.get(os.path.basename(src), [])
            if src.endswith(".c"):
                extra = list(BASE_FLAGS) + extra
            compile_one(obj, src, ext, cc_args, list(extra_postargs) + extra, pp_opts)

        self.compiler._compile = _compile
        super().build_extensions()
        if sys.platform != "win32":
            self.ship_library(self.compiler.object_filenames(C_SOURCES, output_dir=self.build_temp))

    def ship_library(self, objects):
        pkg = os.path.join(self.build_lib, "gruinfer")
        os.makedirs(os.path.join(pkg, "include"), exist_ok=True)
        shutil.copyfile(os.path.join(ROOT, "src_c", "gru.h"), os.path.join(pkg, "include", "gru.h"))
        lib_dir = os.path.join(pkg, "lib")
        archive = os.path.join(lib_dir, "libgruinfer.a")
        if os.path.exists(archive):
            os.remove(archive)  # ar appends to an existing archive
        self.compiler.create_static_lib(objects, "gruinfer", output_dir=lib_dir)
        strip = os.environ.get("STRIP", "strip")
        if STRIP and shutil.which(strip):
            subprocess.run([strip, "--strip-debug", archive], check=True)

    def copy_extensions_to_source(self):
        """--inplace: the library and header go back to the source tree with the extension."""
        super().copy_extensions_to_source()
        for sub in ("include", "lib"):
            shutil.copytree(os.path.join(self.build_lib, "gruinfer", sub),
                            os.path.join(ROOT, "gruinfer", sub), dirs_exist_ok=True)


ext = Extension(
    "gruinfer._core",
    sources=["gruinfer/_core.pyx"] + C_SOURCES,
    include_dirs=["src_c", numpy.get_include()],
    depends=["src_c/gru.h", "src_c/gru_internal.h", "src_c/gru_plan.h", "src_c/kernels.h",
             "src_c/kernels_simd.h", "src_c/gru_cell_arch.h", "src_c/sources.mk"],
    define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
    extra_link_args=([] if sys.platform == "win32" else ["-pthread"])
    + (["-s"] if STRIP else []),  # stripped: 1.4 MB with debug info, a fraction without
)

setup(
    ext_modules=cythonize([ext], compiler_directives={"language_level": 3}),
    cmdclass={"build_ext": BuildExt},
)
