"""cli_feeds.py: what the `gruinfer` commands share: the user-mistake error, sessions opened with clean errors, the time and batch axes of the input, feeds read from .npy/.npz files or made up."""
import os
import pickle
import zipfile
from typing import NamedTuple

import numpy as np

# Words a declared dimension name carries when it names the batch or the time axis.
BATCH_WORDS = ("batch", "n")
TIME_WORDS = ("time", "t", "seq", "sequence", "seq_len", "length", "len", "steps", "frames")


class UserError(Exception):
    """A mistake on the command line (a missing file, bad --input, an unknown input name):
    main() prints its message on one line and exits with status 2."""


def version():
    """The installed package's version (importlib.metadata), else gruinfer.__version__ (a source
    tree used without installing)."""
    from importlib.metadata import PackageNotFoundError
    from importlib.metadata import version as dist_version

    try:
        return dist_version("gruinfer")
    except PackageNotFoundError:
        import gruinfer

        return gruinfer.__version__


def open_session(model, kernel=None, threads=1):
    """A gruinfer.InferenceSession of a model file; a missing file is a UserError (gruinfer's own
    errors, InvalidModel and KernelUnavailable, reach main() as they are)."""
    import gruinfer

    if not os.path.isfile(model):
        raise UserError(f"no model file at {model!r}")
    return gruinfer.InferenceSession(model, kernel=kernel, threads=threads)


ORT_ERRORS = ("Fail", "InvalidArgument", "InvalidGraph", "InvalidProtobuf", "NoSuchFile",
              "NotImplemented", "RuntimeException")


def onnxruntime_errors():
    """The exception classes onnxruntime raises for a model or feed it refuses."""
    from onnxruntime.capi import onnxruntime_pybind11_state as state

    return tuple(getattr(state, n) for n in ORT_ERRORS)


def open_onnxruntime(model, threads=1, why="--check"):
    """An onnxruntime.InferenceSession on `threads` threads, or a UserError when onnxruntime is
    not installed or refuses the model."""
    try:
        import onnxruntime
    except ImportError:
        raise UserError(f"{why} needs onnxruntime, which is not installed "
                        "(pip install onnxruntime)") from None
    opts = onnxruntime.SessionOptions()
    opts.intra_op_num_threads, opts.inter_op_num_threads = threads, 1
    opts.log_severity_level = 3  # errors only: no warnings about initializers it drops
    try:
        return onnxruntime.InferenceSession(model, opts, providers=["CPUExecutionProvider"])
    except onnxruntime_errors() as e:
        raise UserError(f"onnxruntime cannot load {model!r}: {str(e).splitlines()[0]}") from None


class Axes(NamedTuple):
    """The input frames come in and how its axes were found: axes per dimension ("T" time, "N"
    batch, else the declared size), source: "plan_info", "declared names", "probed" or
    "assumed"; input None when the model has no input of rank >= 2."""
    input: object
    axes: tuple
    source: str

    def text(self):
        return f"({', '.join(str(a) for a in self.axes)}) from {self.source}"


def _word(dim):
    """"N", "T" or None: what a declared dimension's name says it is."""
    if not isinstance(dim, str):
        return None
    name = dim.lower()
    return "N" if name in BATCH_WORDS else "T" if name in TIME_WORDS else None


def choose_axes(sess, info):
    """The time input and its axes: plan_info()'s when the model streams; otherwise the first
    input of rank >= 2, its time axis read from declared dimension names, else found by a probe
    (probe_batch_axis), else assumed first (ONNX's default, time-major layout)."""
    if info["time_input"] is not None:
        return Axes(info["time_input"], tuple(info["input_axes"]), "plan_info")
    arg = next((a for a in sess.get_inputs() if a.shape is not None and len(a.shape) >= 2), None)
    if arg is None:
        return Axes(None, (), "assumed")
    rest = tuple(arg.shape[2:])
    words = [_word(d) for d in arg.shape[:2]]
    if "N" in words or "T" in words:
        t_axis = words.index("T") if "T" in words else 1 - words.index("N")
        source = "declared names"
    else:
        t_axis, source = probe_batch_axis(sess, arg), "probed"
        if t_axis is None:
            t_axis, source = 0, "assumed"
    return Axes(arg.name, ("T", "N") + rest if t_axis == 0 else ("N", "T") + rest, source)


