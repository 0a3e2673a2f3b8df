"""common.py: what the benchmarks share: the GRU models (ONNX + PyTorch from the same weights), one runner per engine, per-call timing and engine interleaving."""
import gc
import os
import platform
import statistics
import sys
import time

import numpy as np

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def prefer_checkout():
    """Put the source checkout first on sys.path when its extension is built in place, so the
    benchmark measures this tree rather than an installed copy; otherwise the installed one."""
    import glob
    built = any(glob.glob(os.path.join(ROOT, "gruinfer", "_core*" + e)) for e in (".so", ".pyd"))
    if built and ROOT not in sys.path[:1]:
        sys.path.insert(0, ROOT)


prefer_checkout()
import gruinfer  # noqa: E402

ENGINES = ("gruinfer", "onnxruntime", "torch")


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def torch_or_none():
    """The torch module set to one thread, or None when it does not import."""
    try:
        import torch
    except ImportError:
        return None
    torch.set_num_threads(1)
    try:
        torch.set_num_interop_threads(1)
    except RuntimeError:   # already set, or inter-op work already started
        pass
    return torch


def make_weights(I, H, seed):
    """ONNX-layout weights of one forward GRU: W [1,3H,I], R [1,3H,H], B [1,6H] (gates z, r, h)."""
    rng = np.random.default_rng(seed)
    s = 1.0 / np.sqrt(H)
    W = rng.uniform(-s, s, (1, 3 * H, I)).astype(np.float32)
    R = rng.uniform(-s, s, (1, 3 * H, H)).astype(np.float32)
    B = rng.uniform(-s, s, (1, 6 * H)).astype(np.float32)
    return W, R, B


