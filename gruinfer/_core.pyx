# cython: language_level=3, boundscheck=False, wraparound=False, cdivision=True
# _core.pyx: thin private layer over src_c: C handles owned by cdef classes, one nogil call each, status codes to exceptions.
from libc.stdint cimport int32_t, int64_t
from libc.stdlib cimport malloc, free
from libc.string cimport memcpy, memset
cimport numpy as cnp
import numpy as np

from .errors import InvalidArgument, InvalidModel, KernelUnavailable

cnp.import_array()

# The one table from C status codes to Python exceptions: the short name every raised
# exception carries as its `status` attribute, the class, and the class for statuses that mean
# "bad model" when raised while loading (`model`).
_STATUS = {
    GRUINFER_E_NULL: ("null", InvalidArgument, InvalidArgument),
    GRUINFER_E_SIZE: ("size", InvalidArgument, InvalidModel),
    GRUINFER_E_ATTR: ("attr", InvalidArgument, InvalidModel),
    GRUINFER_E_ACTIVATION: ("activation", InvalidModel, InvalidModel),
    GRUINFER_E_NOMEM: ("nomem", MemoryError, MemoryError),
    GRUINFER_E_SEQLEN: ("seqlen", InvalidArgument, InvalidArgument),
    GRUINFER_E_NONFINITE: ("nonfinite", InvalidArgument, InvalidModel),
    GRUINFER_E_KERNEL: ("kernel", KernelUnavailable, KernelUnavailable),
    GRUINFER_E_PLAN: ("plan", InvalidModel, InvalidModel),
    GRUINFER_E_SLOT: ("slot", InvalidArgument, InvalidArgument),
    GRUINFER_E_INDEX: ("index", InvalidArgument, InvalidArgument),
    GRUINFER_E_FORMAT: ("format", InvalidModel, InvalidModel),
    GRUINFER_E_VERSION: ("version", InvalidModel, InvalidModel),
    GRUINFER_E_IO: ("io", InvalidArgument, InvalidArgument),
}

# BINARY step operators by name (gruinfer_binary_op).
BINARY_OPS = {"add": GRUINFER_BINARY_ADD, "sub": GRUINFER_BINARY_SUB, "mul": GRUINFER_BINARY_MUL,
              "div": GRUINFER_BINARY_DIV, "rsub": GRUINFER_BINARY_RSUB, "rdiv": GRUINFER_BINARY_RDIV}


# Plan step kinds by name, read once from C (a new kind needs no change here).
cdef dict _read_step_kinds():
    kinds = {}
    cdef int32_t k = 0
    cdef const char *name = gruinfer_step_kind_name(k)
    while name != NULL:
        kinds[name.decode()] = k
        k += 1
        name = gruinfer_step_kind_name(k)
    return kinds


STEP_KINDS = _read_step_kinds()


cdef str status_text(gruinfer_status s):
    return gruinfer_status_text(s).decode()


cdef int fail(gruinfer_status s, str message, bint model) except -1:
    """Raise the exception of status s (see _STATUS) with this message and its status name."""
    name, cls, model_cls = _STATUS.get(s, (None, RuntimeError, RuntimeError))
    e = (model_cls if model else cls)(message)
    e.status = name
    raise e


cdef int check(gruinfer_status s, str what, bint model=False) except -1:
    if s == GRUINFER_OK:
        return 0
    return fail(s, f"{what}: {status_text(s)}", model)


def kernel_names():
    """Names of the kernels compiled in, reference first."""
    cdef const char *const *names = gruinfer_kernel_names()
    out = []
    cdef int i = 0
    while names[i] != NULL:
        out.append(names[i].decode())
        i += 1
    return out


def kernel_supported(str name):
    """True when the named kernel is compiled in and this CPU and OS run it."""
    return bool(gruinfer_kernel_supported(name.encode()))


def kernel_default():
    """The kernel chosen when none is named (honours GRUINFER_KERNEL); None if that names an unusable one."""
    cdef const char *k = gruinfer_kernel_default()
    return None if k == NULL else k.decode()


cdef inline float *fdata(cnp.ndarray a):
    return <float *>cnp.PyArray_DATA(a)


cdef inline bint is_f32_c(object a):
    """a is a C-contiguous array of native float32 (a byte-swapped '>f4' has the same type
    number: C would read it as garbage)."""
    return (cnp.PyArray_Check(a) and cnp.PyArray_TYPE(<cnp.ndarray>a) == cnp.NPY_FLOAT32
            and cnp.PyArray_ISNOTSWAPPED(<cnp.ndarray>a)
            and cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>a))


