"""onnxruntime drop-in parity: the same calls through onnxruntime and gruinfer on fixtures of every exporter (members, options, bindings, async runs, error cases) give the same results or the documented difference; sessions pickle and streams fork."""
import copy
import importlib
import json
import os
import pickle
import sys
import threading
import warnings
from pathlib import Path

import numpy as np
import onnx
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import gruinfer

ROOT = Path(__file__).resolve().parents[1]
FIX = ROOT / "tests" / "fixtures"
DEMO = ROOT / "gruinfer" / "data" / "demo.onnx"
# One fixture per exporter and form: a plain GRU, a state input, token ids, a Keras Loop, a
# JAX scan, Paddle, a bidirectional model that does not stream (its runs go node by node).
MODELS = {"demo": DEMO, "h0_ts": FIX / "gru1_h0_ts.onnx", "ids": FIX / "embed_gru_softmax_ts.onnx",
          "keras": FIX / "keras_gru_ra1_seq1.onnx", "jax_h0": FIX / "jax_gru_scan_h0.onnx",
          "paddle": FIX / "paddle_gru2_linear.onnx", "bigru": FIX / "bigru1_ts.onnx",
          "cell_step": FIX / "cell_step_ts.onnx"}


def ort_session(path, options=None):
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def feeds_for(sess, T=6, N=2, seed=0):
    """Random feeds for every input: free axes become T (a time-like name or the fixtures' 6)
    or N; token ids in range of the fixtures' tables."""
    rng = np.random.default_rng(seed)
    out = {}
    info = sess.plan_info()
    for a in sess.get_inputs():
        axes = info["input_axes"] if a.name == info["time_input"] else None
        shape = [d if isinstance(d, int) and d > 0 else
                 (T if axes and axes[i] == "T" else N if axes else
                  T if str(d).lower() in ("time", "t") else N) for i, d in enumerate(a.shape)]
        if a.type == "tensor(int64)":
            out[a.name] = rng.integers(0, 5, shape).astype(np.int64)
        else:
            out[a.name] = rng.standard_normal(shape).astype(np.float32)
    return out


def close(a, b):
    scale = max(1.0, float(np.abs(b).max()))
    assert a.shape == b.shape and np.abs(a - b).max() <= 1e-4 * scale


@pytest.fixture(scope="module", params=list(MODELS))
def pair(request):
    path = MODELS[request.param]
    return gruinfer.InferenceSession(str(path)), ort_session(path)


# ------------------------------------------------------------------ the same calls, the same results

def test_description_matches(pair):
    g, o = pair
    for mine, theirs in ((g.get_inputs(), o.get_inputs()), (g.get_outputs(), o.get_outputs()),
                         (g.get_overridable_initializers(), o.get_overridable_initializers())):
        assert [(a.name, a.type) for a in mine] == [(a.name, a.type) for a in theirs]
    assert [a.shape for a in g.get_inputs()] == [a.shape for a in o.get_inputs()]
    gm, om = g.get_modelmeta(), o.get_modelmeta()
    for field in ("producer_name", "graph_name", "domain", "description", "graph_description",
                  "version", "custom_metadata_map"):
        assert getattr(gm, field) == getattr(om, field), field
    assert g.get_providers() == o.get_providers() == ["CPUExecutionProvider"]
    assert g.get_provider_options() == o.get_provider_options()


def test_runs_match(pair):
    g, o = pair
    feeds = feeds_for(g)
    names = [a.name for a in o.get_outputs()]
    want = o.run(None, feeds)
    for output_names in (None, [], names, names[::-1], names[:1]):
        got = g.run(output_names, feeds)
        ref = o.run(output_names, feeds)
        assert len(got) == len(ref)
        for a, b in zip(got, ref):
            close(a, b)
    assert len(g.run([], feeds)) == len(want)


def test_lists_are_converted_as_onnxruntime_does(pair):
    g, o = pair
    feeds = {k: v.tolist() for k, v in feeds_for(g).items()}
    for a, b in zip(g.run(None, feeds), o.run(None, feeds)):
        close(a, b)


def _both_refuse(g, o, output_names, feeds, *words):
    with pytest.raises(Exception):
        o.run(output_names, feeds)
    with pytest.raises(gruinfer.InvalidArgument) as e:
        g.run(output_names, feeds)
    for w in words:
        assert w in str(e.value), (w, str(e.value))


