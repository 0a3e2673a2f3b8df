"""The `gruinfer` command: the demo on the bundled model, `run` on an exported model, `kernels`."""
import os
import re

import pytest

from gruinfer import cli

FIXTURES = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")


def diff_of(text):
    m = re.search(r"max \|diff\| = ([0-9.e+-]+)", text)
    assert m, text
    return float(m.group(1))


def test_demo(capsys):
    assert cli.main(["demo", "--steps", "30"]) == 0
    out = capsys.readouterr().out
    assert "demo.onnx" in out and "stream  C plan" in out
    assert diff_of(out) <= 1e-5


@pytest.mark.parametrize("name", ["gru2_bf_sigmoid_ts", "gru2_bf_default", "paddle_gru2_linear", "keras_stacked_dense"])
def test_run_exported(name, capsys):
    assert cli.main(["run", os.path.join(FIXTURES, name + ".onnx"), "--steps", "9", "--batch", "2"]) == 0
    assert diff_of(capsys.readouterr().out) <= 1e-5


def test_run_not_streamable(capsys):
    assert cli.main(["run", os.path.join(FIXTURES, "keras_bidir.onnx"), "--steps", "5"]) == 0
    assert "not streamable" in capsys.readouterr().out


def test_kernels(capsys):
    assert cli.main(["kernels"]) == 0
    assert re.search(r"selected\s+\w+", capsys.readouterr().out)
