"""cbench.py: builds c_step_bench.c against the library's C sources (as tests/test_c_api.py does, with setup.py's per-ISA flags) in a temporary directory and runs it."""
import argparse
import shlex
import subprocess
import sys
import tempfile
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
from cbuild import (LINK_FLAGS, SRC, BuildFailed, base_cflags, compiler,  # noqa: E402
                    isa_flags, library_sources)

BENCH_C = Path(__file__).resolve().parent / "c_step_bench.c"
# The library gets the flags the extension is built with (setup.py's base flags,
# with NDEBUG as Python's build adds it; never -march=native: the kernels are
# the shipped ones); only the benchmark's own file may use -march=native, for
# the widest loads in its memory-read loop.
LIB_CFLAGS = base_cflags() + ["-DNDEBUG"]  # sources.mk's
BENCH_CFLAGS = ["-std=c11", "-O2", "-fno-math-errno"]


def _run(args):
    r = subprocess.run(args, capture_output=True, text=True)
    return args, r


def build(out_dir):
    """Compile the library and c_step_bench.c into out_dir; returns (executable, bench flags)."""
    cc = compiler()
    flags = isa_flags()
    out_dir = Path(out_dir)
    bench_flags = BENCH_CFLAGS + ["-march=native"]
    probe = _run(cc + bench_flags + ["-I", str(SRC), "-c", str(BENCH_C), "-o",
                                     str(out_dir / "probe.o")])[1]
    if probe.returncode != 0:      # a compiler without -march=native: plain flags
        bench_flags = BENCH_CFLAGS
    jobs = [cc + LIB_CFLAGS + flags.get(s.name, []) + ["-I", str(SRC), "-c", str(s), "-o",
                                                       str(out_dir / f"{i}_{s.stem}.o")]
            for i, s in enumerate(library_sources())]
    jobs.append(cc + bench_flags + ["-I", str(SRC), "-c", str(BENCH_C), "-o",
                                    str(out_dir / "c_step_bench.o")])
    with ThreadPoolExecutor(max_workers=2) as ex:
        results = list(ex.map(_run, jobs))
    errors = [f"$ {shlex.join(a)}\n{r.stdout}{r.stderr}" for a, r in results if r.returncode]
    if errors:
        raise BuildFailed("compilation failed:\n" + "\n".join(errors))
    exe = out_dir / "c_step_bench"
    objs = [a[a.index("-o") + 1] for a in jobs]
    args, r = _run(cc + objs + ["-o", str(exe)] + LINK_FLAGS)
    if r.returncode:
        raise BuildFailed(f"link failed:\n$ {shlex.join(args)}\n{r.stdout}{r.stderr}")
    return exe, bench_flags


def parse(stdout):
    """Rows of c_step_bench's output as dicts."""
    rows = []
    for line in stdout.splitlines():
        if not line.strip() or line.startswith("#"):
            continue
        k, H, I, b, ns, wb, rns, gbps = line.split()
        rows.append({"kernel": k, "H": int(H), "I": int(I), "batch": int(b),
                     "step_ns": float(ns), "weight_bytes": int(wb), "read_ns": float(rns),
                     "read_GBps": float(gbps)})
    return rows


def run(sizes, kernel="all", batch=1, rounds=15, seconds=0.3, timeout=600):
    """Build in a temporary directory and run; returns (rows, header line, build flags)."""
    with tempfile.TemporaryDirectory(prefix="gruinfer_cbench_") as tmp:
        exe, flags = build(tmp)
        args = [str(exe), "-b", str(batch), "-k", kernel, "-s", ",".join(map(str, sizes)),
                "-r", str(rounds), "-t", str(seconds)]
        r = subprocess.run(args, capture_output=True, text=True, timeout=timeout)
        if r.returncode:
            raise RuntimeError(f"{shlex.join(args)} failed ({r.returncode}):\n{r.stdout}{r.stderr}")
    header = next((ln for ln in r.stdout.splitlines() if ln.startswith("#")), "")
    return parse(r.stdout), header, {"library": LIB_CFLAGS, "isa": isa_flags(), "bench": flags}


def main(argv=None):
    p = argparse.ArgumentParser(
        description="Build benchmarks/c_step_bench.c with the library's C sources in a temporary "
                    "directory and print, per kernel and hidden size (I = H), the C-level time of "
                    "one stream step next to the time to read the fp32 weights once.")
    p.add_argument("--sizes", default="32,64,256,1024", help="hidden sizes (default: %(default)s)")
    p.add_argument("--kernel", default="all", help="kernel name or 'all' (default: %(default)s)")
    p.add_argument("--batch", type=int, default=1, help="slots per step (default: %(default)s)")
    p.add_argument("--rounds", type=int, default=15, help="rounds, median kept (default: %(default)s)")
    p.add_argument("--seconds", type=float, default=0.3,
                   help="seconds per measurement, all rounds (default: %(default)s)")
    a = p.parse_args(argv)
    rows, header, flags = run([int(s) for s in a.sizes.split(",")], a.kernel, a.batch,
                              a.rounds, a.seconds)
    print(header)
    print(f"{'kernel':<8} {'H':>5} {'step us':>10} {'read us':>10} {'step/read':>10} {'read GB/s':>10}")
    for r in rows:
        print(f"{r['kernel']:<8} {r['H']:>5} {r['step_ns'] / 1e3:>10.3f} {r['read_ns'] / 1e3:>10.3f} "
              f"{r['step_ns'] / r['read_ns']:>10.2f} {r['read_GBps']:>10.1f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