def make_model(I, H, weights, kind):
    """One forward GRU (linear_before_reset=1, as PyTorch exports) as an ONNX ModelProto.

    kind "step": inputs X [T,1,I] and h0 [1,1,H], output Y_h (onnxruntime steps it with h fed back).
    kind "seq":  input X [T,B,I] (h starts at zero), outputs Y [T,1,B,H] and Y_h [1,B,H]."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    W, R, B = weights
    f = TensorProto.FLOAT
    if kind == "step":
        node = helper.make_node("GRU", ["X", "W", "R", "B", "", "h0"], ["", "Y_h"], name="gru",
                                hidden_size=H, linear_before_reset=1)
        inputs = [helper.make_tensor_value_info("X", f, ["T", 1, I]),
                  helper.make_tensor_value_info("h0", f, [1, 1, H])]
        outputs = [helper.make_tensor_value_info("Y_h", f, [1, 1, H])]
    elif kind == "seq":
        node = helper.make_node("GRU", ["X", "W", "R", "B"], ["Y", "Y_h"], name="gru",
                                hidden_size=H, linear_before_reset=1)
        inputs = [helper.make_tensor_value_info("X", f, ["T", "N", I])]
        outputs = [helper.make_tensor_value_info("Y", f, ["T", 1, "N", H]),
                   helper.make_tensor_value_info("Y_h", f, [1, "N", H])]
    else:
        raise ValueError(kind)
    graph = helper.make_graph([node], kind, inputs, outputs,
                              [numpy_helper.from_array(W, "W"), numpy_helper.from_array(R, "R"),
                               numpy_helper.from_array(B, "B")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model


def ort_session(model_bytes):
    """onnxruntime CPU session with one intra-op and one inter-op thread."""
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    return ort.InferenceSession(model_bytes, so, providers=["CPUExecutionProvider"])


def torch_gru(torch, weights, I, H):
    """torch.nn.GRU (eval) holding the ONNX weights, gates reordered z, r, h -> r, z, n."""
    W, R, B = weights

    def reorder(a):
        z, r, h = np.split(a, 3, axis=0)
        return torch.from_numpy(np.ascontiguousarray(np.concatenate([r, z, h], axis=0)))
    gru = torch.nn.GRU(I, H, num_layers=1, batch_first=False)
    with torch.no_grad():
        gru.weight_ih_l0.copy_(reorder(W[0]))
        gru.weight_hh_l0.copy_(reorder(R[0]))
        gru.bias_ih_l0.copy_(reorder(B[0, :3 * H]))
        gru.bias_hh_l0.copy_(reorder(B[0, 3 * H:]))
    return gru.eval()


# ---- per-frame engines: setup(frames [n, I]) -> (run(i) advancing frame i, state() -> h)

def frame_engines(I, H, weights, torch=None, kernel=None):
    """{engine: setup} for one-frame-at-a-time stepping at batch 1 with h carried over."""
    step_bytes = make_model(I, H, weights, "step").SerializeToString()
    sess = gruinfer.InferenceSession(step_bytes, kernel=kernel)

    def gi_setup(frames):
        stream = sess.stream(batch_size=1)
        xs = [np.ascontiguousarray(f.reshape(1, I)) for f in frames]
        out = np.empty((1, 1, H), np.float32)
        step = stream.step

        def run(i):
            step(xs[i], out)
        return run, lambda: out.copy()

    osess = ort_session(step_bytes)

    def ort_setup(frames):
        xs = [np.ascontiguousarray(f.reshape(1, 1, I)) for f in frames]
        state = [np.zeros((1, 1, H), np.float32)]
        names = ["Y_h"]
        run_ = osess.run

        def run(i):
            state[0] = run_(names, {"X": xs[i], "h0": state[0]})[0]
        return run, lambda: state[0].copy()

    setups = {"gruinfer": gi_setup, "onnxruntime": ort_setup}
    if torch is not None:
        gru = torch_gru(torch, weights, I, H)

        def torch_setup(frames):
            xs = [torch.from_numpy(np.ascontiguousarray(f.reshape(1, 1, I))) for f in frames]
            state = [torch.zeros(1, 1, H)]
            mode = torch.inference_mode()

            def run(i):
                with mode:
                    state[0] = gru(xs[i], state[0])[1]
            return run, lambda: state[0].numpy().copy()
        setups["torch"] = torch_setup
    return setups, sess.kernel


# ---- whole-sequence engines: {engine: fn(x [T,B,I]) -> (run() -> None, result() -> Y [T,B,H])}

def sequence_engines(I, H, weights, torch=None, kernel=None):
    seq_bytes = make_model(I, H, weights, "seq").SerializeToString()
    sess = gruinfer.InferenceSession(seq_bytes, kernel=kernel)
    osess = ort_session(seq_bytes)

    def onnx_like(s):
        def setup(x):
            box = [None]
            feed = {"X": x}

            def run():
                box[0] = s.run(None, feed)
            return run, lambda: box[0][0].reshape(x.shape[0], x.shape[1], H)
        return setup

    engines = {"gruinfer": onnx_like(sess), "onnxruntime": onnx_like(osess)}
    if torch is not None:
        gru = torch_gru(torch, weights, I, H)

        def torch_setup(x):
            xt = torch.from_numpy(x)
            box = [None]
            mode = torch.inference_mode()

            def run():
                with mode:
                    box[0] = gru(xt)
            return run, lambda: box[0][0].numpy()
        engines["torch"] = torch_setup
    return engines, sess.kernel


# ---- timing

def timed(run, n):
    """Per-call durations in ns of run(0..n-1)."""
    clock = time.perf_counter_ns
    t = [0] * n
    for i in range(n):
        t0 = clock()
        run(i)
        t[i] = clock() - t0
    return t


def clock_overhead_ns():
    noop = lambda i: None  # noqa: E731
    return statistics.median(timed(noop, 20000))


def pct(values, q):
    return float(np.percentile(np.asarray(values, np.float64), q))


def interleave(runners, calls, rounds):
    """Time `calls` calls of every runner (run(i)) per round, engines in a rotating order, GC off.
    Returns ({engine: all per-call ns}, {engine: per-round medians in ns})."""
    names = list(runners)
    samples = {n: [] for n in names}
    per_round = {n: [] for n in names}
    gc_was = gc.isenabled()
    gc.collect()
    gc.disable()
    try:
        for r in range(rounds):
            order = names[r % len(names):] + names[:r % len(names)]
            for name in order:
                t = timed(runners[name], calls)
                samples[name].extend(t)
                per_round[name].append(statistics.median(t))
    finally:
        if gc_was:
            gc.enable()
    return samples, per_round


def ratios_vs(per_round, samples, ref="gruinfer"):
    """{engine: (median ratio engine/ref, min and max of per-round ratios)} for engines other than ref."""
    out = {}
    med_ref = statistics.median(samples[ref])
    for name in samples:
        if name == ref:
            continue
        rr = [a / b for a, b in zip(per_round[name], per_round[ref])]
        out[name] = (statistics.median(samples[name]) / med_ref, min(rr), max(rr))
    return out


def bench_frames(I, H, weights, rng, rounds, round_seconds, torch=None, kernel=None,
                 frames=None, max_frames=20000):
    """Per-frame step latency at batch 1 of every engine, interleaved in rounds.
    Returns a dict: frames per engine per round, median/p99 us per engine, ratios, max |h| diff."""
    setups, used = frame_engines(I, H, weights, torch, kernel)

    # agreement: h after 32 frames from h = 0, every engine against gruinfer
    check = rng.standard_normal((32, I)).astype(np.float32)
    finals = {}
    for name, setup in setups.items():
        run, state = setup(check)
        for i in range(len(check)):
            run(i)
        finals[name] = state().reshape(-1)
    maxdiff = max(float(np.abs(v - finals["gruinfer"]).max()) for v in finals.values())

    if frames is None:      # frames per round from a warm-up estimate
        warm = rng.standard_normal((200, I)).astype(np.float32)
        est = 0.0
        for setup in setups.values():
            run, _ = setup(warm)
            t = timed(run, len(warm))
            est += statistics.median(t[len(t) // 2:]) * 1e-9
        frames = int(min(max_frames, max(200, round_seconds / est)))

    data = rng.standard_normal((frames, I)).astype(np.float32)
    runners = {name: setup(data)[0] for name, setup in setups.items()}
    for run in runners.values():
        timed(run, min(frames, 50))
    samples, per_round = interleave(runners, frames, rounds)
    return {
        "kernel": used, "frames_per_round": frames, "rounds": rounds, "maxdiff": maxdiff,
        "median_us": {n: statistics.median(s) / 1e3 for n, s in samples.items()},
        "p99_us": {n: pct(s, 99) / 1e3 for n, s in samples.items()},
        "ratio": {n: list(v) for n, v in ratios_vs(per_round, samples).items()},
    }


def bench_sequence(I, H, weights, T, N, rng, rounds, round_seconds, torch=None, kernel=None,
                   max_seconds=None, min_rounds=3):
    """Whole-sequence run time (X [T,N,I] -> Y, Y_h, h from zero) of every engine, interleaved.
    Runs per round: round_seconds over one warm-up run of every engine (at least 1).  When all
    rounds would exceed max_seconds, fewer rounds (never under min_rounds).
    Returns a dict: runs and rounds, median ms per engine, ratios, max |Y| diff."""
    engines, used = sequence_engines(I, H, weights, torch, kernel)
    x = rng.standard_normal((T, N, I)).astype(np.float32)
    runners, results, est = {}, {}, 0.0
    for name, setup in engines.items():
        run, result = setup(x)
        t0 = time.perf_counter()
        run()                      # warm-up (and the result compared below)
        est += time.perf_counter() - t0
        results[name] = result().copy()
        runners[name] = (lambda r: lambda i: r())(run)
    maxdiff = max(float(np.abs(v - results["gruinfer"]).max()) for v in results.values())
    del results
    calls = int(min(200, max(1, round_seconds / est)))
    if max_seconds is not None and est * calls * rounds > max_seconds:
        rounds = max(min(min_rounds, rounds), int(max_seconds / (est * calls)))
    samples, per_round = interleave(runners, calls, rounds)
    return {
        "kernel": used, "T": T, "batch": N, "runs_per_round": calls, "rounds": rounds,
        "maxdiff": maxdiff,
        "median_ms": {n: statistics.median(s) / 1e6 for n, s in samples.items()},
        "ratio": {n: list(v) for n, v in ratios_vs(per_round, samples).items()},
    }
