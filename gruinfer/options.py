"""options.py: onnxruntime's option and description objects as gruinfer reads them: SessionOptions, RunOptions, ModelMetadata, execution providers."""
import copy
import enum
import warnings

from .errors import InvalidArgument

CPU = "CPUExecutionProvider"


def get_available_providers():
    """The execution providers this build has: gruinfer runs on the CPU only."""
    return [CPU]


def get_device():
    """The device gruinfer computes on, as onnxruntime.get_device() names it."""
    return "CPU"


class GraphOptimizationLevel(enum.IntEnum):
    """onnxruntime's levels, accepted and meaningless here: gruinfer always applies its
    rewrites (they are what makes a model run in C)."""
    ORT_DISABLE_ALL = 0
    ORT_ENABLE_BASIC = 1
    ORT_ENABLE_EXTENDED = 2
    ORT_ENABLE_LAYOUT = 3
    ORT_ENABLE_ALL = 99


class ExecutionMode(enum.IntEnum):
    """onnxruntime's execution modes, accepted; gruinfer runs nodes in order."""
    ORT_SEQUENTIAL = 0
    ORT_PARALLEL = 1


class _Options:
    """Attribute records with fixed names: a misspelt option raises AttributeError, as on
    onnxruntime's own objects, instead of being ignored."""
    __slots__ = ()

    def __repr__(self):
        fields = ", ".join(f"{k}={getattr(self, k)!r}" for k in self.__slots__ if k[0] != "_")
        return f"{type(self).__name__}({fields})"

    def _put(self, key, value):
        """Store a configuration entry (kept and returned; gruinfer reads none of them)."""
        self._entries[str(key)] = str(value)

    def _get(self, key):
        if key not in self._entries:
            raise InvalidArgument(f"{type(self).__name__}: no config entry {key!r}")
        return self._entries[key]

    def __getstate__(self):
        return {k: getattr(self, k) for k in self.__slots__}

    def __setstate__(self, state):
        for k, v in state.items():
            setattr(self, k, v)


class SessionOptions(_Options):
    """onnxruntime.SessionOptions, with the fields gruinfer reads:

    intra_op_num_threads: threads one call may use (InferenceSession's `threads`); 0, the
      default, means gruinfer's default of one thread (onnxruntime's 0 means every core: a
      GRU stream is latency-bound, and a second thread pays only for large layers).
    enable_profiling, profile_file_prefix: record every run and write the profile (a Chrome
      trace, JSON) when end_profiling() is called.
    optimized_model_filepath: when set, the model as gruinfer rewrote it at load (Loops and
      GRU cells lifted into GRU nodes, constants folded) is saved there as ONNX.

    The other fields are kept for code written against onnxruntime and mean nothing here:
    gruinfer has one executor and one graph rewriting, sequential execution and no memory arena.
    """
    __slots__ = ("intra_op_num_threads", "inter_op_num_threads", "enable_profiling",
                 "profile_file_prefix", "optimized_model_filepath", "graph_optimization_level",
                 "execution_mode", "execution_order", "log_severity_level", "log_verbosity_level",
                 "logid", "enable_cpu_mem_arena", "enable_mem_pattern", "enable_mem_reuse",
                 "use_deterministic_compute", "use_per_session_threads", "_entries")

    def __init__(self):
        self.intra_op_num_threads = 0
        self.inter_op_num_threads = 0
        self.enable_profiling = False
        self.profile_file_prefix = "gruinfer_profile_"
        self.optimized_model_filepath = ""
        self.graph_optimization_level = GraphOptimizationLevel.ORT_ENABLE_ALL
        self.execution_mode = ExecutionMode.ORT_SEQUENTIAL
        self.execution_order = 0
        self.log_severity_level = -1
        self.log_verbosity_level = 0
        self.logid = ""
        self.enable_cpu_mem_arena = True
        self.enable_mem_pattern = True
        self.enable_mem_reuse = True
        self.use_deterministic_compute = False  # gruinfer is deterministic either way
        self.use_per_session_threads = True
        self._entries = {}

    add_session_config_entry = _Options._put
    get_session_config_entry = _Options._get

    def threads(self):
        """intra_op_num_threads as gruinfer's thread count."""
        n = self.intra_op_num_threads
        if isinstance(n, bool) or not isinstance(n, int) or n < 0:
            raise InvalidArgument(f"SessionOptions.intra_op_num_threads must be an int >= 0, "
                                  f"got {n!r}")
        return n or 1


