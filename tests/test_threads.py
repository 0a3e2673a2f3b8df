"""threads=N: whole-sequence runs of wide GRU layers split across threads give the one-thread results (and onnxruntime's)."""
import threading

import numpy as np
import onnxruntime as ort
import pytest
from onnx import helper

import gruinfer
from gru_reference import make_gru_model


def model(H, I, direction, lbr, seed):
    rng = np.random.default_rng(seed)
    D = 2 if direction == "bidirectional" else 1
    s = 1.0 / np.sqrt(H)
    arrays = {
        "X": rng.standard_normal((6, 3, I)).astype(np.float32),
        "W": rng.uniform(-s, s, (D, 3 * H, I)).astype(np.float32),
        "R": rng.uniform(-s, s, (D, 3 * H, H)).astype(np.float32),
        "B": rng.uniform(-s, s, (D, 6 * H)).astype(np.float32),
        "sequence_lens": np.array([6, 2, 5], np.int32),
        "initial_h": rng.standard_normal((D, 3, H)).astype(np.float32),
    }
    attrs = {"hidden_size": H, "direction": direction, "linear_before_reset": lbr}
    m = make_gru_model(arrays, attrs, initializers=("W", "R", "B"))
    feeds = {k: arrays[k] for k in ("X", "sequence_lens", "initial_h")}
    return m, feeds


@pytest.mark.parametrize("H", [512, 530])
@pytest.mark.parametrize("direction", ["forward", "bidirectional"])
@pytest.mark.parametrize("lbr", [0, 1])
def test_threads_match_one_thread_and_onnxruntime(H, direction, lbr, kernel):
    m, feeds = model(H, 40, direction, lbr, H + lbr)
    one = gruinfer.InferenceSession(m, kernel=kernel).run(None, feeds)
    want = ort.InferenceSession(m.SerializeToString()).run(None, feeds)
    for threads in (2, 3):
        got = gruinfer.InferenceSession(m, kernel=kernel, threads=threads).run(None, feeds)
        for a, b, w in zip(got, one, want):
            np.testing.assert_allclose(a, b, rtol=0, atol=1e-5)
            np.testing.assert_allclose(a, w, rtol=0, atol=1e-5)


