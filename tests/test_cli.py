"""The `gruinfer` command, in process (cli.main(argv)): every subcommand and every option its --help lists, on fixtures of every exporter family, the --json documents checked against schemas, and user mistakes as one-line errors with status 2."""
import ast
import json
import os
import re
import sys
from importlib.metadata import version as dist_version
from types import SimpleNamespace

import numpy as np
import pytest

import gruinfer
from gruinfer import cli, cli_bench

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")
# One fixture per exporter family: PyTorch TorchScript and dynamo (the default export with its
# .data file too), Keras via tf2onnx (tf_keras and Keras 3), PaddlePaddle, JAX (jax2onnx).
FAMILIES = ["gru2_bf_sigmoid_ts", "cell_loop_bf_h0_dynamo", "gru2_bf_default", "keras_stacked_dense",
            "keras_legacy_gru_ra1_last", "paddle_gru2_linear", "jax_gru_scan_h0"]
TINY = ["--steps", "3", "--warmup", "1", "--iterations", "2"]  # bench runs stay a few ms


def fixture(name):
    return os.path.join(FIXTURES, name + ".onnx")


def call(capsys, *argv):
    """(status, stdout, stderr) of cli.main(argv)."""
    status = cli.main(list(argv))
    out = capsys.readouterr()
    return status, out.out, out.err


def diff_of(text):
    m = re.search(r"max \|diff\| = ([0-9.e+-]+)", text)
    assert m, text
    return float(m.group(1))


# A tiny JSON-schema validator (type, properties, required, additionalProperties, items, enum):
# the subset these schemas use, so the test extra needs no jsonschema (and its compiled deps).
TYPES = {"object": dict, "array": list, "string": str, "integer": int, "number": (int, float),
         "boolean": bool, "null": type(None)}


def validate(doc, schema, at="$"):
    types = schema.get("type")
    if types is not None:
        types = [types] if isinstance(types, str) else types
        ok = any(isinstance(doc, TYPES[t]) and not (t in ("integer", "number") and isinstance(doc, bool))
                 for t in types)
        assert ok, f"{at}: {doc!r} is not of type {types}"
    if "enum" in schema:
        assert doc in schema["enum"], f"{at}: {doc!r} not in {schema['enum']}"
    if isinstance(doc, dict):
        for key in schema.get("required", ()):
            assert key in doc, f"{at}: missing {key!r}"
        props = schema.get("properties", {})
        extra = schema.get("additionalProperties", True)
        for key, value in doc.items():
            if key in props:
                validate(value, props[key], f"{at}.{key}")
            else:
                assert extra is not False, f"{at}: unexpected key {key!r}"
                if isinstance(extra, dict):
                    validate(value, extra, f"{at}.{key}")
    if isinstance(doc, list) and "items" in schema:
        for i, item in enumerate(doc):
            validate(item, schema["items"], f"{at}[{i}]")


def obj(props, extra=False):
    return {"type": "object", "properties": props, "required": list(props),
            "additionalProperties": extra}


STR, INT, BOOL = {"type": "string"}, {"type": "integer"}, {"type": "boolean"}
DIM = {"type": ["integer", "string", "null"]}
AXES = {"type": ["array", "null"], "items": DIM}
TEXTS = {"type": "array", "items": STR}
FALLBACK = {"type": "array", "items": obj({"node": {"type": ["string", "null"]}, "op": STR,
                                           "reason": STR})}
PER_DTYPE = {"type": "object", "additionalProperties": obj({"count": INT, "bytes": INT})}
INFO_SCHEMA = obj({
    "model": STR, "gruinfer": STR, "opset": INT,
    "inputs": {"type": "array", "items": obj({"name": STR, "type": STR, "shape": AXES, "axes": AXES})},
    "outputs": {"type": "array", "items": obj({"name": STR, "type": STR, "shape": AXES})},
    "time_input": {"type": ["string", "null"]}, "input_axes": AXES,
    "ops": {"type": "object", "additionalProperties": INT},
    "ops_after_lifts": {"type": "object", "additionalProperties": INT},
    "parameters": obj({"gru": PER_DTYPE, "other": PER_DTYPE, "total": PER_DTYPE}),
    "gru_nodes": TEXTS, "loops": TEXTS, "cells": TEXTS, "streamable": BOOL,
    "reason": {"type": ["string", "null"]}, "lowered": BOOL, "steps": TEXTS,
    "not_lowered": FALLBACK, "fallbacks": FALLBACK})
