"""Compiled .gruinfer files: written from ONNX sessions, read back bit-identical (runs, streams, steps, states), without onnx in a fresh process, and refused cleanly when not wholly in C."""
import os
import pickle
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

import gruinfer
from gruinfer import model_file

FIXTURES = Path(__file__).resolve().parent / "fixtures"
DEMO = Path(gruinfer.__file__).resolve().parent / "data" / "demo.onnx"
WITH_DATA = sorted(p for p in FIXTURES.glob("*.onnx") if p.with_suffix(".npz").exists())


def _feeds(path, sess):
    """The fixture's recorded inputs (torch fixtures: in_<name>; the others: x_0, one input)."""
    z = np.load(path.with_suffix(".npz"))
    feeds = {k[3:]: z[k] for k in z.files if k.startswith("in_")}
    if feeds or len(sess.get_inputs()) > 1:
        return feeds
    return {sess.get_inputs()[0].name: z["x_0"]}


def _compiled(sess, tmp_path):
    out = tmp_path / "m.gruinfer"
    sess.save(out)
    return gruinfer.InferenceSession(str(out))


def _same(a, b):
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x.dtype == y.dtype and x.shape == y.shape
        assert np.array_equal(x.view(np.uint32) if x.dtype == np.float32 else x,
                              y.view(np.uint32) if y.dtype == np.float32 else y)


