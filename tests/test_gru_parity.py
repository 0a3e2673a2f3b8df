"""Parity of gruinfer's GRU with onnxruntime (CPU) and the float64 NumPy reference over the GRU attribute space."""
import functools
import itertools

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper, numpy_helper

import gruinfer
from gru_reference import (ACTIVATION_NAMES, feeds_for, make_gru_model, reference_outputs,
                           takes_alpha, takes_beta)

ATOL = 1e-5
RTOL = 1e-5

DIRECTIONS = ("forward", "reverse", "bidirectional")
OUTPUT_SETS = (("Y",), ("Y_h",), ("Y", "Y_h"))
OPTIONALS = ("B", "sequence_lens", "initial_h")

# Activations under which every value stays bounded (gate in [0, 1], candidate bounded):
# those models are compared with an absolute tolerance only.
BOUNDED_F = ("Sigmoid", "HardSigmoid")
BOUNDED_G = ("Tanh", "Sigmoid", "HardSigmoid", "Softsign", "ScaledTanh")

T_CHOICES = (1, 2, 3, 5, 8)
N_CHOICES = (1, 2, 3, 4, 5, 7)
I_CHOICES = (1, 2, 3, 5, 8, 16, 17)
H_CHOICES = (1, 2, 3, 4, 7, 8, 15, 16, 17, 24, 33)
LENS_MODES = ("random", "zero_row", "all_zero", "full", "short")


# ---------------------------------------------------------------- helpers

def ort_session(model):
    so = ort.SessionOptions()
    so.intra_op_num_threads = 1
    so.inter_op_num_threads = 1
    so.log_severity_level = 3
    return ort.InferenceSession(model.SerializeToString(), so,
                                providers=["CPUExecutionProvider"])


def ort_gru(inputs, attrs, outputs=("Y", "Y_h"), opset=14):
    """{output name: array} from onnxruntime for one GRU node.

    onnxruntime refuses layout=1, so a layout=1 GRU runs as the layout=0 model on the
    transposed X / initial_h, and its outputs are transposed back."""
    attrs = dict(attrs)
    layout = attrs.pop("layout", None) or 0
    attrs["hidden_size"] = inputs["W"].shape[1] // 3
    inputs = dict(inputs)
    if layout:
        inputs["X"] = np.ascontiguousarray(inputs["X"].transpose(1, 0, 2))
        if inputs.get("initial_h") is not None:
            inputs["initial_h"] = np.ascontiguousarray(inputs["initial_h"].transpose(1, 0, 2))
    model = make_gru_model(inputs, attrs, outputs=outputs, opset=opset)
    res = dict(zip(outputs, ort_session(model).run(list(outputs), feeds_for(inputs))))
    if layout:
        if "Y" in res:
            res["Y"] = res["Y"].transpose(2, 0, 1, 3)
        if "Y_h" in res:
            res["Y_h"] = res["Y_h"].transpose(1, 0, 2)
    return res


def ref_gru(inputs, attrs):
    Y, Y_h = reference_outputs(inputs, attrs)
    return {"Y": Y, "Y_h": Y_h}


def assert_matches(got, want, bounded, what):
    """got (gruinfer, float32) against want: 1e-5 absolute, plus 1e-5 relative when unbounded."""
    assert isinstance(got, np.ndarray), f"{what}: got {type(got).__name__}"
    assert got.dtype == np.float32, f"{what}: dtype {got.dtype}"
    assert got.shape == want.shape, f"{what}: shape {got.shape}, expected {want.shape}"
    np.testing.assert_allclose(got, want, rtol=0.0 if bounded else RTOL, atol=ATOL, err_msg=what)


def run_gruinfer(model, feeds, kernel, output_names=None):
    return gruinfer.InferenceSession(model, kernel=kernel).run(output_names, feeds)


def is_bounded(attrs):
    acts = attrs.get("activations")
    if acts is None:
        return True
    return all(a in BOUNDED_F for a in acts[0::2]) and all(a in BOUNDED_G for a in acts[1::2])


def random_lens(rng, mode, N, T):
    if mode == "all_zero":
        return np.zeros(N, np.int32)
    if mode == "full":
        return np.full(N, T, np.int32)
    if mode == "short":  # strictly between 0 and T where T allows
        return (rng.integers(1, T, N) if T > 1 else np.ones(N)).astype(np.int32)
    lens = rng.integers(0, T + 1, N).astype(np.int32)
    if mode == "zero_row":
        lens[rng.integers(N)] = 0
        if N > 1 and (lens == 0).all():
            lens[0] = T
    return lens


def random_alpha(rng, name):
    if name == "ThresholdedRelu":
        return float(rng.uniform(-0.3, 0.8))
    if name in ("Affine", "ScaledTanh"):
        return float(rng.uniform(0.3, 1.2))
    return float(rng.uniform(0.05, 1.5))


