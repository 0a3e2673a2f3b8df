"""binding.py: IOBinding, onnxruntime's inputs and preallocated outputs bound by name for InferenceSession.run_with_iobinding."""
import ctypes

import numpy as np

from .errors import InvalidArgument


def _buffer(what, device_type, element_type, shape, buffer_ptr):
    """A NumPy view of memory given as onnxruntime takes it: a CPU address, an element type and
    a shape.  The caller owns the memory and keeps it alive while the binding is used, as with
    onnxruntime."""
    if str(device_type).lower() != "cpu":
        raise InvalidArgument(f"{what}: device_type {device_type!r}: gruinfer binds CPU memory "
                              "only")
    try:
        dtype = np.dtype(element_type)
        dims = tuple(int(d) for d in shape)
    except TypeError:
        raise InvalidArgument(f"{what}: element_type must be a NumPy dtype and shape a list of "
                              "ints") from None
    if any(d < 0 for d in dims) or not isinstance(buffer_ptr, int) or buffer_ptr <= 0:
        raise InvalidArgument(f"{what}: needs a shape of sizes >= 0 and a nonzero buffer_ptr")
    size = int(np.prod(dims, dtype=np.int64)) * dtype.itemsize
    raw = (ctypes.c_char * size).from_address(buffer_ptr)
    return np.frombuffer(raw, dtype).reshape(dims)


class IOBinding:
    """Inputs and outputs of one session bound by name (from sess.io_binding()).

    Inputs: bind_cpu_input(name, array), or bind_input(name, "cpu", 0, dtype, shape, pointer).
    Outputs: bind_output(name) lets the run allocate it (get_outputs() / copy_outputs_to_cpu()
    give the arrays); bind_output(name, "cpu", 0, dtype, shape, pointer) or
    bind_output_array(name, array) gives memory the result is copied into (one copy per run:
    for allocation-free per-frame work use a stream's step(x, out=)).  Only the bound outputs
    are computed into results; every output when none is bound.  There are no OrtValues here:
    get_outputs() returns NumPy arrays."""

    def __init__(self, session):
        self.session = session
        self._inputs, self._outputs, self._results = {}, {}, []

    def bind_cpu_input(self, name, arr_on_cpu):
        self._inputs[name] = arr_on_cpu

    def bind_input(self, name, device_type, device_id, element_type, shape, buffer_ptr):
        self._inputs[name] = _buffer(f"input {name!r}", device_type, element_type, shape,
                                     buffer_ptr)

    def bind_output(self, name, device_type="cpu", device_id=0, element_type=None, shape=None,
                    buffer_ptr=None):
        if buffer_ptr is None:
            if str(device_type).lower() != "cpu":
                raise InvalidArgument(f"output {name!r}: device_type {device_type!r}: gruinfer "
                                      "binds CPU memory only")
            self._outputs[name] = None
        else:
            self._outputs[name] = _buffer(f"output {name!r}", device_type, element_type, shape,
                                          buffer_ptr)

    def bind_output_array(self, name, array):
        """Bind a writeable NumPy array as output `name`'s memory (gruinfer's own form of
        bind_output with a buffer)."""
        if not isinstance(array, np.ndarray) or not array.flags.writeable:
            raise InvalidArgument(f"output {name!r}: needs a writeable NumPy array")
        self._outputs[name] = array

    def clear_binding_inputs(self):
        self._inputs = {}

    def clear_binding_outputs(self):
        self._outputs, self._results = {}, []

    def synchronize_inputs(self):
        """Nothing to do: CPU memory is always in sync."""

    def synchronize_outputs(self):
        """Nothing to do: CPU memory is always in sync."""

    def inputs(self):
        return dict(self._inputs)

    def output_names(self):
        return list(self._outputs) or None

    def store(self, results):
        """Keep a run's results, copied into the outputs bound to memory (whose shape and dtype
        must match; checked for every output before any is written)."""
        names = list(self._outputs) or [o.name for o in self.session.get_outputs()]
        for name, r in zip(names, results):
            buf = self._outputs.get(name)
            if buf is not None and (buf.shape != r.shape or buf.dtype != r.dtype):
                raise InvalidArgument(
                    f"output {name!r}: bound memory is {buf.dtype}{list(buf.shape)}, the result "
                    f"is {r.dtype}{list(r.shape)}")
        out = []
        for name, r in zip(names, results):
            buf = self._outputs.get(name)
            if buf is not None:
                np.copyto(buf, r)
                r = buf
            out.append(r)
        self._results = out

    def get_outputs(self):
        """The last run's outputs, bound order (the bound arrays themselves where given)."""
        return list(self._results)

    def copy_outputs_to_cpu(self):
        """Copies of the last run's outputs."""
        return [r.copy() for r in self._results]
