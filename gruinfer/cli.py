"""cli.py: the `gruinfer` command: run a model (the bundled demo by default) whole and streamed; show kernels."""
import argparse
import os
import sys
import time

import numpy as np

DEMO_MODEL = os.path.join(os.path.dirname(os.path.abspath(__file__)), "data", "demo.onnx")


def _concrete(shape, steps, batch, what):
    if shape is None:
        raise SystemExit(f"input {what!r} declares no shape: cannot make a random feed")
    dims = []
    for i, d in enumerate(shape):
        if isinstance(d, int) and d > 0:
            dims.append(d)
        else:
            dims.append(steps if i == 0 else batch)
    return dims


def cmd_run(args):
    import gruinfer

    sess = gruinfer.InferenceSession(args.model, kernel=args.kernel)
    rng = np.random.default_rng(args.seed)
    feed = {}
    for a in sess.get_inputs():
        if a.type != "tensor(float)":
            raise SystemExit(f"input {a.name!r} is {a.type}: `gruinfer run` feeds float inputs only")
        feed[a.name] = rng.standard_normal(_concrete(a.shape, args.steps, args.batch, a.name)).astype(np.float32)
    print(f"model   {args.model}")
    print(f"kernel  {sess.kernel}")
    for a in sess.get_inputs():
        print(f"input   {a.name} {a.shape} fed {list(feed[a.name].shape)}")
    t0 = time.perf_counter()
    outs = sess.run(None, feed)
    t1 = time.perf_counter()
    for o, v in zip(sess.get_outputs(), outs):
        print(f"output  {o.name} {list(v.shape)}  mean {v.mean():+.6f}  std {v.std():.6f}")
    print(f"run     {1e3 * (t1 - t0):.3f} ms for the whole input")
    try:
        first = sess.get_inputs()[0].name
        x = feed[first]
        stream = sess.stream(batch_size=x.shape[1])
    except gruinfer.NotStreamable as e:
        print(f"stream  not streamable: {e}")
        return 0
    out = np.empty_like(outs[0][0])
    frames, times = [], []
    for t in range(x.shape[0]):
        s = time.perf_counter()
        stream.step(x[t], out=out)
        times.append(time.perf_counter() - s)
        frames.append(out.copy())
    err = float(np.abs(np.stack(frames) - outs[0]).max())
    print(f"stream  {x.shape[0]} frames by step(): max |stream - run| = {err:.2e}, "
          f"median {1e6 * float(np.median(times)):.2f} us per frame")
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