def random_activation_attrs(rng, D):
    """(activations, activation_alpha, activation_beta), sometimes absent, sometimes running out."""
    mode = rng.choice(["absent", "explicit_default", "bounded", "any", "any"])
    if mode == "absent":
        return None, None, None
    if mode == "explicit_default":
        acts = ["Sigmoid", "Tanh"] * D
    elif mode == "bounded":
        acts = [str(rng.choice(BOUNDED_F if i % 2 == 0 else BOUNDED_G)) for i in range(2 * D)]
    else:
        acts = [str(rng.choice(ACTIVATION_NAMES)) for _ in range(2 * D)]
    takers_a = [a for a in acts if takes_alpha(a)]
    takers_b = [a for a in acts if takes_beta(a)]
    na = int(rng.integers(0, len(takers_a) + 1))
    nb = int(rng.integers(0, len(takers_b) + 1))
    alphas = [random_alpha(rng, a) for a in takers_a[:na]] or None
    betas = [float(rng.uniform(-0.5, 0.5)) for _ in range(nb)] or None
    return acts, alphas, betas


class Case:
    """One GRU model to compare: inputs by role, attributes, outputs, which optional inputs are initializers."""

    def __init__(self, name, inputs, attrs, outputs=("Y", "Y_h"), initializers=("W", "R", "B"),
                 dynamic=False, opset=14, gruinfer_attrs=None):
        self.name, self.inputs, self.attrs, self.outputs = name, inputs, attrs, outputs
        self.initializers, self.dynamic, self.opset = initializers, dynamic, opset
        self.gruinfer_attrs = attrs if gruinfer_attrs is None else gruinfer_attrs
        self.bounded = is_bounded(attrs)

    def model(self):
        return make_gru_model(self.inputs, self.gruinfer_attrs, outputs=self.outputs,
                              opset=self.opset, initializers=self.initializers,
                              dynamic_inputs=self.dynamic)

    def feeds(self):
        return feeds_for(self.inputs, self.initializers)


def random_arrays(rng, direction, layout, T, N, I, H, bounded, with_b, lens_mode, with_h0):
    D = 2 if direction == "bidirectional" else 1
    scale = (1.0 if bounded else 0.4) / np.sqrt(max(I, H))
    inputs = {
        "X": ((1.0 if bounded else 0.6) * rng.standard_normal((N, T, I) if layout else (T, N, I))),
        "W": scale * rng.standard_normal((D, 3 * H, I)),
        "R": scale * rng.standard_normal((D, 3 * H, H)),
    }
    if with_b:
        inputs["B"] = (0.5 if bounded else 0.2) * rng.standard_normal((D, 6 * H))
    if lens_mode is not None:
        inputs["sequence_lens"] = random_lens(rng, lens_mode, N, T)
    if with_h0:
        inputs["initial_h"] = (1.0 if bounded else 0.5) * rng.uniform(
            -1, 1, (N, D, H) if layout else (D, N, H))
    return {k: v.astype(np.int32 if k == "sequence_lens" else np.float32)
            for k, v in inputs.items()}


# ---------------------------------------------------------------- the randomized pool

RANDOM_SPECS = list(itertools.product(DIRECTIONS, (0, 1), (0, 1), OUTPUT_SETS,
                                      itertools.product((False, True), repeat=3)))


def random_spec_id(spec):
    direction, lbr, layout, outputs, opt = spec
    optional = "+".join(o for o, on in zip(("B", "lens", "h0"), opt) if on) or "none"
    return f"{direction}-lbr{lbr}-layout{layout}-{'+'.join(outputs)}-{optional}"


@functools.lru_cache(maxsize=None)
def random_case(index):
    direction, lbr, layout, outputs, (with_b, with_lens, with_h0) = RANDOM_SPECS[index]
    rng = np.random.default_rng(20240 + index)
    D = 2 if direction == "bidirectional" else 1
    T, N = int(rng.choice(T_CHOICES)), int(rng.choice(N_CHOICES))
    I, H = int(rng.choice(I_CHOICES)), int(rng.choice(H_CHOICES))
    acts, alphas, betas = random_activation_attrs(rng, D)
    clip = None if rng.random() < 0.5 else float(rng.choice([0.3, 1.0, 2.5]))
    attrs = {"hidden_size": H, "direction": direction, "linear_before_reset": lbr,
             "layout": layout, "clip": clip, "activations": acts,
             "activation_alpha": alphas, "activation_beta": betas}
    lens_mode = str(rng.choice(LENS_MODES)) if with_lens else None
    inputs = random_arrays(rng, direction, layout, T, N, I, H, is_bounded(attrs), with_b,
                           lens_mode, with_h0)
    # optional inputs as initializers or graph inputs; hidden_size sometimes left to W
    inits = ["W", "R", "B"] + [r for r in ("sequence_lens", "initial_h") if rng.random() < 0.3]
    g_attrs = dict(attrs)
    if rng.random() < 0.2:
        g_attrs["hidden_size"] = None
    if not layout and rng.random() < 0.3:
        g_attrs["layout"] = None  # the attribute's default
    return Case(random_spec_id(RANDOM_SPECS[index]), inputs, attrs, outputs, tuple(inits),
                dynamic=bool(rng.random() < 0.5), gruinfer_attrs=g_attrs)


