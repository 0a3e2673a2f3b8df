"""Builds tests/c/test_gru_api.c against the library's C sources alone (no Python) with the system C compiler, warnings as errors, and runs it."""
import os
import re
import shlex
import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
from cbuild import (IS_X86_64, LINK_FLAGS, SRC, BuildFailed, base_cflags,  # noqa: E402
                    compiler, isa_flags, library_sources)

TEST_C = Path(__file__).resolve().parent / "c" / "test_gru_api.c"
CFLAGS = base_cflags() + ["-Wall", "-Wextra", "-Werror"]  # sources.mk's, warnings as errors


# Builds: the product's optimised build, and one under AddressSanitizer + UBSan
# (out-of-bounds, use-after-free, leaks, undefined behaviour in the C core).
BUILDS = {
    "plain": [],
    "asan_ubsan": ["-O1", "-g", "-fno-omit-frame-pointer", "-fsanitize=address,undefined",
                   "-fno-sanitize-recover=all"],
}


def _compile(cmd, src, obj, flags):
    args = cmd + CFLAGS + flags + ["-I", str(SRC), "-c", str(src), "-o", str(obj)]
    r = subprocess.run(args, capture_output=True, text=True)
    return src, args, r


def _sanitizers_work(cc, flags, tmp):
    """True when this compiler can build and run a program with the sanitizer flags."""
    src = tmp / "probe.c"
    src.write_text("int main(void) { return 0; }\n")
    exe = tmp / "probe"
    r = subprocess.run(cc + flags + [str(src), "-o", str(exe)], capture_output=True)
    return r.returncode == 0 and subprocess.run([str(exe)], capture_output=True).returncode == 0


def build_program(kind, out, program=TEST_C):
    """Compile every library source and a test program (tests/c/test_gru_api.c unless another
    is named; flags of build `kind`) and link them.
    Returns the executable, None when the sanitizer runtime is missing, or raises BuildFailed."""
    cc = compiler()
    build = BUILDS[kind]
    if build and not _sanitizers_work(cc, build, out):
        return None
    flags = isa_flags()
    srcs = library_sources()
    if not any(s.name == "gru_run.c" for s in srcs):
        raise BuildFailed(f"library sources not found in {SRC}")
    if IS_X86_64:
        for name in flags:
            if not (SRC / "x86" / name).is_file():
                raise BuildFailed(f"setup.py's ISA_FLAGS names {name}, which is not in src_c/x86")
    jobs = [(s, out / f"{i}_{s.stem}.o", flags.get(s.name, []) + build) for i, s in enumerate(srcs)]
    jobs.append((program, out / f"{program.stem}.o", build))
    with ThreadPoolExecutor(max_workers=2) as ex:
        results = list(ex.map(lambda j: _compile(cc, *j), jobs))
    errors = [f"$ {shlex.join(args)}\n{r.stdout}{r.stderr}" for _, args, r in results
              if r.returncode != 0]
    if errors:
        raise BuildFailed("compilation failed (warnings are errors):\n" + "\n".join(errors))
    exe = out / program.stem
    link = cc + build + [str(o) for _, o, _ in jobs] + ["-o", str(exe)] + LINK_FLAGS
    r = subprocess.run(link, capture_output=True, text=True)
    if r.returncode != 0:
        raise BuildFailed(f"link failed:\n$ {shlex.join(link)}\n{r.stdout}{r.stderr}")
    return exe


@pytest.fixture(scope="module", params=list(BUILDS))
def c_test_run(request, tmp_path_factory):
    """(kind, CompletedProcess or None, build error or None): one build and one run per kind,
    with GRUINFER_KERNEL unset (the program sets it itself)."""
    kind = request.param
    try:
        exe = build_program(kind, tmp_path_factory.mktemp(f"c_api_{kind}"))
    except BuildFailed as e:
        return kind, None, str(e)
    if exe is None:
        return kind, None, None
    env = {k: v for k, v in os.environ.items() if k != "GRUINFER_KERNEL"}
    run = subprocess.run([str(exe)], capture_output=True, text=True, timeout=120, env=env)
    return kind, run, None


def _completed(c_test_run):
    kind, r, error = c_test_run
    if error:
        pytest.fail(error, pytrace=False)
    if r is None:
        pytest.skip(f"the compiler cannot build and run with {shlex.join(BUILDS[kind])} "
                    "(sanitizer runtime missing); the plain build is still tested")
    return r


def test_c_api(c_test_run):
    r = _completed(c_test_run)
    out = r.stdout + r.stderr
    lines = r.stdout.strip().splitlines()
    last = lines[-1] if lines else ""
    m = re.fullmatch(r"(\d+) passed, (\d+) failed", last)
    assert r.returncode >= 0, f"the C test program died with signal {-r.returncode}:\n{out}"
    assert m, f"the last line is not 'N passed, M failed' (exit code {r.returncode}):\n{out}"
    assert int(m.group(1)) > 0
    failures = "\n".join(line for line in lines if line.startswith("FAIL"))
    assert r.returncode == 0 and m.group(2) == "0", f"{last}\n{failures}"


def test_c_api_runs_every_supported_kernel(c_test_run):
    """The program reports each kernel; every kernel Python says this CPU runs was exercised."""
    import gruinfer

    r = _completed(c_test_run)
    ran = set(re.findall(r"^kernel (\S+): (?:ok|FAILED)$", r.stdout, re.M))
    assert set(gruinfer.kernel_info()["supported"]) <= ran, r.stdout


def test_sources_mk_lists_every_c_file():
    """src_c/sources.mk, the one list setup.py and src_c/Makefile build, names every C file of
    src_c/ (a file left out would be built by neither), and only the x86 kernels are x86-only."""
    on_disk = sorted(str(p.relative_to(SRC)) for p in list(SRC.glob("*.c")) + list(SRC.glob("x86/*.c")))
    listed = sorted(str(p.relative_to(SRC)) for p in library_sources(x86_64=True))
    assert listed == on_disk
    portable = [str(p.relative_to(SRC)) for p in library_sources(x86_64=False)]
    assert not [s for s in portable if s.startswith("x86/")] and "kernels_ref.c" in portable
    assert set(isa_flags()) == {"kernels_avx2.c", "kernels_avx512.c"}
