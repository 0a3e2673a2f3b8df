"""model_file.py: the .gruinfer byte layout written from Python and opened through C (src_c/MODEL_FORMAT.md); knows bytes, records and _core, nothing of ONNX."""
import json
import struct
from typing import NamedTuple

import numpy as np

from . import _core
from .errors import InvalidModel

MAGIC = b"GRUINFER"
VERSION = 1
ALIGN = 64
TAGS = (b"INFO", b"GRUS", b"PLAN", b"NAME", b"ARRS", b"META", b"DATA")
ROLE_INPUT, ROLE_OUTPUT, ROLE_STATE = 0, 1, 2
FP32 = 0  # table precision; 1 int8 and 2 bf16 are reserved (issue 13)


class Layer(NamedTuple):
    """A GRU layer as the file holds it: config and unpacked ONNX-layout weights."""
    input_size: int
    hidden_size: int
    direction: int
    linear_before_reset: int
    clip: object
    f: list
    g: list
    W: np.ndarray
    R: np.ndarray
    B: object


class Contents(NamedTuple):
    """Everything a file holds: layers, plan steps (CStep-like: kind, input, input2, layer
    index or None, ints, floats, tables), input width, names [(role, buffer, name)], extra
    arrays, the metadata dict, the writer's version and the source model's sha256 (hex)."""
    layers: list
    steps: list
    input_width: int
    names: list
    arrays: list
    meta: dict
    writer: str
    source_hash: str


def _pad(n):
    return -n % ALIGN


class _Data:
    """The DATA section being written: arrays 64-byte aligned, referenced by (offset, count)."""

    def __init__(self):
        self.chunks, self.size = [], 0

    def ref(self, a):
        if a is None:
            return struct.pack("<QQII", 0, 0, FP32, 0)
        b = np.ascontiguousarray(a, dtype="<f4").tobytes()
        off = self.size
        self.chunks += [b, b"\0" * _pad(len(b))]
        self.size += len(b) + _pad(len(b))
        return struct.pack("<QQII", off, len(b) // 4, FP32, 0)


def _act(a):
    return struct.pack("<iff", int(a[0]), float(a[1]), float(a[2]))


def _gru_record(layer, data):
    f = list(layer.f) + [layer.f[0]] * (2 - len(layer.f))
    g = list(layer.g) + [layer.g[0]] * (2 - len(layer.g))
    rec = struct.pack("<qqiiif", layer.input_size, layer.hidden_size, layer.direction,
                      layer.linear_before_reset, layer.clip is not None,
                      0.0 if layer.clip is None else layer.clip)
    rec += b"".join(_act(a) for a in f + g)
    rec += data.ref(layer.W) + data.ref(layer.R) + data.ref(layer.B)
    return rec + b"\0" * 8


def _step_record(step, data):
    ints = list(step.ints) + [0] * (8 - len(step.ints))
    floats = list(step.floats) + [0.0] * (4 - len(step.floats))
    tables = list(step.tables) + [None] * (2 - len(step.tables))
    rec = struct.pack("<iiii", _core.STEP_KINDS[step.kind], step.input, step.input2,
                      -1 if step.layer is None else step.layer)
    rec += struct.pack("<8q", *ints) + struct.pack("<4f", *floats)
    return rec + b"".join(data.ref(t) for t in tables)


def _names(names):
    out = [struct.pack("<II", len(names), 0)]
    for role, buf, name in names:
        b = name.encode()
        out.append(struct.pack("<IiI", role, buf, len(b)) + b + b"\0" * (-len(b) % 4))
    return b"".join(out)


def encode(c):
    """The bytes of a .gruinfer file holding Contents c."""
    data = _Data()
    writer = c.writer.encode()
    sections = {
        b"INFO": bytes.fromhex(c.source_hash) + struct.pack("<I", len(writer)) + writer,
        b"GRUS": struct.pack("<II", len(c.layers), 0) + b"".join(_gru_record(x, data) for x in c.layers),
        b"PLAN": struct.pack("<qII", c.input_width, len(c.steps), 0)
        + b"".join(_step_record(s, data) for s in c.steps),
        b"NAME": _names(c.names),
        b"ARRS": struct.pack("<II", len(c.arrays), 0) + b"".join(data.ref(a) for a in c.arrays),
        b"META": json.dumps(c.meta, separators=(",", ":")).encode(),
    }
    sections[b"DATA"] = b"".join(data.chunks)
    table_end = 64 + 32 * len(TAGS)
    offset, table, body = table_end + _pad(table_end), [], []
    for tag in TAGS:
        b = sections[tag]
        table.append(struct.pack("<4sIQQQ", tag, 0, offset, len(b), 0))
        body += [b, b"\0" * _pad(len(b))]
        offset += len(b) + _pad(len(b))
    rest = b"".join(table) + b"\0" * _pad(table_end) + b"".join(body)
    header = struct.pack("<8sIIQQII", MAGIC, VERSION, 64, 64 + len(rest),
                         _core.checksum(rest), len(TAGS), 0)
    return header + b"\0" * (64 - len(header)) + rest


def is_compiled(model):
    """model is bytes starting with the magic, or a path (str or os.PathLike) ending .gruinfer
    or naming a file that starts with the magic."""
    if isinstance(model, (bytes, bytearray, memoryview)):
        return bytes(model[:8]) == MAGIC
    if not isinstance(model, str) and not hasattr(model, "__fspath__"):
        return False
    if str(model).endswith(".gruinfer"):
        return True
    try:
        with open(model, "rb") as fh:
            return fh.read(8) == MAGIC
    except (OSError, ValueError):
        return False


class Opened(NamedTuple):
    """An opened file: the C Model, its metadata dict, extra arrays and the file's bytes."""
    model: object
    meta: dict
    arrays: list
    data: bytes


def open_model(model, kernel):
    """Open a .gruinfer path or bytes through C (every byte checked there), then read its
    metadata; any malformed part is InvalidModel."""
    if isinstance(model, (bytes, bytearray, memoryview)):
        data = bytes(model)
    else:
        try:
            with open(model, "rb") as fh:
                data = fh.read()
        except OSError as e:
            raise InvalidModel(f"cannot read compiled model {str(model)!r}: {e}") from None
    m = _core.Model(data, kernel)  # a bytes object's data is 16-byte aligned; C needs 4
    try:
        meta = json.loads(m.meta)
    except (UnicodeDecodeError, ValueError) as e:
        raise InvalidModel(f"compiled model file: its metadata is not JSON ({e})") from None
    if not isinstance(meta, dict):
        raise InvalidModel("compiled model file: its metadata is not a JSON object")
    return Opened(m, meta, m.arrays(), data)


class Step(NamedTuple):
    """A step of an opened file's plan as plan_info() lists it: its kind."""
    kind: str