class RunOptions(_Options):
    """onnxruntime.RunOptions: `terminate` set makes run() refuse to start (InvalidArgument);
    the log fields and config entries are kept and mean nothing here (gruinfer logs nothing).
    only_execute_path_to_fetches: gruinfer always runs the whole graph, as onnxruntime's
    default does."""
    __slots__ = ("terminate", "log_severity_level", "log_verbosity_level", "logid",
                 "only_execute_path_to_fetches", "_entries")

    def __init__(self):
        self.terminate = False
        self.log_severity_level = -1
        self.log_verbosity_level = 0
        self.logid = ""
        self.only_execute_path_to_fetches = False
        self._entries = {}

    add_run_config_entry = _Options._put
    get_run_config_entry = _Options._get


def check_run_options(run_options):
    """Refuse a run whose options are not RunOptions or ask it to terminate."""
    if run_options is None:
        return
    if not isinstance(run_options, RunOptions):
        raise InvalidArgument(f"run_options must be a gruinfer.RunOptions or None, got "
                              f"{type(run_options).__name__}")
    if run_options.terminate:
        raise InvalidArgument("run refused: run_options.terminate is set")


def session_options(sess_options):
    """A private copy of the session's options (a fresh SessionOptions when None)."""
    if sess_options is None:
        return SessionOptions()
    if not isinstance(sess_options, SessionOptions):
        raise InvalidArgument(f"sess_options must be a gruinfer.SessionOptions or None, got "
                              f"{type(sess_options).__name__}")
    return copy.deepcopy(sess_options)


def normalize_providers(providers, options):
    """{provider name: {option: str}} for the CPU provider, from the forms onnxruntime takes:
    names, (name, options) pairs, and options given beside the names.  Other providers are
    warned about, as onnxruntime does when they are not built in, and skipped: gruinfer runs on
    the CPU."""
    if providers is None:
        providers = [CPU]
    if isinstance(providers, str) or not isinstance(providers, (list, tuple)):
        raise InvalidArgument(f"providers must be a list of provider names, got {providers!r}")
    if options is not None and (not isinstance(options, (list, tuple))
                                or len(options) != len(providers)):
        raise InvalidArgument("providers and provider_options must be lists of the same length")
    out = {}
    for i, p in enumerate(providers):
        name, opts = (p if isinstance(p, tuple) and len(p) == 2 else (p, {}))
        if options is not None:
            opts = options[i]
        if not isinstance(name, str) or not isinstance(opts, dict):
            raise InvalidArgument(f"providers: {p!r} is neither a provider name nor a "
                                  "(name, options dict) pair")
        if name != CPU:
            warnings.warn(f"Specified provider {name!r} is not in available provider names. "
                          f"Available providers: '{CPU}' (gruinfer runs on the CPU)",
                          UserWarning, stacklevel=3)
            continue
        out[CPU] = {str(k): str(v) for k, v in opts.items()}
    return out or {CPU: {}}


class ModelMetadata:
    """What onnxruntime's get_modelmeta() gives: the model's producer, graph name, domain,
    descriptions, version and custom metadata (metadata_props)."""
    __slots__ = ("producer_name", "graph_name", "domain", "description", "graph_description",
                 "version", "custom_metadata_map")

    def __init__(self, proto):
        self.producer_name = proto.producer_name
        self.graph_name = proto.graph.name
        self.domain = proto.domain
        self.description = proto.doc_string
        self.graph_description = proto.graph.doc_string
        # onnxruntime reports an unset model_version as the largest int64
        self.version = proto.model_version if proto.HasField("model_version") else 2**63 - 1
        self.custom_metadata_map = {p.key: p.value for p in proto.metadata_props}

    def __repr__(self):
        return (f"ModelMetadata(producer_name={self.producer_name!r}, graph_name="
                f"{self.graph_name!r}, version={self.version})")
