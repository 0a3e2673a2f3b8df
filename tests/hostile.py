"""Seeded hostile ONNX models and the subprocess harness that feeds them to gruinfer: every load, run and stream call must end in a gruinfer error or a result, never a crash, a hang, an internal exception or a memory blow-up.

Models (model(seed, index) is a pure function of its arguments): byte flips and truncations of
the fixtures; proto mutations of them (attribute types and values, names with bytes that are not
UTF-8, arities, dims, element types, node order and cycles, op types, subgraphs); hostile nodes
grafted on (huge constants and broadcasts, Loops that never end, EyeLike of nothing, Concat with
an attribute it lacks); small random graphs of schema ops with random attributes; GRU-cell-like
graphs that send the cell lifter to shape inference; external-data tricks.

The harness runs many models per worker process; the worker reports each index before it starts
it, so a death (signal) or a hang (no report for HANG_SECONDS) names the model, and a new worker
goes on after it.  By hand:  python tests/hostile.py --seed 7 --count 100000 [--start N]
"""
import argparse
import glob
import json
import os
import random
import resource
import select
import subprocess
import sys
import tempfile
import time
import traceback

import numpy as np

HERE = os.path.dirname(os.path.abspath(__file__))
FIXTURES = sorted(glob.glob(os.path.join(HERE, "fixtures", "*.onnx")))
HANG_SECONDS = 20
RSS_LIMIT = 2 << 30            # a model whose load/run pushes RSS past this is a blow-up
AS_LIMIT = 6 << 30             # the worker's address space: the machine is never exhausted
BIG = [2**40, 2**31, 2**31 - 1, -1, -2, -2147483649, 2**63 - 1, -2**63, 0, 1 << 28, 1 << 15]
ODD = [b"\xff\xfe", b"\xc3", b"\xed\xa0\x80", b"\x00", b"\xe2\x82"]

_fixture_bytes = None


def fixtures():
    global _fixture_bytes
    if _fixture_bytes is None:
        _fixture_bytes = [open(f, "rb").read() for f in FIXTURES]
    return _fixture_bytes


# ---------------------------------------------------------------- generation

def identity_loop_body():
    """A Loop body (i, c, v) -> (c, v) that changes nothing: the Loop runs as long as its trip
    count and condition say."""
    from onnx import TensorProto as TP, helper as h

    return h.make_graph([h.make_node("Identity", ["c"], ["c2"]), h.make_node("Identity", ["v"], ["v2"])],
                        "b", [h.make_tensor_value_info("i", TP.INT64, []),
                              h.make_tensor_value_info("c", TP.BOOL, []),
                              h.make_tensor_value_info("v", TP.FLOAT, None)],
                        [h.make_tensor_value_info("c2", TP.BOOL, []),
                         h.make_tensor_value_info("v2", TP.FLOAT, None)])


def model(seed, index):
    """(bytes of model number `index` of `seed`, external_data_dir or None)."""
    rng = random.Random(f"{seed}:{index}")
    kind = rng.random()
    if kind < 0.15:
        return flip_bytes(rng), None
    if kind < 0.55:
        return mutate_fixture(rng), None
    if kind < 0.70:
        return serialize(graft(rng, fixture_proto(rng)), rng), None
    if kind < 0.85:
        return serialize(random_graph(rng), rng), None
    if kind < 0.95:
        return serialize(cell_like(rng), rng), None
    return external_trick(rng)


def fixture_proto(rng):
    import onnx

    return onnx.load_model_from_string(rng.choice(fixtures()))