ENGINE = {"type": "string", "enum": ["gruinfer", "onnxruntime"]}
MODE = {"type": "string", "enum": ["frame", "sequence"]}
BENCH_SCHEMA = obj({
    "model": STR, "gruinfer": STR, "kernel": STR, "threads": INT, "batch": INT, "steps": INT,
    "chunk": INT, "warmup": INT, "iterations": INT, "time_input": STR, "input_axes": AXES,
    "axes_from": {"type": "string", "enum": ["plan_info", "declared names", "probed", "assumed"]},
    "results": {"type": "array", "items": obj({
        "engine": ENGINE, "mode": MODE, "frames_per_call": INT, "calls": INT,
        "call": {"type": "string", "enum": ["stream.step", "stream.run", "run",
                                            "run with state fed back"]},
        "p50_us": {"type": "number"}, "p90_us": {"type": "number"}, "p99_us": {"type": "number"}})},
    "skipped": {"type": "array", "items": obj({"engine": ENGINE, "mode": MODE, "reason": STR})}})


def test_the_validator_refuses_what_the_schemas_forbid():
    validate({"a": 1}, obj({"a": INT}))
    for bad in ({"a": "1"}, {}, {"a": 1, "b": 2}, {"a": True}):
        with pytest.raises(AssertionError):
            validate(bad, obj({"a": INT}))


def test_every_option_the_help_lists_is_used_by_a_test():
    """Every subcommand and option of the parser appears in this file's argv strings."""
    p = cli.parser()
    sub = next(a for a in p._actions if a.dest == "cmd")
    listed = {"--version"} | set(sub.choices)
    for s in sub.choices.values():
        listed |= {o for a in s._actions for o in a.option_strings if o.startswith("--")}
    listed -= {"--help"}
    with open(__file__) as f:
        used = {n.value for n in ast.walk(ast.parse(f.read())) if isinstance(n, ast.Constant)
                and isinstance(n.value, str)}
    assert listed - used == set()


def test_version(capsys):
    with pytest.raises(SystemExit) as e:
        cli.main(["--version"])
    assert e.value.code == 0
    assert capsys.readouterr().out.strip() == f"gruinfer {dist_version('gruinfer')}"
    assert gruinfer.__version__ == dist_version("gruinfer")


def test_help_and_usage_errors_exit_as_argparse_does(capsys):
    for argv, code in ((["bench", "--help"], 0), (["run", "--help"], 0), (["info"], 2),
                       (["bench", "--compare", "torch"], 2), (["nosuch"], 2)):
        with pytest.raises(SystemExit) as e:
            cli.main(argv)
        assert e.value.code == code, argv
    assert "Traceback" not in capsys.readouterr().err


def test_demo(capsys):
    status, out, _ = call(capsys, "demo", "--steps", "30")
    assert status == 0 and "demo.onnx" in out and "stream  C plan" in out
    assert diff_of(out) <= 1e-5


@pytest.mark.parametrize("name", FAMILIES)
def test_run_every_family(name, capsys):
    status, out, _ = call(capsys, "run", fixture(name), "--steps", "9", "--batch", "2", "--seed", "3")
    assert status == 0 and "from plan_info" in out
    assert diff_of(out) <= 1e-5


def test_run_not_streamable(capsys):
    status, out, _ = call(capsys, "run", fixture("keras_bidir"), "--steps", "5")
    assert status == 0 and "not streamable" in out


