"""rewrite/cell.py: the one GRU cell prover: a new-state polynomial read as z*h + (1-z)*g(...) with its weights and activations (GruCell), and the one numeric self-check against the original ops."""
from dataclasses import dataclass

import numpy as np

from ..onnx_io.activations import ACTIVATIONS, OP_ACTIVATIONS
from .algebra import Const, Leaf, Lin, Mono, NotGru, Poly, ones
from .outer import fold


@dataclass(frozen=True)
class ActSpec:
    """An activation as a GRU attribute: ONNX name, alpha and beta (None where it takes none)."""
    name: str
    alpha: object = None
    beta: object = None

    def __call__(self, v):
        return ACTIVATIONS[self.name].fn(v, self.alpha, self.beta)


@dataclass(frozen=True)
class GruCell:
    """A proved forward GRU cell: sizes, linear_before_reset, gate (f) and candidate (g)
    activations, and ONNX-layout float32 weights W [1, 3H, I], R [1, 3H, H], B [1, 6H]."""
    H: int
    I: int
    lbr: int
    f: ActSpec
    g: ActSpec
    W: np.ndarray
    R: np.ndarray
    B: np.ndarray

    def same_weights(self, other):
        return (self.H, self.I, self.lbr, self.f, self.g) == \
            (other.H, other.I, other.lbr, other.f, other.g) and all(
                np.array_equal(p, q) for p, q in ((self.W, other.W), (self.R, other.R), (self.B, other.B)))

    def step(self, x, h):
        """One ONNX GRU step in NumPy (float64)."""
        H = self.H
        W, R, B = (a[0].astype(np.float64) for a in (self.W, self.R, self.B))
        gx = x @ W.T + B[:3 * H]
        gh = h @ R.T + B[3 * H:]
        z = self.f(gx[:, :H] + gh[:, :H])
        r = self.f(gx[:, H:2 * H] + gh[:, H:2 * H])
        if self.lbr:
            c = self.g(gx[:, 2 * H:] + r * gh[:, 2 * H:])
        else:
            c = self.g(gx[:, 2 * H:] + (r * h) @ R[2 * H:].T + B[5 * H:])
        return z * h + (1 - z) * c


@dataclass(frozen=True)
class Gate:
    """scale * leaf == act(arg): an activation leaf read as one ONNX's GRU offers."""
    act: ActSpec
    arg: Poly
    scale: float = 1.0


def gate(leaf):
    """The Gate a leaf is, or None when it is not (a multiple of) an activation ONNX's GRU offers.
    scale is 1 except for Keras 3's hard_sigmoid, exported as Clip(a, 0, u) * (1/u) ==
    HardSigmoid(1/u, 0)(a) (tf_keras' clip_by_value(0.2 a + 0.5, 0, 1) is that with u = 1)."""
    if leaf.kind != "act":
        return None
    act = OP_ACTIVATIONS.get(leaf.op)
    if act is not None:
        values = list(leaf.params) + [None] * (2 - len(leaf.params))
        return Gate(ActSpec(leaf.op, *values), leaf.arg)
    if leaf.op == "Clip":
        lo, hi = leaf.params
        if lo == 0.0 and np.isfinite(hi) and hi > 0:
            return Gate(ActSpec("HardSigmoid", 1.0 / hi, 0.0), leaf.arg, 1.0 / hi)
    return None


def _affine(p, H, I, what):
    """(Wx [I, H], Wh [H, H], b [H]) for p == x Wx + h Wh + b, else NotGru."""
    Wx, Wh = np.zeros((I, H)), np.zeros((H, H))
    for t in p.terms.values():
        if isinstance(t, Lin) and t.src == "x":
            Wx = t.M
        elif isinstance(t, Lin) and t.src == "h":
            Wh = t.M
        elif not isinstance(t, Const):
            raise NotGru(f"the {what} pre-activation is not affine in x and h")
    if Wx.shape != (I, H) or Wh.shape != (H, H):
        raise NotGru(f"the {what} weights have unexpected shapes")
    return Wx, Wh, p.const()


@dataclass(frozen=True)
class _ResetUse:
    """How the reset gate r enters the candidate: mode "before" ((r*h) @ M), "after"
    (r * (h @ M)) or "after_bias" (r * rbh, value = rbh)."""
    mode: str
    leaf: Leaf
    value: np.ndarray


def _reset_uses(A, hkey):
    """The ways the candidate's argument A uses a reset gate, and its x weights."""
    uses, Wx = [], None
    for t in A.terms.values():
        if isinstance(t, Const):
            continue
        if isinstance(t, Lin) and t.src == "x":
            Wx = t.M
        elif isinstance(t, Lin) and isinstance(t.src, Poly):  # (r*h) @ M
            sterm = list(t.src.terms.values())
            if len(sterm) != 1 or not isinstance(sterm[0], Mono) or len(sterm[0].leaves) != 2 \
                    or not ones(sterm[0].coef):
                raise NotGru("the candidate mixes in a product that is not r*h")
            keys = [leaf.key for leaf in sterm[0].leaves]
            if keys.count(hkey) != 1:
                raise NotGru("the candidate's recurrent product is not r*h")
            r = next(leaf for leaf in sterm[0].leaves if leaf.key != hkey)
            uses.append(_ResetUse("before", r, t.M))
        elif isinstance(t, Mono) and len(t.leaves) == 2:  # r * (h @ Rh)
            lins = [leaf for leaf in t.leaves if leaf.kind == "lin" and leaf.src == "h"]
            if len(lins) != 1:
                raise NotGru("the candidate holds a product that is not r*(h Rh)")
            other = next(leaf for leaf in t.leaves if leaf is not lins[0])
            uses.append(_ResetUse("after", other, lins[0].M * t.coef[None, :]))
        elif isinstance(t, Mono) and len(t.leaves) == 1:  # r * rbh
            uses.append(_ResetUse("after_bias", t.leaves[0], t.coef))
        else:
            raise NotGru("the candidate's argument is not x Wh + bh + (r*h) Rh or "
                         "x Wh + bh + r*(h Rh + rbh)")
    return uses, Wx