def flip_bytes(rng):
    data = bytearray(rng.choice(fixtures()))
    for _ in range(rng.choice([1, 1, 2, 5, 20])):
        r = rng.random()
        if r < 0.6:
            data[rng.randrange(len(data))] = rng.randrange(256)
        elif r < 0.8:
            del data[rng.randrange(len(data)):]
            if not data:
                break
        else:
            at = rng.randrange(len(data))
            data[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
    return bytes(data)


def serialize(m, rng):
    """The model's bytes, with names tagged "\x01BAD\x01..." replaced by bytes that are not UTF-8."""
    data = m.SerializeToString()
    tag = b"\x01BAD\x01"
    while tag in data:
        data = data.replace(tag, rng.choice(ODD).ljust(len(tag), b"\xff")[:len(tag)], 1)
    return data


def graphs_of(g):
    """g and every subgraph in it."""
    out = [g]
    for n in g.node:
        for a in n.attribute:
            if a.HasField("g"):
                out += graphs_of(a.g)
            for sub in a.graphs:
                out += graphs_of(sub)
    return out


def mutate_fixture(rng):
    m = fixture_proto(rng)
    for _ in range(rng.choice([1, 1, 1, 2, 3, 6])):
        mutate(rng, m)
    return serialize(m, rng)


def value_names(g):
    names = [v.name for v in g.input] + [t.name for t in g.initializer]
    for n in g.node:
        names += list(n.output)
    return names or ["x"]


def mutate(rng, m):
    """One change to the model in place."""
    import onnx
    from onnx import AttributeProto

    g = rng.choice(graphs_of(m.graph))
    nodes = list(g.node)
    r = rng.random()
    if r < 0.3 and nodes:
        mutate_attribute(rng, rng.choice(nodes), m)
    elif r < 0.42 and nodes:
        n = rng.choice(nodes)
        c = rng.random()
        if c < 0.3 and n.input:
            n.input[rng.randrange(len(n.input))] = rng.choice(["", "nope", "\x01BAD\x01"] + value_names(g))
        elif c < 0.5:
            n.input.append(rng.choice(["", *value_names(g)]))
        elif c < 0.65 and n.input:
            del n.input[rng.randrange(len(n.input))]
        elif c < 0.8 and n.output:
            n.output[rng.randrange(len(n.output))] = rng.choice(["", "\x01BAD\x01"] + value_names(g))
        elif c < 0.9:
            n.output.append(rng.choice(["extra", n.input[0] if n.input else "x"]))
        elif n.output and n.input:  # a self-loop
            n.input[rng.randrange(len(n.input))] = n.output[0]
    elif r < 0.52 and len(nodes) > 1:
        i, j = rng.randrange(len(nodes)), rng.randrange(len(nodes))
        a, b = onnx.NodeProto(), onnx.NodeProto()
        a.CopyFrom(nodes[i])
        b.CopyFrom(nodes[j])
        g.node[i].CopyFrom(b)
        g.node[j].CopyFrom(a)
        if rng.random() < 0.3 and nodes[j].output:  # and a cycle
            g.node[i].input.append(g.node[j].output[0])
    elif r < 0.62:
        vis = list(g.input) + list(g.output) + list(g.value_info)
        if vis:
            v = rng.choice(vis)
            t = v.type.tensor_type
            c = rng.random()
            if c < 0.6:
                if not t.shape.dim:
                    t.shape.dim.add()
                d = rng.choice(list(t.shape.dim))
                if rng.random() < 0.8:
                    d.dim_value = rng.choice(BIG)
                else:
                    d.dim_param = rng.choice(["", "\x01BAD\x01", "T"])
            elif c < 0.85:
                t.elem_type = rng.choice([0, 2, 7, 9, 11, 14, 16, 23, 99, -3])
            else:
                v.type.ClearField("tensor_type")
    elif r < 0.72 and g.initializer:
        t = rng.choice(list(g.initializer))
        c = rng.random()
        if c < 0.3 and t.dims:
            t.dims[rng.randrange(len(t.dims))] = rng.choice(BIG + [3])
        elif c < 0.5:
            t.data_type = rng.choice([0, 2, 6, 7, 9, 10, 11, 16, 17, 99])
        elif c < 0.7 and t.raw_data:
            t.raw_data = t.raw_data[:rng.randrange(len(t.raw_data))]
        elif c < 0.8:
            t.name = "\x01BAD\x01"
        else:
            t.dims.append(rng.choice([0, 2, 1 << 20]))
    elif r < 0.82 and nodes:
        n = rng.choice(nodes)
        n.op_type = rng.choice(["Relu", "Add", "GRU", "Transpose", "Squeeze", "Loop", "EyeLike",
                                "Concat", "Split", "Slice", "MatMul", "Gemm", "Reshape", "Where",
                                "Unsqueeze", "Gather", "Cast", "Expand", "If", "Scan", "\x01BAD\x01",
                                "ConstantOfShape", "Range", "Tile", "Pad", "Conv", "TopK"])
        if rng.random() < 0.1:
            n.domain = rng.choice(["com.microsoft", "ai.onnx.ml", "\x01BAD\x01"])
    elif r < 0.88 and nodes:
        n = rng.choice(nodes)
        n.name = rng.choice(["\x01BAD\x01", "", nodes[0].name])
    elif r < 0.92:
        for imp in m.opset_import:
            imp.version = rng.choice([1, 6, 7, 9, 13, 17, 22, 30, 0, -1, 2**40])
    elif nodes:
        del g.node[rng.randrange(len(nodes))]
    _ = AttributeProto


def mutate_attribute(rng, n, m):
    from onnx import AttributeProto, TensorProto, helper

    c = rng.random()
    if c < 0.15 or not n.attribute:  # an attribute the op may lack, of any type
        a = n.attribute.add()
        a.name = rng.choice(["axis", "perm", "body", "to", "value", "foo", "\x01BAD\x01", "axes",
                             "hidden_size", "direction", "activations", "then_branch"])
        fill_attribute(rng, a)
        return
    a = rng.choice(list(n.attribute))
    if c < 0.35:  # the type field says one thing, the data another
        a.type = rng.choice([0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 13, 14])
    elif c < 0.7:
        a.ClearField("i"), a.ClearField("f"), a.ClearField("s"), a.ClearField("ints")
        a.ClearField("floats"), a.ClearField("strings"), a.ClearField("t"), a.ClearField("g")
        fill_attribute(rng, a)
    elif c < 0.9:
        if a.type == AttributeProto.INT:
            a.i = rng.choice(BIG)
        elif a.type == AttributeProto.INTS:
            a.ints[:] = [rng.choice(BIG + [0, 1, 2, -1]) for _ in range(rng.choice([0, 1, len(a.ints), 9]))]
        elif a.type == AttributeProto.FLOAT:
            a.f = rng.choice([float("nan"), float("inf"), -1.0, 1e30, 0.0])
        elif a.type == AttributeProto.STRING:
            a.s = rng.choice([b"", b"\xff\xfe", b"relu", b"forward", b"bidirectional", b"x" * 1000])
        elif a.type == AttributeProto.STRINGS:
            a.strings[:] = [rng.choice([b"", b"\xff", b"Sigmoid", b"Tanh", b"Nope"]) for _ in range(rng.randint(0, 7))]
        elif a.type == AttributeProto.GRAPH:
            for _ in range(rng.randint(1, 3)):
                mutate(rng, _wrap(a.g))
        elif a.type == AttributeProto.TENSOR:
            d = rng.choice([0, 1, 3])
            a.t.CopyFrom(helper.make_tensor("t", rng.choice([1, 7, 11, 9]), [d], [1] * d))
    else:
        del n.attribute[rng.randrange(len(n.attribute))]
    _ = TensorProto, m


def _wrap(g):
    """A ModelProto-like holder whose .graph is g (mutate reads model.graph and opset_import)."""
    class Holder:
        graph = g
        opset_import = []
    return Holder


def fill_attribute(rng, a):
    from onnx import AttributeProto, helper

    t = rng.choice([1, 2, 3, 4, 5, 6, 7, 8])
    a.type = t if rng.random() < 0.9 else rng.choice([0, 11, 13])
    if t == AttributeProto.FLOAT:
        a.f = rng.choice([float("nan"), 1.0, -1e30, 0.5])
    elif t == AttributeProto.INT:
        a.i = rng.choice(BIG + [0, 1, 2])
    elif t == AttributeProto.STRING:
        a.s = rng.choice([b"\xff", b"forward", b"Tanh", b""])
    elif t == AttributeProto.TENSOR:
        a.t.CopyFrom(helper.make_tensor("t", 1, [2], [1.0, 2.0]))
    elif t == AttributeProto.GRAPH:
        a.g.CopyFrom(helper.make_graph([helper.make_node("Identity", ["i"], ["o"])], "b", [], []))
    elif t == AttributeProto.FLOATS:
        a.floats[:] = [rng.choice([float("nan"), 1.0, 2.0]) for _ in range(rng.randint(0, 4))]
    elif t == AttributeProto.INTS:
        a.ints[:] = [rng.choice(BIG + [0, 1, 2]) for _ in range(rng.randint(0, 4))]
    elif t == AttributeProto.STRINGS:
        a.strings[:] = [rng.choice([b"\xff", b"Sigmoid", b"Tanh"]) for _ in range(rng.randint(0, 4))]


def graft(rng, m):
    """The model with hostile nodes added, reading its values and feeding its outputs."""
    from onnx import TensorProto as TP, helper as h, numpy_helper as nh

    g = m.graph
    names = value_names(g)
    out = f"hostile{rng.randrange(1000)}"
    k = rng.randrange(12)
    big = rng.choice([1 << 15, 1 << 20, 1 << 28, 1 << 40, 1 << 62, 3])
    if k == 0:
        nodes = [h.make_node("ConstantOfShape", ["shp"], [out])]
        g.initializer.append(nh.from_array(np.array([big, rng.choice([big, 1, 2])], np.int64), "shp"))
    elif k == 1:
        g.initializer.append(nh.from_array(np.ones((min(big, 1 << 15), 1), np.float32), "ca"))
        g.initializer.append(nh.from_array(np.ones((1, min(big, 1 << 15)), np.float32), "cb"))
        nodes = [h.make_node("MatMul", ["ca", "cb"], [out])]
    elif k == 2:
        g.initializer.append(nh.from_array(np.ones([1 << 10, 1, 1, 1], np.float32), "ma"))
        g.initializer.append(nh.from_array(np.ones([1, 1 << 10, 1, 1], np.float32), "mb"))
        g.initializer.append(nh.from_array(np.ones([1, 1, 1 << 10, 1], np.float32), "mc"))
        nodes = [h.make_node("Mul", ["ma", "mb"], ["m1"]), h.make_node("Mul", ["m1", "mc"], [out])]
    elif k == 3:
        g.initializer.append(nh.from_array(np.array(0, np.int64), "r0"))
        g.initializer.append(nh.from_array(np.array(big, np.int64), "r1"))
        g.initializer.append(nh.from_array(np.array(1, np.int64), "r2"))
        nodes = [h.make_node("Range", ["r0", "r1", "r2"], ["rr"]),
                 h.make_node("Cast", ["rr"], [out], to=TP.DOUBLE)]
    elif k == 4:  # a Loop that never ends, or runs 2**40 times
        body = identity_loop_body()
        g.initializer.append(nh.from_array(np.array(big, np.int64), "trip"))
        g.initializer.append(nh.from_array(np.array(True), "cond"))
        g.initializer.append(nh.from_array(np.ones(2, np.float32), "v0"))
        nodes = [h.make_node("Loop", [rng.choice(["trip", ""]), "cond", "v0"], [out], body=body)]
    elif k == 5:
        nodes = [h.make_node("EyeLike", [""], [out])]
    elif k == 6:
        src = rng.choice(names)
        nodes = [h.make_node("Concat", [src, src], [out], axis=0, **{rng.choice(["foo", "perm", "to"]): 3})]
    elif k == 7:
        g.initializer.append(nh.from_array(np.array([big] * 2, np.int64), "reps"))
        nodes = [h.make_node(rng.choice(["Tile", "Expand"]), [rng.choice(names), "reps"], [out])]
    elif k == 8:
        g.initializer.append(nh.from_array(np.array([0, big], np.int64), "pads"))
        g.initializer.append(nh.from_array(np.ones(3, np.float32), "pv"))
        nodes = [h.make_node("Pad", ["pv", "pads"], [out])]
    elif k == 9:  # a cycle through two new nodes
        nodes = [h.make_node("Relu", ["cy2"], ["cy1"]), h.make_node("Relu", ["cy1"], ["cy2"]),
                 h.make_node("Identity", ["cy2"], [out])]
    elif k == 10:
        g.initializer.append(nh.from_array(np.ones([1 << 12, 1 << 12], np.float32)[:1], "gt"))
        g.initializer.append(nh.from_array(np.zeros([big if big < 1 << 30 else 7], np.int64)[:1 << 16], "gi"))
        nodes = [h.make_node("Gather", ["gt", "gi"], [out])]
    else:
        nodes = [h.make_node(rng.choice(["Slice", "Split", "Reshape", "Squeeze", "TopK"]),
                             [rng.choice(names) for _ in range(rng.randint(0, 5))], [out])]
    for n in nodes:
        g.node.insert(rng.randint(0, len(g.node)) if rng.random() < 0.2 else len(g.node), n)
    g.output.append(h.make_tensor_value_info(out, TP.FLOAT, None))
    return m


def random_graph(rng):
    """A small graph of random schema ops, inputs and attributes (some of the wrong type)."""
    from onnx import AttributeProto, TensorProto as TP, defs, helper as h, numpy_helper as nh

    ops = ["Add", "Mul", "MatMul", "Gemm", "Relu", "Sigmoid", "Tanh", "Concat", "Slice", "Reshape",
           "Transpose", "Squeeze", "Unsqueeze", "Gather", "Split", "Expand", "Shape", "Cast",
           "ConstantOfShape", "Range", "Where", "Loop", "ReduceMean", "Softmax", "LayerNormalization",
           "Conv", "Pad", "Tile", "TopK", "CumSum", "ArgMax", "Flatten", "Clip", "GRU", "Identity",
           "Constant", "EyeLike", "If", "Scan", "NonZero", "ScatterElements", "GatherElements",
           "Equal", "Not", "Sum", "Max", "Pow", "ReverseSequence", "BatchNormalization", "Dropout"]
    opset = rng.choice([9, 11, 13, 14, 17, 18, 21])
    inputs = [h.make_tensor_value_info("x", rng.choice([TP.FLOAT, TP.FLOAT, TP.INT64]),
                                       rng.choice([[2, 3], ["T", 1, 4], None, [3], [], [-2, 4]]))]
    inits = [nh.from_array(np.asarray(v), f"c{i}") for i, v in enumerate([
        np.ones((2, 3), np.float32), np.array([1, 2], np.int64), np.array(0, np.int64),
        np.array([3, 2], np.int64), np.float32(2.0), np.array([True])])]
    names = ["x"] + [t.name for t in inits]
    nodes = []
    for i in range(rng.randint(1, 8)):
        op = rng.choice(ops)
        try:
            s = defs.get_schema(op, opset, "")
            n_in = rng.randint(s.min_input, min(s.max_input, s.min_input + 2))
            n_out = rng.randint(s.min_output, min(s.max_output, s.min_output + 1))
            schema_attrs = list(s.attributes.values())
        except defs.SchemaError:
            n_in, n_out, schema_attrs = rng.randint(0, 3), 1, []
        node = h.make_node(op, [rng.choice(names + [""]) if rng.random() < 0.1 else rng.choice(names)
                                for _ in range(n_in)], [f"v{i}_{k}" for k in range(n_out)])
        for sa in schema_attrs:
            if rng.random() < 0.5:
                a = node.attribute.add()
                a.name = sa.name
                want = int(sa.type)
                if rng.random() < 0.8 and want != AttributeProto.GRAPH:
                    a.type = want
                    fill_typed(rng, a, want)
                elif want == AttributeProto.GRAPH and rng.random() < 0.7:
                    a.type = want
                    a.g.CopyFrom(random_body(rng))
                else:
                    fill_attribute(rng, a)
        nodes.append(node)
        names += list(node.output)
    outs = [h.make_tensor_value_info(o, TP.FLOAT, None) for o in nodes[-1].output[:1]]
    g = h.make_graph(nodes, "r", inputs, outs, inits)
    return h.make_model(g, opset_imports=[h.make_opsetid("", opset)])


def fill_typed(rng, a, t):
    from onnx import AttributeProto, helper

    if t == AttributeProto.INT:
        a.i = rng.choice([0, 1, -1, 2, 3] * 3 + BIG)
    elif t == AttributeProto.INTS:
        a.ints[:] = [rng.choice([0, 1, -1, 2] * 3 + BIG) for _ in range(rng.randint(0, 4))]
    elif t == AttributeProto.FLOAT:
        a.f = rng.choice([0.5, 1.0, 0.0, float("nan"), 1e-5])
    elif t == AttributeProto.FLOATS:
        a.floats[:] = [rng.choice([0.5, 1.0, float("nan")]) for _ in range(rng.randint(0, 3))]
    elif t == AttributeProto.STRING:
        a.s = rng.choice([b"forward", b"reverse", b"bidirectional", b"\xff", b"constant", b"NOTSET"])
    elif t == AttributeProto.STRINGS:
        a.strings[:] = [rng.choice([b"Sigmoid", b"Tanh", b"Relu", b"\xff"]) for _ in range(rng.randint(0, 6))]
    elif t == AttributeProto.TENSOR:
        d = rng.choice([1, 2])
        a.t.CopyFrom(helper.make_tensor("t", rng.choice([1, 7, 9]), [d], [1] * d))
    else:
        fill_attribute(rng, a)


def random_body(rng):
    from onnx import TensorProto as TP, helper as h

    n = rng.randint(0, 3)
    ins = [h.make_tensor_value_info(f"b{i}", rng.choice([TP.INT64, TP.BOOL, TP.FLOAT]), rng.choice([[], None, [2]]))
           for i in range(n)]
    nodes = [h.make_node(rng.choice(["Identity", "Add", "Not", "Relu"]),
                         [rng.choice([f"b{i}" for i in range(n)] + ["x", "c0"])], [f"bo{j}"]) for j in range(rng.randint(0, 3))]
    outs = [h.make_tensor_value_info(nd.output[0], rng.choice([TP.BOOL, TP.FLOAT]), None) for nd in nodes]
    return h.make_graph(nodes, "body", ins, outs)


def cell_like(rng):
    """The shape of a GRU cell written as plain ops (the cell lifter proves it with shape
    inference), with one hostile node beside it."""
    from onnx import TensorProto as TP, helper as h, numpy_helper as nh

    x = h.make_tensor_value_info("x", TP.FLOAT, [1, rng.choice([4, -2, 0, -2147483649, 2**40, 4])])
    nodes = [h.make_node("MatMul", ["x", "W"], ["a"]), h.make_node("MatMul", ["x", "W"], ["b"]),
             h.make_node("Sigmoid", ["a"], ["s"]), h.make_node("Mul", ["s", "b"], ["p"]),
             h.make_node("Mul", ["p", "b"], ["y"])]
    hostile = rng.choice([
        h.make_node("EyeLike", [""], ["e"]), h.make_node("Split", ["x"], ["e", "e2"], num_outputs=3),
        h.make_node("Slice", ["x", "", ""], ["e"]), h.make_node("Reshape", ["x", ""], ["e"]),
        h.make_node("Concat", ["x", "x"], ["e"], axis=rng.choice([0, 5, -9])),
        h.make_node("Transpose", ["x"], ["e"], perm=[rng.choice([0, 5]), 1]),
        h.make_node("Unsqueeze", ["x"], ["e"], axes=[2**40]),
        h.make_node("Loop", ["", ""], ["e"]), h.make_node("Gemm", ["x", "W", ""], ["e"], transA=7),
        h.make_node("Cast", ["x"], ["e"], to=rng.choice([0, 99, -1])),
        h.make_node("ConstantOfShape", ["x"], ["e"]), h.make_node("TopK", ["x", "x"], ["e", "e2"]),
        h.make_node("Gather", ["x", "W"], ["e"], axis=2**40),
        h.make_node("Conv", ["x", "W"], ["e"], kernel_shape=[-2], strides=[0]),
    ])
    nodes.insert(rng.randint(0, len(nodes)), hostile)
    W = np.eye(4, dtype=np.float32) if rng.random() < 0.8 else np.eye(rng.choice([1, 3]), dtype=np.float32)
    outs = [h.make_tensor_value_info("y", TP.FLOAT, None)]
    if rng.random() < 0.5:
        outs.append(h.make_tensor_value_info("e", TP.FLOAT, None))
    g = h.make_graph(nodes, "g", [x], outs, [nh.from_array(W, "W")])
    m = h.make_model(g, opset_imports=[h.make_opsetid("", rng.choice([13, 17, 18]))])
    if rng.random() < 0.3:
        mutate(rng, m)
    return m


def external_trick(rng):
    """A fixture whose tensor points to external data it must not read (outside the folder, a
    device, a directory, past the end), with and without an external_data_dir."""
    from onnx import TensorProto

    m = fixture_proto(rng)
    if not m.graph.initializer:
        return serialize(m, rng), None
    t = rng.choice(list(m.graph.initializer))
    t.ClearField("raw_data")
    t.ClearField("float_data")
    t.data_location = TensorProto.EXTERNAL
    entries = {"location": rng.choice(["../../../etc/passwd", "/etc/passwd", "/dev/zero", ".", "w.data",
                                       "\x01BAD\x01", "", "a/../../x", "/proc/self/mem"]),
               "offset": str(rng.choice([0, -1, 2**63, 5])), "length": str(rng.choice([0, 4, -3, 2**40]))}
    for k, v in entries.items():
        if rng.random() < 0.8:
            e = t.external_data.add()
            e.key, e.value = k, v
    return serialize(m, rng), (HERE if rng.random() < 0.5 else None)


# ---------------------------------------------------------------- exercising one model

def feeds_for(sess, rng):
    out = {}
    for a in sess.get_inputs():
        shape = [d if isinstance(d, int) and 0 < d <= 64 else rng.choice([1, 2, 3]) for d in (a.shape or [3, 1, 4])]
        arr = np.random.default_rng(rng.randrange(1000)).random(shape) * 3
        kind = "int64" if "int" in a.type else "bool" if "bool" in a.type else "float32"
        out[a.name] = arr.astype(kind)
    return out


def exercise(data, ext_dir, rng):
    """Load, run and stream one model; returns "ok" or the name of the gruinfer error that
    refused it.  Anything else raised is the harness's finding."""
    import gruinfer

    try:
        sess = gruinfer.InferenceSession(data, external_data_dir=ext_dir)
    except gruinfer.GruinferError as e:
        return type(e).__name__
    try:
        feeds = feeds_for(sess, rng)
        sess.run(None, feeds)
        sess.plan_info()
        s = sess.stream(1)
        s.run(None, feeds)
        s.reset()
        s.set_state(s.get_state())
    except gruinfer.GruinferError as e:
        return "run:" + type(e).__name__
    return "ok"


def worker(seed, start, count):
    """Exercise models start..start+count of seed, printing "start i" before each, "end
    OUTCOME" after it, one JSON finding per internal exception or blow-up, and "done" at the end
    of the batch; stops after a blow-up (RSS stays high)."""
    resource.setrlimit(resource.RLIMIT_AS, (AS_LIMIT, AS_LIMIT))
    import gruinfer  # noqa: F401  (imported before the first report: its import is not a hang)

    for i in range(start, start + count):
        print(f"start {i}", flush=True)
        rng = random.Random(f"feeds:{seed}:{i}")
        try:
            data, ext = model(seed, i)
        except Exception:  # the generator's own bug: say so, the model is skipped
            print(json.dumps({"index": i, "kind": "generator", "detail": traceback.format_exc()}), flush=True)
            continue
        try:
            outcome = exercise(data, ext, rng)
        except BaseException as e:  # the finding: anything not gruinfer's (MemoryError included)
            outcome = "internal"
            print(json.dumps({"index": i, "kind": "internal", "type": type(e).__name__,
                              "detail": traceback.format_exc()[-3000:]}), flush=True)
        print(f"end {outcome}", flush=True)
        rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        if rss > RSS_LIMIT:
            print(json.dumps({"index": i, "kind": "rss", "rss": rss}), flush=True)
            break
    print("done", flush=True)


def run(seed, start, count, batch=2000, log=None, sink=None):
    """Exercise models start..start+count of seed in worker processes, batch at a time; returns
    (findings, outcome counts).  A worker's death or hang names its model and a new worker
    goes on after it.  sink(finding) is called on each as it is found."""
    findings, counts, i, end = [], {}, start, start + count

    def add(finding):
        findings.append(finding)
        if sink:
            sink(finding)

    while i < end:
        n = min(batch, end - i)
        proc = subprocess.Popen([sys.executable, os.path.abspath(__file__), "--worker", str(seed), str(i), str(n)],
                                stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=HERE)
        current, done = None, False
        while True:
            ready, _, _ = select.select([proc.stdout], [], [], HANG_SECONDS)
            if not ready:
                proc.kill()
                add({"index": current, "kind": "hang"})
                break
            line = proc.stdout.readline()
            if not line:
                break
            if line.startswith("start "):
                current = int(line.split()[1])
            elif line.startswith("end "):
                outcome = line.split()[1]
                counts[outcome] = counts.get(outcome, 0) + 1
            elif line.startswith("done"):
                done = not (findings and findings[-1]["kind"] == "rss" and findings[-1]["index"] == current)
            else:
                add(json.loads(line))
        proc.wait()
        err = proc.stderr.read()
        if current is None and not done:
            raise RuntimeError(f"the worker did not start: {err[-2000:]}")
        if not done and (not findings or findings[-1].get("kind") not in ("hang", "rss")):
            add({"index": current, "kind": "crash", "returncode": proc.returncode,
                 "detail": err[-3000:]})
        if log:
            log(i, n, findings, counts)
        # after a death, a hang or a blow-up at model `current`, go on after it
        i = i + n if done else (current if current is not None else i) + 1
    return findings, counts


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    p.add_argument("--worker", nargs=3, type=int, metavar=("SEED", "START", "COUNT"))
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--start", type=int, default=0)
    p.add_argument("--count", type=int, default=10000)
    p.add_argument("--batch", type=int, default=2000)
    p.add_argument("--out", help="write findings here as JSON lines")
    args = p.parse_args()
    if args.worker:
        worker(*args.worker)
        return
    t0 = time.time()

    def log(i, n, findings, counts):
        print(f"[{time.time() - t0:7.0f}s] seed {args.seed} models {args.start}..{i + n}: "
              f"{len(findings)} findings, {counts}", flush=True)

    out = open(args.out, "w") if args.out else None

    def sink(finding):
        if out:
            out.write(json.dumps(finding) + "\n")
            out.flush()

    findings, counts = run(args.seed, args.start, args.count, args.batch, log, sink)
    kinds = {}
    for x in findings:
        kinds[x["kind"]] = kinds.get(x["kind"], 0) + 1
    print(f"seed {args.seed}: {args.count} models, outcomes {counts}, findings {kinds}")
    sys.exit(1 if findings else 0)


if __name__ == "__main__":
    main()
