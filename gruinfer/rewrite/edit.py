"""rewrite/edit.py: editing ONNX graphs for every rewrite: the names a node reads, fresh names, one node builder, one prune, one topological order."""
import numpy as np

import onnx
from onnx import helper, numpy_helper


def node_reads(node):
    """Names a node reads: its inputs and, for control flow, the outer names its subgraphs use."""
    reads = [n for n in node.input if n]
    for a in node.attribute:
        if a.type == onnx.AttributeProto.GRAPH:
            reads.extend(graph_free_names(a.g))
        elif a.type == onnx.AttributeProto.GRAPHS:
            for g in a.graphs:
                reads.extend(graph_free_names(g))
    return reads


def graph_free_names(g):
    """The outer names a subgraph reads (neither its inputs, its initializers nor its nodes' outputs)."""
    defined = {v.name for v in g.input} | {t.name for t in g.initializer}
    defined |= {t.values.name for t in g.sparse_initializer}
    free = []
    for node in g.node:
        free.extend(n for n in node_reads(node) if n not in defined)
        defined.update(node.output)
    free.extend(o.name for o in g.output if o.name not in defined)
    return free


def all_names(graph):
    """Every name a graph and its subgraphs use (values, initializers, nodes)."""
    names = set()

    def walk(g):
        names.update(v.name for v in g.input)
        names.update(v.name for v in g.output)
        names.update(t.name for t in g.initializer)
        names.update(v.name for v in g.value_info)
        for node in g.node:
            names.update(node.input)
            names.update(node.output)
            names.add(node.name)
            for a in node.attribute:
                if a.type == onnx.AttributeProto.GRAPH:
                    walk(a.g)
                elif a.type == onnx.AttributeProto.GRAPHS:
                    for sg in a.graphs:
                        walk(sg)
    walk(graph)
    return names


def fresh(names, base):
    """base, or base_1, base_2, ...: the first not in names (added to them)."""
    name, i = base, 0
    while name in names:
        i += 1
        name = f"{base}_{i}"
    names.add(name)
    return name


def gru_attrs(cell):
    """The attributes of a forward GRU node computing a proved rewrite.cell.GruCell."""
    attrs = dict(hidden_size=cell.H, linear_before_reset=cell.lbr, direction="forward",
                 activations=[cell.f.name, cell.g.name])
    alphas = [a for a in (cell.f.alpha, cell.g.alpha) if a is not None]
    betas = [b for b in (cell.f.beta, cell.g.beta) if b is not None]
    if alphas:
        attrs["activation_alpha"] = alphas
    if betas:
        attrs["activation_beta"] = betas
    return attrs


class Builder:
    """New nodes and initializers with fresh names base_<tag>, written in the opset's forms."""

    def __init__(self, base, names, opset):
        self.base, self.names, self.opset = base, names, opset
        self.nodes, self.inits = [], []

    def name(self, tag):
        return fresh(self.names, f"{self.base}_{tag}")

    def const(self, tag, arr):
        n = self.name(tag)
        self.inits.append(numpy_helper.from_array(np.asarray(arr), n))
        return n

    def node(self, op, ins, outs, tag=None, **attrs):
        self.nodes.append(helper.make_node(op, ins, outs, name=self.name(tag or op.lower()), **attrs))

    def weights(self, cell):
        return [self.const("W", cell.W), self.const("R", cell.R), self.const("B", cell.B)]

    def unsqueeze(self, src, axis, out=None):
        out = out or self.name("unsq")
        if self.opset >= 13:
            self.node("Unsqueeze", [src, self.const("axes", np.array([axis], np.int64))], [out])
        else:
            self.node("Unsqueeze", [src], [out], axes=[axis])
        return out

    def squeeze(self, src, out, axes):
        if self.opset >= 13:
            self.node("Squeeze", [src, self.const("axes", np.array(axes, np.int64))], [out])
        else:
            self.node("Squeeze", [src], [out], axes=list(axes))

    def gru(self, ins, outs, cell):
        while ins and ins[-1] == "":
            ins = ins[:-1]
        self.nodes.append(helper.make_node("GRU", ins, outs, name=self.name("gru"), **gru_attrs(cell)))


def prune(graph):
    """Drop nodes whose outputs nobody reads, then initializers and value_info nobody names."""
    outputs = {o.name for o in graph.output}
    while True:
        reads = set(outputs)
        for n in graph.node:
            reads.update(node_reads(n))
        keep = [n for n in graph.node if any(o in reads for o in n.output if o)]
        if len(keep) == len(graph.node):
            break
        del graph.node[:]
        graph.node.extend(keep)
    reads = set(outputs)
    produced = set()
    for n in graph.node:
        reads.update(node_reads(n))
        produced.update(n.output)
    inputs = {v.name for v in graph.input}
    inits = [t for t in graph.initializer if t.name in reads or t.name in inputs]
    del graph.initializer[:]
    graph.initializer.extend(inits)
    vis = [v for v in graph.value_info if v.name in produced]
    del graph.value_info[:]
    graph.value_info.extend(vis)


def topological(nodes, defined):
    """nodes in an order where every input is defined first, as close to the given order as can be."""
    defined = set(defined)
    out, waiting = [], list(nodes)
    while waiting:
        rest = []
        for n in waiting:
            if all(i in defined for i in node_reads(n)):
                out.append(n)
                defined.update(o for o in n.output if o)
            else:
                rest.append(n)
        if len(rest) == len(waiting):  # a name nothing defines: leave the order to the checker
            return out + rest
        waiting = rest
    return out


def replace_nodes(graph, at, redefined, new_inits):
    """Put each list of new nodes in at {index: nodes} before the node of that index, drop the
    nodes producing a name in redefined, add new_inits, restore a topological order, prune."""
    kept = []
    for i, n in enumerate(graph.node):
        kept.extend(at.get(i, []))
        if not any(o in redefined for o in n.output):
            kept.append(n)
    kept = topological(kept, {v.name for v in graph.input} | {t.name for t in graph.initializer}
                       | {t.name for t in new_inits})
    del graph.node[:]
    graph.node.extend(kept)
    graph.initializer.extend(new_inits)
    prune(graph)
