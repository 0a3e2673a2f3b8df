"""External data as hostile input, checked by gruinfer itself (not by onnx): from a path, bytes or a ModelProto, nothing outside the model's folder is read, only regular files are opened, nothing blocks, offsets and lengths are checked."""
import os
import signal
import stat

import numpy as np
import pytest
from onnx import TensorProto, helper, numpy_helper

import gruinfer
from gruinfer.onnx_io import external

I, H = 3, 4
SECRET = np.full(3 * H * I, 7.0, np.float32)   # what lies outside the model's folder
OWN = np.full(3 * H * I, 0.25, np.float32)     # the model's own W


def gru_model(location=None, offset=None, length=None):
    """One GRU whose W is external data at location (None: kept in the model)."""
    rng = np.random.default_rng(0)
    W = numpy_helper.from_array(OWN.reshape(1, 3 * H, I), "W")
    if location is not None:
        W.ClearField("raw_data")
        W.data_location = TensorProto.EXTERNAL
        for key, value in (("location", location), ("offset", offset), ("length", length)):
            if value is not None:
                e = W.external_data.add()
                e.key, e.value = key, str(value)
    R = numpy_helper.from_array((rng.standard_normal((1, 3 * H, H)) * 0.3).astype(np.float32), "R")
    node = helper.make_node("GRU", ["X", "W", "R"], ["Y", "Y_h"], name="gru", hidden_size=H)
    g = helper.make_graph([node], "g", [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["T", "N", I])],
                          [helper.make_tensor_value_info("Y_h", TensorProto.FLOAT, None)], [W, R])
    m = helper.make_model(g, opset_imports=[helper.make_opsetid("", 14)])
    m.ir_version = 8
    return m


@pytest.fixture
def folders(tmp_path):
    """tmp/model/ holds the model and its data; tmp/outside.bin lies beside it."""
    model_dir = tmp_path / "model"
    model_dir.mkdir()
    (tmp_path / "outside.bin").write_bytes(SECRET.tobytes())
    (model_dir / "w.bin").write_bytes(OWN.tobytes())
    return tmp_path, model_dir


class Blocked(Exception):
    pass


def _alarm(signum, frame):
    raise Blocked("loading blocked")


def load(kind, m, model_dir):
    """A session from a path (the model saved in model_dir), bytes or a ModelProto (with
    model_dir as external_data_dir), failing the test if it blocks for 5 s."""
    old = signal.signal(signal.SIGALRM, _alarm)
    signal.alarm(5)
    try:
        if kind == "path":
            path = model_dir / "m.onnx"
            path.write_bytes(m.SerializeToString())
            return gruinfer.InferenceSession(str(path))
        src = m.SerializeToString() if kind == "bytes" else m
        return gruinfer.InferenceSession(src, external_data_dir=str(model_dir))
    finally:
        signal.alarm(0)
        signal.signal(signal.SIGALRM, old)


def w_of(sess):
    return sess._graph.nodes[0].spec.W.reshape(-1)


# Hostile layouts: each makes a location (and offset, length) inside tmp/model.
def _dotdot(tmp, d):
    return ("../outside.bin",)


def _absolute(tmp, d):
    return (str(tmp / "outside.bin"),)


def _dotdot_inside_path(tmp, d):
    (d / "sub").mkdir()
    return ("sub/../../outside.bin",)


def _symlinked_file(tmp, d):
    os.symlink(tmp / "outside.bin", d / "link.bin")
    return ("link.bin",)


def _symlinked_folder(tmp, d):
    os.symlink(tmp, d / "up")
    return ("up/outside.bin",)


def _symlink_chain(tmp, d):
    os.symlink(tmp / "outside.bin", d / "a.bin")
    os.symlink(d / "a.bin", d / "b.bin")
    return ("b.bin",)


def _fifo(tmp, d):
    os.mkfifo(d / "pipe.bin")
    return ("pipe.bin",)


def _device(tmp, d):
    """A character device inside the folder (mknod, as root), else a link to one."""
    try:
        os.mknod(d / "null.bin", stat.S_IFCHR | 0o600, os.makedev(1, 3))
    except PermissionError:
        os.symlink("/dev/zero", d / "null.bin")
    return ("null.bin",)


def _link_to_device(tmp, d):
    os.symlink("/dev/zero", d / "zero.bin")
    return ("zero.bin",)


def _symlink_loop(tmp, d):
    os.symlink(d / "loop_b.bin", d / "loop_a.bin")
    os.symlink(d / "loop_a.bin", d / "loop_b.bin")
    return ("loop_a.bin",)


def _dangling_symlink(tmp, d):
    os.symlink(tmp / "gone.bin", d / "dangling.bin")
    return ("dangling.bin",)


def _backslash_dotdot(tmp, d):
    return ("..\\outside.bin",)


def _folder(tmp, d):
    (d / "dir.bin").mkdir()
    return ("dir.bin",)


def _missing(tmp, d):
    return ("nope.bin",)


def _huge_offset(tmp, d):
    return ("w.bin", 1 << 40, OWN.nbytes)


def _huge_length(tmp, d):
    return ("w.bin", 0, 1 << 40)