cdef inline bint shape_is(object a, int nd, const cnp.npy_intp *dims):
    """a is a float32 C-contiguous array of exactly these dims."""
    if not is_f32_c(a) or cnp.PyArray_NDIM(<cnp.ndarray>a) != nd:
        return False
    cdef const cnp.npy_intp *got = cnp.PyArray_DIMS(<cnp.ndarray>a)
    cdef int i
    for i in range(nd):
        if got[i] != dims[i]:
            return False
    return True


cdef inline bint is_c_ids(object a):
    """a is an array of native int32 or int64 (what gruinfer_ids_to_float reads)."""
    return (cnp.PyArray_Check(a) and cnp.PyArray_ISSIGNED(<cnp.ndarray>a)
            and cnp.PyArray_ISNOTSWAPPED(<cnp.ndarray>a)
            and cnp.PyArray_ITEMSIZE(<cnp.ndarray>a) in (4, 8))


def ids_to_float(x):
    """Token ids (an int32 or int64 array of any shape) as a new float32 C-contiguous array of
    that shape, clamped to +-2^25 so an id out of range stays out of every table's range;
    converted in C with the GIL released."""
    if not is_c_ids(x):
        raise TypeError("token ids must be an int32 or int64 array")
    cdef cnp.ndarray src = cnp.PyArray_GETCONTIGUOUS(<cnp.ndarray>x)
    cdef cnp.ndarray out = cnp.PyArray_EMPTY(cnp.PyArray_NDIM(src), cnp.PyArray_DIMS(src),
                                             cnp.NPY_FLOAT32, 0)
    cdef const void *ip = cnp.PyArray_DATA(src)
    cdef int32_t elem = <int32_t>cnp.PyArray_ITEMSIZE(src)
    cdef int64_t n = cnp.PyArray_SIZE(src)
    cdef float *op = fdata(out)
    cdef gruinfer_status s
    with nogil:
        s = gruinfer_ids_to_float(ip, elem, n, op)
    check(s, "token ids")
    return out


cdef gruinfer_activation make_act(tuple a):
    cdef gruinfer_activation out
    out.kind = a[0]
    out.alpha = a[1]
    out.beta = a[2]
    return out


cdef class Gru:
    """One ONNX GRU node with packed, immutable weights (shareable by threads)."""
    cdef gruinfer_gru *ptr
    cdef readonly int64_t input_size, hidden_size, num_directions
    cdef readonly int direction

    def __cinit__(self, int64_t input_size, int64_t hidden_size, int direction,
                  int linear_before_reset, clip, list f, list g,
                  cnp.ndarray W, cnp.ndarray R, B, kernel, str name, int threads=1):
        cdef gruinfer_gru_config cfg
        memset(&cfg, 0, sizeof(cfg))
        cfg.threads = threads
        cfg.input_size = input_size
        cfg.hidden_size = hidden_size
        cfg.direction = direction
        cfg.linear_before_reset = linear_before_reset
        cfg.has_clip = clip is not None
        cfg.clip = clip if clip is not None else 0.0
        cdef int d
        for d in range(len(f)):
            cfg.f[d] = make_act(f[d])
            cfg.g[d] = make_act(g[d])
        if not (is_f32_c(W) and is_f32_c(R) and (B is None or is_f32_c(B))):
            raise TypeError("W, R, B must be C-contiguous float32 arrays")
        self.input_size, self.hidden_size, self.direction = input_size, hidden_size, direction
        self.num_directions = 2 if direction == 2 else 1
        cdef int64_t D = self.num_directions
        if (W.size != D * 3 * hidden_size * input_size or R.size != D * 3 * hidden_size * hidden_size
                or (B is not None and B.size != D * 6 * hidden_size)):
            raise InvalidModel(f"GRU node {name!r}: weight sizes do not match the config")
        cdef const float *bp = NULL if B is None else fdata(B)
        cdef bytes kname = kernel.encode() if kernel else None
        cdef const char *kp = NULL if kname is None else <const char *>kname
        cdef gruinfer_status s
        cdef const float *wp = fdata(W)
        cdef const float *rp = fdata(R)
        with nogil:
            s = gruinfer_gru_create(&cfg, wp, rp, bp, kp, &self.ptr)
        check(s, f"GRU node {name!r}", model=True)

    def __dealloc__(self):
        gruinfer_gru_free(self.ptr)

    @property
    def kernel(self):
        return gruinfer_gru_kernel(self.ptr).decode()

    def run(self, cnp.ndarray X, int layout, seq_lens, initial_h, bint want_y, bint want_yh,
            bint check_finite, str name):
        """X float32 C-contiguous rank 3; seq_lens int32 [N] or None; initial_h float32 or None."""
        if not is_f32_c(X) or X.ndim != 3:
            raise TypeError("X must be a C-contiguous rank-3 float32 array")
        cdef int64_t T = X.shape[1] if layout else X.shape[0]
        cdef int64_t N = X.shape[0] if layout else X.shape[1]
        cdef int64_t D = self.num_directions, H = self.hidden_size
        cdef cnp.ndarray Y = None, Yh = None
        if want_y:
            Y = np.empty((N, T, D, H) if layout else (T, D, N, H), np.float32)
        if want_yh:
            Yh = np.empty((N, D, H) if layout else (D, N, H), np.float32)
        cdef const int32_t *lp = NULL
        cdef const float *hp = NULL
        cdef float *yp = NULL
        cdef float *yhp = NULL
        if seq_lens is not None:
            lp = <const int32_t *>cnp.PyArray_DATA(<cnp.ndarray>seq_lens)
        if initial_h is not None:
            hp = fdata(<cnp.ndarray>initial_h)
        if Y is not None:
            yp = fdata(Y)
        if Yh is not None:
            yhp = fdata(Yh)
        cdef gruinfer_status s
        cdef const float *xp = fdata(X)
        with nogil:
            s = gruinfer_gru_run(self.ptr, layout, T, N, xp, lp, hp, check_finite, yp, yhp)
        check(s, f"GRU node {name!r}")
        return Y, Yh


