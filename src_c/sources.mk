# src_c/sources.mk: the one list of the library's C files and the flags only the ISA kernel files get; read by src_c/Makefile and (through tools/cbuild.py) by setup.py.
# Plain `NAME = words` lines only: tools/cbuild.py parses them without make.

# Every portable source, built on every architecture (kernels_ref.c is the reference kernel).
LIB_SOURCES = cpu.c status.c mem.c gru_model.c activations.c gru_run.c team.c gru_plan.c gru_stream.c plan_ops.c kernels_ref.c model_file.c
# x86-64 only: each file #errors unless built with its FLAGS_<name> below; cpu.c picks one at run time.
X86_SOURCES = x86/kernels_avx2.c x86/kernels_avx512.c
# Every file (-std=c11 turns FMA contraction off; never -march=native here: builds run on any CPU).
BASE_CFLAGS = -O2 -std=c11 -fno-math-errno
# The kernels are written for a * b + c to become one FMA; -O3 vectorises the gate loops of
# gru_cell_arch.h, which -O2 leaves scalar.
FLAGS_kernels_avx2 = -mavx2 -mfma -ffp-contract=fast -O3
FLAGS_kernels_avx512 = -mavx512f -mfma -ffp-contract=fast -O3
