"""onnx_io/external.py: external-data tensors read as hostile input: locations resolved (symlinks included) inside the model's folder only, regular files only, opened without blocking, offsets and lengths checked against the file and the tensor."""
import os
import stat

from ..errors import InvalidModel

# onnx's TensorProto.DataLocation EXTERNAL, and the element types packed two to a byte (4-bit).
_EXTERNAL = 1
_HALF_BYTE = {21, 22, 23}  # UINT4, INT4, FLOAT4E2M1


def is_external(tensor):
    """The tensor keeps its data in an external file (not read yet)."""
    return tensor.data_location == _EXTERNAL


def external_tensors(graph):
    """Every TensorProto of a graph and its subgraphs that keeps its data in an external file:
    initializers, sparse initializers' values and indices, and tensor attributes (Constant's)."""
    out = []

    def walk(g):
        for t in g.initializer:
            out.append(t)
        for s in g.sparse_initializer:
            out.extend((s.values, s.indices))
        for node in g.node:
            for a in node.attribute:
                if a.HasField("t"):
                    out.append(a.t)
                out.extend(a.tensors)
                if a.HasField("sparse_tensor"):
                    out.extend((a.sparse_tensor.values, a.sparse_tensor.indices))
                for s in a.sparse_tensors:
                    out.extend((s.values, s.indices))
                if a.HasField("g"):
                    walk(a.g)
                for sub in a.graphs:
                    walk(sub)

    walk(graph)
    return [t for t in out if is_external(t)]


def load_external_data(tensors, base_dir):
    """Read every tensor's external data from files inside base_dir into the tensor (raw_data;
    it no longer says external).  InvalidModel naming the tensor for any location, file,
    offset or length that is not allowed."""
    root = os.path.realpath(base_dir)
    if not os.path.isdir(root):
        raise InvalidModel(f"external_data_dir {base_dir!r} is not a folder")
    for t in tensors:
        t.raw_data = _read(t, root)
        t.data_location = 0  # DEFAULT
        del t.external_data[:]


def _read(t, root):
    where = f"tensor {t.name!r}"
    info = {e.key: e.value for e in t.external_data}
    location = info.get("location", "")
    if not location or "\0" in location:
        raise InvalidModel(f"{where}: its external data names no file")
    parts = location.replace("\\", "/").split("/")
    if os.path.isabs(location) or os.path.splitdrive(location)[0] or ".." in parts:
        raise InvalidModel(f"{where}: external data location {location!r} leaves the model's "
                           "folder (absolute paths and '..' are refused)")
    path = os.path.realpath(os.path.join(root, location))
    if os.path.commonpath([root, path]) != root:
        raise InvalidModel(f"{where}: external data location {location!r} resolves to {path!r}, "
                           f"outside the model's folder {root!r} (through a symbolic link)")
    offset, length = _int(info, "offset", where), _int(info, "length", where)
    want = _byte_size(t, where)
    flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_NOFOLLOW", 0) | \
        getattr(os, "O_CLOEXEC", 0) | getattr(os, "O_BINARY", 0)
    try:
        fd = os.open(path, flags)  # never blocks: a FIFO opens at once and is refused below
    except OSError as e:
        raise InvalidModel(f"{where}: cannot open external data file {location!r}: {e.strerror}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise InvalidModel(f"{where}: external data file {location!r} is not a regular file")
        offset = offset or 0
        length = st.st_size - offset if length is None else length
        if offset > st.st_size or length > st.st_size - offset:
            raise InvalidModel(f"{where}: external data {location!r} offset {offset} length "
                               f"{length} runs past the end of the file ({st.st_size} bytes)")
        if length != want:
            raise InvalidModel(f"{where}: external data {location!r} holds {length} bytes; the "
                               f"tensor's type and shape need {want}")
        data = _read_all(fd, offset, length)
    finally:
        os.close(fd)
    if len(data) != length:
        raise InvalidModel(f"{where}: external data file {location!r} changed while it was read")
    return data


def _int(info, key, where):
    """offset or length: absent (None) or a non-negative integer written in decimal."""
    value = info.get(key)
    if value is None:
        return None
    if not value.isdigit() or len(value) > 20:
        raise InvalidModel(f"{where}: external data {key} {value[:40]!r} is not a non-negative integer")
    return int(value)


def _byte_size(t, where):
    """The bytes a tensor's type and shape need."""
    from onnx import helper

    try:
        dtype = helper.tensor_dtype_to_np_dtype(t.data_type)
    except KeyError:
        dtype = None
    if dtype is None or dtype.kind in "OSU":
        raise InvalidModel(f"{where}: external data of element type {t.data_type} is not supported")
    count = 1
    for d in t.dims:
        if d < 0:
            raise InvalidModel(f"{where}: a negative dimension {d}")
        count *= d
    return (count + 1) // 2 if t.data_type in _HALF_BYTE else count * dtype.itemsize


def _read_all(fd, offset, length):
    chunks, done = [], 0
    while done < length:
        chunk = os.pread(fd, min(length - done, 1 << 26), offset + done) if hasattr(os, "pread") \
            else _seek_read(fd, offset + done, min(length - done, 1 << 26))
        if not chunk:
            break
        chunks.append(chunk)
        done += len(chunk)
    return b"".join(chunks)


def _seek_read(fd, offset, n):
    os.lseek(fd, offset, os.SEEK_SET)
    return os.read(fd, n)