def test_run_finds_the_batch_first_axes_of_a_masking_model(capsys):
    """The Keras Masking model cannot stream (plan_info has no axes); it is batch-first, and
    `run` must feed [batch, steps, 4] and say so (it once fed [200, 1, 4] in silence)."""
    status, out, _ = call(capsys, "run", fixture("keras_gru_masking"), "--steps", "6", "--batch", "2")
    assert status == 0
    assert "fed [2, 6, 4] axes (N, T, 4) from probed" in out, out
    status, out, _ = call(capsys, "run", fixture("bigru1_dynamo"), "--steps", "6", "--batch", "2")
    assert "fed [6, 2, 5] axes (T, N, 5) from declared names" in out, out


def test_run_reads_inputs_and_saves_outputs(tmp_path, capsys):
    """--input NAME=FILE.npy and FILE.npz feed the exporter's own inputs; --output saves what
    the framework computed."""
    ref = np.load(os.path.join(FIXTURES, "keras_gru_masking.npz"))
    np.save(tmp_path / "x.npy", ref["x_1"])
    status, out, _ = call(capsys, "run", fixture("keras_gru_masking"), "--input",
                          f"x={tmp_path / 'x.npy'}", "--output", str(tmp_path / "y.npz"))
    assert status == 0 and "fed [3, 7, 4] from --input" in out
    np.testing.assert_allclose(np.load(tmp_path / "y.npz")["Identity:0"], ref["y_1"], atol=1e-5)
    ref = np.load(os.path.join(FIXTURES, "jax_gru_scan_h0.npz"))
    np.savez(tmp_path / "in.npz", x=ref["x_1"], h0=ref["h0_1"])
    status, out, _ = call(capsys, "run", fixture("jax_gru_scan_h0"), "--input",
                          str(tmp_path / "in.npz"), "--output", str(tmp_path / "y.npz"))
    assert status == 0 and diff_of(out) <= 1e-5
    saved = np.load(tmp_path / "y.npz")
    np.testing.assert_allclose(saved["y_1"], ref["y_1"], atol=1e-5)
    np.testing.assert_allclose(saved["v_0"], ref["y_1_1"], atol=1e-5)


@pytest.mark.parametrize("name", ["embed_gru_softmax_dynamo", "paddle_gru1", "keras_gru_masking"])
def test_run_check_against_onnxruntime(name, capsys, monkeypatch):
    status, out, _ = call(capsys, "run", fixture(name), "--steps", "5", "--check")
    assert status == 0 and out.count(" ok") >= 1 and "BEYOND" not in out
    monkeypatch.setattr(cli, "CHECK_TOLERANCE", -1.0)  # every difference is then too large
    status, out, _ = call(capsys, "run", fixture(name), "--steps", "5", "--check")
    assert status == 1 and "BEYOND" in out


def test_relative_diff():
    assert cli.relative_diff([2.0, 4.0], [2.0, 4.004]) == pytest.approx(1e-3, rel=1e-3)
    assert cli.relative_diff([1e-3], [0.0]) == pytest.approx(1e-3)  # scale 1 for all zeros
    assert cli.relative_diff([1.0, 2.0], [1.0]) == float("inf")


@pytest.mark.parametrize("name", FAMILIES + ["keras_gru_masking", "bigru1_ts", "embed_gru_hn_linear_bf_ts",
                                             "cell_step_ts", "jax_keras_stacked_dense", "paddle_gru2"])
def test_info_json_every_family(name, capsys):
    status, out, _ = call(capsys, "info", fixture(name), "--json")
    assert status == 0
    doc = json.loads(out)
    validate(doc, INFO_SCHEMA)
    total = sum(v["bytes"] for v in doc["parameters"]["total"].values())
    assert total == sum(v["bytes"] for g in ("gru", "other") for v in doc["parameters"][g].values())
    info = gruinfer.InferenceSession(fixture(name)).plan_info()
    assert doc["streamable"] == info["streamable"] and doc["gru_nodes"] == info["gru_nodes"]
    if info["streamable"]:
        assert [a["axes"] for a in doc["inputs"] if a["name"] == info["time_input"]] == \
            [list(info["input_axes"])]
    assert (doc["parameters"]["gru"] != {}) == bool(info["gru_nodes"])