@functools.lru_cache(maxsize=None)
def random_expected(index):
    case = random_case(index)
    return ort_gru(case.inputs, case.attrs, case.outputs), ref_gru(case.inputs, case.attrs)


def check_case(case, got, want_ort, want_ref):
    assert len(got) == len(case.outputs)
    for name, g in zip(case.outputs, got):
        if want_ort is not None:
            assert_matches(g, want_ort[name], case.bounded, f"{case.name}: {name} vs onnxruntime")
        assert_matches(g, want_ref[name], case.bounded, f"{case.name}: {name} vs reference")


@pytest.mark.parametrize("index", range(len(RANDOM_SPECS)),
                         ids=[random_spec_id(s) for s in RANDOM_SPECS])
def test_random_parity(index, kernel):
    case = random_case(index)
    want_ort, want_ref = random_expected(index)
    got = run_gruinfer(case.model(), case.feeds(), kernel)
    check_case(case, got, want_ort, want_ref)


def test_random_pool_covers_the_space():
    """The seeded pool really holds the corners the parity tests claim to cover."""
    cases = [random_case(i) for i in range(len(RANDOM_SPECS))]
    used = {a for c in cases for a in (c.attrs["activations"] or [])}
    assert used == set(ACTIVATION_NAMES)
    lens = [(c.inputs["sequence_lens"], c.inputs["X"].shape[1 if c.attrs["layout"] else 0])
            for c in cases if "sequence_lens" in c.inputs]
    assert any((x == 0).all() for x, T in lens)
    assert any((x == 0).any() and not (x == 0).all() for x, T in lens)
    assert any(((x > 0) & (x < T)).any() for x, T in lens)
    assert any(c.attrs["clip"] is not None for c in cases)
    assert any(c.attrs["activation_alpha"] for c in cases)
    assert any(c.attrs["activation_beta"] for c in cases)
    assert any(c.gruinfer_attrs["hidden_size"] is None for c in cases)
    assert any(not c.bounded for c in cases) and any(c.bounded for c in cases)
    assert {c.inputs["X"].shape[1 if c.attrs["layout"] else 0] for c in cases} >= {1, 8}


# ---------------------------------------------------------------- every activation, f and g

# Per activation: alphas and betas for the forward and backward direction.
ACT_PARAMS = {
    "HardSigmoid": ([0.3, 0.15], [0.4, 0.6]),
    "LeakyRelu": ([0.05, 0.2], []),
    "ThresholdedRelu": ([0.1, -0.2], []),
    "ScaledTanh": ([0.9, 1.2], [0.7, 1.5]),
    "Affine": ([0.5, 0.8], [0.1, -0.2]),
    "Elu": ([0.5, 1.5], []),
}
ACT_SPECS = list(itertools.product(ACTIVATION_NAMES, ("f", "g"), (0, 1),
                                   ("given", "partial", "none")))


def act_spec_id(spec):
    name, pos, lbr, params = spec
    return f"{name}-{pos}-lbr{lbr}-{params}"


@functools.lru_cache(maxsize=None)
def act_case(index):
    name, pos, lbr, params = ACT_SPECS[index]
    rng = np.random.default_rng(777 + index)
    acts = [name, "Tanh"] * 2 if pos == "f" else ["Sigmoid", name] * 2
    alphas, betas = ACT_PARAMS.get(name, ([], []))
    if params == "partial":  # only the forward direction's values: the backward one falls back
        alphas, betas = alphas[:1], betas[:1]
    elif params == "none":
        alphas, betas = [], []
    attrs = {"hidden_size": 6, "direction": "bidirectional", "linear_before_reset": lbr,
             "activations": acts, "activation_alpha": list(alphas) or None,
             "activation_beta": list(betas) or None}
    inputs = random_arrays(rng, "bidirectional", 0, 5, 3, 4, 6, is_bounded(attrs), True,
                           "random", True)
    return Case(act_spec_id(ACT_SPECS[index]), inputs, attrs)


@functools.lru_cache(maxsize=None)
def act_expected(index):
    case = act_case(index)
    return ort_gru(case.inputs, case.attrs, case.outputs), ref_gru(case.inputs, case.attrs)


@pytest.mark.parametrize("index", range(len(ACT_SPECS)), ids=[act_spec_id(s) for s in ACT_SPECS])
def test_activation_parity(index, kernel):
    case = act_case(index)
    want_ort, want_ref = act_expected(index)
    got = run_gruinfer(case.model(), case.feeds(), kernel)
    check_case(case, got, want_ort, want_ref)


# ---------------------------------------------------------------- larger layers

LARGE_SPECS = [(64, 40, 9, 12, 0), (65, 3, 5, 20, 1), (100, 70, 4, 6, 0)]


