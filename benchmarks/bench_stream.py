"""bench_stream.py: per-frame latency of gruinfer stream.step against onnxruntime and PyTorch stepping one frame at a time with h fed back."""
import argparse
import os
import platform
import time

import numpy as np

from common import bench_frames, clock_overhead_ns, cpu_model, gruinfer, make_weights, torch_or_none

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


def main(argv=None):
    args = parse_args(argv)
    import onnxruntime as ort

    torch = None if args.no_torch else torch_or_none()
    args.torch = torch is not None
    torch_version = ("left out (--no-torch)" if args.no_torch
                     else torch.__version__ if torch else "not installed")

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
        r = bench_frames(I, H, make_weights(I, H, args.seed + H), rng, args.rounds,
                         args.round_seconds, torch, args.kernel, args.frames)
        med, p99 = r["median_us"], r["p99_us"]
        line = f"{H:>5} {I:>5} {r['frames_per_round'] * args.rounds:>7} " + " ".join(
            f"{f'{med[c]:.2f} / {p99[c]:.2f}':>24}" for c in cols)
        for c in cols[1:]:
            q, lo, hi = r["ratio"][c]
            line += f" {f'{q:.2f} [{lo:.2f}-{hi:.2f}]':>20}"
        line += f" {r['maxdiff']:>8.1e}"
        print(line, flush=True)
    print(f"\n(frames: timed frames per engine; maxdiff: largest |h| difference between engines "
          f"after 32 frames from h = 0; {time.perf_counter() - t_start:.0f} s)")


if __name__ == "__main__":
    main()
