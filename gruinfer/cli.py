"""cli.py: the `gruinfer` command: run a model (the bundled demo by default) whole and streamed, describe it (info), time it (bench), compile it to a .gruinfer file, show kernels; user mistakes are one-line errors with exit status 2."""
import argparse
import json
import os
import sys
import time
from collections import Counter

import numpy as np

from . import cli_bench
from .cli_feeds import (UserError, choose_axes, make_feeds, open_onnxruntime, open_session,
                        read_inputs, version)

DEMO_MODEL = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "demo.onnx")
CHECK_TOLERANCE = 1e-4  # `run --check`: largest |gruinfer - onnxruntime| / the output's scale


def relative_diff(got, ref):
    """max |got - ref| over the output's scale (max |ref|, 1 for an all-zero output)."""
    got, ref = np.asarray(got, np.float64), np.asarray(ref, np.float64)
    if got.shape != ref.shape:
        return float("inf")
    scale = float(np.abs(ref).max(initial=0.0)) or 1.0
    return float(np.abs(got - ref).max(initial=0.0)) / scale


def cmd_run(args):
    sess = open_session(args.model, args.kernel)
    info = sess.plan_info()
    axes = choose_axes(sess, info)
    given = read_inputs(args.input, sess)
    feed = make_feeds(sess, axes, args.steps, args.batch, args.seed, given)
    print(f"model   {args.model}")
    print(f"kernel  {sess.kernel}")
    for a in sess.get_inputs():
        how = (" axes " + axes.text()) if a.name == axes.input else ""
        src = " from --input" if a.name in given else ""
        print(f"input   {a.name} {a.shape} fed {list(np.shape(feed[a.name]))}{src}{how}")
    t0 = time.perf_counter()
    outs = sess.run(None, feed)
    t1 = time.perf_counter()
    for o, v in zip(sess.get_outputs(), outs):
        print(f"output  {o.name} {list(v.shape)}  mean {v.mean():+.6f}  std {v.std():.6f}")
    print(f"run     {1e3 * (t1 - t0):.3f} ms for the whole input "
          f"({'C plan' if info['lowered'] else 'graph interpreter'}"
          f"{'' if info['lowered'] or not info['gru_nodes'] else ', GRUs in C'})")
    if args.output:
        try:
            np.savez(args.output, **{o.name: v for o, v in zip(sess.get_outputs(), outs)})
        except OSError as e:
            raise UserError(f"--output {args.output!r}: {e.strerror or e}") from None
        print(f"saved   {len(outs)} output(s) to {args.output}")
    status = check(args, feed, sess, outs) if args.check else 0
    _stream(sess, info, axes, feed, outs, args.steps)
    return status


def check(args, feed, sess, outs):
    """onnxruntime on the same feed: each output's largest difference relative to its scale;
    1 when one is beyond CHECK_TOLERANCE."""
    ort = open_onnxruntime(args.model, 1, "--check")
    refs = ort.run([o.name for o in sess.get_outputs()], feed)
    worst = 0.0
    for o, got, ref in zip(sess.get_outputs(), outs, refs):
        rel = relative_diff(got, ref)
        worst = max(worst, rel)
        print(f"check   {o.name} vs onnxruntime: max |diff| / scale = {rel:.2e} "
              f"{'ok' if rel <= CHECK_TOLERANCE else 'BEYOND ' + str(CHECK_TOLERANCE)}")
    return 0 if worst <= CHECK_TOLERANCE else 1


