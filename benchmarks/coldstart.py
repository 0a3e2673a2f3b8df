"""coldstart.py: cold start and memory of one engine, measured in a fresh Python process: import time, model load (gruinfer_compiled: from a .gruinfer file, no onnx), first and second run, RSS."""
import json
import os
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
ROOT = os.path.dirname(HERE)


def rss_kib():
    """(VmRSS, VmHWM) of this process in KiB; from /proc, else ru_maxrss for both."""
    vals = {}
    try:
        with open("/proc/self/status") as f:
            for line in f:
                k, _, v = line.partition(":")
                if k in ("VmRSS", "VmHWM"):
                    vals[k] = int(v.split()[0])
    except OSError:
        pass
    if len(vals) < 2:
        import resource
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return peak, peak
    return vals["VmRSS"], vals["VmHWM"]


def child(engine, model_path, size):
    """Runs in the fresh process: numpy first (untimed), then the engine's import, load and runs.
    The one-frame input is made before the run is timed (np.random is left out: numpy 2 imports
    it lazily, ~8 ms, which would be charged to the first run)."""
    t_start = time.perf_counter()
    import numpy as np
    out = {"engine": engine, "numpy_import_s": time.perf_counter() - t_start}
    H = I = int(size)
    x = np.linspace(-1, 1, I, dtype=np.float32).reshape(1, 1, I)
    if engine == "baseline":                   # python + numpy alone; then onnx's import time
        out["rss_kib"], out["hwm_kib"] = rss_kib()
        t0 = time.perf_counter()
        import onnx  # noqa: F401
        out["onnx_import_s"] = time.perf_counter() - t0
        print(json.dumps(out))
        return
    if engine in ("gruinfer", "gruinfer_compiled"):  # the latter given a .gruinfer file
        import glob                            # the checkout when built in place, as common.py
        if any(glob.glob(os.path.join(ROOT, "gruinfer", "_core*" + e)) for e in (".so", ".pyd")):
            sys.path.insert(0, ROOT)
        t0 = time.perf_counter()
        import gruinfer
        t1 = time.perf_counter()
        out["onnx_imported_by_import"] = "onnx" in sys.modules
        sess = gruinfer.InferenceSession(model_path)
        t2 = time.perf_counter()
        run = lambda: sess.run(None, {"X": x})  # noqa: E731
        out["kernel"] = sess.kernel
    elif engine == "onnxruntime":
        t0 = time.perf_counter()
        import onnxruntime as ort
        t1 = time.perf_counter()
        so = ort.SessionOptions()
        so.intra_op_num_threads = 1
        so.inter_op_num_threads = 1
        sess = ort.InferenceSession(model_path, so, providers=["CPUExecutionProvider"])
        t2 = time.perf_counter()
        run = lambda: sess.run(None, {"X": x})  # noqa: E731
    elif engine == "torch":
        t0 = time.perf_counter()
        import torch
        t1 = time.perf_counter()
        torch.set_num_threads(1)
        w = np.load(os.path.splitext(model_path)[0] + ".npz")
        gru = torch.nn.GRU(I, H)               # as common.torch_gru: ONNX z, r, h -> r, z, n
        order = np.r_[H:2 * H, 0:H, 2 * H:3 * H]
        with torch.no_grad():
            gru.weight_ih_l0.copy_(torch.from_numpy(w["W"][0][order]))
            gru.weight_hh_l0.copy_(torch.from_numpy(w["R"][0][order]))
            gru.bias_ih_l0.copy_(torch.from_numpy(w["B"][0, :3 * H][order]))
            gru.bias_hh_l0.copy_(torch.from_numpy(w["B"][0, 3 * H:][order]))
        gru.eval()
        t2 = time.perf_counter()
        xt = torch.from_numpy(x)

        def run():
            with torch.inference_mode():
                gru(xt)
    else:
        raise SystemExit(f"unknown engine {engine!r}")
    t2b = time.perf_counter()
    run()
    t3 = time.perf_counter()
    run()
    t4 = time.perf_counter()
    out.update(import_s=t1 - t0, create_s=t2 - t1, first_run_s=t3 - t2b, second_run_s=t4 - t3)
    out["rss_kib"], out["hwm_kib"] = rss_kib()
    out["onnx_imported"] = "onnx" in sys.modules
    print(json.dumps(out))


def measure(engine, model_path, size, timeout=120):
    """Run child() in a fresh interpreter (this one's executable, same environment); its dict."""
    env = dict(os.environ)
    env.setdefault("OMP_NUM_THREADS", "1")
    r = subprocess.run([sys.executable, os.path.abspath(__file__), engine, model_path, str(size)],
                       capture_output=True, text=True, timeout=timeout, env=env, cwd=HERE)
    if r.returncode:
        raise RuntimeError(f"cold start of {engine} failed:\n{r.stdout}{r.stderr}")
    return json.loads(r.stdout.strip().splitlines()[-1])


if __name__ == "__main__":
    if len(sys.argv) != 4:
        raise SystemExit("usage: coldstart.py ENGINE MODEL.onnx SIZE  (ENGINE: baseline, gruinfer, "
                         "gruinfer_compiled (MODEL.gruinfer), onnxruntime, torch; the model a one-layer GRU with H = I = SIZE, its "
                         "weights also in MODEL.npz for torch); prints one JSON line")
    child(*sys.argv[1:])
