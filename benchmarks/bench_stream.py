"""bench_stream.py: per-frame latency of gruinfer stream.step against onnxruntime and PyTorch stepping one frame at a time with h fed back."""
import argparse
import gc
import os
import platform
import statistics
import sys
import time

import numpy as np

try:
    import gruinfer
except ImportError:  # running from a source checkout built in place
    sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    import gruinfer

DEFAULT_SIZES = "32,64,256,1024"


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        description="Per-frame latency of one GRU step (batch 1, one thread per engine): "
                    "gruinfer stream.step(x, out=...) with the state kept in the engine, against "
                    "onnxruntime InferenceSession.run on a one-frame sequence with initial_h fed "
                    "back from Y_h, and (when torch imports) torch.nn.GRU on one frame with h fed "
                    "back. Engines alternate in rounds; every frame is timed on its own "
                    "(time.perf_counter_ns around the call, Python call overhead included). "
                    "Prints median and p99 per frame in microseconds and the ratios "
                    "onnxruntime/gruinfer and torch/gruinfer of the medians.")
    p.add_argument("--sizes", default=DEFAULT_SIZES,
                   help="comma-separated hidden sizes (default: %(default)s)")
    p.add_argument("--input-size", type=int, default=None,
                   help="input size I of every model (default: equal to the hidden size)")
    p.add_argument("--frames", type=int, default=None,
                   help="frames per engine per round (default: chosen per size so that one round "
                        "of all engines takes about --round-seconds, between 200 and 20000)")
    p.add_argument("--rounds", type=int, default=7,
                   help="rounds; each round runs every engine once, in a rotating order "
                        "(default: %(default)s)")
    p.add_argument("--round-seconds", type=float, default=1.5,
                   help="target duration of one round when --frames is not given "
                        "(default: %(default)s)")
    p.add_argument("--kernel", default=None,
                   help="gruinfer kernel to force (default: gruinfer's choice, "
                        "see gruinfer.kernel_info())")
    p.add_argument("--no-torch", action="store_true", help="leave PyTorch out even if it imports")
    p.add_argument("--quick", action="store_true",
                   help="smoke run: 3 rounds of about 0.1 s (still every size unless --sizes)")
    p.add_argument("--seed", type=int, default=0, help="seed of weights and inputs (default: 0)")
    a = p.parse_args(argv)
    try:
        a.sizes = [int(s) for s in a.sizes.split(",") if s.strip()]
    except ValueError:
        p.error(f"--sizes must be comma-separated integers, got {a.sizes!r}")
    if not a.sizes or min(a.sizes) < 1:
        p.error("--sizes needs at least one positive size")
    if a.input_size is not None and a.input_size < 1:
        p.error("--input-size must be positive")
    if a.frames is not None and a.frames < 1:
        p.error("--frames must be positive")
    if a.quick:
        a.rounds = min(a.rounds, 3)
        a.round_seconds = min(a.round_seconds, 0.1)
    if a.rounds < 1:
        p.error("--rounds must be positive")
    return a


def cpu_model():
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("model name"):
                    return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine()