def test_bad_calls_refused_by_both(pair):
    g, o = pair
    feeds = feeds_for(g)
    first = g.get_inputs()[0].name
    other = {k: (v.astype(np.float64) if v.dtype == np.float32 else v.astype(np.int32))
             for k, v in feeds.items()}
    _both_refuse(g, o, None, other, repr(first), "cast_feeds=True")
    _both_refuse(g, o, None, dict(feeds, nope=feeds[first]), "'nope'", "not a graph input")
    _both_refuse(g, o, ["nope"], feeds, "'nope'", "not a graph output")
    _both_refuse(g, o, None, {}, "missing", repr(first))
    _both_refuse(g, o, None, dict(feeds, **{first: feeds[first][0]}), repr(first), "shape")
    stop = ort.RunOptions()
    stop.terminate = True
    with pytest.raises(Exception):
        o.run(None, feeds, stop)
    mine = gruinfer.RunOptions()
    mine.terminate = True
    with pytest.raises(gruinfer.InvalidArgument, match="terminate"):
        g.run(None, feeds, mine)


@pytest.mark.parametrize("model", list(MODELS))
def test_cast_feeds_converts(model):
    strict = gruinfer.InferenceSession(str(MODELS[model]))
    cast = gruinfer.InferenceSession(str(MODELS[model]), cast_feeds=True)
    feeds = feeds_for(strict)
    other = {k: (v.astype(np.float64) if v.dtype == np.float32 else v.astype(np.int32))
             for k, v in feeds.items()}
    for a, b in zip(cast.run(None, other), strict.run(None, feeds)):
        np.testing.assert_array_equal(a, b)


def test_nan_error_names_the_input():
    g = gruinfer.InferenceSession(str(DEMO))
    x = feeds_for(g)["x"]
    x[1, 0, 2] = np.nan
    with pytest.raises(gruinfer.InvalidArgument, match=r"input 'x': NaN or Inf"):
        g.run(None, {"x": x})
    with pytest.raises(gruinfer.InvalidArgument, match=r"input 'x': NaN or Inf"):
        g.stream(2).run(None, {"x": x})


def test_baked_batch_says_what_it_needs():
    g = gruinfer.InferenceSession(str(FIX / "gru2_bf_default.onnx"))
    with pytest.raises(gruinfer.InvalidArgument, match=r"needs batch_size=3, not 1"):
        g.stream(1)
    assert g.stream(3).batch_size == 3


# ------------------------------------------------------------------ options and providers

def test_session_options():
    opts = gruinfer.SessionOptions()
    opts.intra_op_num_threads = 2
    opts.graph_optimization_level = gruinfer.GraphOptimizationLevel.ORT_DISABLE_ALL
    opts.add_session_config_entry("session.a", "1")
    g = gruinfer.InferenceSession(str(DEMO), opts)
    got = g.get_session_options()
    assert got is not opts and got.intra_op_num_threads == 2
    assert got.get_session_config_entry("session.a") == "1"
    assert g._interp.threads == 2
    with pytest.raises(gruinfer.InvalidArgument, match="intra_op_num_threads"):
        gruinfer.InferenceSession(str(DEMO), opts, threads=3)
    with pytest.raises(AttributeError):
        opts.intra_op_num_thread = 2  # misspelt: refused, as onnxruntime's object does
    with pytest.raises(gruinfer.InvalidArgument, match="sess_options"):
        gruinfer.InferenceSession(str(DEMO), ort.SessionOptions())
    assert gruinfer.InferenceSession(str(DEMO))._interp.threads == 1


def test_other_providers_warn_and_fall_back_like_onnxruntime():
    with pytest.warns(UserWarning, match="CUDAExecutionProvider"):
        o = ort.InferenceSession(str(DEMO), providers=["CUDAExecutionProvider"])
    with pytest.warns(UserWarning, match="CUDAExecutionProvider"):
        g = gruinfer.InferenceSession(str(DEMO), providers=["CUDAExecutionProvider"])
    assert g.get_providers() == o.get_providers() == ["CPUExecutionProvider"]
    g = gruinfer.InferenceSession(str(DEMO), providers=[("CPUExecutionProvider", {"a": 1})])
    assert g.get_provider_options() == {"CPUExecutionProvider": {"a": "1"}}
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        g.set_providers(["CPUExecutionProvider"])
        g.disable_fallback()
        g.enable_fallback()
    with pytest.raises(gruinfer.InvalidArgument, match="same length"):
        gruinfer.InferenceSession(str(DEMO), providers=["CPUExecutionProvider"],
                                  provider_options=[{}, {}])
    assert gruinfer.get_available_providers() == ["CPUExecutionProvider"]
    assert gruinfer.get_device() == ort.get_device() == "CPU"


