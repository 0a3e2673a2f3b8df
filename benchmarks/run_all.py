"""run_all.py: the benchmark suite in one command: gruinfer against onnxruntime and PyTorch (1 thread each) per frame, per sequence, at cold start and in memory, plus the C-level step against the weight-streaming bound; writes benchmarks/results/."""
import argparse
import datetime
import json
import os
import platform
import statistics
import sys
import tempfile
import time

import numpy as np

import cbench
import coldstart
from common import (ENGINES, bench_frames, bench_sequence, clock_overhead_ns, cpu_model, gruinfer,
                    make_model, make_weights, ort_session, torch_or_none)

HERE = os.path.dirname(os.path.abspath(__file__))
PARTS = ("frame", "seq", "cold", "c")
# Floors of issue 4: onnxruntime time / gruinfer time, 1 thread each, same run.
FLOORS = {
    "frame": {32: 20, 64: 15, 256: 4, 1024: 1},
    "seq_b1": {32: 1.5, 64: 1.5, 256: 1, 1024: 1},
    "seq_b16": {32: 1, 64: 1, 256: 1, 1024: 1},
}
# Weight-streaming limits of a batch-1 step quoted in issue 4 (us, low and high), and the goal.
ISSUE_BOUND_US = {64: (0.75, 0.75), 256: (13.0, 13.0), 1024: (500.0, 900.0)}
C_GOAL = 1.3
COLD_H = 256            # cold-start model: H = I = 256, 3H(I+H) fp32 weights = 1.5 MiB


def parse_args(argv=None):
    p = argparse.ArgumentParser(
        formatter_class=argparse.RawDescriptionHelpFormatter,
        description="""\
Runs gruinfer, onnxruntime and (when it imports) PyTorch on the same one-layer
GRU models (input size = hidden size, linear_before_reset=1, random weights), one
thread each (onnxruntime intra/inter-op threads = 1, torch.set_num_threads(1)),
engines alternating in rounds, and reports medians and onnxruntime/gruinfer
ratios measured in this run:

  frame  per-frame latency at batch 1: gruinfer stream.step(x, out) against
         onnxruntime run() on a one-frame sequence with h fed back and torch
         nn.GRU on one frame with h fed back; every call timed alone
         (median and p99)
  seq    whole sequences X [T, B, I] -> Y, Y_h from h = 0: sess.run against
         onnxruntime run and torch nn.GRU forward (median per call)
  cold   in a fresh process per engine and repetition: import time, session
         creation from a 1.5 MiB model file (H = I = 256), first and second
         run of one frame, VmRSS; plus a python+numpy baseline
  c      benchmarks/c_step_bench.c built with the library's C sources in a
         temporary directory: C-level batch-1 step time of every kernel next to
         the time to read the fp32 weights once (measured), and the bounds
         quoted in issue 4

Prints the CPU and gruinfer.kernel_info(); writes results.md (tables, floors of
issue 4 next to each ratio), results.json (raw numbers) and latency.png
(latency vs hidden size, log-log) to --out. The default run takes about 4-6
minutes on 2 cores, --quick under a minute.""")
    p.add_argument("--quick", action="store_true",
                   help="smoke run: 3 rounds of ~0.15 s, T=200 instead of 1000, 2 cold-start "
                        "repetitions, a short C benchmark; writes to results/quick/ unless --out")
    p.add_argument("--sizes", default="32,64,256,1024",
                   help="hidden sizes, input size equal (default: %(default)s)")
    p.add_argument("--steps", type=int, default=None,
                   help="sequence length T of the whole-sequence runs (default: 1000; 200 with --quick)")
    p.add_argument("--batches", default="1,16",
                   help="batch sizes of the whole-sequence runs (default: %(default)s)")
    p.add_argument("--rounds", type=int, default=None,
                   help="rounds of interleaved engines per measurement (default: 7; 3 with --quick)")
    p.add_argument("--round-seconds", type=float, default=None,
                   help="target time of one round of all engines; sets frames or runs per round "
                        "(default: 1.5; 0.15 with --quick)")
    p.add_argument("--max-seconds", type=float, default=None,
                   help="time cap of one whole-sequence measurement: fewer rounds (never under 3) "
                        "when all rounds would take longer (default: 40; 10 with --quick)")
    p.add_argument("--cold-reps", type=int, default=None,
                   help="fresh processes per engine for cold start and RSS (default: 5; 2 with --quick)")
    p.add_argument("--parts", default=",".join(PARTS),
                   help="which parts to run, comma-separated from %(default)s")
    p.add_argument("--kernel", default=None,
                   help="gruinfer kernel to force (default: gruinfer's own choice)")
    p.add_argument("--no-torch", action="store_true", help="leave PyTorch out even if it imports")
    p.add_argument("--out", default=None,
                   help="output directory (default: benchmarks/results, or benchmarks/results/quick "
                        "with --quick)")
    p.add_argument("--seed", type=int, default=0, help="seed of weights and inputs (default: 0)")
    a = p.parse_args(argv)
    q = a.quick
    a.steps = a.steps or (200 if q else 1000)
    a.rounds = a.rounds or (3 if q else 7)
    a.round_seconds = a.round_seconds or (0.15 if q else 1.5)
    a.max_seconds = a.max_seconds or (10.0 if q else 40.0)
    a.cold_reps = a.cold_reps or (2 if q else 5)
    a.out = a.out or os.path.join(HERE, "results", "quick" if q else "")
    try:
        a.sizes = [int(s) for s in a.sizes.split(",") if s.strip()]
        a.batches = [int(s) for s in a.batches.split(",") if s.strip()]
    except ValueError:
        p.error("--sizes and --batches take comma-separated integers")
    a.parts = [s.strip() for s in a.parts.split(",") if s.strip()]
    if not set(a.parts) <= set(PARTS):
        p.error(f"--parts: choose from {','.join(PARTS)}")
    if (not a.sizes or min(a.sizes) < 1 or not a.batches or min(a.batches) < 1 or a.steps < 1
            or a.rounds < 1 or a.round_seconds <= 0 or a.cold_reps < 1):
        p.error("sizes, batches, steps, rounds, round time and repetitions must be positive")
    return a