def _offset_past_end(tmp, d):
    return ("w.bin", OWN.nbytes + 1)


def _short_length(tmp, d):
    return ("w.bin", 0, OWN.nbytes - 4)


def _negative_offset(tmp, d):
    return ("w.bin", -4)


def _word_offset(tmp, d):
    return ("w.bin", "0x10")


def _empty_location(tmp, d):
    return ("",)


def _nul_in_location(tmp, d):
    return ("w.bin\0../outside.bin",)


HOSTILE = [_dotdot, _absolute, _dotdot_inside_path, _symlinked_file, _symlinked_folder,
           _symlink_chain, _symlink_loop, _dangling_symlink, _backslash_dotdot, _fifo, _device,
           _link_to_device, _folder, _missing, _huge_offset,
           _huge_length, _offset_past_end, _short_length, _negative_offset, _word_offset,
           _empty_location, _nul_in_location]


@pytest.mark.parametrize("kind", ["path", "bytes", "proto"])
@pytest.mark.parametrize("layout", HOSTILE, ids=lambda f: f.__name__.strip("_"))
def test_hostile_layouts_are_refused_without_reading_outside(folders, kind, layout, monkeypatch):
    tmp, d = folders
    monkeypatch.chdir(tmp)  # a working directory holding the outside file changes nothing
    m = gru_model(*layout(tmp, d))
    before = m.SerializeToString()
    with pytest.raises(gruinfer.InvalidModel, match="tensor 'W'"):
        load(kind, m, d)
    assert m.SerializeToString() == before  # a ModelProto given is never modified


@pytest.mark.parametrize("kind", ["path", "bytes", "proto"])
def test_data_inside_the_folder_is_read(folders, kind):
    tmp, d = folders
    sess = load(kind, gru_model("w.bin"), d)
    assert np.array_equal(w_of(sess), OWN)


@pytest.mark.parametrize("kind", ["path", "bytes", "proto"])
def test_offsets_and_a_link_inside_the_folder(folders, kind):
    tmp, d = folders
    (d / "data").mkdir()
    (d / "data" / "all.bin").write_bytes(b"\0" * 64 + OWN.tobytes() + b"\1" * 8)
    os.symlink(d / "data" / "all.bin", d / "alias.bin")  # a link that stays inside is fine
    sess = load(kind, gru_model("alias.bin", 64, OWN.nbytes), d)
    assert np.array_equal(w_of(sess), OWN)


def test_a_path_may_name_another_folder(folders, tmp_path):
    tmp, d = folders
    elsewhere = tmp / "data"
    elsewhere.mkdir()
    (elsewhere / "w.bin").write_bytes(OWN.tobytes())
    (d / "w.bin").unlink()
    path = d / "m.onnx"
    path.write_bytes(gru_model("w.bin").SerializeToString())
    sess = gruinfer.InferenceSession(str(path), external_data_dir=str(elsewhere))
    assert np.array_equal(w_of(sess), OWN)
    with pytest.raises(gruinfer.InvalidModel, match="cannot open"):
        gruinfer.InferenceSession(str(path))  # its own folder no longer holds the data


@pytest.mark.parametrize("kind", ["bytes", "proto"])
def test_bytes_and_protos_need_a_folder_named(folders, kind, monkeypatch):
    """Without external_data_dir nothing is read, not even from the working directory."""
    tmp, d = folders
    monkeypatch.chdir(d)  # w.bin is right here: still refused
    m = gru_model("w.bin")
    with pytest.raises(gruinfer.InvalidModel, match="external_data_dir"):
        gruinfer.InferenceSession(m.SerializeToString() if kind == "bytes" else m)


def test_external_data_dir_must_be_a_folder(folders):
    tmp, d = folders
    with pytest.raises(gruinfer.InvalidModel, match="not a folder"):
        gruinfer.InferenceSession(gru_model("w.bin").SerializeToString(),
                                  external_data_dir=str(d / "w.bin"))


def test_a_tensor_left_external_is_never_read_from_the_working_directory(folders, monkeypatch):
    """The last line of defence: a tensor still marked external when it is read (one the
    loader did not see) is refused, not looked for relative to the working directory."""
    tmp, d = folders
    monkeypatch.chdir(d)
    m = gru_model("w.bin")
    W = m.graph.initializer[0]
    with pytest.raises(gruinfer.InvalidModel, match="was not read"):
        gruinfer.onnx_io.proto.tensor_to_array(W, "initializer")


def test_every_kind_of_tensor_is_found():
    """Initializers, Constant attributes and tensors inside Loop bodies."""
    def ext(name):
        t = numpy_helper.from_array(np.zeros(2, np.float32), name)
        t.data_location = TensorProto.EXTERNAL
        return t

    body = helper.make_graph([helper.make_node("Constant", [], ["c"], value=ext("in_body"))], "b",
                             [], [], [ext("body_init")])
    g = helper.make_graph([helper.make_node("Constant", [], ["k"], value=ext("attr")),
                           helper.make_node("Loop", ["", ""], [], body=body)], "g", [], [],
                          [ext("init")])
    assert {t.name for t in external.external_tensors(g)} == {"in_body", "body_init", "attr", "init"}