@functools.lru_cache(maxsize=None)
def large_case(index, lbr):
    H, I, N, T, layout = LARGE_SPECS[index]
    rng = np.random.default_rng(900 + 2 * index + lbr)
    attrs = {"hidden_size": H, "direction": "bidirectional", "linear_before_reset": lbr,
             "layout": layout}
    inputs = random_arrays(rng, "bidirectional", layout, T, N, I, H, True, True, "zero_row", True)
    case = Case(f"large{index}-lbr{lbr}", inputs, attrs)
    return case, ort_gru(inputs, attrs), ref_gru(inputs, attrs)


@pytest.mark.parametrize("index", range(len(LARGE_SPECS)),
                         ids=[f"H{s[0]}-I{s[1]}-N{s[2]}-T{s[3]}-layout{s[4]}" for s in LARGE_SPECS])
@pytest.mark.parametrize("lbr", [0, 1])
def test_larger_layers(index, lbr, kernel):
    """Sizes past the SIMD kernels' panel widths and row blocks, longer sequences."""
    case, want_ort, want_ref = large_case(index, lbr)
    got = run_gruinfer(case.model(), case.feeds(), kernel)
    check_case(case, got, want_ort, want_ref)


# Sequences longer than the blocks gruinfer_gru_run projects at a time (at most 64 steps).
LONG_SPECS = list(itertools.product(DIRECTIONS, (0, 1), ("random", "full", "short")))


@functools.lru_cache(maxsize=None)
def long_case(index):
    direction, layout, lens = LONG_SPECS[index]
    rng = np.random.default_rng(950 + index)
    attrs = {"hidden_size": 6, "direction": direction, "linear_before_reset": index % 2,
             "layout": layout}
    inputs = random_arrays(rng, direction, layout, 150, 3, 5, 6, True, True, lens, True)
    case = Case(f"long{index}", inputs, attrs)
    return case, ort_gru(inputs, attrs), ref_gru(inputs, attrs)


@pytest.mark.parametrize("index", range(len(LONG_SPECS)),
                         ids=[f"{d}-layout{l}-{m}" for d, l, m in LONG_SPECS])
def test_long_sequences_in_blocks(index, kernel):
    """T=150: several projection blocks, forward, reverse and both, short rows crossing blocks."""
    case, want_ort, want_ref = long_case(index)
    got = run_gruinfer(case.model(), case.feeds(), kernel)
    check_case(case, got, want_ort, want_ref)


# ---------------------------------------------------------------- the reference itself

REF_CHECK_RANDOM = list(range(0, len(RANDOM_SPECS), 5))
REF_CHECK_ACT = [i for i, s in enumerate(ACT_SPECS) if s[3] != "none"]


@pytest.mark.parametrize("pool,index", [("random", i) for i in REF_CHECK_RANDOM]
                         + [("act", i) for i in REF_CHECK_ACT])
def test_reference_matches_onnxruntime(pool, index):
    """The NumPy reference agrees with onnxruntime (layout=1 through the transposed model)."""
    case = random_case(index) if pool == "random" else act_case(index)
    want_ort, want_ref = random_expected(index) if pool == "random" else act_expected(index)
    for name in case.outputs:
        got = want_ort[name]
        assert got.shape == want_ref[name].shape
        np.testing.assert_allclose(got, want_ref[name], rtol=0 if case.bounded else RTOL,
                                   atol=ATOL, err_msg=f"{case.name}: {name}")


def test_reference_is_not_trivial():
    """Sanity of the oracle: outputs depend on the attributes they should depend on."""
    case = act_case(ACT_SPECS.index(("Sigmoid", "f", 0, "given")))
    base = ref_gru(case.inputs, case.attrs)
    for change in ({"linear_before_reset": 1}, {"clip": 0.2}, {"direction": "bidirectional",
                                                               "activations": ["Sigmoid", "Softsign"] * 2}):
        other = ref_gru(case.inputs, dict(case.attrs, **change))
        assert np.abs(other["Y"] - base["Y"]).max() > 1e-3, change


# ---------------------------------------------------------------- older and newer opsets

def simple_inputs(seed, direction="forward", layout=0, T=4, N=3, I=5, H=6, lens="zero_row",
                  with_b=True, with_h0=True):
    rng = np.random.default_rng(seed)
    return random_arrays(rng, direction, layout, T, N, I, H, True, with_b, lens, with_h0)


@pytest.mark.parametrize("opset", [7, 22])
@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("lbr", [0, 1])
def test_opset_7_and_22(opset, direction, lbr, kernel):
    inputs = simple_inputs(opset * 10 + lbr, direction)
    attrs = {"hidden_size": 6, "direction": direction, "linear_before_reset": lbr}
    case = Case(f"opset{opset}", inputs, attrs, opset=opset)
    got = run_gruinfer(case.model(), case.feeds(), kernel)
    check_case(case, got, ort_gru(inputs, attrs, opset=opset), ref_gru(inputs, attrs))


