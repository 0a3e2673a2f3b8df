"""profile.py: the profile sess_options.enable_profiling asks for: runs and their nodes as Chrome-trace events, written by end_profiling()."""
import datetime
import json
import os
import threading
import time


class Profiler:
    """Events of one session (thread-safe), as onnxruntime writes them: {"cat", "name", "ph":
    "X", "ts", "dur" (microseconds since profiling started), "pid", "tid", "args"}."""

    def __init__(self, prefix):
        self.prefix = prefix
        self.start_ns = time.perf_counter_ns()
        self._events, self._lock = [], threading.Lock()

    @staticmethod
    def now():
        return time.perf_counter_ns()

    def event(self, cat, name, start_ns, args):
        end = time.perf_counter_ns()
        ev = {"cat": cat, "pid": os.getpid(), "tid": threading.get_ident(),
              "dur": (end - start_ns) // 1000, "ts": (start_ns - self.start_ns) // 1000,
              "ph": "X", "name": name, "args": args}
        with self._lock:
            self._events.append(ev)

    def node(self, node, start_ns):
        """One node the interpreter ran (a GRU node's args say which path)."""
        self.event("Node", f"{node.name}_kernel_time", start_ns, {"op_name": node.op})

    def run(self, start_ns, feeds, on_plan):
        """One sess.run: on the C plan (one call into C for the whole sequence), or node by node
        through the interpreter (whose nodes have their own events)."""
        self.event("Session", "model_run", start_ns, {
            "path": "C plan" if on_plan else "interpreter",
            "input_type_shape": [{k: list(v.shape)} for k, v in feeds.items()]})

    def write(self):
        """Write the events to <prefix>_<date>.json in the working directory; its path."""
        stamp = datetime.datetime.now().strftime("%Y-%m-%d_%H-%M-%S_%f")[:-3]
        path = os.path.abspath(f"{self.prefix}_{stamp}.json")
        with self._lock:
            events = list(self._events)
        with open(path, "w", encoding="utf-8") as f:
            json.dump(events, f)
        return path