def log(msg=""):
    print(msg, flush=True)


# ---- parts

def run_frames(args, torch, rng, res):
    log(f"\n== per-frame latency, batch 1, {args.rounds} rounds (us per frame, median / p99)")
    for H in args.sizes:
        r = bench_frames(H, H, make_weights(H, H, args.seed + H), rng, args.rounds,
                         args.round_seconds, torch, args.kernel)
        res["frame"][str(H)] = r
        med, p99 = r["median_us"], r["p99_us"]
        log(f"H={H:<5} " + "  ".join(f"{e} {med[e]:.2f} / {p99[e]:.2f}" for e in med)
            + "  | " + "  ".join(f"{e}/gruinfer {v[0]:.2f}x" for e, v in r["ratio"].items())
            + f"  (maxdiff {r['maxdiff']:.1e})")


def run_sequences(args, torch, rng, res):
    log(f"\n== whole sequences, T={args.steps} (ms per run, median)")
    for N in args.batches:
        for H in args.sizes:
            w = make_weights(H, H, args.seed + H)
            r = bench_sequence(H, H, w, args.steps, N, rng, args.rounds, args.round_seconds,
                               torch, args.kernel, max_seconds=args.max_seconds)
            res["seq"][f"{N}/{H}"] = r
            med = r["median_ms"]
            log(f"B={N:<3} H={H:<5} " + "  ".join(f"{e} {med[e]:.3f}" for e in med)
                + "  | " + "  ".join(f"{e}/gruinfer {v[0]:.2f}x" for e, v in r["ratio"].items())
                + f"  ({r['rounds']} rounds x {r['runs_per_round']} runs; maxdiff {r['maxdiff']:.1e})")