def test_opset_22_layout_1(kernel):
    inputs = simple_inputs(2201, "bidirectional", layout=1)
    attrs = {"hidden_size": 6, "direction": "bidirectional", "linear_before_reset": 1, "layout": 1}
    case = Case("opset22-layout1", inputs, attrs, opset=22)
    got = run_gruinfer(case.model(), case.feeds(), kernel)
    check_case(case, got, ort_gru(inputs, attrs), ref_gru(inputs, attrs))


@pytest.mark.parametrize("direction", DIRECTIONS)
@pytest.mark.parametrize("lbr", [0, 1])
def test_opset_3(direction, lbr, kernel):
    """GRU-3 (no layout attribute); onnxruntime has no GRU before 7, so the same node at
    opset 7 is its oracle."""
    inputs = simple_inputs(300 + lbr, direction)
    attrs = {"hidden_size": 6, "direction": direction, "linear_before_reset": lbr,
             "activations": ["Sigmoid", "Tanh"] * (2 if direction == "bidirectional" else 1)}
    case = Case("opset3", inputs, attrs, opset=3)
    got = run_gruinfer(case.model(), case.feeds(), kernel)
    check_case(case, got, ort_gru(inputs, attrs, opset=7), ref_gru(inputs, attrs))


@pytest.mark.parametrize("outputs", [("Y", "Y_h"), ("Y_h",)])
def test_opset_1_foward(outputs, kernel):
    """GRU-1 spelled the default direction "foward"; Y_h was required, Y came with output_sequence."""
    inputs = simple_inputs(101, "forward")
    attrs = {"hidden_size": 6, "direction": "foward"}
    if "Y" in outputs:
        attrs["output_sequence"] = 1
    case = Case("opset1-foward", inputs, attrs, outputs=outputs, opset=1)
    got = run_gruinfer(case.model(), case.feeds(), kernel)
    ort_attrs = {"hidden_size": 6, "direction": "forward"}
    check_case(case, got, ort_gru(inputs, ort_attrs, outputs, opset=7), ref_gru(inputs, ort_attrs))


def test_opset_1_default_direction(kernel):
    """GRU-1 with no direction attribute runs forward."""
    inputs = simple_inputs(102, "forward", lens="random")
    case = Case("opset1-default", inputs, {"hidden_size": 6}, outputs=("Y_h",), opset=1)
    got = run_gruinfer(case.model(), case.feeds(), kernel)
    attrs = {"hidden_size": 6}
    check_case(case, got, ort_gru(inputs, attrs, ("Y_h",), opset=7), ref_gru(inputs, attrs))


# ---------------------------------------------------------------- graphs of several nodes

def init(name, arr):
    return numpy_helper.from_array(np.asarray(arr), name)


def finish(nodes, inputs, outputs, initializers=(), opset=14):
    graph = helper.make_graph(nodes, "g", inputs, outputs, initializer=list(initializers))
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)])
    model.ir_version = 8
    return model


def fvi(name, rank):
    return helper.make_tensor_value_info(name, TensorProto.FLOAT, [f"{name}{i}" for i in range(rank)])


def weights(rng, D, I, H, scale=0.5):
    return {"W": (scale * rng.standard_normal((D, 3 * H, I))).astype(np.float32),
            "R": (scale * rng.standard_normal((D, 3 * H, H))).astype(np.float32),
            "B": (scale * rng.standard_normal((D, 6 * H))).astype(np.float32)}


def test_two_independent_grus_on_one_input(kernel):
    rng = np.random.default_rng(31)
    T, N, I = 6, 4, 5
    X = rng.standard_normal((T, N, I)).astype(np.float32)
    lens = np.array([6, 0, 3, 1], np.int32)
    a = weights(rng, 1, I, 7)
    b = weights(rng, 2, I, 3)
    a_attrs = {"hidden_size": 7, "direction": "reverse"}
    b_attrs = {"hidden_size": 3, "direction": "bidirectional", "linear_before_reset": 1,
               "clip": 0.8, "activations": ["HardSigmoid", "Softsign", "Sigmoid", "Tanh"],
               "activation_alpha": [0.3], "activation_beta": [0.45]}
    nodes = [helper.make_node("GRU", ["X", "Wa", "Ra", "Ba", "lens"], ["Ya", "Yha"], name="a", **a_attrs),
             helper.make_node("GRU", ["X", "Wb", "Rb", "Bb", "lens"], ["", "Yhb"], name="b", **b_attrs)]
    inits = [init(k + s, v) for s, w in (("a", a), ("b", b)) for k, v in w.items()]
    model = finish(nodes, [fvi("X", 3), helper.make_tensor_value_info("lens", TensorProto.INT32, ["N"])],
                   [fvi("Yhb", 3), fvi("Ya", 4), fvi("Yha", 3)], inits)
    feeds = {"X": X, "lens": lens}
    got = run_gruinfer(model, feeds, kernel)
    want_ort = ort_session(model).run(None, feeds)
    ra = ref_gru(dict(a, X=X, sequence_lens=lens), a_attrs)
    rb = ref_gru(dict(b, X=X, sequence_lens=lens), b_attrs)
    want_ref = [rb["Y_h"], ra["Y"], ra["Y_h"]]
    assert len(got) == 3
    for g, wo, wr, what in zip(got, want_ort, want_ref, ("Yhb", "Ya", "Yha")):
        assert_matches(g, wo, True, f"{what} vs onnxruntime")
        assert_matches(g, wr, True, f"{what} vs reference")