def test_info_text(capsys):
    status, out, _ = call(capsys, "info", fixture("keras_stacked_dense"), "--kernel", "ref")
    assert status == 0
    assert "axes (N, T, 4): streams take its frames" in out and "Loop 2" in out
    assert re.search(r"after lifts .*GRU 2", out) and "parameters  gru: " in out
    assert "lifted into GRU" in out and "streams     yes, fully lowered" in out
    status, out, _ = call(capsys, "info", fixture("keras_gru_masking"))
    assert "streams     no: " in out and "fallback    Loop node" in out


@pytest.mark.parametrize("argv", [
    [], ["--chunk", "2", "--batch", "2"], ["--threads", "2", "--kernel", "ref"],
    [fixture("keras_gru_masking")], [fixture("cell_step_ts")]])
def test_bench_json(argv, capsys):
    status, out, err = call(capsys, "bench", *argv, *TINY, "--seed", "1", "--json")
    assert status == 0 and err == ""
    doc = json.loads(out)
    validate(doc, BENCH_SCHEMA)
    modes = {(r["engine"], r["mode"]) for r in doc["results"]}
    assert ("gruinfer", "sequence") in modes
    assert (("gruinfer", "frame") in modes) != any(s["engine"] == "gruinfer" for s in doc["skipped"])
    frame = next((r for r in doc["results"] if r["mode"] == "frame"), None)
    if frame:
        assert frame["call"] == ("stream.step" if doc["chunk"] == 1 else "stream.run")
        assert frame["p50_us"] <= frame["p90_us"] <= frame["p99_us"]


@pytest.mark.parametrize("name, frames", [("jax_gru_scan_h0", True), ("cell_step_ts", True),
                                          ("gru1_h0_ts", True), ("gru2_bf_sigmoid_ts", False),
                                          ("cell_loop_bf_h0_dynamo", False), ("bigru1_ts", False)])
def test_bench_compare_onnxruntime(name, frames, capsys):
    """onnxruntime runs frame by frame only when its state can be fed back; otherwise bench says why."""
    status, out, _ = call(capsys, "bench", fixture(name), *TINY, "--compare", "onnxruntime")
    assert status == 0
    assert re.search(r"onnxruntime sequence +\d", out), out
    if frames:
        assert re.search(r"onnxruntime frame +\d.*run with state fed back", out), out
    else:
        assert re.search(r"onnxruntime frame +not measured: \S", out), out


def test_progress_shows_only_after_a_while():
    now = [0.0]
    out = SimpleNamespace(text="", write=lambda s: setattr(out, "text", out.text + s), flush=lambda: None)
    p = cli_bench.Progress(10, out, clock=lambda: now[0], after=2.0, every=0.5)
    p.tick(3)
    assert out.text == ""
    now[0] = 2.5
    p.tick(2)
    now[0] = 2.6
    p.tick()  # redrawn at most every 0.5 s
    p.done()
    assert out.text == "\rbench  50% (5/10 calls, 2 s)\n"
    quiet = SimpleNamespace(text="", write=lambda s: setattr(quiet, "text", quiet.text + s), flush=lambda: None)
    p = cli_bench.Progress(10, quiet, clock=lambda: 0.0)
    p.tick(10)
    p.done()
    assert quiet.text == ""


def test_kernels(capsys):
    status, out, _ = call(capsys, "kernels")
    assert status == 0 and re.search(r"selected\s+\w+", out)