def test_optimized_model_filepath_saves_the_rewritten_model(tmp_path):
    """A Keras Loop model saved as gruinfer rewrote it: GRU nodes, no Loop; onnxruntime runs it
    to the same results."""
    opts = gruinfer.SessionOptions()
    opts.optimized_model_filepath = str(tmp_path / "opt.onnx")
    g = gruinfer.InferenceSession(str(MODELS["keras"]), opts)
    saved = onnx.load(opts.optimized_model_filepath)
    ops = {n.op_type for n in saved.graph.node}
    assert "GRU" in ops and "Loop" not in ops
    feeds = feeds_for(g)
    for a, b in zip(ort_session(opts.optimized_model_filepath).run(None, feeds),
                    g.run(None, feeds)):
        close(a, b)


# ------------------------------------------------------------------ async runs, bindings, profiles

def _async(sess, feeds):
    done, got = threading.Event(), {}

    def callback(results, user_data, err):
        got.update(results=results, user_data=user_data, err=err)
        done.set()

    sess.run_async(None, feeds, callback, "ud")
    assert done.wait(30)
    return got


def test_run_async_like_onnxruntime(pair):
    g, o = pair
    feeds = feeds_for(g)
    mine, theirs = _async(g, feeds), _async(o, feeds)
    assert mine["err"] == theirs["err"] == "" and mine["user_data"] == "ud"
    for a, b in zip(mine["results"], theirs["results"]):
        close(a, b)
    bad = {k: v.astype(np.float64) for k, v in feeds.items() if v.dtype == np.float32}
    if bad:
        mine, theirs = _async(g, dict(feeds, **bad)), _async(o, dict(feeds, **bad))
        assert mine["results"] == theirs["results"] == []
        assert mine["err"] and theirs["err"]


def test_io_binding_like_onnxruntime(pair):
    g, o = pair
    feeds = feeds_for(g)
    want = g.run(None, feeds)
    names = [a.name for a in g.get_outputs()]
    bindings = []
    for sess in (g, o):
        b = sess.io_binding()
        for k, v in feeds.items():
            b.bind_cpu_input(k, v)
        b.bind_output(names[0])
        buf = np.full(want[-1].shape, np.nan, np.float32)
        b.bind_output(names[-1], "cpu", 0, np.float32, list(buf.shape), buf.ctypes.data)
        sess.run_with_iobinding(b)
        bindings.append((b, buf))
    (gb, gbuf), (ob, obuf) = bindings
    mine, theirs = gb.copy_outputs_to_cpu(), ob.copy_outputs_to_cpu()
    assert len(mine) == len(theirs) == len(set(names[:1] + names[-1:]))
    for a, b in zip(mine, theirs):
        close(a, b)
    close(gbuf, obuf)
    np.testing.assert_array_equal(gbuf, want[-1])
    assert np.shares_memory(gb.get_outputs()[-1], gbuf)  # the bound memory itself
    gb.bind_output_array(names[-1], np.zeros((1,), np.float32))
    with pytest.raises(gruinfer.InvalidArgument, match="bound memory"):
        g.run_with_iobinding(gb)
    with pytest.raises(gruinfer.InvalidArgument, match="CPU memory only"):
        gb.bind_output(names[0], "cuda")


