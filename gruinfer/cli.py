"""cli.py: the `gruinfer` command: run a model (the bundled demo by default) whole and streamed; show kernels."""
import argparse
import os
import sys
import time

import numpy as np

DEMO_MODEL = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "demo.onnx")


def _feed_shape(arg, axes, steps, batch, guess_time):
    """A concrete shape for a graph input: free axes become steps (time) or batch.  axes: the
    time input's axes; guess_time: no input is known to be the time input, so a free first axis
    is taken as time."""
    if arg.shape is None:
        raise SystemExit(f"input {arg.name!r} declares no shape: cannot make a random feed")
    named = {"T": steps, "N": batch}
    return [d if isinstance(d, int) and d > 0
            else named.get(axes[i], batch) if axes else (steps if i == 0 and guess_time else batch)
            for i, d in enumerate(arg.shape)]


def cmd_run(args):
    import gruinfer

    sess = gruinfer.InferenceSession(args.model, kernel=args.kernel)
    info = sess.plan_info()
    time_input, in_axes = info["time_input"], info["input_axes"]
    rng = np.random.default_rng(args.seed)
    feed = {}
    for a in sess.get_inputs():
        axes = in_axes if a.name == time_input else None
        shape = _feed_shape(a, axes, args.steps, args.batch, time_input is None)
        if a.type == "tensor(float)":
            feed[a.name] = rng.standard_normal(shape).astype(np.float32)
        elif a.type in ("tensor(int64)", "tensor(int32)"):  # token ids
            feed[a.name] = rng.integers(0, 2, shape).astype(np.int64 if "64" in a.type else np.int32)
        else:
            raise SystemExit(f"input {a.name!r} is {a.type}: `gruinfer run` cannot make it up")
    print(f"model   {args.model}")
    print(f"kernel  {sess.kernel}")
    for a in sess.get_inputs():
        print(f"input   {a.name} {a.shape} fed {list(feed[a.name].shape)}")
    t0 = time.perf_counter()
    outs = sess.run(None, feed)
    t1 = time.perf_counter()
    for o, v in zip(sess.get_outputs(), outs):
        print(f"output  {o.name} {list(v.shape)}  mean {v.mean():+.6f}  std {v.std():.6f}")
    print(f"run     {1e3 * (t1 - t0):.3f} ms for the whole input "
          f"({'C plan' if info['lowered'] else 'graph interpreter'}"
          f"{'' if info['lowered'] or not info['gru_nodes'] else ', GRUs in C'})")
    if not info["streamable"]:
        print(f"stream  not streamable: {info['reason']}")
        return 0
    x = feed[time_input]
    stream = sess.stream(batch_size=x.shape[in_axes.index("N")])
    first = sess.get_outputs()[0].name
    if "T" not in in_axes:  # a single-step cell model: each call is one frame
        times = []
        for _ in range(args.steps):
            s = time.perf_counter()
            stream.step(x)
            times.append(time.perf_counter() - s)
        stream.reset()
        err = np.abs(stream.run([first], feed)[0] - outs[0]).max()
        print(f"stream  {'C plan' if stream.lowered else 'declared Python path'}; one frame per "
              f"call, state kept in the stream: {args.steps} steps, median "
              f"{1e6 * float(np.median(times)):.2f} us per frame; one step vs run: max |diff| = "
              f"{float(err):.2e}")
        return 0
    t_ax = in_axes.index("T")
    frames, times = [], []
    for t in range(x.shape[t_ax]):
        frame = np.take(x, t, axis=t_ax)
        s = time.perf_counter()
        y = stream.step(frame)
        times.append(time.perf_counter() - s)
        frames.append(y)
    stream.reset()
    chunks = [stream.run([first], {time_input: np.take(x, range(t, min(t + 7, x.shape[t_ax])),
                                                       axis=t_ax)})[0]
              for t in range(0, x.shape[t_ax], 7)]
    whole = outs[0]
    same = whole.shape == chunks[0].shape  # a final-state output: compare the last chunk
    t_out = next((i for i in range(whole.ndim) if whole.shape[i] == x.shape[t_ax]), None)
    err = (np.abs(chunks[-1] - whole).max() if same or t_out is None
           else np.abs(np.concatenate(chunks, axis=t_out) - whole).max())
    print(f"stream  {'C plan' if stream.lowered else 'declared Python path'}; "
          f"{x.shape[t_ax]} frames by step(): median {1e6 * float(np.median(times)):.2f} us per "
          f"frame; chunks of 7 frames vs run: max |diff| = {float(err):.2e}")
    return 0


def cmd_kernels(args):
    import gruinfer

    info = gruinfer.kernel_info()
    for k, v in info.items():
        print(f"{k:10s}{v}")
    return 0


def main(argv=None):
    p = argparse.ArgumentParser(prog="gruinfer", description=__doc__.split(":", 1)[1].strip())
    sub = p.add_subparsers(dest="cmd", required=True)
    for name, helptext in (("run", "run a model on random input, whole and streamed frame by frame"),
                           ("demo", "the same as `run` on the bundled demo model")):
        r = sub.add_parser(name, help=helptext)
        if name == "run":
            r.add_argument("model", nargs="?", default=DEMO_MODEL,
                           help="ONNX file (default: the bundled demo model)")
        r.add_argument("--steps", type=int, default=200, help="frames of random input (default 200)")
        r.add_argument("--batch", type=int, default=1, help="batch size for a free batch axis (default 1)")
        r.add_argument("--seed", type=int, default=0, help="random seed (default 0)")
        r.add_argument("--kernel", default=None, help="force a kernel, e.g. ref (default: best for this CPU)")
        r.set_defaults(func=cmd_run, model=DEMO_MODEL)
    k = sub.add_parser("kernels", help="which kernels are built in and which one is used")
    k.set_defaults(func=cmd_kernels)
    args = p.parse_args(argv)
    return args.func(args)


if __name__ == "__main__":
    sys.exit(main())