def mistakes(tmp):
    """argv lists that are user mistakes, and a piece of the one-line message each must give."""
    bad = tmp / "bad.onnx"
    bad.write_bytes(b"not a model")
    text = tmp / "x.txt"
    text.write_text("1 2 3")
    np.save(tmp / "wrong.npy", np.zeros((1, 3, 9), np.float32))
    np.savez(tmp / "names.npz", nosuch=np.zeros(3))
    m = fixture("keras_stacked_dense")
    return [
        (["run", str(tmp / "missing.onnx")], "no model file at"),
        (["info", str(tmp / "missing.onnx")], "no model file at"),
        (["bench", str(tmp / "missing.onnx")], "no model file at"),
        (["run", str(bad)], "is not a loadable ONNX model"),
        (["info", str(bad)], "is not a loadable ONNX model"),
        (["run", m, "--input", "x"], "expected NAME=FILE.npy or FILE.npz"),
        (["run", m, "--input", "x=a.txt"], "expected NAME=FILE.npy or FILE.npz"),
        (["run", m, "--input", f"x={tmp / 'none.npy'}"], "no file at"),
        (["run", m, "--input", f"={tmp / 'wrong.npy'}"], "expected NAME=FILE.npy or FILE.npz"),
        (["run", m, "--input", f"x={text}"], "expected NAME=FILE.npy or FILE.npz"),
        (["run", m, "--input", f"y={tmp / 'wrong.npy'}"], "the model has no input 'y'"),
        (["run", m, "--input", str(tmp / "names.npz")], "the model has no input 'nosuch'"),
        (["run", m, "--input", f"x={tmp / 'wrong.npy'}"], "input 'x'"),
        (["run", m, "--output", str(tmp / "no" / "dir" / "y.npz")], "--output"),
        (["run", m, "--kernel", "nosuch"], "unknown kernel 'nosuch'"),
        (["bench", m, "--steps", "0"], "--steps must be at least 1"),
        (["bench", m, "--warmup", "-1"], "--warmup must be at least 0"),
    ]


def test_user_mistakes_are_one_line_errors(tmp_path, capsys):
    for argv, piece in mistakes(tmp_path):
        status, out, err = call(capsys, *argv)
        assert status == 2, argv
        assert err.startswith("gruinfer: error: ") and err.count("\n") == 1, (argv, err)
        assert piece in err, (argv, err)


def test_unreadable_npy_is_a_user_error(tmp_path, capsys):
    (tmp_path / "x.npy").write_bytes(b"not numpy")
    status, _, err = call(capsys, "run", fixture("keras_stacked_dense"), "--input",
                          f"x={tmp_path / 'x.npy'}")
    assert status == 2 and "cannot read" in err and err.count("\n") == 1


def test_onnxruntime_missing_is_a_user_error(capsys, monkeypatch):
    monkeypatch.setitem(sys.modules, "onnxruntime", None)  # import onnxruntime raises ImportError
    for argv, flag in ((["run", "--steps", "3", "--check"], "--check"),
                       (["bench", *TINY, "--compare", "onnxruntime"], "--compare onnxruntime")):
        status, _, err = call(capsys, *argv)
        assert status == 2 and f"{flag} needs onnxruntime, which is not installed" in err


def test_compile(tmp_path, capsys):
    out = tmp_path / "demo.gruinfer"
    assert cli.main(["compile", cli.DEMO_MODEL, "--output", str(out), "--kernel", "ref"]) == 0
    assert "C plan steps (gru)" in capsys.readouterr().out
    x = np.random.default_rng(0).standard_normal((3, 1, 8)).astype(np.float32)
    assert np.array_equal(gruinfer.InferenceSession(str(out)).run(None, {"x": x})[0],
                          gruinfer.InferenceSession(cli.DEMO_MODEL).run(None, {"x": x})[0])


def test_compile_refuses_a_model_partly_in_python(tmp_path, capsys):
    from pathlib import Path

    for path in sorted((Path(__file__).resolve().parent / "fixtures").glob("*.onnx")):
        if gruinfer.InferenceSession(str(path)).plan_info()["fallbacks"]:
            break
    else:
        pytest.skip("every fixture compiles")
    assert cli.main(["compile", str(path), "-o", str(tmp_path / "m.gruinfer")]) == 2
    assert "cannot compile: parts of this model run in Python" in capsys.readouterr().err