def match_cell(P, H, I):
    """The GruCell the new-state polynomial P computes (or NotGru)."""
    if I is None:
        raise NotGru("the input width is unknown")
    hkey = Leaf.lin("h", np.eye(H)).key
    form = "the new state is not of the form z*h + (1-z)*candidate"
    monos = P.of(Mono)
    zs = [t for t in monos if len(t.leaves) == 2 and sum(leaf.key == hkey for leaf in t.leaves) == 1]
    cand = [t for t in monos if len(t.leaves) == 1]
    mixed = [t for t in monos if len(t.leaves) == 2 and not any(t is z for z in zs)]
    if len(P.terms) != 3 or len(zs) != 1 or len(cand) != 1 or len(mixed) != 1:
        raise NotGru(form)
    z_leaf = next(leaf for leaf in zs[0].leaves if leaf.key != hkey)
    c_leaf = cand[0].leaves[0]
    if {leaf.key for leaf in mixed[0].leaves} != {z_leaf.key, c_leaf.key}:
        raise NotGru(form)
    zg, cg = gate(z_leaf), gate(c_leaf)
    if zg is None:
        raise NotGru("the update gate z is not an activation ONNX's GRU supports")
    if cg is None:
        raise NotGru("the candidate is not an activation ONNX's GRU supports")
    if not (ones(zs[0].coef / zg.scale) and ones(cand[0].coef / cg.scale)
            and ones(-mixed[0].coef / (zg.scale * cg.scale))):
        raise NotGru(form + " (the coefficients of z*h, candidate and z*candidate do not match)")
    Wz, Rz, bz = _affine(zg.arg, H, I, "update gate")
    # The candidate's argument: x Wh + bh + (r*h) Rh  or  x Wh + bh + r*(h Rh + rbh).
    uses, Wh = _reset_uses(cg.arg, hkey)
    Wh = np.zeros((I, H)) if Wh is None else Wh
    bh, rbh = cg.arg.const(), np.zeros(H)
    modes = {u.mode for u in uses}
    if modes == {"before"} and len(uses) == 1:
        lbr, r_leaf, M = 0, uses[0].leaf, uses[0].value
    elif modes in ({"after"}, {"after", "after_bias"}) and len(uses) == len(modes):
        lbr = 1
        after = next(u for u in uses if u.mode == "after")
        r_leaf, M = after.leaf, after.value
        bias = [u for u in uses if u.mode == "after_bias"]
        if bias:
            if bias[0].leaf.key != r_leaf.key:
                raise NotGru("the reset-after bias is not multiplied by the reset gate")
            rbh = bias[0].value
    else:
        raise NotGru("no reset gate found in the candidate (or more than one recurrent product)")
    rg = gate(r_leaf)
    if rg is None:
        raise NotGru("the reset gate is not an activation ONNX's GRU supports")
    if zg.act != rg.act:
        raise NotGru(f"the update gate uses {zg.act.name} but the reset gate {rg.act.name}; "
                     "ONNX's GRU has one f for both")
    Rh, rbh = M / rg.scale, rbh / rg.scale
    Wr, Rr, br = _affine(rg.arg, H, I, "reset gate")
    if Wh.shape != (I, H) or Rh.shape != (H, H):
        raise NotGru("the candidate weights have unexpected shapes")
    W = np.concatenate([Wz.T, Wr.T, Wh.T])[None]
    R = np.concatenate([Rz.T, Rr.T, Rh.T])[None]
    B = np.concatenate([bz, br, bh, np.zeros(2 * H), rbh])[None]
    return GruCell(H, I, lbr, zg.act, cg.act, *(a.astype(np.float32) for a in (W, R, B)))


def run_nodes(nodes, values, opset, where):
    """values with the outputs of nodes (in order) computed through the NumPy ops, or NotGru."""
    values = dict(values)
    for node in nodes:
        missing = [i for i in node.input if i and i not in values]
        if missing:
            raise NotGru(f"self-check: {where} reads {missing[0]!r}, which has no value here")
        outs = fold(node, values, opset)
        if outs is None:
            raise NotGru(f"self-check: {where} does not run ({node.op_type} node "
                         f"{node.name or node.output[0]!r})")
        values.update((name, v) for name, v in zip(node.output, outs) if name)
    return values


def self_check(cell, outputs_at, X, h):
    """The guard against mistakes in the symbolic proof: for each step k of X ([steps, N, I]),
    outputs_at(k, h) gives what the original ops compute from state h, each of which must equal
    one GRU step of the cell (the first is the next state); NotGru if they disagree."""
    for k in range(X.shape[0]):
        want = cell.step(X[k].astype(np.float64), h.astype(np.float64))
        got = outputs_at(k, h)
        if any(g.shape != want.shape or not np.allclose(g, want, rtol=1e-4, atol=1e-5) for g in got):
            raise NotGru("self-check: the body and the extracted GRU disagree")
        h = got[0].astype(np.float32)


def check_data(cell, steps, rows):
    """Random inputs [steps, rows, I] and a state [rows, H] for self_check (seeded)."""
    rng = np.random.default_rng(12345)
    X = rng.standard_normal((steps, rows, cell.I)).astype(np.float32)
    return X, (0.5 * rng.standard_normal((rows, cell.H))).astype(np.float32)
