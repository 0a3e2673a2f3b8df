"""cli_bench.py: `gruinfer bench`: latency percentiles per frame (stream calls) and per sequence (run), optionally beside onnxruntime measured alternately in the same run."""
import sys
import time

import numpy as np

from .cli_feeds import (UserError, choose_axes, make_feeds, onnxruntime_errors, open_onnxruntime,
                        open_session, version)

PERCENTILES = (50, 90, 99)


class Progress:
    """A progress line on stderr, shown only once a run has taken longer than `after` seconds
    and redrawn at most every `every` seconds; done() ends the line if one was drawn."""

    def __init__(self, total, out=sys.stderr, clock=time.perf_counter, after=2.0, every=0.25):
        self.total, self.out, self.clock, self.after, self.every = total, out, clock, after, every
        self.count, self.start, self.drawn = 0, clock(), None

    def tick(self, n=1):
        self.count += n
        now = self.clock()
        if now - self.start >= self.after and (self.drawn is None or now - self.drawn >= self.every):
            self.drawn = now
            self.out.write(f"\rbench {100 * self.count // self.total:3d}% "
                           f"({self.count}/{self.total} calls, {now - self.start:.0f} s)")
            self.out.flush()

    def done(self):
        if self.drawn is not None:
            self.out.write("\n")
            self.out.flush()


def _timed(fn, *a):
    s = time.perf_counter()
    fn(*a)
    return time.perf_counter() - s


def _chunks(x, axes, chunk):
    """The stream calls of one pass: (array, frames) pairs, `chunk` frames each along T (a frame
    alone, T removed, for step() when chunk is 1); the input itself for a one-frame model."""
    if "T" not in axes:
        return [(x, 1)]
    t_ax, T = axes.index("T"), x.shape[axes.index("T")]
    if chunk == 1:
        return [(np.take(x, t, axis=t_ax), 1) for t in range(T)]
    return [(np.take(x, range(t, min(t + chunk, T)), axis=t_ax), min(chunk, T - t))
            for t in range(0, T, chunk)]


def ort_feedback(ort, feeds, axes):
    """({state input: output name}, None) when onnxruntime can run the model frame by frame,
    each call's state outputs fed back as the next call's state inputs; else (None, why).  Each
    float input besides the time input is paired with the last output of its shape on a
    one-frame call, and the pairing is proved on a few frames against a whole run."""
    states = [n for n in feeds if n != axes.input and feeds[n].dtype.kind == "f"]
    if not states:
        return None, "the model takes no state input to feed back (each call starts afresh)"
    if axes.input is None:
        raise UserError("bench needs an input of rank >= 2 (time and batch) to time")
    x = feeds[axes.input]
    short = x if "T" not in axes.axes else np.take(x, range(min(4, x.shape[axes.axes.index("T")])),
                                                   axis=axes.axes.index("T"))
    calls = [c for c, _ in _chunks(short, axes.axes, 1)]
    t_ax = axes.axes.index("T") if "T" in axes.axes else None
    frame = calls[0] if t_ax is None else np.expand_dims(calls[0], t_ax)
    try:
        outs = ort.run(None, dict(feeds, **{axes.input: frame}))
    except onnxruntime_errors() as e:
        return None, f"onnxruntime refuses a one-frame call ({str(e).splitlines()[0]})"
    names = [o.name for o in ort.get_outputs()]
    pairs = {}
    for s in states:
        fits = [n for n, v in zip(names, outs) if v.shape == feeds[s].shape and n not in pairs.values()]
        if not fits:
            return None, f"no output has the shape of input {s!r} to feed back as state"
        pairs[s] = fits[-1]
    if t_ax is None:
        return pairs, None
    fed = dict(feeds)
    for c in calls:
        fed[axes.input] = np.expand_dims(c, t_ax)
        got = dict(zip(names, ort.run(None, fed)))
        fed.update({s: got[n] for s, n in pairs.items()})
    whole = dict(zip(names, ort.run(None, dict(feeds, **{axes.input: short}))))
    if not all(np.allclose(fed[s], whole[n], rtol=1e-4, atol=1e-5) for s, n in pairs.items()):
        return None, "feeding its state outputs back frame by frame does not reproduce a whole run"
    return pairs, None


def _frame_passes(args, sess, ort, pairs, feeds, axes, calls, progress):
    """{engine: [(seconds, frames)] per timed call}: warm-up and timed passes over every frame,
    a gruinfer stream call (sess None: the model cannot stream) then an onnxruntime call with
    the state fed back (ort None: it cannot be), alternately."""
    steps = {"gruinfer": [], "onnxruntime": []}
    stream = sess and sess.stream(feeds[axes.input].shape[axes.axes.index("N")])
    t_ax = axes.axes.index("T") if "T" in axes.axes else None
    for i in range(args.warmup + args.iterations):
        timed = i >= args.warmup
        if stream:
            stream.reset()
        fed = dict(feeds)
        for c, n in calls:
            if stream:
                t = (_timed(stream.step, c) if args.chunk == 1
                     else _timed(stream.run, None, {axes.input: c}))
                steps["gruinfer"] += [(t, n)] if timed else []
            if ort:
                fed[axes.input] = c if t_ax is None or args.chunk > 1 else np.expand_dims(c, t_ax)
                s = time.perf_counter()
                got = ort.run(None, fed)
                steps["onnxruntime"] += [(time.perf_counter() - s, n)] if timed else []
                named = dict(zip([o.name for o in ort.get_outputs()], got))
                fed.update({k: named[v] for k, v in pairs.items()})
            progress.tick(bool(stream) + bool(ort))
    return steps