@pytest.mark.parametrize("layout", [0, 1])
@pytest.mark.parametrize("dirs", [("forward", "forward"), ("bidirectional", "bidirectional"),
                                  ("reverse", "forward")])
@pytest.mark.parametrize("expose_first", [False, True])
def test_chained_grus_y_h_into_initial_h(layout, dirs, expose_first, kernel):
    """Y_h of one GRU is initial_h of the next (same batch, hidden size and direction count)."""
    rng = np.random.default_rng(41 + layout)
    T1, T2, N, I1, I2, H = 5, 3, 3, 4, 2, 6
    D = 2 if dirs[0] == "bidirectional" else 1
    X1 = rng.standard_normal((N, T1, I1) if layout else (T1, N, I1)).astype(np.float32)
    X2 = rng.standard_normal((N, T2, I2) if layout else (T2, N, I2)).astype(np.float32)
    h0 = rng.uniform(-1, 1, (N, D, H) if layout else (D, N, H)).astype(np.float32)
    w1, w2 = weights(rng, D, I1, H), weights(rng, D, I2, H)
    at1 = {"hidden_size": H, "direction": dirs[0], "layout": layout}
    at2 = {"hidden_size": H, "direction": dirs[1], "linear_before_reset": 1, "layout": layout}
    nodes = [helper.make_node("GRU", ["X1", "W1", "R1", "B1", "", "h0"], ["", "h_mid"], **at1),
             helper.make_node("GRU", ["X2", "W2", "R2", "B2", "", "h_mid"], ["Y", "Y_h"], **at2)]
    inits = [init(k + s, v) for s, w in (("1", w1), ("2", w2)) for k, v in w.items()]
    outs = [fvi("Y", 4), fvi("Y_h", 3)] + ([fvi("h_mid", 3)] if expose_first else [])
    model = finish(nodes, [fvi("X1", 3), fvi("X2", 3), fvi("h0", 3)], outs, inits)
    feeds = {"X1": X1, "X2": X2, "h0": h0}
    got = run_gruinfer(model, feeds, kernel)

    r1 = ref_gru(dict(w1, X=X1, initial_h=h0), at1)
    r2 = ref_gru(dict(w2, X=X2, initial_h=r1["Y_h"]), at2)
    o1 = ort_gru(dict(w1, X=X1, initial_h=h0), at1, ("Y_h",))
    o2 = ort_gru(dict(w2, X=X2, initial_h=o1["Y_h"]), at2)
    want_ref = [r2["Y"], r2["Y_h"]] + ([r1["Y_h"]] if expose_first else [])
    want_ort = [o2["Y"], o2["Y_h"]] + ([o1["Y_h"]] if expose_first else [])
    assert len(got) == len(want_ref)
    for g, wo, wr in zip(got, want_ort, want_ref):
        assert_matches(g, wo, True, "vs onnxruntime")
        assert_matches(g, wr, True, "vs reference")


def test_chained_grus_in_onnxruntime_directly(kernel):
    """The chained graph itself (layout 0) run by onnxruntime, not node by node; Y_h reaches
    the second GRU through an Identity node."""
    rng = np.random.default_rng(43)
    T, N, I, H = 4, 2, 3, 5
    X = rng.standard_normal((T, N, I)).astype(np.float32)
    lens = np.array([4, 2], np.int32)
    w1, w2 = weights(rng, 2, I, H), weights(rng, 2, I, H)
    nodes = [helper.make_node("GRU", ["X", "W1", "R1", "B1", "lens"], ["Y1", "h1"],
                              hidden_size=H, direction="bidirectional"),
             helper.make_node("Identity", ["h1"], ["h1_id"]),
             helper.make_node("GRU", ["X", "W2", "R2", "B2", "lens", "h1_id"], ["Y2", "h2"],
                              hidden_size=H, direction="bidirectional", linear_before_reset=1)]
    inits = [init(k + s, v) for s, w in (("1", w1), ("2", w2)) for k, v in w.items()]
    model = finish(nodes, [fvi("X", 3), helper.make_tensor_value_info("lens", TensorProto.INT32, [N])],
                   [fvi("Y2", 4), fvi("h2", 3), fvi("Y1", 4), fvi("h1", 3)], inits)
    feeds = {"X": X, "lens": lens}
    got = run_gruinfer(model, feeds, kernel)
    want = ort_session(model).run(None, feeds)
    for g, w, name in zip(got, want, ("Y2", "h2", "Y1", "h1")):
        assert_matches(g, w, True, name)


# ---------------------------------------------------------------- Identity and Constant nodes