def run_cold(args, torch, res):
    H = COLD_H
    engines = ["baseline", "gruinfer", "gruinfer_compiled", "onnxruntime"] + \
        (["torch"] if torch else [])
    weights = make_weights(H, H, args.seed + H)
    model_bytes = make_model(H, H, weights, "seq").SerializeToString()
    with tempfile.TemporaryDirectory(prefix="gruinfer_cold_") as tmp:
        mpath, wpath = os.path.join(tmp, "gru.onnx"), os.path.join(tmp, "gru.npz")
        with open(mpath, "wb") as f:
            f.write(model_bytes)
        np.savez(wpath, W=weights[0], R=weights[1], B=weights[2])
        cpath = os.path.join(tmp, "gru.gruinfer")
        gruinfer.compile(model_bytes, cpath, kernel=args.kernel)
        with open(cpath, "rb") as f:
            compiled_bytes = f.read()
        log(f"\n== cold start and RSS: H = I = {H}, model file {len(model_bytes)} bytes "
            f"({len(model_bytes) / 2**20:.2f} MiB), {args.cold_reps} fresh processes per engine")
        runs = {e: [] for e in engines}
        for rep in range(args.cold_reps):
            order = engines[rep % len(engines):] + engines[:rep % len(engines)]
            for e in order:
                runs[e].append(coldstart.measure(e, cpath if e == "gruinfer_compiled" else mpath, H))
    # warm session creation, in this process (imports done): median of 7
    warm = {}
    for name, make in (("gruinfer", lambda: gruinfer.InferenceSession(model_bytes, kernel=args.kernel)),
                       ("gruinfer_compiled", lambda: gruinfer.InferenceSession(compiled_bytes,
                                                                              kernel=args.kernel)),
                       ("onnxruntime", lambda: ort_session(model_bytes))):
        make()
        t = []
        for _ in range(7):
            t0 = time.perf_counter()
            make()
            t.append(time.perf_counter() - t0)
        warm[name] = statistics.median(t) * 1e3
    out = {"H": H, "I": H, "model_bytes": len(model_bytes), "reps": args.cold_reps, "runs": runs,
           "warm_create_ms": warm, "median": {}}
    base_rss = statistics.median(r["rss_kib"] for r in runs["baseline"])
    for e in engines:
        rs = runs[e]
        m = {"rss_mib": statistics.median(r["rss_kib"] for r in rs) / 1024,
             "hwm_mib": statistics.median(r["hwm_kib"] for r in rs) / 1024}
        m["rss_over_baseline_mib"] = m["rss_mib"] - base_rss / 1024
        if e == "baseline":
            m["onnx_import_ms"] = statistics.median(r["onnx_import_s"] for r in rs) * 1e3
        else:
            for k in ("import_s", "create_s", "first_run_s", "second_run_s"):
                m[k.replace("_s", "_ms")] = statistics.median(r[k] for r in rs) * 1e3
        if e == "gruinfer":
            m["onnx_imported_by_import"] = any(r["onnx_imported_by_import"] for r in rs)
        out["median"][e] = m
        log(f"{e:<12} " + "  ".join(f"{k} {v:.2f}" if isinstance(v, float) else f"{k} {v}"
                                    for k, v in m.items()))
    log("warm session creation (in-process, median of 7): "
        + ", ".join(f"{k} {v:.2f} ms" for k, v in warm.items()))
    res["cold"] = out


def run_c(args, res):
    quick = args.quick
    log("\n== C-level step (c_step_bench.c), batch 1, every supported kernel")
    try:
        rows, header, flags = cbench.run(args.sizes, "all", 1, 7 if quick else 15,
                                         0.1 if quick else 0.4)
    except (cbench.BuildFailed, RuntimeError, OSError) as e:   # the rest of the report stands
        log(f"C benchmark not run: {e}")
        res["c"] = {"error": str(e)}
        return
    log(header)
    for r in rows:
        log(f"{r['kernel']:<7} H={r['H']:<5} step {r['step_ns'] / 1e3:9.3f} us   read weights "
            f"{r['read_ns'] / 1e3:9.3f} us ({r['read_GBps']:.0f} GB/s)   ratio "
            f"{r['step_ns'] / r['read_ns']:.2f}")
    res["c"] = {"rows": rows, "header": header, "flags": flags}