def test_profiling(tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    opts = gruinfer.SessionOptions()
    opts.enable_profiling = True
    opts.profile_file_prefix = "mine"
    for path in (DEMO, MODELS["bigru"]):  # a run on the C plan, a run node by node
        g = gruinfer.InferenceSession(str(path), opts)
        assert g.get_profiling_start_time_ns() > 0
        feeds = feeds_for(g)
        g.run(None, feeds)
        g.run(None, feeds)
        out = g.end_profiling()
        assert os.path.basename(out).startswith("mine_") and out.endswith(".json")
        events = json.loads(Path(out).read_text())
        runs = [e for e in events if e["name"] == "model_run"]
        assert len(runs) == 2 and all(e["ph"] == "X" and e["dur"] >= 0 for e in events)
        assert runs[0]["args"]["path"] == ("C plan" if path == DEMO else "interpreter")
        if path != DEMO:
            ops = {e["args"]["op_name"] for e in events if e["cat"] == "Node"}
            assert "GRU" in ops
        assert g.end_profiling() == ""
    assert gruinfer.InferenceSession(str(DEMO)).end_profiling() == ""


# ------------------------------------------------------------------ pickling and forks

def test_session_pickles(pair):
    g, _ = pair
    twin = pickle.loads(pickle.dumps(g))
    feeds = feeds_for(g, seed=3)
    for a, b in zip(twin.run(None, feeds), g.run(None, feeds)):
        np.testing.assert_array_equal(a, b)
    assert twin.plan_info()["steps"] == g.plan_info()["steps"]


def test_session_with_external_data_pickles(tmp_path):
    model = onnx.load(str(DEMO))
    onnx.save(model, str(tmp_path / "m.onnx"), save_as_external_data=True,
              all_tensors_to_one_file=True, location="w.bin", size_threshold=0)
    g = gruinfer.InferenceSession(str(tmp_path / "m.onnx"))
    blob = pickle.dumps(g)
    (tmp_path / "w.bin").unlink()  # the pickle holds the data itself
    feeds = feeds_for(g)
    for a, b in zip(pickle.loads(blob).run(None, feeds), g.run(None, feeds)):
        np.testing.assert_array_equal(a, b)


def test_session_keeps_its_own_copy_of_a_model_proto():
    model = onnx.load(str(DEMO))
    g = gruinfer.InferenceSession(model)
    model.graph.ClearField("node")
    feeds = feeds_for(g)
    for a, b in zip(pickle.loads(pickle.dumps(g)).run(None, feeds), g.run(None, feeds)):
        np.testing.assert_array_equal(a, b)


def _py_path_model():
    """The demo model with an Exp (no C step) over its output: its stream is a PyStream."""
    m = onnx.load(str(DEMO))
    first = m.graph.output[0]
    m.graph.node.append(helper.make_node("Exp", [first.name], ["e"], name="exp"))
    out = copy.deepcopy(first)
    out.name = "e"
    m.graph.output.insert(0, out)
    return m


@pytest.mark.parametrize("model", ["demo", "h0_ts", "ids", "py_path"])
def test_stream_forks_and_pickles_with_its_state(model):
    """copy.copy, copy.deepcopy and a pickle of a stream part-way through go on exactly as the
    stream itself does, and independently of it."""
    sess = gruinfer.InferenceSession(_py_path_model() if model == "py_path" else
                                     str(MODELS[model]))
    info = sess.plan_info()
    x = feeds_for(sess, T=8, N=2)[info["time_input"]]
    frames = np.moveaxis(x, info["input_axes"].index("T"), 0)
    stream = sess.stream(2)
    assert stream.lowered == (model != "py_path")
    for f in frames[:3]:
        stream.step(f)
    fork, deep, blob = copy.copy(stream), copy.deepcopy(stream), pickle.dumps(stream)
    want = [stream.step(f).copy() for f in frames[3:8]]  # the original moves on first
    for s in (fork, deep, pickle.loads(blob)):
        assert type(s) is type(stream) and s.batch_size == 2
        for f, w in zip(frames[3:8], want):
            np.testing.assert_array_equal(s.step(f), w)
        for k, h in stream.get_state().items():
            np.testing.assert_array_equal(s.get_state()[k], h)


def test_pickled_streams_share_one_session():
    sess = gruinfer.InferenceSession(str(DEMO))
    a, b = pickle.loads(pickle.dumps([sess.stream(1), sess.stream(2)]))
    assert a.session is b.session and a.session is not sess


# ------------------------------------------------------------------ the examples

def _example(name):
    """An example as a module by its own name, so spawned worker processes import it too."""
    if str(ROOT / "examples") not in sys.path:
        sys.path.insert(0, str(ROOT / "examples"))
    return importlib.import_module(name)


def test_process_pool_example_gives_the_single_process_results():
    """2 workers stream 8 models' worth of frames (each session pickled to the workers once);
    a half-streamed Stream is finished in a worker."""
    ex = _example("process_pool")
    paths = [DEMO] + [MODELS[k] for k in ("h0_ts", "keras", "jax_h0", "paddle", "cell_step")] \
        + [FIX / "gru2_softmax_ts.onnx", FIX / "keras_stacked_dense.onnx"]
    sessions = [gruinfer.InferenceSession(str(p)) for p in paths]
    jobs = [(i, ex.frames_for(s, 20, i)) for i, s in enumerate(sessions)]
    pooled = ex.run_pool(sessions, jobs, workers=2)
    for (i, frames), got in zip(jobs, pooled):
        np.testing.assert_array_equal(got, ex.stream_frames(sessions[i], frames))
    resumed = ex.resume_in_pool(sessions[0], jobs[0][1], 10)
    np.testing.assert_array_equal(resumed, ex.stream_frames(sessions[0], jobs[0][1]))


def test_dask_example():
    pytest.importorskip("dask.distributed")
    assert _example("dask_cluster").main(["--utterances", "4", "--frames", "20"]) == 0.0
