"""The C library for C users: src_c/Makefile builds libgruinfer.a/.so and installs gru.h; examples/c/stream_frames.c, built with gruinfer.get_include()/get_library_dir(), streams the same outputs as the Python stream of the same weights."""
import os
import shlex
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import gruinfer

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "tools"))
from cbuild import ROOT, SRC, compiler, library_sources  # noqa: E402

EXAMPLE = ROOT / "examples" / "c" / "stream_frames.c"
I, H, O = 4, 8, 3  # the example's INPUT_SIZE, HIDDEN_SIZE, OUTPUT_SIZE


def make(*args):
    done = subprocess.run(["make", "-C", str(SRC), *args], capture_output=True, text=True,
                          timeout=600)
    assert done.returncode == 0, done.stdout + done.stderr
    return done.stdout


def test_makefile_builds_installs_and_selects_files_by_arch(tmp_path):
    build, dest = tmp_path / "build", tmp_path / "dest"
    make(f"BUILD={build}", "-j2")
    make(f"BUILD={build}", "install", f"DESTDIR={dest}", "PREFIX=/usr")
    assert (dest / "usr/include/gru.h").read_bytes() == (SRC / "gru.h").read_bytes()
    for lib in ("libgruinfer.a", "libgruinfer.so"):
        assert (dest / "usr/lib" / lib).stat().st_size > 0
    syms = subprocess.run(["nm", "-D", "--defined-only", str(dest / "usr/lib/libgruinfer.so")],
                          capture_output=True, text=True).stdout
    assert " T gruinfer_stream_run" in syms and " T gruinfer_gru_create" in syms
    # aarch64: the reference kernel only; x86-64: the x86 kernels each with their own flags
    for arch, want in (("aarch64", False), ("x86_64", True)):
        plan = make(f"BUILD={tmp_path / arch}", f"ARCH={arch}", "-n")
        compiled = sorted(os.path.relpath(line.split(" -c ")[1].split()[0], ".")
                          for line in plan.splitlines() if " -c " in line)
        assert compiled == sorted(str(p.relative_to(SRC)) for p in library_sources(want))
        avx2 = [line for line in plan.splitlines() if "-mavx2" in line]
        assert [line.split(" -c ")[1].split()[0] for line in avx2] == (
            ["x86/kernels_avx2.c"] if want else [])
        assert "-march=native" not in plan


def weight(k, n):
    """stream_frames.c's weight(k, i) for i < n."""
    i = np.arange(n)
    return (((i * 37 + k * 11) % 29 - 14) / 32.0).astype(np.float32)


def example_model():
    """The example's model as ONNX: GRU [I -> H] then MatMul + Add [H -> O]."""
    inits = [numpy_helper.from_array(a, name) for name, a in (
        ("W", weight(0, 3 * H * I).reshape(1, 3 * H, I)),
        ("R", weight(1, 3 * H * H).reshape(1, 3 * H, H)),
        ("B", weight(2, 6 * H).reshape(1, 6 * H)),
        ("D", weight(3, O * H).reshape(O, H).T.copy()),
        ("b", weight(4, O)), ("axis", np.array([1], np.int64)))]
    nodes = [helper.make_node("GRU", ["x", "W", "R", "B"], ["Y"], hidden_size=H),
             helper.make_node("Squeeze", ["Y", "axis"], ["y"]),
             helper.make_node("MatMul", ["y", "D"], ["m"]),
             helper.make_node("Add", ["m", "b"], ["out"])]
    graph = helper.make_graph(nodes, "example", [helper.make_tensor_value_info(
        "x", TensorProto.FLOAT, ["T", 1, I])], [helper.make_tensor_value_info(
            "out", TensorProto.FLOAT, None)], inits)
    return helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])


@pytest.fixture(scope="module")
def example(tmp_path_factory):
    """stream_frames built as its first comment says, from the installed package's paths
    ($LDFLAGS added: tools/sanitize.sh links it with the sanitizers its library was built with)."""
    exe = tmp_path_factory.mktemp("example") / "stream_frames"
    cmd = compiler() + ["-std=c11", "-O2", "-Wall", "-Wextra", "-Werror", str(EXAMPLE),
                        "-I", gruinfer.get_include(), "-L", gruinfer.get_library_dir(),
                        "-lgruinfer", "-lm", "-pthread", "-o", str(exe)]
    cmd += shlex.split(os.environ.get("LDFLAGS", ""))
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    return exe


def stream_in_c(exe, frames, kernel):
    env = {k: v for k, v in os.environ.items() if k != "GRUINFER_KERNEL"}
    if kernel:
        env["GRUINFER_KERNEL"] = kernel
    text = "".join(" ".join(f"{v:.9g}" for v in f) + "\n" for f in frames)
    done = subprocess.run([str(exe)], input=text, capture_output=True, text=True, env=env,
                          timeout=60)
    assert done.returncode == 0, done.stderr
    return np.array([[float(v) for v in line.split()] for line in done.stdout.splitlines()],
                    np.float32)


@pytest.mark.parametrize("kernel", ["ref", None])
def test_example_streams_as_python_does(example, kernel, monkeypatch):
    frames = np.random.default_rng(3).standard_normal((25, I)).astype(np.float32)
    if kernel:
        monkeypatch.setenv("GRUINFER_KERNEL", kernel)
    else:
        monkeypatch.delenv("GRUINFER_KERNEL", raising=False)
    sess = gruinfer.InferenceSession(example_model().SerializeToString())
    assert sess.plan_info()["steps"] == ["gru", "dense"]
    stream = sess.stream(1)
    want = np.stack([stream.step(f[None])[0] for f in frames])  # step: [N=1, O]
    got = stream_in_c(example, frames, kernel)
    assert got.shape == (25, O)
    if kernel == "ref":
        np.testing.assert_array_equal(got, want)  # same kernel: bit-identical
    else:
        np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-6)


def test_example_refuses_a_short_frame(example):
    done = subprocess.run([str(example)], input="1 2 3 4\n1 2\n", capture_output=True, text=True,
                          timeout=60)
    assert done.returncode == 1 and "needs 4 numbers" in done.stderr
    assert len(done.stdout.splitlines()) == 1