def probe_batch_axis(sess, arg):
    """For a model of one input whose first two axes are free and unnamed: the time axis (0 or
    1) found by what a batch axis is, slots computed independently.  A run over a [2, 3, ...]
    input is compared with a run over index 1 alone of either axis: only the batch axis gives
    the same outputs (along time, index 1 alone starts from the initial state).  None when it
    cannot tell, or the model has more inputs or fixed sizes there."""
    if len(sess.get_inputs()) != 1 or any(isinstance(d, int) for d in arg.shape[:2]):
        return None
    if not all(isinstance(d, int) and d > 0 for d in arg.shape[2:]):
        return None
    x = random_array(arg, [2, 3] + list(arg.shape[2:]), np.random.default_rng(0))
    full = sess.run(None, {arg.name: x})
    held = [ax for ax in (0, 1) if _same_slot(full, sess.run(None, {arg.name: x.take([1], ax)}))]
    return 1 - held[0] if len(held) == 1 else None


def _same_slot(full, one):
    """Whether every output of a one-slot run is index 1 of the full run's output along some axis."""
    for f, o in zip(full, one):
        if not any(f.shape[k] > 1 and np.allclose(f.take([1], k), o, rtol=1e-4, atol=1e-5)
                   for k in range(f.ndim) if f.take([1], k).shape == o.shape):
            return False
    return True


def random_array(arg, shape, rng):
    """Random data for a graph input: standard normal floats, or token ids 0 and 1."""
    if arg.type in ("tensor(float)", "tensor(double)"):
        return rng.standard_normal(shape).astype(np.float32 if arg.type == "tensor(float)" else np.float64)
    if arg.type in ("tensor(int64)", "tensor(int32)"):
        return rng.integers(0, 2, shape).astype(np.int64 if "64" in arg.type else np.int32)
    raise UserError(f"input {arg.name!r} is {arg.type}: random data cannot be made for it "
                    "(give it with --input)")


def read_inputs(specs, sess):
    """{input name: array} from --input arguments: NAME=FILE.npy, or FILE.npz holding arrays
    named after inputs.  Unknown names and unreadable files are UserErrors."""
    names = [a.name for a in sess.get_inputs()]
    given = {}
    for spec in specs:
        name, sep, path = spec.rpartition("=")
        if sep:
            if not name or not path.endswith(".npy"):
                raise UserError(f"--input {spec!r}: expected NAME=FILE.npy or FILE.npz")
            given[name] = _load(path, spec)
        elif path.endswith(".npz"):
            with _load(path, spec) as npz:
                given.update({k: npz[k] for k in npz.files})
        else:
            raise UserError(f"--input {spec!r}: expected NAME=FILE.npy or FILE.npz")
    for name in given:
        if name not in names:
            raise UserError(f"--input: the model has no input {name!r} (its inputs: "
                            f"{', '.join(names)})")
    return given


def _load(path, spec):
    if not os.path.isfile(path):
        raise UserError(f"--input {spec!r}: no file at {path!r}")
    try:
        return np.load(path, allow_pickle=False)
    except (OSError, ValueError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile) as e:
        raise UserError(f"--input {spec!r}: cannot read {path!r} as NumPy data: {e}") from None


def make_feeds(sess, axes, steps, batch, seed, given=None):
    """A feed for every input: the given arrays, random data for the rest.  The time input's
    time axis takes `steps` frames and its batch axis `batch` slots (read from the given time
    input when there is one); free axes of the other inputs take the batch size."""
    given = dict(given or {})
    x = given.get(axes.input)
    if x is not None:
        if np.ndim(x) != len(axes.axes):
            raise UserError(f"input {axes.input!r}: got shape {list(np.shape(x))}, expected axes "
                            f"{axes.text()}")
        steps = x.shape[axes.axes.index("T")] if "T" in axes.axes else steps
        batch = x.shape[axes.axes.index("N")] if "N" in axes.axes else batch
    rng = np.random.default_rng(seed)
    named = {"T": steps, "N": batch}
    feeds = {}
    for a in sess.get_inputs():
        if a.name in given:
            feeds[a.name] = given[a.name]
            continue
        if a.shape is None:
            raise UserError(f"input {a.name!r} declares no shape: give it with --input")
        mine = axes.axes if a.name == axes.input else [None] * len(a.shape)
        shape = [d if isinstance(d, int) and d > 0 else named.get(mine[i], batch)
                 for i, d in enumerate(a.shape)]
        feeds[a.name] = random_array(a, shape, rng)
    return feeds