# ---- reporting

def fmt_t(us):
    """A time in us, readable."""
    if us >= 1000:
        return f"{us / 1000:.3g} ms" if us < 1e6 else f"{us / 1e6:.3g} s"
    return f"{us:.3g} us"


def floor_cell(ratio, floor):
    if floor is None:
        return f"{ratio:.2f}x", "-"
    return f"{ratio:.2f}x", ("met" if ratio >= floor else "**not met**")


def markdown(res, args):
    env = res["env"]
    L = ["# gruinfer benchmark results", "",
         f"Generated by `python benchmarks/run_all.py{' --quick' if args.quick else ''}` on "
         f"{env['date']} in {res['elapsed_s']:.0f} s.", "",
         f"- CPU: {env['cpu']} ({env['logical_cpus']} logical CPUs, {env['machine']}); "
         f"flags of interest: {', '.join(env['cpu_flags']) or 'none'}",
         f"- gruinfer {env['gruinfer']} from `{env['gruinfer_path']}`; kernel_info: "
         f"`{json.dumps(env['kernel_info'])}`; kernel used: `{env['kernel_used']}`",
         f"- onnxruntime {env['onnxruntime']} (intra_op_num_threads=1, inter_op_num_threads=1); "
         f"torch {env['torch']}; Python {env['python']}; numpy {env['numpy']}",
         f"- {args.rounds} rounds per measurement (whole sequences: fewer, at least 3, when all "
         f"rounds would take over {args.max_seconds:.0f} s), engines alternating in a "
         f"rotating order; ratios are onnxruntime time / gruinfer time of the medians (> 1: "
         f"gruinfer faster), [min-max] of the per-round ratios in brackets.",
         "- Models: one forward GRU layer, input size = hidden size H, linear_before_reset=1, "
         "ONNX opset 14; the same weights in every engine.", ""]

    if "frame" in res or "seq" in res:
        L += ["## Floors of issue 4 (onnxruntime time / gruinfer time)", ""]
        sizes = args.sizes
        L.append("| | " + " | ".join(f"H={H}" for H in sizes) + " |")
        L.append("|---|" + "---|" * len(sizes))
        rows = []
        if "frame" in res:
            rows.append(("per-frame `stream.step`, B=1", "frame",
                         lambda H: res["frame"].get(str(H))))
        for N in args.batches:
            if "seq" in res:
                rows.append((f"whole sequence T={args.steps}, B={N}", f"seq_b{N}",
                             (lambda N: lambda H: res["seq"].get(f"{N}/{H}"))(N)))
        for label, key, get in rows:
            cells = []
            for H in sizes:
                r = get(H)
                fl = FLOORS.get(key, {}).get(H)
                if r is None:
                    cells.append("-")
                    continue
                ratio = r["ratio"]["onnxruntime"][0]
                txt, ok = floor_cell(ratio, fl)
                cells.append(f"{txt} (floor {fl}x: {ok})" if fl is not None else txt)
            L.append(f"| {label} | " + " | ".join(cells) + " |")
        if args.steps != 1000:
            L += ["", f"(T={args.steps} here: issue 4's floors are for T=1000.)"]
        L.append("")

    engines = [e for e in ENGINES if e in res["engines"]]
    if "frame" in res:
        L += ["## Per-frame latency, batch 1 (median / p99 per frame, Python call included)", "",
              "| H | " + " | ".join(engines) + " | onnxruntime / gruinfer | "
              + ("torch / gruinfer | " if "torch" in engines else "") + "floor | max abs diff |",
              "|---|" + "---|" * (len(engines) + 3 + ("torch" in engines))]
        for H in args.sizes:
            r = res["frame"][str(H)]
            cells = [f"{fmt_t(r['median_us'][e])} / {fmt_t(r['p99_us'][e])}" for e in engines]
            rat = [f"{v[0]:.2f}x [{v[1]:.2f}-{v[2]:.2f}]" for e, v in r["ratio"].items()]
            fl = FLOORS["frame"].get(H)
            ok = floor_cell(r["ratio"]["onnxruntime"][0], fl)[1]
            L.append(f"| {H} | " + " | ".join(cells + rat) + f" | {fl or '-'}x {ok} | "
                     f"{r['maxdiff']:.1e} |")
        L.append("")
    if "seq" in res:
        L += [f"## Whole sequences, T={args.steps} (median per `run`, X [T,B,H] -> Y and Y_h)", "",
              "| B | H | " + " | ".join(engines) + " | onnxruntime / gruinfer | "
              + ("torch / gruinfer | " if "torch" in engines else "") + "floor | rounds x runs |",
              "|---|---|" + "---|" * (len(engines) + 3 + ("torch" in engines))]
        for N in args.batches:
            for H in args.sizes:
                r = res["seq"][f"{N}/{H}"]
                cells = [fmt_t(r["median_ms"][e] * 1e3) for e in engines]
                rat = [f"{v[0]:.2f}x [{v[1]:.2f}-{v[2]:.2f}]" for e, v in r["ratio"].items()]
                fl = FLOORS.get(f"seq_b{N}", {}).get(H)
                ok = floor_cell(r["ratio"]["onnxruntime"][0], fl)[1]
                L.append(f"| {N} | {H} | " + " | ".join(cells + rat) + f" | "
                         f"{(str(fl) + 'x ' + ok) if fl else '-'} | {r['rounds']} x "
                         f"{r['runs_per_round']} |")
        L.append("")
    if "c" in res and "error" in res["c"]:
        L += ["## C-level step", "", "Not measured: the C benchmark failed to build or run:", "",
              "```", res["c"]["error"][-2000:], "```", ""]
    elif "c" in res:
        c = res["c"]
        L += ["## C-level step against the weight-streaming bound (batch 1, I = H)", "",
              "Step: `gruinfer_stream_run` of one frame, check_finite off, median of the rounds. "
              "Read: the time to read the layer's fp32 weights (4 x 3H(I+H) bytes) once from a "
              "buffer of that size read over and over, measured here (it lands in the cache level "
              "that size fits in). The goal of issue 4 is a step within "
              f"{C_GOAL}x of the weight-streaming limit.", "",
              "| kernel | H | weights | step | read weights (measured) | step / read | "
              f"within {C_GOAL}x | issue 4 bound | step / issue bound |",
              "|---|---|---|---|---|---|---|---|---|"]
        default = res["env"]["kernel_info"]["selected"]
        for r in sorted(c["rows"], key=lambda r: (r["kernel"] != default, r["kernel"], r["H"])):
            ratio = r["step_ns"] / r["read_ns"]
            ib = ISSUE_BOUND_US.get(r["H"])
            if ib:
                lo, hi = ib
                ib_txt = fmt_t(lo) if lo == hi else f"{fmt_t(lo)}-{fmt_t(hi)}"
                q = [r["step_ns"] / 1e3 / hi, r["step_ns"] / 1e3 / lo]
                q_txt = f"{q[0]:.2f}" if lo == hi else f"{q[0]:.2f}-{q[1]:.2f}"
            else:
                ib_txt, q_txt = "-", "-"
            name = f"**{r['kernel']}**" if r["kernel"] == default else r["kernel"]
            L.append(f"| {name} | {r['H']} | {r['weight_bytes'] / 1024:.0f} KiB | "
                     f"{fmt_t(r['step_ns'] / 1e3)} | {fmt_t(r['read_ns'] / 1e3)} "
                     f"({r['read_GBps']:.0f} GB/s) | {ratio:.2f} | "
                     f"{'yes' if ratio <= C_GOAL else 'no'} | {ib_txt} | {q_txt} |")
        L += ["", f"Bold: the kernel gruinfer selects here. Build: library `{' '.join(c['flags']['library'])}` "
              f"plus setup.py's per-ISA flags on the kernel files; benchmark file "
              f"`{' '.join(c['flags']['bench'])}`.", ""]
    if "cold" in res:
        cd = res["cold"]
        m = cd["median"]
        L += [f"## Cold start and memory (fresh process per engine, median of {cd['reps']})", "",
              f"Model: H = I = {cd['H']}, file {cd['model_bytes']} bytes "
              f"({cd['model_bytes'] / 2**20:.2f} MiB). numpy is imported before the timed import. "
              "create: session from the model file (torch: nn.GRU built and the weights copied in "
              "from an .npz); first / second run: one frame (X [1,1,I]). RSS: VmRSS after the "
              "second run; baseline: python + numpy alone. gruinfer imports onnx when it loads "
              "a model, so its cold create includes `import onnx` "
              f"({m['baseline']['onnx_import_ms']:.0f} ms on its own, measured after numpy).", "",
              "| engine | import | create | first run | second run | RSS | RSS over baseline | peak RSS |",
              "|---|---|---|---|---|---|---|---|"]
        for e, v in m.items():
            if e == "baseline":
                L.append(f"| python + numpy | - | - | - | - | {v['rss_mib']:.1f} MiB | - | "
                         f"{v['hwm_mib']:.1f} MiB |")
                continue
            L.append(f"| {e} | {v['import_ms']:.1f} ms | {v['create_ms']:.2f} ms | "
                     f"{v['first_run_ms']:.3f} ms | {v['second_run_ms']:.3f} ms | "
                     f"{v['rss_mib']:.1f} MiB | {v['rss_over_baseline_mib']:.1f} MiB | "
                     f"{v['hwm_mib']:.1f} MiB |")
        g = m.get("gruinfer", {})
        L += ["", "Session creation in an already warm process (imports done, median of 7): "
              + ", ".join(f"{k} {v:.2f} ms" for k, v in cd["warm_create_ms"].items()) + ".",
              f"`import gruinfer` imports onnx: {'yes' if g.get('onnx_imported_by_import') else 'no'}.", ""]
    L += ["Raw numbers: `results.json`; plot: `latency.png`.", ""]
    return "\n".join(L)


