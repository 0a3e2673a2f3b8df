#!/usr/bin/env bash
# tools/sanitize.sh: the test suite once more with the C extension built under AddressSanitizer and UndefinedBehaviorSanitizer (gcc), in a copy of the tree; any report fails the run.
# Usage: bash tools/sanitize.sh [pytest arguments, default: tests]   (from a venv with the test extra)
# (test_packaging is left out: it checks the size of the shipped build, which this one is not.)
set -euo pipefail
repo="$(cd "$(dirname "$0")/.." && pwd)"
work="$(mktemp -d)"
trap 'rm -rf "$work"' EXIT
(cd "$repo" && tar --exclude=./.git --exclude=./build -cf - .) | tar -xf - -C "$work"
find "$work/gruinfer" \( -name '*.so' -o -name '_core.c' \) -delete
san="-fsanitize=address,undefined -fno-sanitize-recover=undefined -fno-omit-frame-pointer -g"
(cd "$work" && CFLAGS="$san" LDFLAGS="$san" python setup.py -q build_ext --inplace >/dev/null)
# Python itself is not instrumented: the runtimes are preloaded; its own allocations are not
# leaks we can fix, so leak detection is off (ASan still catches overflows and use-after-free).
preload="$(gcc -print-file-name=libasan.so) $(gcc -print-file-name=libubsan.so)"
cd "$work"
LD_PRELOAD="$preload" PYTHONPATH="$work" ASAN_OPTIONS=detect_leaks=0 python -c \
    "import gruinfer, sys; sys.exit(not gruinfer._core.__file__.startswith('$work'))" \
    || { echo "sanitize.sh: the sanitized build is not the one imported" >&2; exit 1; }
# LDFLAGS: C programs the tests link with the shipped (sanitized) libgruinfer.a need the runtimes.
LD_PRELOAD="$preload" PYTHONPATH="$work" LDFLAGS="$san" \
    ASAN_OPTIONS="detect_leaks=0:halt_on_error=1:abort_on_error=0:exitcode=86" \
    UBSAN_OPTIONS="halt_on_error=1:print_stacktrace=1:exitcode=87" \
    python -m pytest -q -p no:cacheprovider --ignore=tests/test_packaging.py "${@:-tests}"
