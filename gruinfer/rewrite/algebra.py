"""rewrite/algebra.py: the symbolic values a GRU cell is proved with: row polynomials over linear maps and activations of x and h, and the integer counts and conditions of loop control."""
import hashlib
from dataclasses import dataclass, replace

import numpy as np


class NotGru(Exception):
    """Why a Loop or a group of plain ops is not (provably) a GRU cell."""


# The widest x or h the prover reads (its linear maps are dense [width, width] float64 arrays).
MAX_WIDTH = 1 << 12


# ----------------------------------------------------------------------------- loop control

@dataclass(frozen=True)
class Count:
    """An integer scalar: base + off, with base "k" (the step index) or a dim key ("dim", name, axis)."""
    base: object
    off: int = 0

    def plus(self, c):
        return Count(self.base, self.off + int(c))


@dataclass(frozen=True)
class Cond:
    """A boolean scalar: the conjunction of terms (lhs, rhs) meaning lhs < rhs, each a Count or a number."""
    terms: tuple = ()


@dataclass(frozen=True)
class RowShape:
    """Shape(v) of a row value v [N, width]: only ConstantOfShape may read it (a constant row)."""
    width: int


def scalar(v):
    """The number a one-element numeric array holds, else None."""
    if isinstance(v, np.ndarray) and v.size == 1 and v.dtype.kind in "iuf":
        return v.reshape(()).item()
    return None


def number(v):
    """v when it is a Python number, else None."""
    return v if isinstance(v, (int, float)) else None


def less(a, b):
    """a < b as a Cond when both sides are counts or numbers, else None."""
    sides = []
    for v in (a, b):
        if isinstance(v, Count):
            sides.append(v)
        elif scalar(v) is not None:
            sides.append(scalar(v))
        else:
            return None
    return Cond((tuple(sides),))


# ----------------------------------------------------------------------------- row polynomials

def digest(a):
    a = np.ascontiguousarray(a, dtype=np.float64)
    return a.shape, hashlib.sha256(a.tobytes()).hexdigest()


def _src_key(src):
    return (src,) if isinstance(src, str) else ("p", src.key)


@dataclass(frozen=True, eq=False)
class Leaf:
    """A width-K row value: a linear map src @ M (kind "lin": src "x", "h" or a unit monomial
    Poly), or an activation (kind "act": op with its params, of the Poly arg)."""
    kind: str
    key: tuple
    src: object = None
    M: np.ndarray = None
    op: str = None
    params: tuple = ()
    arg: object = None

    @staticmethod
    def lin(src, M):
        return Leaf("lin", ("L", _src_key(src), digest(M)), src=src, M=M)

    @staticmethod
    def act(op, params, arg):
        return Leaf("act", ("A", op, params, arg.key), op=op, params=params, arg=arg)

    @property
    def width(self):
        return self.M.shape[1] if self.kind == "lin" else self.arg.width

    def cols(self, idx):
        if self.kind == "lin":
            return Leaf.lin(self.src, self.M[:, idx])
        return Leaf.act(self.op, self.params, self.arg.cols(idx))


class _Term:
    """What the three kinds of term share: a key (terms of one key add up) and the array that
    adds (VALUE names the field)."""
    VALUE = ""

    @property
    def key(self):
        if isinstance(self, Lin):
            return ("l", _src_key(self.src))
        if isinstance(self, Mono):
            return ("m", tuple(leaf.key for leaf in self.leaves))
        return CONST_KEY

    @property
    def value(self):
        return getattr(self, self.VALUE)

    def with_value(self, v):
        return replace(self, **{self.VALUE: v})


CONST_KEY = ("c",)


@dataclass(frozen=True, eq=False)
class Const(_Term):
    """A per-column constant term: coef [K]."""
    coef: np.ndarray
    VALUE = "coef"


@dataclass(frozen=True, eq=False)
class Lin(_Term):
    """A linear term src @ M: M [width(src), K]."""
    src: object
    M: np.ndarray
    VALUE = "M"


@dataclass(frozen=True, eq=False)
class Mono(_Term):
    """A monomial: the product of leaves times coef [K] per column."""
    leaves: tuple
    coef: np.ndarray
    VALUE = "coef"


