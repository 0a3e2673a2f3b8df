"""onnx_io/ops_tensor.py: Einsum (grouped linears, batched matmuls) and ScatterND (cache updates) in NumPy (registered in ops.OPS)."""
import string

import numpy as np

from .limits import check_size, text

ELLIPSIS = "..."


def einsum_terms(equation, n_inputs):
    """An ONNX Einsum equation read and checked: (one term per input, the output term), each a
    string of letters with at most one "..."; an implicit output is made explicit (the ellipsis
    first, then the letters used once, in order).  ValueError when the equation is malformed or
    its terms do not match n_inputs; repeated letters in an input (diagonals, traces) are
    allowed, in the output not.  Like onnxruntime, inputs with an ellipsis need one in the output."""
    eq = "".join(text(equation).split())
    if eq.count("->") > 1 or set(eq) - set(string.ascii_letters + ",.->"):
        raise ValueError("it must be comma-separated terms of letters and '...', then "
                         "optionally '->' and the output term")
    lhs, arrow, rhs = eq.partition("->")
    terms = lhs.split(",")
    for term in terms + ([rhs] if arrow else []):
        if set(term.replace(ELLIPSIS, "", 1)) - set(string.ascii_letters):
            raise ValueError(f"term {term!r} must be letters with at most one '...'")
    if len(terms) != n_inputs:
        raise ValueError(f"it has {len(terms)} input terms for {n_inputs} inputs")
    letters = "".join(t.replace(ELLIPSIS, "") for t in terms)
    if not arrow:
        once = sorted(c for c in set(letters) if letters.count(c) == 1)
        rhs = (ELLIPSIS if any(ELLIPSIS in t for t in terms) else "") + "".join(once)
    out = rhs.replace(ELLIPSIS, "")
    if len(set(out)) != len(out):
        raise ValueError(f"output term {rhs!r} repeats a letter")
    if set(out) - set(letters):
        raise ValueError(f"output term {rhs!r} has letters no input term has")
    if ELLIPSIS not in rhs and any(ELLIPSIS in t for t in terms):
        raise ValueError("input terms have '...' but the output term does not")
    return terms, rhs


def _einsum(ins, at, opset):
    terms, rhs = einsum_terms(at.get("equation", ""), len(ins))
    if any(a.dtype != ins[0].dtype for a in ins):
        raise ValueError("inputs have different dtypes " + ", ".join(str(a.dtype) for a in ins))
    sizes, batch = {}, []
    for i, (term, a) in enumerate(zip(terms, ins)):
        named = term.replace(ELLIPSIS, "")
        if a.ndim != len(named) and (ELLIPSIS not in term or a.ndim < len(named)):
            raise ValueError(f"input {i} of shape {list(a.shape)} does not fit term {term!r}")
        lead = term.index(ELLIPSIS) if ELLIPSIS in term else len(named)
        rest = a.ndim - len(named)
        dims = list(a.shape[:lead]) + list(a.shape[lead + rest:])
        batch.append(a.shape[lead:lead + rest])
        own = {}
        for c, d in zip(named, dims):
            if own.setdefault(c, d) != d:
                raise ValueError(f"letter {c!r} of term {term!r} has sizes {own[c]} and {d} "
                                 f"in input {i} of shape {list(a.shape)}")
        for c, d in own.items():
            if sizes.get(c, 1) not in (1, d) and d != 1:
                raise ValueError(f"letter {c!r} has sizes {sizes[c]} and {d}")
            sizes[c] = d if sizes.get(c, 1) == 1 else sizes[c]
    ellipsis = np.broadcast_shapes(*batch)
    check_size(list(ellipsis) + [sizes[c] for c in rhs.replace(ELLIPSIS, "")])
    y = np.einsum(",".join(terms) + "->" + rhs, *ins, optimize=len(ins) > 1)
    return [np.asarray(y, dtype=ins[0].dtype)]


# ScatterND's reductions by the opset that introduced them.
SCATTER_ND_REDUCTIONS = {"none": 11, "add": 16, "mul": 16, "max": 18, "min": 18}
_AT = {"add": np.add.at, "mul": np.multiply.at, "max": np.maximum.at, "min": np.minimum.at}


def scatter_nd_reduction(at, opset):
    """A ScatterND's reduction, or ValueError when this opset has no such reduction."""
    reduction = text(at.get("reduction", "none"))
    if SCATTER_ND_REDUCTIONS.get(reduction, opset + 1) > opset:
        allowed = [r for r, since in SCATTER_ND_REDUCTIONS.items() if since <= opset]
        raise ValueError(f"reduction {reduction!r} is not one of opset {opset}'s: {', '.join(allowed)}")
    return reduction


def _scatter_nd(ins, at, opset):
    """data with the slices named by indices [..., k] (the first k axes; negative counted from
    the end) replaced by updates [indices.shape[:-1], data.shape[k:]], or combined with them."""
    x, idx, upd = ins
    reduction = scatter_nd_reduction(at, opset)
    if idx.dtype != np.int64 or idx.ndim < 1 or idx.shape[-1] > x.ndim:
        raise ValueError(f"indices ({idx.dtype}, shape {list(idx.shape)}) must be int64 of rank "
                         f">= 1 whose last axis is at most the data's rank {x.ndim}")
    k = idx.shape[-1]
    want = tuple(idx.shape[:-1]) + tuple(x.shape[k:])
    if upd.shape != want or upd.dtype != x.dtype:
        raise ValueError(f"updates ({upd.dtype}, shape {list(upd.shape)}) must be {x.dtype} of "
                         f"shape {list(want)} for data {list(x.shape)} and indices {list(idx.shape)}")
    rows = idx.reshape(int(np.prod(idx.shape[:-1])), k)
    dims = np.asarray(x.shape[:k], np.int64)
    bad = np.nonzero(((rows < -dims) | (rows >= dims)).any(axis=1))[0]
    if bad.size:
        raise ValueError(f"index {rows[bad[0]].tolist()} is out of range for data of shape "
                         f"{list(x.shape)} (each entry within [-size, size - 1])")
    rows = np.where(rows < 0, rows + dims, rows)
    flat = np.ravel_multi_index(tuple(rows.T), x.shape[:k]) if k else np.zeros(len(rows), np.intp)
    tail = tuple(x.shape[k:])
    out = x.reshape((int(np.prod(x.shape[:k])),) + tail).copy()
    upd = upd.reshape((len(rows),) + tail)
    if reduction == "none":
        out[flat] = upd  # repeated indices: the last update wins, as onnxruntime does
    else:
        _AT[reduction](out, flat, upd)
    return [out.reshape(x.shape)]


OPS_TENSOR = {"Einsum": _einsum, "ScatterND": _scatter_nd}