def plot(res, args, path):
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    panels = []
    if "frame" in res:
        panels.append(("Per-frame step, batch 1 (median)", "us per frame",
                       {e: [res["frame"][str(H)]["median_us"][e] for H in args.sizes]
                        for e in res["engines"]}))
    if "seq" in res:
        for N in args.batches[:2]:
            panels.append((f"Whole sequence T={args.steps}, B={N} (median)", "ms per sequence",
                           {e: [res["seq"][f"{N}/{H}"]["median_ms"][e] for H in args.sizes]
                            for e in res["engines"]}))
    if not panels:
        return False
    colors = {"gruinfer": "tab:blue", "onnxruntime": "tab:orange", "torch": "tab:green"}
    fig, axes = plt.subplots(1, len(panels), figsize=(5.2 * len(panels), 4.6), squeeze=False)
    for ax, (title, unit, lines) in zip(axes[0], panels):
        for e, ys in lines.items():
            ax.plot(args.sizes, ys, "o-", color=colors.get(e), label=e, linewidth=2)
        if title.startswith("Per-frame") and "rows" in res.get("c", {}):
            sel = res["env"]["kernel_info"]["selected"]
            rows = {r["H"]: r for r in res["c"]["rows"] if r["kernel"] == sel}
            hs = [H for H in args.sizes if H in rows]
            if hs:
                ax.plot(hs, [rows[H]["step_ns"] / 1e3 for H in hs], "s--", color="tab:blue",
                        alpha=0.6, label=f"C step ({sel})")
                ax.plot(hs, [rows[H]["read_ns"] / 1e3 for H in hs], ":", color="black",
                        label="weight-read bound")
        ax.set_xscale("log", base=2)
        ax.set_yscale("log")
        ax.set_xticks(args.sizes)
        ax.set_xticklabels([str(H) for H in args.sizes])
        ax.set_xlabel("hidden size H (= input size)")
        ax.set_ylabel(unit)
        ax.set_title(title, fontsize=10)
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=8)
    fig.suptitle(f"gruinfer vs onnxruntime vs PyTorch, 1 thread each - {res['env']['cpu']}",
                 fontsize=10)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return True


