"""dask_cluster.py: stream utterances on a local dask.distributed cluster: the session is scattered to the workers once, each task streams one utterance.

    pip install "dask[distributed]"
    python examples/dask_cluster.py [MODEL.onnx] [--workers 2] [--utterances 8]

Prints the largest difference between the cluster's outputs and the same streams run here.
"""
import argparse

import numpy as np

import gruinfer


def stream_frames(sess, frames):
    """Every frame's first output, streamed one frame at a time on a fresh stream."""
    stream = sess.stream(1)
    return np.stack([stream.step(f) for f in frames])


def run_cluster(sess, utterances, workers=2):
    """Each utterance ([frames, *frame shape]) streamed on a worker of a local cluster."""
    from dask.distributed import Client, LocalCluster

    with LocalCluster(n_workers=workers, threads_per_worker=1, processes=True,
                      dashboard_address=None) as cluster, Client(cluster) as client:
        remote = client.scatter(sess, broadcast=True)  # pickled once, loaded once per worker
        return client.gather(client.map(stream_frames, [remote] * len(utterances), utterances,
                                        pure=False))


def main(argv=None):
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("model", nargs="?", help="an ONNX model (default: the bundled demo model)")
    ap.add_argument("--workers", type=int, default=2)
    ap.add_argument("--utterances", type=int, default=8)
    ap.add_argument("--frames", type=int, default=100)
    args = ap.parse_args(argv)
    from gruinfer.cli import DEMO_MODEL

    sess = gruinfer.InferenceSession(args.model or DEMO_MODEL)
    shape = [1 if a == "N" else a for a in sess.plan_info()["input_axes"] if a != "T"]
    rng = np.random.default_rng(0)
    utterances = [rng.standard_normal([args.frames] + shape).astype(np.float32)
                  for _ in range(args.utterances)]
    remote = run_cluster(sess, utterances, args.workers)
    diff = max(float(np.abs(a - stream_frames(sess, u)).max())
               for a, u in zip(remote, utterances))
    print(f"{args.utterances} utterances on {args.workers} dask workers: "
          f"max |cluster - here| = {diff}")
    return diff


if __name__ == "__main__":
    main()