def checksum(const unsigned char[::1] data):
    """The checksum a .gruinfer file holds over the bytes after its header (gruinfer_model_checksum),
    computed in C without the GIL."""
    cdef unsigned long long h
    cdef const unsigned char *p = &data[0] if data.shape[0] else NULL
    cdef int64_t n = data.shape[0]
    with nogil:
        h = gruinfer_model_checksum(p, n)
    return h


cdef class Model:
    """A compiled model file opened by C (src_c/model_file.c): its layers and plan, names,
    metadata and arrays.  data: the file's bytes (C copies what it keeps)."""
    cdef gruinfer_model *ptr

    def __cinit__(self, const unsigned char[::1] data, kernel):
        cdef bytes kname = kernel.encode() if kernel else None
        cdef const char *kp = NULL if kname is None else <const char *>kname
        cdef const unsigned char *p = &data[0] if data.shape[0] else <const unsigned char *>""
        cdef int64_t n = data.shape[0]
        cdef gruinfer_status s
        with nogil:
            s = gruinfer_model_open_memory(p, n, kp, &self.ptr)
        if s == GRUINFER_E_NOMEM or s == GRUINFER_E_KERNEL:
            check(s, "compiled model file")
        if s != GRUINFER_OK:  # any other refusal is a bad file, whatever part of it C refused
            e = InvalidModel(f"compiled model file: {status_text(s)}")
            e.status = _STATUS.get(s, (None,))[0]
            raise e

    def __dealloc__(self):
        gruinfer_model_free(self.ptr)

    def names(self, int32_t role):
        """[(name, buffer)] of a role: 0 the plan input, 1 outputs, 2 GRU states."""
        return [(gruinfer_model_name(self.ptr, role, i).decode("utf-8", "replace"),
                 gruinfer_model_buffer(self.ptr, role, i))
                for i in range(gruinfer_model_count(self.ptr, role))]

    @property
    def writer(self):
        return gruinfer_model_writer(self.ptr).decode("utf-8", "replace")

    @property
    def source_hash(self):
        return (<const char *>gruinfer_model_source_hash(self.ptr))[:32].hex()

    @property
    def meta(self):
        cdef int64_t n
        cdef const char *p = gruinfer_model_meta(self.ptr, &n)
        return p[:n]

    def arrays(self):
        """Copies of the file's extra arrays (1-D float32)."""
        cdef int64_t n
        cdef const float *p
        out = []
        for i in range(gruinfer_model_arrays(self.ptr)):
            p = gruinfer_model_array(self.ptr, i, &n)
            a = np.empty(n, np.float32)
            if n:
                memcpy(fdata(a), p, n * sizeof(float))
            out.append(a)
        return out

    def plan(self, list kinds):
        """The model's plan (borrowed: it keeps this Model alive); kinds: its step kinds."""
        return Plan(gruinfer_plan_width(gruinfer_model_plan(self.ptr), 0), kinds, None, self)