def _stats(times, frames_per_call):
    us = 1e6 * np.asarray(times) / frames_per_call
    return {f"p{p}_us": float(v) for p, v in zip(PERCENTILES, np.percentile(us, PERCENTILES))}


def measure(args, out=sys.stderr):
    """The bench document (see tests/test_cli.py BENCH_SCHEMA)."""
    sess = open_session(args.model, args.kernel, args.threads)
    info = sess.plan_info()
    axes = choose_axes(sess, info)
    feeds = make_feeds(sess, axes, args.steps, args.batch, args.seed)
    ort = (open_onnxruntime(args.model, args.threads, "--compare onnxruntime")
           if args.compare else None)
    if axes.input is None:
        raise UserError("bench needs an input of rank >= 2 (time and batch) to time")
    x = feeds[axes.input]
    frames = x.shape[axes.axes.index("T")] if "T" in axes.axes else 1
    doc = {"model": args.model, "gruinfer": version(), "kernel": sess.kernel,
           "threads": args.threads, "batch": x.shape[axes.axes.index("N")], "steps": frames,
           "chunk": args.chunk,
           "warmup": args.warmup, "iterations": args.iterations, "time_input": axes.input,
           "input_axes": list(axes.axes), "axes_from": axes.source, "results": [], "skipped": []}
    frame_how = None if info["streamable"] else f"the model cannot stream: {info['reason']}"
    calls = _chunks(x, axes.axes, args.chunk)
    pairs, ort_how = ort_feedback(ort, feeds, axes) if ort else (None, None)
    passes = args.warmup + args.iterations
    progress = Progress(passes * ((2 if ort else 1) + len(calls) * ((not frame_how) + bool(pairs))),
                        out)
    runs = {"gruinfer": [], "onnxruntime": []}
    for i in range(passes):  # whole sequences, the two engines alternately
        for name, fn in (("gruinfer", sess.run), ("onnxruntime", ort and ort.run)):
            if fn:
                t = _timed(fn, None, feeds)
                runs[name] += [t] if i >= args.warmup else []
                progress.tick()
    steps = (_frame_passes(args, sess if not frame_how else None, ort if pairs else None,
                           pairs, feeds, axes, calls, progress)
             if not frame_how or pairs else {"gruinfer": [], "onnxruntime": []})
    progress.done()
    for name in ("gruinfer", "onnxruntime") if ort else ("gruinfer",):
        how = frame_how if name == "gruinfer" else ort_how
        if steps[name]:
            t, n = zip(*steps[name])
            doc["results"].append(dict(
                engine=name, mode="frame", frames_per_call=max(n), calls=len(t),
                call="stream.step" if name == "gruinfer" and args.chunk == 1
                else "stream.run" if name == "gruinfer" else "run with state fed back",
                **_stats(t, np.asarray(n))))
        else:
            doc["skipped"].append({"engine": name, "mode": "frame", "reason": how})
        doc["results"].append(dict(engine=name, mode="sequence", frames_per_call=frames,
                                   calls=len(runs[name]), call="run", **_stats(runs[name], 1)))
    return doc


def _us(v):
    return f"{v:10.2f} us" if v < 1e4 else f"{v / 1e3:10.3f} ms"


def render(doc):
    """The bench document as text lines."""
    lines = [f"model     {doc['model']}",
             f"kernel    {doc['kernel']}  threads {doc['threads']}  chunk {doc['chunk']}  "
             f"warm-up {doc['warmup']}  iterations {doc['iterations']}",
             f"input     {doc['time_input']} axes ({', '.join(map(str, doc['input_axes']))}) from "
             f"{doc['axes_from']}: {doc['steps']} steps, batch {doc['batch']}",
             f"{'':23s}{'p50':>13s}{'p90':>13s}{'p99':>13s}"]
    for r in doc["results"]:
        what = (f"per frame, {r['calls']} calls of {r['frames_per_call']} frame(s) ({r['call']})"
                if r["mode"] == "frame" else f"per run of {r['frames_per_call']} frames, "
                f"{r['calls']} runs")
        lines.append(f"{r['engine']:12s}{r['mode']:11s}"
                     + "".join(f"{_us(r[f'p{p}_us']):>13s}" for p in PERCENTILES) + f"   {what}")
    for s in doc["skipped"]:
        lines.append(f"{s['engine']:12s}{s['mode']:11s}not measured: {s['reason']}")
    return lines