def make_model(I, H, seed):
    """One forward GRU (linear_before_reset=1, as PyTorch exports): inputs X [T,1,I], h0; output Y_h."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(seed)
    s = 1.0 / np.sqrt(H)
    W = rng.uniform(-s, s, (1, 3 * H, I)).astype(np.float32)
    R = rng.uniform(-s, s, (1, 3 * H, H)).astype(np.float32)
    B = rng.uniform(-s, s, (1, 6 * H)).astype(np.float32)
    node = helper.make_node("GRU", ["X", "W", "R", "B", "", "h0"], ["", "Y_h"], name="gru",
                            hidden_size=H, linear_before_reset=1)
    graph = helper.make_graph(
        [node], "step",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["T", 1, I]),
         helper.make_tensor_value_info("h0", TensorProto.FLOAT, [1, 1, H])],
        [helper.make_tensor_value_info("Y_h", TensorProto.FLOAT, [1, 1, H])],
        [numpy_helper.from_array(W, "W"), numpy_helper.from_array(R, "R"),
         numpy_helper.from_array(B, "B")])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 14)])
    model.ir_version = 8
    onnx.checker.check_model(model)
    return model, (W, R, B)


# ---- engines: each is (name, setup(frames) -> step(i)) where step(i) advances one frame

def gruinfer_engine(model, I, H, kernel):
    sess = gruinfer.InferenceSession(model.SerializeToString(), kernel=kernel)

    def setup(frames):
        stream = sess.stream(batch_size=1)
        xs = [np.ascontiguousarray(f.reshape(1, I)) for f in frames]
        out = np.empty((1, 1, H), np.float32)
        step = stream.step

        def run(i):
            step(xs[i], out)
        return run, lambda: out.copy()
    return setup, sess.kernel


def ort_engine(model, I, H):
    import onnxruntime as ort

    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.execution_mode = ort.ExecutionMode.ORT_SEQUENTIAL
    sess = ort.InferenceSession(model.SerializeToString(), so, providers=["CPUExecutionProvider"])

    def setup(frames):
        xs = [np.ascontiguousarray(f.reshape(1, 1, I)) for f in frames]
        state = [np.zeros((1, 1, H), np.float32)]
        names = ["Y_h"]
        run_ = sess.run

        def run(i):
            state[0] = run_(names, {"X": xs[i], "h0": state[0]})[0]
        return run, lambda: state[0].copy()
    return setup


def torch_engine(weights, I, H):
    import torch

    torch.set_num_threads(1)
    W, R, B = weights

    def reorder(a):              # ONNX gates z, r, h -> PyTorch r, z, n
        z, r, h = np.split(a, 3, axis=0)
        return torch.from_numpy(np.ascontiguousarray(np.concatenate([r, z, h], axis=0)))
    gru = torch.nn.GRU(I, H, num_layers=1, batch_first=False)
    with torch.no_grad():
        gru.weight_ih_l0.copy_(reorder(W[0]))
        gru.weight_hh_l0.copy_(reorder(R[0]))
        gru.bias_ih_l0.copy_(reorder(B[0, :3 * H]))
        gru.bias_hh_l0.copy_(reorder(B[0, 3 * H:]))
    gru.eval()

    def setup(frames):
        xs = [torch.from_numpy(np.ascontiguousarray(f.reshape(1, 1, I))) for f in frames]
        state = [torch.zeros(1, 1, H)]
        mode = torch.inference_mode()

        def run(i):
            with mode:
                state[0] = gru(xs[i], state[0])[1]
        return run, lambda: state[0].numpy().copy()
    return setup, torch.__version__


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


def bench_size(H, I, args, rng):
    model, weights = make_model(I, H, args.seed + H)
    setups = {}
    setups["gruinfer"], _ = gruinfer_engine(model, I, H, args.kernel)
    setups["onnxruntime"] = ort_engine(model, I, H)
    if args.torch:
        setups["torch"], _ = torch_engine(weights, I, H)

    # agreement of the three engines over the first frames (state fed back), from h = 0
    check = rng.standard_normal((32, I)).astype(np.float32)
    finals = {}
    for name, setup in setups.items():
        run, state = setup(check)
        for i in range(len(check)):
            run(i)
        finals[name] = state().reshape(-1)
    maxdiff = max(float(np.abs(v - finals["gruinfer"]).max()) for v in finals.values())

    # frames per round: from a short warm-up estimate unless given
    warm = rng.standard_normal((200, I)).astype(np.float32)
    est = 0.0
    for name, setup in setups.items():
        run, _ = setup(warm)
        t = timed(run, len(warm))
        est += statistics.median(t[len(t) // 2:]) * 1e-9
    frames = args.frames or int(min(20000, max(200, args.round_seconds / est)))

    data = rng.standard_normal((frames, I)).astype(np.float32)
    runners = {name: setup(data)[0] for name, setup in setups.items()}
    for run in runners.values():     # warm-up of the runners that are timed
        timed(run, min(frames, 50))
    samples = {name: [] for name in runners}
    per_round = {name: [] for name in runners}
    names = list(runners)
    gc_was = gc.isenabled()
    gc.disable()
    try:
        for r in range(args.rounds):
            order = names[r % len(names):] + names[:r % len(names)]
            for name in order:
                t = timed(runners[name], frames)
                samples[name].extend(t)
                per_round[name].append(statistics.median(t))
    finally:
        if gc_was:
            gc.enable()
    res = {name: (statistics.median(s) / 1e3, pct(s, 99) / 1e3) for name, s in samples.items()}
    ratios = {}
    for name in names[1:]:
        rr = [a / b for a, b in zip(per_round[name], per_round["gruinfer"])]
        ratios[name] = (res[name][0] / res["gruinfer"][0], min(rr), max(rr))
    return frames, res, ratios, maxdiff


def main(argv=None):
    args = parse_args(argv)
    import onnxruntime as ort

    args.torch = False
    torch_version = "not installed"
    if args.no_torch:
        torch_version = "left out (--no-torch)"
    else:
        try:
            import torch
            args.torch = True
            torch_version = torch.__version__
        except ImportError:
            pass

    info = gruinfer.kernel_info()
    print(f"CPU: {cpu_model()} ({os.cpu_count()} logical CPUs), {platform.machine()}, "
          f"Python {platform.python_version()}, numpy {np.__version__}")
    print(f"gruinfer {gruinfer.__version__} ({os.path.dirname(gruinfer.__file__)}): kernel selected "
          f"{info['selected']!r}, used {args.kernel or info['selected']!r}, "
          f"supported {info['supported']}")
    print(f"onnxruntime {ort.__version__} (intra_op_num_threads=1, inter_op_num_threads=1); "
          f"torch {torch_version}" + (" (set_num_threads(1))" if args.torch else ""))
    print(f"batch 1, one frame per call, {args.rounds} rounds per size with the engines "
          f"interleaved; every frame timed alone (timer overhead ~{clock_overhead_ns():.0f} ns, "
          "included); GC off while timing")
    print("ratios: of the medians over all rounds, [min-max] of the per-round ratios\n")

    cols = ["gruinfer", "onnxruntime"] + (["torch"] if args.torch else [])
    head = f"{'H':>5} {'I':>5} {'frames':>7} " + " ".join(
        f"{c + ' med/p99 us':>24}" for c in cols)
    head += f" {'ort/gruinfer':>20}" + (f" {'torch/gruinfer':>20}" if args.torch else "")
    head += f" {'maxdiff':>8}"
    print(head)
    print("-" * len(head))
    rng = np.random.default_rng(args.seed)
    t_start = time.perf_counter()
    for H in args.sizes:
        I = args.input_size or H
        frames, res, ratios, maxdiff = bench_size(H, I, args, rng)
        line = f"{H:>5} {I:>5} {frames * args.rounds:>7} " + " ".join(
            f"{f'{res[c][0]:.2f} / {res[c][1]:.2f}':>24}" for c in cols)
        for c in cols[1:]:
            r, lo, hi = ratios[c]
            line += f" {f'{r:.2f} [{lo:.2f}-{hi:.2f}]':>20}"
        line += f" {maxdiff:>8.1e}"
        print(line, flush=True)
    print(f"\n(frames: timed frames per engine; maxdiff: largest |h| difference between engines "
          f"after 32 frames from h = 0; {time.perf_counter() - t_start:.0f} s)")


if __name__ == "__main__":
    main()
