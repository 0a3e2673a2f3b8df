"""process_pool.py: stream many utterances on worker processes: each worker gets the sessions once (pickled), and a half-streamed Stream moves to a worker with its state.

    python examples/process_pool.py [MODEL.onnx ...] [--workers 2] [--utterances 8]

With no model, the bundled demo model.  Prints the largest difference between the pool's
outputs and the same streams run in this process (0.0: the same engine, the same results).
"""
import argparse
import concurrent.futures as cf
import multiprocessing as mp
import time

import numpy as np

import gruinfer

_SESSIONS = None  # in a worker: the sessions, unpickled once by _init


def _init(sessions):
    global _SESSIONS
    _SESSIONS = sessions


def stream_frames(sess, frames):
    """Every frame's first output, streamed one frame at a time on a fresh stream."""
    stream = sess.stream(1)
    return np.stack([stream.step(f) for f in frames])


def _job(index, frames):
    return stream_frames(_SESSIONS[index], frames)


def _finish(stream, frames):
    """The rest of an utterance on a stream that arrived pickled, state and all."""
    return np.stack([stream.step(f) for f in frames])


def frames_for(sess, n_frames, seed):
    """Random frames [n_frames, *frame shape] of a session's time input, batch 1."""
    info = sess.plan_info()
    if not info["streamable"]:
        raise SystemExit(f"the model cannot stream: {info['reason']}")
    shape = [1 if a == "N" else a for a in info["input_axes"] if a != "T"]
    return np.random.default_rng(seed).standard_normal([n_frames] + shape).astype(np.float32)


def run_pool(sessions, jobs, workers=2):
    """jobs: [(session index, frames)] streamed on `workers` processes; outputs in job order."""
    ctx = mp.get_context("spawn")  # no fork of a process that may hold threads
    with cf.ProcessPoolExecutor(workers, mp_context=ctx, initializer=_init,
                                initargs=(sessions,)) as pool:
        return list(pool.map(_job, *zip(*jobs)))


def resume_in_pool(sess, frames, split, workers=2):
    """Stream frames[:split] here, send the stream to a worker, finish it there."""
    stream = sess.stream(1)
    head = [stream.step(f) for f in frames[:split]]
    with cf.ProcessPoolExecutor(workers, mp_context=mp.get_context("spawn")) as pool:
        tail = pool.submit(_finish, stream, frames[split:]).result()
    return np.concatenate([np.stack(head), tail])


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("models", nargs="*", help="ONNX models (default: the bundled demo model)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--utterances", type=int, default=8)
    ap.add_argument("--frames", type=int, default=100)
    args = ap.parse_args(argv)
    from gruinfer.cli import DEMO_MODEL

    sessions = [gruinfer.InferenceSession(m) for m in args.models or [DEMO_MODEL]]
    jobs = [(i % len(sessions), frames_for(sessions[i % len(sessions)], args.frames, i))
            for i in range(args.utterances)]
    t0 = time.perf_counter()
    pooled = run_pool(sessions, jobs, args.workers)
    t1 = time.perf_counter()
    local = [stream_frames(sessions[i], f) for i, f in jobs]
    t2 = time.perf_counter()
    diff = max(float(np.abs(a - b).max()) for a, b in zip(pooled, local))
    resumed = resume_in_pool(sessions[0], jobs[0][1], args.frames // 2, args.workers)
    diff = max(diff, float(np.abs(resumed - local[0]).max()))
    print(f"{args.utterances} utterances x {args.frames} frames: pool of {args.workers} "
          f"{t1 - t0:.2f} s (process start included), here {t2 - t1:.2f} s; "
          f"max |pool - here| = {diff}")
    return diff


if __name__ == "__main__":
    main()