def const_node(name, arr):
    return helper.make_node("Constant", [], [name], value=numpy_helper.from_array(np.asarray(arr), name))


def test_identity_and_constant_nodes_around_a_gru(kernel):
    """Constant nodes for W, R, B, sequence_lens and initial_h; Identity on X and on both outputs."""
    rng = np.random.default_rng(51)
    T, N, I, H = 5, 3, 4, 6
    X = rng.standard_normal((T, N, I)).astype(np.float32)
    w = weights(rng, 2, I, H)
    lens = np.array([5, 0, 2], np.int32)
    h0 = rng.uniform(-1, 1, (2, N, H)).astype(np.float32)
    attrs = {"hidden_size": H, "direction": "bidirectional", "linear_before_reset": 1}
    nodes = [const_node("cW", w["W"]), const_node("cR", w["R"]), const_node("cB", w["B"]),
             const_node("cL", lens), const_node("cH", h0),
             helper.make_node("Identity", ["X"], ["X_id"]),
             helper.make_node("GRU", ["X_id", "cW", "cR", "cB", "cL", "cH"], ["Y", "Y_h"], **attrs),
             helper.make_node("Identity", ["Y"], ["Y_out"]),
             helper.make_node("Identity", ["Y_h"], ["Y_h_out"])]
    model = finish(nodes, [fvi("X", 3)], [fvi("Y_h_out", 3), fvi("Y_out", 4)])
    got = run_gruinfer(model, {"X": X}, kernel)
    want_ort = ort_session(model).run(None, {"X": X})
    ref = ref_gru(dict(w, X=X, sequence_lens=lens, initial_h=h0), attrs)
    for g, wo, wr in zip(got, want_ort, (ref["Y_h"], ref["Y"])):
        assert_matches(g, wo, True, "vs onnxruntime")
        assert_matches(g, wr, True, "vs reference")


@pytest.mark.parametrize("source", ["initializer", "constant"])
def test_identity_between_weights_and_gru(source, kernel):
    """W, R and B reach the GRU through Identity nodes (exporters such as paddle2onnx emit these)."""
    rng = np.random.default_rng(52)
    T, N, I, H = 4, 2, 3, 5
    X = rng.standard_normal((T, N, I)).astype(np.float32)
    w = weights(rng, 1, I, H)
    nodes, inits = [], []
    for k, v in w.items():
        if source == "constant":
            nodes.append(const_node(k, v))
        else:
            inits.append(init(k, v))
        nodes.append(helper.make_node("Identity", [k], [k + "_id"]))
    nodes.append(helper.make_node("GRU", ["X", "W_id", "R_id", "B_id"], ["Y", "Y_h"], hidden_size=H))
    model = finish(nodes, [fvi("X", 3)], [fvi("Y", 4), fvi("Y_h", 3)], inits)
    got = run_gruinfer(model, {"X": X}, kernel)
    want_ort = ort_session(model).run(None, {"X": X})
    ref = ref_gru(dict(w, X=X), {"hidden_size": H})
    for g, wo, wr in zip(got, want_ort, (ref["Y"], ref["Y_h"])):
        assert_matches(g, wo, True, "vs onnxruntime")
        assert_matches(g, wr, True, "vs reference")


# ---------------------------------------------------------------- run(): names, dtypes, strides

def names_case():
    inputs = simple_inputs(61, "bidirectional", T=4, N=3, lens="random")
    attrs = {"hidden_size": 6, "direction": "bidirectional"}
    return inputs, attrs


@pytest.mark.parametrize("names", [None, ["Y"], ["Y_h"], ["Y", "Y_h"], ["Y_h", "Y"]])
def test_output_names_subsets_and_order(names, kernel):
    inputs, attrs = names_case()
    model = make_gru_model(inputs, attrs)
    feeds = feeds_for(inputs)
    got = run_gruinfer(model, feeds, kernel, names)
    want = ort_session(model).run(names, feeds)
    ref = ref_gru(inputs, attrs)
    assert len(got) == len(want) == len(names or ["Y", "Y_h"])
    for name, g, w in zip(names or ["Y", "Y_h"], got, want):
        assert_matches(g, w, True, f"{name} vs onnxruntime")
        assert_matches(g, ref[name], True, f"{name} vs reference")


def test_graph_output_order_is_kept(kernel):
    """run(None) follows the graph's declared output order, here Y_h before Y."""
    inputs, attrs = names_case()
    model = make_gru_model(inputs, attrs, outputs=("Y_h", "Y"))
    feeds = feeds_for(inputs)
    got = run_gruinfer(model, feeds, kernel)
    assert [o.name for o in gruinfer.InferenceSession(model, kernel=kernel).get_outputs()] == ["Y_h", "Y"]
    ref = ref_gru(inputs, attrs)
    assert [g.shape for g in got] == [ref["Y_h"].shape, ref["Y"].shape]
    assert_matches(got[0], ref["Y_h"], True, "Y_h")
    assert_matches(got[1], ref["Y"], True, "Y")