class Poly:
    """A float [N, K] row tensor: a sum of Const, Lin and Mono terms with per-column coefficients.
    A degree-1 monomial of a linear leaf is always kept as a Lin term (coefficient folded into M)."""

    def __init__(self, width, terms=()):
        self.width = width
        self.terms = {}
        for t in terms:
            self._add(t)
        self._key = None

    @staticmethod
    def source(name, width):
        if not 0 < width <= MAX_WIDTH:
            raise NotGru(f"a row width of {width}: the prover takes widths up to {MAX_WIDTH}")
        return Poly(width, [Lin(name, np.eye(width))])

    def _add(self, t):
        old = self.terms.get(t.key)
        if old is not None:
            t = t.with_value(old.value + t.value)
        if not np.any(t.value):
            self.terms.pop(t.key, None)
        else:
            self.terms[t.key] = t

    @property
    def key(self):
        if self._key is None:
            items = sorted((repr(k), digest(t.value)) for k, t in self.terms.items())
            self._key = (self.width, tuple(items))
        return self._key

    def const(self):
        t = self.terms.get(CONST_KEY)
        return t.coef if t else np.zeros(self.width)

    def of(self, kind):
        """The terms of one kind (Const, Lin or Mono)."""
        return [t for t in self.terms.values() if isinstance(t, kind)]

    # -- arithmetic
    def plus(self, other):
        if isinstance(other, Poly):
            if other.width != self.width:
                raise NotGru("adding values of different widths")
            return Poly(self.width, list(self.terms.values()) + list(other.terms.values()))
        return Poly(self.width, list(self.terms.values()) + [Const(row_const(other, self.width))])

    def scaled(self, v):
        v = row_const(v, self.width)
        return Poly(self.width, [Lin(t.src, t.M * v[None, :]) if isinstance(t, Lin)
                                 else t.with_value(t.value * v) for t in self.terms.values()])

    def cols(self, idx):
        idx = np.asarray(idx, dtype=np.int64)
        out = []
        for t in self.terms.values():
            if isinstance(t, Const):
                out.append(Const(t.coef[idx]))
            elif isinstance(t, Lin):
                out.append(Lin(t.src, t.M[:, idx]))
            else:
                out.append(_mono([leaf.cols(idx) for leaf in t.leaves], t.coef[idx]))
        return Poly(len(idx), out)

    def matmul(self, A):
        A = np.asarray(A, dtype=np.float64)
        if A.ndim != 2 or A.shape[0] != self.width:
            raise NotGru(f"MatMul of a [N, {self.width}] row value by a constant of shape {list(A.shape)}")
        out = []
        for t in self.terms.values():
            if isinstance(t, Const):
                out.append(Const(t.coef @ A))
            elif isinstance(t, Lin):
                out.append(Lin(t.src, t.M @ A))
            else:
                unit = Poly(self.width, [Mono(t.leaves, np.ones(self.width))])
                out.append(Lin(unit, t.coef[:, None] * A))
        return Poly(A.shape[1], out)

    def times(self, other):
        if not isinstance(other, Poly):
            return self.scaled(other)
        if other.width != self.width:
            raise NotGru("multiplying values of different widths")
        out = []
        for a in self.terms.values():
            la, ca = _as_mono(a, self.width)
            for b in other.terms.values():
                lb, cb = _as_mono(b, self.width)
                out.append(_mono(la + lb, ca * cb))
        return Poly(self.width, out)

    def activation(self, op, params=()):
        return Poly(self.width, [Mono((Leaf.act(op, tuple(params), self),), np.ones(self.width))])


def _as_mono(t, width):
    if isinstance(t, Const):
        return [], t.coef
    if isinstance(t, Lin):
        return [Leaf.lin(t.src, t.M)], np.ones(width)
    return list(t.leaves), t.coef


def _mono(leaves, coef):
    """The normalised term for coef * prod(leaves)."""
    leaves = sorted(leaves, key=lambda leaf: repr(leaf.key))
    if not leaves:
        return Const(coef)
    if len(leaves) == 1 and leaves[0].kind == "lin":
        return Lin(leaves[0].src, leaves[0].M * coef[None, :])
    return Mono(tuple(leaves), coef)


def row_const(c, width):
    """A constant broadcast against a [N, width] row value, as a [width] vector (or NotGru)."""
    c = np.asarray(c, dtype=np.float64)
    if c.ndim > 2 or (c.ndim == 2 and c.shape[0] != 1) or (c.ndim >= 1 and c.shape[-1] not in (1, width)):
        raise NotGru(f"a constant of shape {list(c.shape)} does not broadcast as a per-column vector")
    return np.broadcast_to(c.reshape(-1) if c.ndim else c, (width,)).astype(np.float64)


def ones(c):
    return np.allclose(c, 1.0, rtol=1e-6, atol=0)


def clip(a, lo, hi, where):
    """Clip(a, lo, hi) as an activation leaf; a clip of a clip is one clip of both bounds."""
    if lo > hi:
        raise NotGru(f"{where}: clip bounds {lo} > {hi}")
    terms = list(a.terms.values())
    if len(terms) == 1 and isinstance(terms[0], Mono) and len(terms[0].leaves) == 1 and ones(terms[0].coef):
        leaf = terms[0].leaves[0]
        if leaf.kind == "act" and leaf.op == "Clip":
            lo0, hi0 = leaf.params
            lo, hi = max(lo, lo0), min(hi, hi0)
            if lo > hi:
                raise NotGru(f"{where}: nested clips with disjoint bounds")
            return leaf.arg.activation("Clip", (lo, hi))
    return a.activation("Clip", (lo, hi))