@pytest.mark.parametrize("path", WITH_DATA, ids=lambda p: p.stem)
def test_compiled_fixture_matches_onnx_session(path, tmp_path):
    sess = gruinfer.InferenceSession(str(path))
    if not sess.plan_info()["lowered"] or sess.plan_info()["fallbacks"]:
        with pytest.raises(gruinfer.NotStreamable, match="cannot compile"):
            sess.save(tmp_path / "m.gruinfer")
        return
    comp = _compiled(sess, tmp_path)
    feeds = _feeds(path, sess)
    if not feeds:
        pytest.skip("a fixture recording x_0 only, for a model of several inputs")
    _same(sess.run(None, feeds), comp.run(None, feeds))
    assert [(a.name, a.shape, a.type) for a in comp.get_inputs()] == \
        [(a.name, a.shape, a.type) for a in sess.get_inputs()]
    assert [a.name for a in comp.get_outputs()] == [a.name for a in sess.get_outputs()]
    info = sess.plan_info()
    t = info["input_axes"].index("T") if "T" in info["input_axes"] else None
    x = feeds[info["time_input"]]
    if t is None or x.shape[t] < 2:
        return
    n = info["input_axes"].index("N")
    batch = x.shape[n]
    s1, s2 = sess.stream(batch), comp.stream(batch)
    first, second = np.split(x, [x.shape[t] // 2], axis=t)
    for chunk in (first, second):
        _same(s1.run(None, {info["time_input"]: chunk}), s2.run(None, {info["time_input"]: chunk}))
    a, b = s1.get_state(), s2.get_state()
    assert a.keys() == b.keys()
    _same(list(a.values()), list(b.values()))
    s1.reset(), s2.reset()
    frame = np.take(x, 0, axis=t)
    _same([s1.step(frame)], [s2.step(frame)])
    s2.set_state(a)
    _same(list(s2.get_state().values()), list(a.values()))


def test_enough_fixtures_compile(tmp_path):
    """Most exported fixtures are wholly in C and so compile (8 of 81 stay in Python)."""
    done = 0
    for path in WITH_DATA:
        sess = gruinfer.InferenceSession(str(path))
        if not sess.plan_info()["fallbacks"]:
            sess.save(tmp_path / "m.gruinfer")
            done += 1
    assert done >= 30


def test_demo_bytes_path_compile_and_pickle(tmp_path):
    out = tmp_path / "demo.gruinfer"
    gruinfer.compile(str(DEMO), str(out))
    data = out.read_bytes()
    assert data[:8] == model_file.MAGIC and len(data) % 64 == 0
    sess = gruinfer.InferenceSession(str(DEMO))
    x = np.random.default_rng(1).standard_normal((7, 2, 8)).astype(np.float32)
    want = sess.run(None, {"x": x})
    for comp in (gruinfer.InferenceSession(data), gruinfer.InferenceSession(out),
                 pickle.loads(pickle.dumps(gruinfer.InferenceSession(data)))):
        _same(want, comp.run(None, {"x": x}))
    assert gruinfer.InferenceSession(data, kernel="ref").kernel == "ref"
    other = tmp_path / "demo.bin"  # any name: the magic says what it is
    gruinfer.InferenceSession(data).save(other)
    assert other.read_bytes() == data
    _same(want, gruinfer.InferenceSession(str(other)).run(None, {"x": x}))


def test_c_model_names_and_info(tmp_path):
    """What C reads of the file: the names by role with their buffers, the writer and the
    source model's sha256."""
    import hashlib

    import onnx

    out = tmp_path / "m.gruinfer"
    gruinfer.compile(str(DEMO), str(out))
    m = gruinfer._core.Model(out.read_bytes(), None)
    assert m.names(model_file.ROLE_INPUT) == [("x", 0)]
    assert m.names(model_file.ROLE_STATE) == [("gru", 0)]
    assert [n for n, _ in m.names(model_file.ROLE_OUTPUT)] == ["y"]
    assert m.source_hash == hashlib.sha256(onnx.load(str(DEMO)).SerializeToString()).hexdigest()
    from importlib.metadata import version

    assert m.writer == version("gruinfer")


def test_refused_model_names_what_stays_in_python(tmp_path):
    """A model with a part on the Python path is refused, the part named."""
    for path in sorted(FIXTURES.glob("*.onnx")):
        sess = gruinfer.InferenceSession(str(path))
        if sess.plan_info()["fallbacks"]:
            break
    else:
        pytest.skip("every fixture compiles")
    with pytest.raises(gruinfer.NotStreamable, match="cannot compile: parts of this model run "
                       "in Python") as e:
        sess.save(tmp_path / "m.gruinfer")
    assert sess.plan_info()["fallbacks"][0].op in str(e.value)
    assert not (tmp_path / "m.gruinfer").exists()


def test_loads_without_onnx_in_a_fresh_process(tmp_path):
    out = tmp_path / "demo.gruinfer"
    gruinfer.compile(str(DEMO), str(out))
    x = np.random.default_rng(2).standard_normal((4, 1, 8)).astype(np.float32)
    np.save(tmp_path / "x.npy", x)
    want = gruinfer.InferenceSession(str(DEMO)).run(None, {"x": x})
    code = (
        "import sys, numpy as np, gruinfer\n"
        f"s = gruinfer.InferenceSession({str(out)!r})\n"
        f"x = np.load({str(tmp_path / 'x.npy')!r})\n"
        f"np.save({str(tmp_path / 'y.npy')!r}, s.run(None, {{'x': x}})[0])\n"
        "st = s.stream(); st.step(x[0]); st.reset()\n"
        "assert 'onnx' not in sys.modules, 'onnx was imported'\n")
    # (run outside the source tree: `python -c` puts the working folder first on sys.path,
    # and a checkout's gruinfer/ has no built extension when the package is installed)
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=tmp_path,
                       env=dict(os.environ, PYTHONPATH=str(Path(gruinfer.__file__).parents[1])))
    assert r.returncode == 0, r.stderr
    _same([want[0]], [np.load(tmp_path / "y.npy")])


# ----------------------------------------------------------------------------- hostile files

def _demo_file(tmp_path):
    out = tmp_path / "demo.gruinfer"
    gruinfer.compile(str(DEMO), str(out))
    return out.read_bytes()


def _refit(b):
    """b with its header's size and checksum made right again (to reach the parsers behind them)."""
    b = bytearray(b)
    b[16:24] = len(b).to_bytes(8, "little")
    b[24:32] = gruinfer._core.checksum(bytes(b[64:])).to_bytes(8, "little")
    return bytes(b)


def _refused(data, status=None):
    with pytest.raises(gruinfer.InvalidModel, match="compiled model file") as e:
        gruinfer.InferenceSession(data)
    if status:
        assert e.value.status == status, str(e.value)
    return e.value


def test_truncated_files_are_refused(tmp_path):
    data = _demo_file(tmp_path)
    for n in list(range(0, 200, 7)) + [len(data) // 2, len(data) - 64, len(data) - 1]:
        _refused(data[:n] if n >= 8 else data[:8] + b"\0" * n)
        if n >= 64:
            _refused(_refit(data[:n]), "format")


def test_bit_flips_fail_the_checksum(tmp_path):
    data = _demo_file(tmp_path)
    rng = np.random.default_rng(3)
    for at in rng.integers(64, len(data), 40):
        b = bytearray(data)
        b[at] ^= 1 << int(rng.integers(8))
        _refused(bytes(b), "format")


def test_version_mismatch_is_refused(tmp_path):
    data = bytearray(_demo_file(tmp_path))
    data[8:12] = (2).to_bytes(4, "little")
    e = _refused(bytes(data), "version")
    assert "version" in str(e)


def test_oversized_counts_are_refused(tmp_path):
    """Counts at the start of each section (layers, steps, names, arrays) set past what the
    file holds or C allows: refused, checksum made right so the count itself is read."""
    data = _demo_file(tmp_path)
    table = {data[64 + 32 * i:68 + 32 * i]: int.from_bytes(data[72 + 32 * i:80 + 32 * i], "little")
             for i in range(len(model_file.TAGS))}
    for tag, field in ((b"GRUS", 0), (b"PLAN", 8), (b"NAME", 0), (b"ARRS", 0), (b"INFO", 32)):
        for value in (4096, 1 << 20, 0xFFFFFFFF):
            b = bytearray(data)
            at = table[tag] + field
            b[at:at + 4] = value.to_bytes(4, "little")
            _refused(_refit(bytes(b)))


def test_unsupported_precision_is_a_version_error(tmp_path):
    """int8 (1) and bf16 (2) tables are reserved for issue 13: the file is refused as a version."""
    data = _demo_file(tmp_path)
    grus = int.from_bytes(data[64 + 32 + 8:64 + 32 + 16], "little")  # the GRUS section
    at = grus + 8 + 80 + 16  # first layer, its W table's precision
    b = bytearray(data)
    b[at:at + 4] = (1).to_bytes(4, "little")
    _refused(_refit(bytes(b)), "version")


def test_bad_metadata_is_refused(tmp_path):
    data = _demo_file(tmp_path)
    meta = data.index(b'{"inputs"')
    b = bytearray(data)
    b[meta:meta + 9] = b'{"inpxts"'
    _refused(_refit(bytes(b)))
    b[meta:meta + 1] = b"["
    _refused(_refit(bytes(b)))


def test_missing_file_is_invalid_model(tmp_path):
    with pytest.raises(gruinfer.InvalidModel, match="cannot read"):
        gruinfer.InferenceSession(str(tmp_path / "none.gruinfer"))


@pytest.mark.parametrize("kind", ["plain", "asan_ubsan"])
def test_mutation_harness_finds_no_crash(kind, tmp_path):
    """tests/c/fuzz_model_file.c over mutated demo files: 10^5 inputs (2*10^4 under
    ASan/UBSan, where a leak or a read out of bounds fails the run); every one a status."""
    from test_c_api import BUILDS, BuildFailed, build_program

    seed = tmp_path / "demo.gruinfer"
    seed.write_bytes(_demo_file(tmp_path))
    try:
        exe = build_program(kind, tmp_path, Path(__file__).resolve().parent / "c" /
                            "fuzz_model_file.c")
    except BuildFailed as e:
        pytest.fail(str(e), pytrace=False)
    if exe is None:
        pytest.skip(f"no sanitizer runtime for {BUILDS[kind]}")
    count = 100_000 if kind == "plain" else 20_000
    r = subprocess.run([str(exe), str(seed), str(count), "12"], capture_output=True, text=True,
                       timeout=300)
    assert r.returncode == 0, r.stdout + r.stderr
    first = r.stdout.splitlines()[0].split()
    assert first[:2] == ["inputs", str(count)], r.stdout
    assert "format" in r.stdout  # mutations reached the parsers and were refused there


def test_carried_frames_are_refused(tmp_path):
    """A convolutional-recurrent stream keeps past frames beside the GRU states: not in a
    version 1 file, so the writer names the node that carries them."""
    from test_time_conv import conv_gru

    sess = gruinfer.InferenceSession(conv_gru())
    with pytest.raises(gruinfer.NotStreamable, match="node 'Pad_0' carries past frames"):
        sess.save(tmp_path / "m.gruinfer")