def test_float64_and_int64_feeds_are_converted(kernel):
    """cast_feeds=True: arrays of other dtypes are converted (refused without it, as in
    onnxruntime: tests/test_ort_parity.py)."""
    inputs, attrs = names_case()
    model = make_gru_model(inputs, attrs)
    sess = gruinfer.InferenceSession(model, kernel=kernel, cast_feeds=True)
    feeds32 = feeds_for(inputs)
    feeds64 = {"X": inputs["X"].astype(np.float64) + 1e-12,  # not exactly representable
               "sequence_lens": inputs["sequence_lens"].astype(np.int64),
               "initial_h": inputs["initial_h"].astype(np.float64)}
    kept = {k: v.copy() for k, v in feeds64.items()}
    got64 = sess.run(None, feeds64)
    got32 = sess.run(None, {"X": feeds64["X"].astype(np.float32),
                            "sequence_lens": feeds32["sequence_lens"],
                            "initial_h": feeds32["initial_h"]})
    for k in kept:  # the caller's arrays are left alone
        assert feeds64[k].dtype == kept[k].dtype and np.array_equal(feeds64[k], kept[k])
    want = ort_session(model).run(None, feeds32)
    for g64, g32, w in zip(got64, got32, want):
        assert g64.dtype == np.float32
        np.testing.assert_array_equal(g64, g32)
        assert_matches(g64, w, True, "vs onnxruntime")


@pytest.mark.parametrize("layout", [0, 1])
def test_non_contiguous_inputs(layout, kernel):
    rng = np.random.default_rng(71)
    inputs = simple_inputs(72 + layout, "bidirectional", layout=layout, T=5, N=4, I=3, H=7,
                           lens="random")
    attrs = {"hidden_size": 7, "direction": "bidirectional", "layout": layout,
             "linear_before_reset": 1}
    model = make_gru_model(inputs, attrs)
    sess = gruinfer.InferenceSession(model, kernel=kernel)
    contiguous = sess.run(None, feeds_for(inputs))
    X, h0, lens = inputs["X"], inputs["initial_h"], inputs["sequence_lens"]
    # X as every other element of a bigger buffer, in Fortran order, and with a negative stride
    bigX = rng.standard_normal((X.shape[0], X.shape[1], 2 * X.shape[2])).astype(np.float32)
    bigX[:, :, ::2] = X
    strided = bigX[:, :, ::2]
    fortran = np.asfortranarray(X)
    h0_view = np.ascontiguousarray(h0.transpose(2, 1, 0)).transpose(2, 1, 0)
    lens_view = np.repeat(lens, 2)[::2]
    negative = np.ascontiguousarray(X[::-1])[::-1]  # negative stride on axis 0
    for x_feed in (strided, fortran, negative):
        assert not x_feed.flags.c_contiguous
        feeds = {"X": x_feed, "initial_h": h0_view, "sequence_lens": lens_view}
        got = sess.run(None, feeds)
        for g, c in zip(got, contiguous):
            np.testing.assert_array_equal(g, c)
    assert not strided.flags.c_contiguous and not h0_view.flags.c_contiguous
    assert not lens_view.flags.c_contiguous
    want = ort_gru(inputs, attrs)
    ref = ref_gru(inputs, attrs)
    for name, c in zip(("Y", "Y_h"), contiguous):
        assert_matches(c, want[name], True, f"{name} vs onnxruntime")
        assert_matches(c, ref[name], True, f"{name} vs reference")


@pytest.mark.parametrize("role", ["initial_h", "W"])
def test_overridable_initializer_feed(role, kernel):
    """An initializer also listed as a graph input can be fed (onnxruntime uses the fed value).

    gruinfer must either use the fed value too or refuse the feed: never ignore it."""
    inputs = simple_inputs(81, "forward", lens=None)
    attrs = {"hidden_size": 6}
    model = make_gru_model(inputs, attrs, initializers=("W", "R", "B", "initial_h"))
    arr = inputs[role]
    model.graph.input.append(helper.make_tensor_value_info(role, TensorProto.FLOAT, list(arr.shape)))
    override = (arr * -1.5 + 0.1).astype(np.float32)
    feeds = {"X": inputs["X"], role: override}
    sess = gruinfer.InferenceSession(model, kernel=kernel)
    overridable = [a.name for a in sess.get_overridable_initializers()]
    want = ort_session(model).run(None, feeds)
    assert not np.allclose(want[1], ort_session(model).run(None, {"X": inputs["X"]})[1], atol=1e-3)
    if role not in overridable:
        with pytest.raises(gruinfer.InvalidArgument):
            sess.run(None, feeds)
        return
    got = sess.run(None, feeds)
    ref = ref_gru(dict(inputs, **{role: override}), attrs)
    for name, g, w in zip(("Y", "Y_h"), got, want):
        assert_matches(g, w, True, f"{name} vs onnxruntime (fed {role})")
        assert_matches(g, ref[name], True, f"{name} vs reference (fed {role})")