def _stream(sess, info, axes, feed, outs, steps):
    """The stream part of `run`: frame by frame and in chunks of 7, compared with the whole run."""
    if not info["streamable"]:
        print(f"stream  not streamable: {info['reason']}")
        return
    x, in_axes = feed[axes.input], axes.axes
    stream = sess.stream(batch_size=x.shape[in_axes.index("N")])
    first = sess.get_outputs()[0].name
    if "T" not in in_axes:  # a single-step cell model: each call is one frame
        times = []
        for _ in range(steps):
            s = time.perf_counter()
            stream.step(x)
            times.append(time.perf_counter() - s)
        stream.reset()
        err = np.abs(stream.run([first], feed)[0] - outs[0]).max()
        print(f"stream  {'C plan' if stream.lowered else 'declared Python path'}; one frame per "
              f"call, state kept in the stream: {steps} steps, median "
              f"{1e6 * float(np.median(times)):.2f} us per frame; one step vs run: max |diff| = "
              f"{float(err):.2e}")
        return
    t_ax = in_axes.index("T")
    times = []
    for t in range(x.shape[t_ax]):
        frame = np.take(x, t, axis=t_ax)
        s = time.perf_counter()
        stream.step(frame)
        times.append(time.perf_counter() - s)
    stream.reset()
    # the first chunk carries the other feeds too (an initial state sets the stream's)
    chunks = [stream.run([first], dict(feed if t == 0 else {}, **{axes.input: np.take(
        x, range(t, min(t + 7, x.shape[t_ax])), axis=t_ax)}))[0] for t in range(0, x.shape[t_ax], 7)]
    whole = outs[0]
    same = whole.shape == chunks[0].shape  # a final-state output: compare the last chunk
    t_out = next((i for i in range(whole.ndim) if whole.shape[i] == x.shape[t_ax]), None)
    err = (np.abs(chunks[-1] - whole).max() if same or t_out is None
           else np.abs(np.concatenate(chunks, axis=t_out) - whole).max())
    print(f"stream  {'C plan' if stream.lowered else 'declared Python path'}; "
          f"{x.shape[t_ax]} frames by step(): median {1e6 * float(np.median(times)):.2f} us per "
          f"frame; chunks of 7 frames vs run: max |diff| = {float(err):.2e}")


def _add(groups, key, arr):
    slot = groups.setdefault(key, {}).setdefault(str(arr.dtype), {"count": 0, "bytes": 0})
    slot["count"] += int(arr.size)
    slot["bytes"] += int(arr.nbytes)


def _held(graph, where):
    """(name, array) of every initializer and Constant node of a graph, Loop bodies included."""
    from .onnx_io.proto import constant_value, tensor_to_array

    for t in graph.initializer:
        yield t.name, tensor_to_array(t, where)
    for n in graph.node:
        if n.op_type == "Constant":
            yield n.output[0], constant_value(n, f"{where}: node {n.name!r}")
        for a in n.attribute:
            if a.HasField("g"):
                for _, arr in _held(a.g, f"{where}: node {n.name!r}"):
                    yield None, arr  # held by the node whose body it is in


def _gru_held(graph):
    """The initializers and Constant outputs that reach a GRU node's inputs, directly or through
    nodes of constant inputs alone (folded at load: a Paddle export's Identity/Concat chains)."""
    origins = {t.name: {t.name} for t in graph.initializer}
    held = set()
    for n in graph.node:
        if n.op_type == "Constant":
            origins[n.output[0]] = {n.output[0]}
        elif n.op_type == "GRU":
            held |= set().union(*(origins.get(v, set()) for v in n.input))
        elif all(v in origins for v in n.input if v) and n.op_type != "Loop":
            for out in n.output:
                origins[out] = set().union(*(origins[v] for v in n.input if v))
    return held


def parameters(model):
    """Elements and bytes per precision (dtype) that GRU nodes hold (after the load-time lifts)
    and that every other node holds (initializers, Constant nodes, Loop bodies), and in total."""
    gru = _gru_held(model.graph)
    groups = {"gru": {}, "other": {}, "total": {}}
    for name, arr in _held(model.graph, "the model"):
        _add(groups, "gru" if name in gru else "other", arr)
        _add(groups, "total", arr)
    return groups


def _fallback(f):
    return {"node": f.node, "op": f.op, "reason": f.reason}