def test_threaded_session_shared_by_python_threads():
    m, feeds = model(512, 16, "forward", 1, 7)
    sess = gruinfer.InferenceSession(m, threads=2)
    want = sess.run(None, feeds)
    results, errors = [], []

    def work():
        try:
            for _ in range(3):
                results.append(sess.run(None, feeds))
        except Exception as e:  # reported below
            errors.append(e)

    pool = [threading.Thread(target=work) for _ in range(3)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    assert not errors and len(results) == 9
    for got in results:
        for a, b in zip(got, want):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("threads", [0, 257, True])
def test_threads_out_of_range(threads):
    m, _ = model(8, 4, "forward", 1, 0)
    with pytest.raises(gruinfer.InvalidArgument, match="threads"):
        gruinfer.InferenceSession(m, threads=threads)


@pytest.mark.parametrize("lbr", [0, 1])
def test_threaded_stream_matches_one_thread(lbr):
    H, N = 512, 8
    rng = np.random.default_rng(lbr)
    s = 1.0 / np.sqrt(H)
    arrays = {"X": rng.standard_normal((9, N, 24)).astype(np.float32),
              "W": rng.uniform(-s, s, (1, 3 * H, 24)).astype(np.float32),
              "R": rng.uniform(-s, s, (1, 3 * H, H)).astype(np.float32),
              "B": rng.uniform(-s, s, (1, 6 * H)).astype(np.float32)}
    m = make_gru_model(arrays, {"hidden_size": H, "linear_before_reset": lbr},
                       initializers=("W", "R", "B"), dynamic_inputs=True)
    x = arrays["X"]
    want = ort.InferenceSession(m.SerializeToString()).run(None, {"X": x})[0]
    for threads in (1, 2):
        stream = gruinfer.InferenceSession(m, threads=threads).stream(N)
        got = np.concatenate([stream.run(["Y"], {"X": x[t:t + 3]})[0] for t in range(0, 9, 3)])
        np.testing.assert_allclose(got, want, rtol=0, atol=1e-5)


def _ops(seed, frame_shape, chunk_shape, names):
    """A seeded random sequence of stream calls (run, step, reset, get_state, set_state)."""
    rng = np.random.default_rng(seed)
    ops = []
    for _ in range(60):
        k = rng.integers(5)
        if k == 0:
            ops.append(("step", rng.standard_normal(frame_shape).astype(np.float32)))
        elif k == 1:
            ops.append(("run", rng.standard_normal(chunk_shape).astype(np.float32)))
        elif k == 2:
            ops.append(("reset", [int(rng.integers(frame_shape[0]))] if rng.random() < 0.5 else None))
        elif k == 3:
            ops.append(("get_state", None))
        else:
            ops.append(("set_state", {n: rng.standard_normal((frame_shape[0], hid)).astype(np.float32)
                                      for n, hid in names}))
    return ops


def _play(stream, ops):
    """Every result of the calls, in order (copies: out arrays are reused by nothing here)."""
    got = []
    for op, arg in ops:
        if op == "step":
            got.append(stream.step(arg))
        elif op == "run":
            got.extend(stream.run(None, {stream.input_name: arg}))
        elif op == "reset":
            stream.reset(arg)
        elif op == "get_state":
            got.extend(v for _, v in sorted(stream.get_state().items()))
        else:
            stream.set_state(arg)
    return got


@pytest.mark.parametrize("python_path", [False, True])
def test_eight_threads_hammering_their_own_streams_match_a_replay(python_path):
    """One session, eight threads, a stream each, a random interleaving of run / step / reset /
    get_state / set_state calls: every result is bit-identical to the same calls replayed on one
    thread (streams share the session's weights and nothing else)."""
    from test_bad_feeds import fixture, on_python_path

    m = fixture("gru2_softmax_ts")
    sess = gruinfer.InferenceSession(on_python_path(m) if python_path else m)
    probe = sess.stream(2)
    assert probe.lowered is not python_path
    names = [(n, v.shape[1]) for n, v in probe.get_state().items()]
    frame = probe.frame_in_shape
    chunk = (3,) + frame
    plays = [_ops(seed, frame, chunk, names) for seed in range(8)]
    results, errors = [None] * 8, []
    barrier = threading.Barrier(8)

    def work(i):
        try:
            stream = sess.stream(2)
            barrier.wait()
            results[i] = _play(stream, plays[i])
        except Exception as e:  # reported below, with the thread's index
            errors.append((i, e))

    pool = [threading.Thread(target=work, args=(i,)) for i in range(8)]
    for t in pool:
        t.start()
    for t in pool:
        t.join()
    assert not errors
    for i in range(8):
        want = _play(sess.stream(2), plays[i])
        assert len(want) == len(results[i])
        for a, b in zip(results[i], want):
            np.testing.assert_array_equal(a, b)


@pytest.mark.parametrize("threads", [1, 2])
def test_threads_caps_numpy_blas_on_the_interpreter_path(monkeypatch, threads):
    """The node-by-node path runs NumPy, whose BLAS would use every core: while a session of
    threads=N interprets a graph, BLAS runs N threads, and afterwards as many as before."""
    from threadpoolctl import threadpool_info

    import gruinfer.interp.run as interp_run

    def blas():
        return {i["num_threads"] for i in threadpool_info() if i["user_api"] == "blas"}

    seen, apply = [], interp_run.apply

    def spying(*args):
        seen.append(blas())
        return apply(*args)

    before = blas()
    m, feeds = model(8, 4, "bidirectional", 0, 0)  # bidirectional: runs node by node
    m.graph.node.append(helper.make_node("Exp", ["Y_h"], ["e"]))
    m.graph.output.append(helper.make_tensor_value_info("e", 1, None))
    sess = gruinfer.InferenceSession(m, threads=threads)
    monkeypatch.setattr(interp_run, "apply", spying)
    sess.run(None, feeds)
    assert seen and all(s <= {threads} for s in seen), seen
    assert blas() == before
