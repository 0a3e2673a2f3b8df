"""Randomly damaged fixture models (seeded): loading, running and streaming raise gruinfer's own errors, never anything else; tests/hostile.py's hostile models in worker processes never crash, hang or blow up either."""
import copy
import glob
import os
import random

import numpy as np
import onnx
import pytest
from onnx import numpy_helper

import gruinfer
import hostile

FILES = sorted(glob.glob(os.path.join(os.path.dirname(os.path.abspath(__file__)), "fixtures", "*.onnx")))


def damage(model, rng):
    """One random change: a truncated or altered initializer, an attribute, an input name,
    a removed node, or a node of another op."""
    m = copy.deepcopy(model)
    g = m.graph
    r = rng.random()
    if r < 0.3 and g.initializer:
        t = rng.choice(list(g.initializer))
        a = numpy_helper.to_array(t)
        if a.dtype.kind == "f" and a.size > 1:
            a = a.reshape(-1)[: rng.randint(1, a.size - 1)]
        elif a.dtype.kind in "iu" and a.size:
            a = a.copy()
            a.flat[rng.randrange(a.size)] = rng.choice([-5, 0, 3, 10**6])
        t.CopyFrom(numpy_helper.from_array(a, t.name))
    elif r < 0.55 and g.node:
        n = rng.choice(list(g.node))
        if n.attribute:
            at = rng.choice(list(n.attribute))
            if at.type == onnx.AttributeProto.INT:
                at.i = rng.choice([-3, 0, 2, 7, 10**9])
            elif at.type == onnx.AttributeProto.INTS:
                at.ints[:] = [rng.choice([-3, 0, 2, 7]) for _ in at.ints]
            elif at.type == onnx.AttributeProto.FLOAT:
                at.f = rng.choice([float("nan"), -1.0, 0.0, 1e30])
    elif r < 0.75 and g.node:
        n = rng.choice(list(g.node))
        if n.input:
            n.input[rng.randrange(len(n.input))] = rng.choice(
                ["", "nope"] + [x.name for x in g.initializer][:3])
    elif r < 0.9 and g.node:
        del g.node[rng.randrange(len(g.node))]
    elif g.node:
        rng.choice(list(g.node)).op_type = rng.choice(["Relu", "Add", "GRU", "Transpose", "Squeeze"])
    return m


def feeds_for(sess, rng):
    out = {}
    for a in sess.get_inputs():
        shape = [d if isinstance(d, int) and d > 0 else 3 for d in (a.shape or [3, 2, 4])]
        arr = np.random.default_rng(rng.randrange(1000)).random(shape) * 3
        out[a.name] = arr.astype(np.int64 if "int" in a.type else np.float32)
    return out


@pytest.mark.parametrize("seed", range(4))
def test_damaged_models_raise_gruinfer_errors(seed):
    assert FILES
    rng = random.Random(seed)
    models = {f: onnx.load(f) for f in FILES}
    for _ in range(150):
        m = damage(models[rng.choice(FILES)], rng)
        try:
            sess = gruinfer.InferenceSession(m.SerializeToString())
            feeds = feeds_for(sess, rng)
            sess.run(None, feeds)
            sess.stream(2).run(None, feeds)
        except gruinfer.GruinferError:
            pass


@pytest.mark.parametrize("seed", [0, 1])
def test_hostile_models_never_crash_hang_or_leak_an_internal_error(seed):
    """tests/hostile.py's seeded hostile models (fixtures damaged byte by byte and field by field,
    hostile nodes grafted on, random graphs, cell-like graphs, external-data tricks), many per
    worker process: none kills its worker, hangs it for hostile.HANG_SECONDS, raises anything
    but a gruinfer error or pushes RSS past hostile.RSS_LIMIT.  By hand, for longer:
    python tests/hostile.py --seed S --count N."""
    findings, counts = hostile.run(seed, 0, 700, batch=700)
    assert findings == []
    assert sum(counts.values()) == 700 and counts.get("ok", 0) > 0