cdef int fill_step(gruinfer_step *c, int32_t i, object step, list held) except -1:
    """Copy one step object into c, field by field; the arrays of its tables go into held
    (alive until C has copied them)."""
    kind = STEP_KINDS.get(step.kind)
    if kind is None:
        raise ValueError(f"plan step {i}: unknown kind {step.kind!r}; the C plan knows "
                         + ", ".join(STEP_KINDS))
    ints, floats, tables = tuple(step.ints), tuple(step.floats), tuple(step.tables)
    if (len(ints) > GRUINFER_STEP_INTS or len(floats) > GRUINFER_STEP_FLOATS
            or len(tables) > GRUINFER_STEP_TABLES):
        raise TypeError(f"plan step {i} ({step.kind}): at most {GRUINFER_STEP_INTS} ints, "
                        f"{GRUINFER_STEP_FLOATS} floats and {GRUINFER_STEP_TABLES} tables")
    c.kind = kind
    c.input = step.input
    c.input2 = step.input2
    c.gru = NULL if step.layer is None else (<Gru?>step.layer).ptr
    cdef int j
    for j in range(len(ints)):
        c.ints[j] = ints[j]
    for j in range(len(floats)):
        c.floats[j] = floats[j]
    for j in range(len(tables)):
        if tables[j] is None:
            continue
        if not is_f32_c(tables[j]):
            raise TypeError(f"plan step {i} ({step.kind}): table {j} must be a C-contiguous "
                            "float32 array")
        held.append(tables[j])
        c.tables[j] = fdata(tables[j])
        c.table_len[j] = cnp.PyArray_SIZE(<cnp.ndarray>tables[j])
    return 0


cdef class Plan:
    """Frame-wise steps for streams, checked and copied by C (src_c/gru.h says what each kind
    reads).  steps: objects copied 1:1 into C's generic step, with the attributes
      kind     a C step kind name (a key of STEP_KINDS)
      input    0: the plan input; k >= 1: the output of step k-1
      input2   a second buffer, as input, or -1: none
      layer    the Gru of a "gru" step, else None
      ints     a tuple of at most GRUINFER_STEP_INTS ints; floats: of at most
               GRUINFER_STEP_FLOATS numbers
      tables   a tuple of at most GRUINFER_STEP_TABLES entries, each None or a float32
               C-contiguous array of any shape (its size is the table's length)
      rule     a short text of the sizes the tables need, added to the error of a refused step
    """
    cdef gruinfer_plan *ptr
    cdef readonly list steps
    cdef readonly int64_t input_width
    cdef Model owner  # a plan borrowed from a compiled model file, which frees it

    def __cinit__(self, int64_t input_width, list steps, kernel, Model model=None):
        if model is not None:
            self.ptr, self.owner = <gruinfer_plan *>gruinfer_model_plan(model.ptr), model
            self.steps, self.input_width = steps, input_width
            return
        cdef int32_t n = len(steps)
        cdef gruinfer_step *cs = <gruinfer_step *>malloc(max(n, 1) * sizeof(gruinfer_step))
        if cs == NULL:
            raise MemoryError()
        memset(cs, 0, max(n, 1) * sizeof(gruinfer_step))
        self.steps = steps
        self.input_width = input_width
        cdef int32_t i, bad = -1
        cdef gruinfer_status s
        cdef bytes kname = kernel.encode() if kernel else None
        cdef const char *kp = NULL if kname is None else <const char *>kname
        held = []
        try:
            for i in range(n):
                fill_step(&cs[i], i, steps[i], held)
            with nogil:
                s = gruinfer_plan_create(input_width, cs, n, kp, &self.ptr, &bad)
        finally:
            free(cs)
        if s == GRUINFER_OK:
            return
        if bad < 0:
            check(s, "plan", model=True)
        rule = getattr(steps[bad], "rule", None)
        fail(s, f"plan step {bad} ({steps[bad].kind}): {status_text(s)}"
             + (f" ({rule})" if rule else ""), True)

    def __dealloc__(self):
        if self.owner is None:
            gruinfer_plan_free(self.ptr)

    def width(self, int32_t k):
        """Width of the plan input (k = 0) or of step k-1's output."""
        return gruinfer_plan_width(self.ptr, k)


IN_USE = ("the stream is in use by another thread's call: a stream is for one thread at a "
          "time (give each thread its own stream)")