def environment(args, torch):
    import onnxruntime as ort

    flags = []
    try:
        with open("/proc/cpuinfo") as f:
            for line in f:
                if line.startswith("flags"):
                    have = set(line.split(":", 1)[1].split())
                    flags = [x for x in ("avx2", "fma", "avx512f", "avx512_vnni", "avx512_bf16")
                             if x in have]
                    break
    except OSError:
        pass
    info = gruinfer.kernel_info()
    return {
        "date": datetime.datetime.now().astimezone().isoformat(timespec="seconds"),
        "cpu": cpu_model(), "cpu_flags": flags, "logical_cpus": os.cpu_count(),
        "machine": platform.machine(), "python": platform.python_version(),
        "numpy": np.__version__, "gruinfer": gruinfer.__version__,
        "gruinfer_path": os.path.dirname(gruinfer.__file__), "kernel_info": info,
        "kernel_used": args.kernel or info["selected"], "onnxruntime": ort.__version__,
        "torch": (torch.__version__ + " (set_num_threads(1))") if torch else
                 ("left out (--no-torch)" if args.no_torch else "not installed"),
        "timer_overhead_ns": clock_overhead_ns(),
    }


def main(argv=None):
    args = parse_args(argv)
    t_start = time.perf_counter()
    torch = None if args.no_torch else torch_or_none()
    env = environment(args, torch)
    log(f"CPU: {env['cpu']} ({env['logical_cpus']} logical CPUs, {env['machine']}), "
        f"flags: {', '.join(env['cpu_flags'])}")
    log(f"gruinfer {env['gruinfer']} ({env['gruinfer_path']}); kernel_info(): {env['kernel_info']}; "
        f"used: {env['kernel_used']}")
    log(f"onnxruntime {env['onnxruntime']} (1 intra-op, 1 inter-op thread); torch {env['torch']}; "
        f"Python {env['python']}, numpy {env['numpy']}")
    log(f"sizes {args.sizes}, T={args.steps}, batches {args.batches}, rounds {args.rounds}, "
        f"~{args.round_seconds} s per round, parts {','.join(args.parts)}")
    res = {"env": env, "engines": ["gruinfer", "onnxruntime"] + (["torch"] if torch else []),
           "args": {k: v for k, v in vars(args).items()}, "floors": FLOORS,
           "issue_bound_us": ISSUE_BOUND_US, "c_goal": C_GOAL}
    rng = np.random.default_rng(args.seed)
    if "frame" in args.parts:
        res["frame"] = {}
        run_frames(args, torch, rng, res)
    if "seq" in args.parts:
        res["seq"] = {}
        run_sequences(args, torch, rng, res)
    if "c" in args.parts:
        run_c(args, res)
    if "cold" in args.parts:
        run_cold(args, torch, res)
    res["elapsed_s"] = time.perf_counter() - t_start

    os.makedirs(args.out, exist_ok=True)
    md = markdown(res, args)
    with open(os.path.join(args.out, "results.md"), "w") as f:
        f.write(md)
    with open(os.path.join(args.out, "results.json"), "w") as f:
        json.dump(res, f, indent=1, default=str)
    png = os.path.join(args.out, "latency.png")
    try:
        wrote_png = plot(res, args, png)
    except ImportError:
        wrote_png = False
        log("\nmatplotlib is not installed (pip install '.[bench]'): no plot written")
    if not wrote_png and os.path.exists(png):
        os.remove(png)             # no stale plot next to new tables
    log("\n" + md)
    log(f"wrote {os.path.join(args.out, 'results.md')}, results.json"
        + (", latency.png" if wrote_png else "") + f" in {res['elapsed_s']:.0f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
