"""tools/fuzz_atheris.py: coverage-guided fuzzing of InferenceSession over model bytes (atheris, where it pip-installs), seeded with the test fixtures; any exception that is not a gruinfer error is a finding.

    pip install atheris
    nice -n 10 python tools/fuzz_atheris.py -max_total_time=600 -rss_limit_mb=3000 /tmp/corpus

The corpus folder is filled with the fixtures' bytes first; findings are written by libFuzzer as
crash-* files (run the script on one to reproduce it).
"""
import glob
import os
import sys

import atheris

with atheris.instrument_imports(include=["gruinfer"]):
    import gruinfer

import numpy as np

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests", "fixtures")


def feeds(sess):
    out = {}
    for a in sess.get_inputs():
        shape = [d if isinstance(d, int) and 0 < d <= 16 else 2 for d in (a.shape or [2, 1, 4])]
        out[a.name] = np.ones(shape, np.int64 if "int" in a.type else np.float32)
    return out


def one(data):
    try:
        sess = gruinfer.InferenceSession(data)
        sess.run(None, feeds(sess))
        s = sess.stream(1)
        s.run(None, feeds(sess))
    except gruinfer.GruinferError:
        pass


def main():
    dirs = [a for a in sys.argv[1:] if not a.startswith("-")]
    if dirs and os.path.isdir(dirs[0]) and not os.listdir(dirs[0]):
        for f in glob.glob(os.path.join(FIXTURES, "*.onnx")):
            with open(f, "rb") as src, open(os.path.join(dirs[0], os.path.basename(f)), "wb") as dst:
                dst.write(src.read())
    atheris.Setup(sys.argv, one)
    atheris.Fuzz()


if __name__ == "__main__":
    main()