def describe(path, kernel=None):
    """The info document (see tests/test_cli.py INFO_SCHEMA)."""
    import gruinfer
    from .onnx_io.proto import load_model, opset_version
    from .rewrite import rewrite

    if not os.path.isfile(path):
        raise UserError(f"no model file at {path!r}")
    proto = load_model(path)  # external data read once, for the session too
    sess = gruinfer.InferenceSession(proto, kernel=kernel)
    info = sess.plan_info()
    lifted, _ = rewrite(proto)
    axes = info["input_axes"]
    return {
        "model": path, "gruinfer": version(), "opset": opset_version(proto),
        "inputs": [{"name": a.name, "type": a.type, "shape": a.shape,
                    "axes": list(axes) if a.name == info["time_input"] else None}
                   for a in sess.get_inputs()],
        "outputs": [{"name": o.name, "type": o.type, "shape": o.shape} for o in sess.get_outputs()],
        "time_input": info["time_input"], "input_axes": None if axes is None else list(axes),
        "ops": dict(Counter(n.op_type for n in proto.graph.node).most_common()),
        "ops_after_lifts": dict(Counter(n.op_type for n in lifted.graph.node).most_common()),
        "parameters": parameters(lifted), "gru_nodes": info["gru_nodes"],
        "loops": info["loops"], "cells": info["cells"],
        "streamable": info["streamable"], "reason": info["reason"], "lowered": info["lowered"],
        "steps": info["steps"], "not_lowered": [_fallback(f) for f in info["not_lowered"]],
        "fallbacks": [_fallback(f) for f in info["fallbacks"]],
    }


def _counts(d):
    return ", ".join(f"{k} {v}" for k, v in d.items()) or "none"


def _sizes(group):
    return ", ".join(f"{v['count']:,} {k} ({v['bytes']:,} bytes)" for k, v in group.items()) or "none"


def info_lines(doc):
    """The info document as text lines."""
    lines = [f"model       {doc['model']} (opset {doc['opset']})"]
    for a in doc["inputs"]:
        axes = f"  axes ({', '.join(map(str, a['axes']))}): streams take its frames" if a["axes"] else ""
        lines.append(f"input       {a['name']} {a['type']} {a['shape']}{axes}")
    lines += [f"output      {o['name']} {o['type']} {o['shape']}" for o in doc["outputs"]]
    lines += [f"ops         {_counts(doc['ops'])}",
              f"after lifts {_counts(doc['ops_after_lifts'])}"]
    lines += [f"parameters  {k}: {_sizes(doc['parameters'][k])}" for k in ("gru", "other", "total")]
    lines += [f"loop        {n}" for n in doc["loops"]] + [f"cells       {n}" for n in doc["cells"]]
    if doc["streamable"]:
        lines.append(f"streams     yes, {'fully lowered to the C plan: steps ' + _counts(Counter(doc['steps'])) if doc['lowered'] else 'on the declared Python path (ops the C plan lacks)'}")
    else:
        lines.append(f"streams     no: {doc['reason']}")
    lines += [f"not lowered {f['op']} node {f['node']!r}: {f['reason']}" for f in doc["not_lowered"]]
    lines += [f"fallback    {f['op']}{'' if f['node'] is None else ' node ' + repr(f['node'])}: "
              f"{f['reason']}" for f in doc["fallbacks"]]
    return lines


def cmd_info(args):
    doc = describe(args.model, args.kernel)
    print(json.dumps(doc, indent=2) if args.json else "\n".join(info_lines(doc)))
    return 0


def cmd_bench(args):
    for name in ("steps", "batch", "chunk", "iterations", "threads"):
        if getattr(args, name) < 1:
            raise UserError(f"--{name} must be at least 1, got {getattr(args, name)}")
    if args.warmup < 0:
        raise UserError(f"--warmup must be at least 0, got {args.warmup}")
    doc = cli_bench.measure(args)
    print(json.dumps(doc, indent=2) if args.json else "\n".join(cli_bench.render(doc)))
    return 0


def cmd_compile(args):
    import gruinfer

    gruinfer.compile(args.model, args.output, kernel=args.kernel)
    info = gruinfer.InferenceSession(args.output, kernel=args.kernel).plan_info()
    print(f"wrote {args.output} ({os.path.getsize(args.output)} bytes): "
          f"{len(info['steps'])} C plan steps ({', '.join(info['steps'])}), input "
          f"{info['time_input']!r}; load it with gruinfer.InferenceSession({args.output!r}), "
          "no onnx needed")
    return 0


def cmd_kernels(args):
    import gruinfer

    info = gruinfer.kernel_info()
    for k, v in info.items():
        print(f"{k:10s}{v}")
    return 0