cdef class StreamCore:
    """N slots of one plan: recurrent states and scratch, allocated once. One thread at a time."""
    cdef gruinfer_stream *ptr
    cdef readonly Plan plan
    cdef readonly int64_t batch_size
    cdef int32_t n_steps
    cdef float **outs
    cdef int64_t *o_st
    cdef int64_t *o_sn
    # step(): which step's output it returns, and the frame shapes it takes and gives
    cdef int32_t step_out
    cdef int64_t in_w, out_w
    cdef readonly tuple frame_in_shape, frame_out_shape
    cdef cnp.npy_intp in_dims[8]
    cdef cnp.npy_intp out_dims[8]
    cdef int in_nd, out_nd
    cdef public bint check_finite
    cdef public bint ids_input      # the frame input is token ids: int frames converted here
    cdef cnp.ndarray id_frame       # float32 frame those ids are written into
    cdef bint busy                  # a call is using the stream (set and tested with the GIL held)

    def __cinit__(self, Plan plan, int64_t batch_size, int32_t step_out, tuple frame_in_shape,
                  tuple frame_out_shape, bint check_finite=True):
        self.plan = plan
        self.batch_size = batch_size
        self.n_steps = gruinfer_plan_steps(plan.ptr)
        self.outs = <float **>malloc(self.n_steps * sizeof(float *))
        self.o_st = <int64_t *>malloc(self.n_steps * sizeof(int64_t))
        self.o_sn = <int64_t *>malloc(self.n_steps * sizeof(int64_t))
        if self.outs == NULL or self.o_st == NULL or self.o_sn == NULL:
            raise MemoryError()
        cdef int32_t k
        for k in range(self.n_steps):
            self.outs[k] = NULL
        self.step_out = step_out
        self.in_w = gruinfer_plan_width(plan.ptr, 0)
        self.out_w = gruinfer_plan_width(plan.ptr, step_out + 1)
        if len(frame_in_shape) > 8 or len(frame_out_shape) > 8:
            raise ValueError("frame shapes have at most 8 axes")
        self.frame_in_shape = frame_in_shape
        self.frame_out_shape = frame_out_shape
        self.in_nd, self.out_nd = len(frame_in_shape), len(frame_out_shape)
        for k in range(self.in_nd):
            self.in_dims[k] = frame_in_shape[k]
        for k in range(self.out_nd):
            self.out_dims[k] = frame_out_shape[k]
        self.check_finite = check_finite
        check(gruinfer_stream_create(plan.ptr, batch_size, &self.ptr), "stream")

    def __dealloc__(self):
        gruinfer_stream_free(self.ptr)
        free(self.outs)
        free(self.o_st)
        free(self.o_sn)

    def _claim(self):
        """Mark the stream in use by this call, or InvalidArgument when another thread's call
        is using it (a stream is for one thread at a time; the test and the mark are made
        with the GIL held, so two threads cannot both pass)."""
        if self.busy:
            raise InvalidArgument(IN_USE)
        self.busy = True

    def _release(self):
        self.busy = False

    def _coerce_frame(self, x):
        """Slow path of step(), for a frame that is not float32 C-contiguous of frame_in_shape
        (nor, with ids_input, such an int32/int64 frame): a subclass converts it or says what is
        wrong (gruinfer.stream.Stream does)."""
        raise TypeError(f"step input must be a C-contiguous float32 array of shape "
                        f"{self.frame_in_shape}; a subclass of StreamCore must provide "
                        "_coerce_frame to convert others")

    cdef object _id_frame(self, x):
        """A C-contiguous int32/int64 frame of token ids as float32 (gruinfer_ids_to_float), or
        None when x is not such a frame."""
        if not (is_c_ids(x) and cnp.PyArray_IS_C_CONTIGUOUS(<cnp.ndarray>x)
                and cnp.PyArray_NDIM(<cnp.ndarray>x) == self.in_nd):
            return None
        cdef int i
        for i in range(self.in_nd):
            if cnp.PyArray_DIMS(<cnp.ndarray>x)[i] != self.in_dims[i]:
                return None
        if self.id_frame is None:
            self.id_frame = cnp.PyArray_EMPTY(self.in_nd, self.in_dims, cnp.NPY_FLOAT32, 0)
        gruinfer_ids_to_float(cnp.PyArray_DATA(<cnp.ndarray>x),
                              <int32_t>cnp.PyArray_ITEMSIZE(<cnp.ndarray>x),
                              cnp.PyArray_SIZE(<cnp.ndarray>x), fdata(self.id_frame))
        return self.id_frame

    def step(self, x, out=None):
        """Advance every slot by one frame; return the first output for that frame (into `out` when given)."""
        if self.busy:
            raise InvalidArgument(IN_USE)
        self.busy = True
        try:
            return self._step(x, out)
        finally:
            self.busy = False

    cdef object _step(self, x, out):
        if not shape_is(x, self.in_nd, self.in_dims):
            ids = self._id_frame(x) if self.ids_input else None
            x = self._coerce_frame(x) if ids is None else ids
        if out is None:
            out = cnp.PyArray_EMPTY(self.out_nd, self.out_dims, cnp.NPY_FLOAT32, 0)
        elif not (shape_is(out, self.out_nd, self.out_dims)
                  and cnp.PyArray_ISWRITEABLE(<cnp.ndarray>out)):
            raise InvalidArgument(
                f"out must be a writeable C-contiguous float32 array of shape {self.frame_out_shape}")
        cdef const float *xp = fdata(<cnp.ndarray>x)
        cdef float *op = fdata(<cnp.ndarray>out)
        cdef int32_t k = self.step_out
        cdef gruinfer_status s
        self.outs[k] = op
        self.o_st[k] = 0
        self.o_sn[k] = self.out_w
        with nogil:
            s = gruinfer_stream_run(self.ptr, 1, xp, 0, self.in_w, self.check_finite,
                                    self.outs, self.o_st, self.o_sn)
        self.outs[k] = NULL
        if s != GRUINFER_OK:
            check(s, "step input")
        return out

    def run_chunk(self, cnp.ndarray x, int64_t T, int64_t x_st, int64_t x_sn, dict outs,
                  str what="stream input"):
        """T frames of x (float32, C-contiguous), frame (t, n) at element t*x_st + n*x_sn;
        outs: {step: (float32 C-contiguous array, o_st, o_sn)} receives those steps' outputs.
        what: x as errors name it."""
        if not is_f32_c(x) or x.size < T * self.batch_size * self.in_w:
            raise TypeError("x must be a C-contiguous float32 array holding T frames")
        cdef int32_t k
        for k, (arr, st, sn) in outs.items():
            self.outs[k] = fdata(<cnp.ndarray>arr)
            self.o_st[k] = st
            self.o_sn[k] = sn
        cdef gruinfer_status s
        cdef const float *xp = fdata(x)
        try:
            with nogil:
                s = gruinfer_stream_run(self.ptr, T, xp, x_st, x_sn, self.check_finite,
                                        self.outs, self.o_st, self.o_sn)
        finally:
            for k in outs:
                self.outs[k] = NULL
        check(s, what)

    cdef int64_t _state_width(self, int32_t k) except -1:
        if k < 0 or k >= self.n_steps:
            raise IndexError(f"no plan step {k}")
        return gruinfer_plan_width(self.plan.ptr, k + 1)

    def _get_state(self, int32_t k, int64_t hidden):
        """Step k's state as a new [batch_size, hidden] array."""
        if hidden != self._state_width(k):
            raise ValueError("hidden does not match the step")
        cdef cnp.ndarray h = np.empty((self.batch_size, hidden), np.float32)
        check(gruinfer_stream_get_state(self.ptr, k, fdata(h)), "get_state")
        return h

    def _set_state(self, int32_t k, h):
        """Set step k's state from a float32 C-contiguous [batch_size, H] array."""
        if not is_f32_c(h) or h.size != self.batch_size * self._state_width(k):
            raise TypeError("state must be C-contiguous float32 of [batch_size, hidden_size]")
        check(gruinfer_stream_set_state(self.ptr, k, fdata(<cnp.ndarray>h)), "set_state")

    def _set_slot_state(self, int32_t k, int64_t slot, h):
        """Set one slot's state of step k from a float32 C-contiguous [H] array."""
        if not is_f32_c(h) or h.size != self._state_width(k):
            raise TypeError("slot state must be C-contiguous float32 of [hidden_size]")
        check(gruinfer_stream_set_slot_state(self.ptr, k, slot, fdata(<cnp.ndarray>h)), "set_state")

    def _reset(self, slots=None):
        cdef cnp.ndarray idx
        if slots is None:
            check(gruinfer_stream_reset(self.ptr, NULL, 0), "reset")
            return
        idx = np.ascontiguousarray(slots, dtype=np.int64).reshape(-1)
        check(gruinfer_stream_reset(self.ptr, <const int64_t *>cnp.PyArray_DATA(idx), idx.size),
              "reset")
