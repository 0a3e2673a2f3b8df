"""check_packages.py: build the sdist and the wheel as a release would, install each into a fresh venv, and check what a user gets (it runs, the extension and the shipped static libgruinfer are stripped, a C program links that library through get_include()/get_library_dir(), no generated C or Cython source ships, the installed package stays small).

    python tools/check_packages.py [--out DIR]

Exits nonzero, saying why, on the first failure; tests/test_packaging.py runs it.
"""
import argparse
import subprocess
import sys
import tempfile
import venv
import zipfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
MAX_INSTALLED = 1 << 20  # bytes of the installed package (gruinfer/ in site-packages)
SMOKE = """
import numpy as np, gruinfer
from gruinfer.cli import DEMO_MODEL
s = gruinfer.InferenceSession(DEMO_MODEL)
x = np.random.default_rng(0).standard_normal((7, 2, 8)).astype(np.float32)
y = s.run(None, {"x": x})[0]
st = s.stream(2)
z = np.stack([st.step(f) for f in x])
assert z.shape == y.shape and np.abs(z - y).max() < 1e-5, "stream differs from run"
print(gruinfer.__version__, gruinfer.kernel_info()["selected"])
"""


def run(*cmd, cwd="/"):
    """cmd's stdout; run away from the source tree, so `import gruinfer` finds the install."""
    done = subprocess.run(cmd, cwd=cwd, capture_output=True, text=True)
    if done.returncode:
        sys.exit(f"failed: {' '.join(map(str, cmd))}\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}")
    return done.stdout


def fresh_venv(where):
    venv.create(where, with_pip=True)
    return Path(where) / "bin" / "python"


def check_wheel(whl):
    names = zipfile.ZipFile(whl).namelist()
    shipped = [n for n in names if n.endswith((".c", ".pyx"))]
    if shipped:
        sys.exit(f"the wheel ships sources it does not need: {shipped}")
    if not any(n.startswith("gruinfer/_core") and n.endswith(".so") for n in names):
        sys.exit("the wheel has no compiled gruinfer._core")
    missing = {"gruinfer/include/gru.h", "gruinfer/lib/libgruinfer.a"} - set(names)
    if missing:
        sys.exit(f"the wheel lacks the C library files {sorted(missing)}")


def check_installed(py):
    out = run(py, "-c", SMOKE)
    site = Path(run(py, "-c", "import gruinfer, os; print(os.path.dirname(gruinfer.__file__))")
                .strip())
    size = sum(p.stat().st_size for p in site.rglob("*") if p.is_file()
               and "__pycache__" not in p.parts)
    if size > MAX_INSTALLED:
        sys.exit(f"installed package is {size} bytes, over {MAX_INSTALLED}")
    so = next(site.glob("_core*.so"))
    if ".debug_info" in run("readelf", "-S", str(so)) or ".symtab" in run("readelf", "-S", str(so)):
        sys.exit(f"{so.name} is not stripped")
    run(site.parent.parent.parent.parent / "bin" / "gruinfer", "demo")
    check_c_library(py, site)
    return out.strip(), size


C_PROGRAM = """
#include <stdio.h>
#include "gru.h"
int main(void) { printf("%s\\n", gruinfer_kernel_default()); return 0; }
"""


def check_c_library(py, site):
    """The installed header and static library: found by get_include()/get_library_dir(),
    without debug info, and a C program links them and runs."""
    inc, lib = run(py, "-c", "import gruinfer; print(gruinfer.get_include()); "
                   "print(gruinfer.get_library_dir())").split()
    archive = Path(lib) / "libgruinfer.a"
    if Path(inc) != site / "include" or Path(lib) != site / "lib":
        sys.exit(f"get_include()/get_library_dir() point outside the package: {inc}, {lib}")
    if ".debug_info" in run("readelf", "-S", str(archive)):
        sys.exit(f"{archive} keeps debug info")
    with tempfile.TemporaryDirectory() as tmp:
        src, exe = Path(tmp) / "uses_lib.c", Path(tmp) / "uses_lib"
        src.write_text(C_PROGRAM)
        run("cc", "-std=c11", str(src), "-I", inc, "-L", lib, "-lgruinfer", "-lm", "-pthread",
            "-o", str(exe))
        if not run(exe).strip():
            sys.exit("a program linked with the installed libgruinfer names no kernel")


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--out", help="keep the built files here (default: a temporary folder)")
    args = ap.parse_args(argv)
    with tempfile.TemporaryDirectory() as tmp:
        out = Path(args.out or tmp)
        builder = fresh_venv(Path(tmp) / "build-env")
        run(builder, "-m", "pip", "install", "-q", "build")
        # the wheel is built from the sdist, so this also checks that the sdist builds
        run(builder, "-m", "build", "--outdir", str(out / "dist"), str(ROOT))
        whl = next((out / "dist").glob("*.whl"))
        sdist = next((out / "dist").glob("*.tar.gz"))
        check_wheel(whl)
        for label, artefact in (("wheel", whl), ("sdist", sdist)):
            py = fresh_venv(Path(tmp) / f"{label}-env")
            run(py, "-m", "pip", "install", "-q", str(artefact))
            said, size = check_installed(py)
            print(f"{label}: {artefact.name} installs and runs ({said}); installed package "
                  f"{size / 1024:.0f} KiB")


if __name__ == "__main__":
    main()
