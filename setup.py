"""setup.py: the extension list; per-ISA flags go on the per-ISA kernel files only (GRUINFER_NATIVE=1 adds -march=native for local builds; GRUINFER_DEBUG=1 keeps debug info, which builds otherwise strip)."""
import os
import platform
import sys

import numpy
from Cython.Build import cythonize
from setuptools import Extension, setup
from setuptools.command.build_ext import build_ext

C_SOURCES = [
    "src_c/cpu.c",
    "src_c/status.c",
    "src_c/mem.c",
    "src_c/gru_model.c",
    "src_c/activations.c",
    "src_c/gru_run.c",
    "src_c/team.c",
    "src_c/gru_plan.c",
    "src_c/gru_stream.c",
    "src_c/plan_ops.c",
    "src_c/kernels_ref.c",
    "src_c/model_file.c",
]
# Kernel files and the flags only they are compiled with (-std=c11 turns FMA
# contraction off; the kernels are written for a * b + c to become one FMA;
# -O3 vectorises the gate loops of gru_cell_arch.h, which -O2 leaves scalar).
ISA_FLAGS = {
    "kernels_avx2.c": ["-mavx2", "-mfma", "-ffp-contract=fast", "-O3"],
    "kernels_avx512.c": ["-mavx512f", "-mfma", "-ffp-contract=fast", "-O3"],
}
IS_X86 = platform.machine().lower() in ("x86_64", "amd64", "x86-64")
if IS_X86:
    C_SOURCES += ["src_c/x86/kernels_avx2.c", "src_c/x86/kernels_avx512.c"]

BASE_FLAGS = ["-O2", "-std=c11", "-fno-math-errno"] if sys.platform != "win32" else []
if os.environ.get("GRUINFER_NATIVE") == "1":
    BASE_FLAGS.append("-march=native")  # local builds only: GRUINFER_NATIVE=1


class BuildExt(build_ext):
    """Adds the per-ISA flags to the kernel files they belong to, and to no other file."""

    def build_extensions(self):
        compile_one = self.compiler._compile

        def _compile(obj, src, ext, cc_args, extra_postargs, pp_opts):
            extra = ISA_FLAGS.get(os.path.basename(src), [])
            if src.endswith(".c"):
                extra = [f for f in BASE_FLAGS] + extra
            compile_one(obj, src, ext, cc_args, list(extra_postargs) + extra, pp_opts)

        self.compiler._compile = _compile
        super().build_extensions()


ext = Extension(
    "gruinfer._core",
    sources=["gruinfer/_core.pyx"] + C_SOURCES,
    include_dirs=["src_c", numpy.get_include()],
    depends=["src_c/gru.h", "src_c/gru_internal.h", "src_c/gru_plan.h", "src_c/kernels.h",
             "src_c/kernels_simd.h", "src_c/gru_cell_arch.h"],
    define_macros=[("NPY_NO_DEPRECATED_API", "NPY_1_7_API_VERSION")],
    extra_link_args=([] if sys.platform == "win32" else ["-pthread"])
    + ([] if sys.platform in ("win32", "darwin") or os.environ.get("GRUINFER_DEBUG") == "1"
       else ["-s"]),  # stripped: 1.4 MB with debug info, a fraction without
)

setup(
    ext_modules=cythonize([ext], compiler_directives={"language_level": 3}),
    cmdclass={"build_ext": BuildExt},
)