def _common(p, steps=200):
    p.add_argument("--steps", type=int, default=steps,
                   help=f"frames of random input on a free time axis (default {steps})")
    p.add_argument("--batch", type=int, default=1, help="batch size for a free batch axis (default 1)")
    p.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
    p.add_argument("--kernel", default=None, help="force a kernel, e.g. ref (default: best for this CPU)")


def parser():
    p = argparse.ArgumentParser(prog="gruinfer", description=__doc__.split(":", 1)[1].strip())
    p.add_argument("--version", action="version", version=f"gruinfer {version()}")
    sub = p.add_subparsers(dest="cmd", required=True)
    for name, helptext in (("run", "run a model on random or given input, whole and streamed frame by frame"),
                           ("demo", "the same as `run` on the bundled demo model")):
        r = sub.add_parser(name, help=helptext, description=helptext)
        if name == "run":
            r.add_argument("model", nargs="?", default=DEMO_MODEL,
                           help="ONNX file (default: the bundled demo model)")
        _common(r)
        r.add_argument("--input", action="append", default=[], metavar="NAME=FILE.npy|FILE.npz",
                       help="feed an input from a .npy file, or several from a .npz of arrays "
                            "named after inputs (repeatable); the rest are random")
        r.add_argument("--output", metavar="FILE.npz", help="save the outputs, named after them")
        r.add_argument("--check", action="store_true",
                       help="compare with onnxruntime on the same feed; exit status 1 when an "
                            f"output differs by more than {CHECK_TOLERANCE:g} of its scale")
        r.set_defaults(func=cmd_run, model=DEMO_MODEL)
    i = sub.add_parser("info", help="inputs, outputs and axes, ops, parameters, what lifted, "
                       "lowered and streams", description="describe a model: inputs and outputs "
                       "(the axes streams take frames of: T time, N batch), op counts, parameters "
                       "per precision, what lifted into GRU nodes, what lowered to the C plan, "
                       "what streams and why not")
    i.add_argument("model", help="ONNX file")
    i.add_argument("--kernel", default=None, help="force a kernel, e.g. ref")
    i.add_argument("--json", action="store_true", help="print one JSON document")
    i.set_defaults(func=cmd_info)
    b = sub.add_parser("bench", help="latency percentiles per frame (stream) and per sequence (run)",
                       description="time a model on random input: p50/p90/p99 per frame through a "
                       "stream and per whole-sequence run (a progress line on stderr once it has "
                       "taken over 2 s)")
    b.add_argument("model", nargs="?", default=DEMO_MODEL, help="ONNX file (default: the demo model)")
    _common(b)
    b.add_argument("--threads", type=int, default=1, help="threads per call (default 1)")
    b.add_argument("--chunk", type=int, default=1,
                   help="frames per stream call: 1 uses stream.step, more stream.run (default 1)")
    b.add_argument("--warmup", type=int, default=2, help="untimed passes first (default 2)")
    b.add_argument("--iterations", type=int, default=10,
                   help="timed runs, and timed stream passes over every frame (default 10)")
    b.add_argument("--compare", choices=["onnxruntime"],
                   help="also time onnxruntime, alternately in the same run: whole sequences, and "
                        "frame by frame when the model's state can be fed back")
    b.add_argument("--json", action="store_true", help="print one JSON document")
    b.set_defaults(func=cmd_bench)
    c = sub.add_parser("compile", help="write a model's C plan as a .gruinfer file",
                       description="compile an ONNX model into a .gruinfer file (src_c/"
                       "MODEL_FORMAT.md) that InferenceSession and the C library load without "
                       "onnx; refused, naming the parts, when some of the model runs in Python")
    c.add_argument("model", help="ONNX file")
    c.add_argument("-o", "--output", required=True, metavar="OUT.gruinfer",
                   help="the file to write")
    c.add_argument("--kernel", default=None, help="force a kernel, e.g. ref")
    c.set_defaults(func=cmd_compile)
    k = sub.add_parser("kernels", help="which kernels are built in and which one is used")
    k.set_defaults(func=cmd_kernels)
    return p


def main(argv=None):
    """The command line; returns the exit status (2: a user mistake, printed on one line)."""
    import gruinfer

    args = parser().parse_args(argv)
    try:
        return args.func(args)
    except (UserError, gruinfer.GruinferError) as e:
        print(f"gruinfer: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
