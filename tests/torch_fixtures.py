"""torch_fixtures.py: reading the PyTorch fixtures make_fixtures.py writes (the model path, the recorded feeds and torch's outputs, versions.json)."""
import json
import os

import numpy as np

HERE = os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures")
with open(os.path.join(HERE, "versions.json")) as _f:
    VERSIONS = json.load(_f)


def path(name):
    return os.path.join(HERE, name + ".onnx")


def recorded(name):
    """(feeds {input name: array}, [torch's outputs in graph output order]) of a fixture."""
    data = np.load(os.path.join(HERE, name + ".npz"))
    feeds = {k[3:]: data[k] for k in data.files if k.startswith("in_")}
    outs = [data[f"out_{i}"] for i in range(len(data.files) - len(feeds))]
    return feeds, outs


def close(a, b, tol=1e-5):
    assert a.shape == b.shape, (a.shape, b.shape)
    assert np.abs(a - b).max(initial=0) <= tol, np.abs(a - b).max()
