"""ONNX's own GRU backend node test cases (onnx.backend.test.case.node) run through gruinfer."""
import warnings

import numpy as np
import pytest
from onnx.backend.base import Backend, BackendRep

import gruinfer


def collect_gru_cases():
    """ONNX's GRU node test cases; onnx >= 1.23 generates them on the fly."""
    from onnx.backend.test.case import node as node_cases

    with warnings.catch_warnings():  # generating the other ops' cases warns about casts
        warnings.simplefilter("ignore")
        cases = node_cases.collect_testcases("GRU")
    return [c for c in cases
            if c.model is not None and any(n.op_type == "GRU" for n in c.model.graph.node)]


class GruinferBackendRep(BackendRep):
    """The model as the cases give it (W, R and B are graph inputs, fed with each run)."""

    def __init__(self, model, kernel=None):
        self.sess = gruinfer.InferenceSession(model, kernel=kernel)
        self.input_names = [a.name for a in self.sess.get_inputs()]

    def run(self, inputs, **kwargs):
        if isinstance(inputs, dict):
            feeds = dict(inputs)
        else:
            inputs = list(inputs)
            assert len(inputs) == len(self.input_names), (len(inputs), self.input_names)
            feeds = dict(zip(self.input_names, inputs))
        return tuple(self.sess.run(None, feeds))


class GruinferBackend(Backend):
    @classmethod
    def prepare(cls, model, device="CPU", kernel=None, **kwargs):
        super().prepare(model, device, **kwargs)  # onnx.checker.check_model
        return GruinferBackendRep(model, kernel)

    @classmethod
    def supports_device(cls, device):
        return device == "CPU"


CASES = collect_gru_cases()


def test_gru_cases_were_collected():
    assert len(CASES) >= 1
    assert all(c.name.startswith("test_gru") for c in CASES)


@pytest.mark.parametrize("case", CASES, ids=[c.name for c in CASES])
def test_onnx_backend_gru_case(case, kernel):
    assert GruinferBackend.supports_device("CPU")
    assert case.data_sets, case.name
    for inputs, expected in case.data_sets:
        got = GruinferBackend.run_model(case.model, inputs, kernel=kernel)
        assert len(got) == len(expected), case.name
        rtol = case.rtol if case.rtol is not None else 1e-5
        atol = case.atol if case.atol is not None else 1e-5
        for i, (g, w) in enumerate(zip(got, expected)):
            w = np.asarray(w)
            assert g.dtype == w.dtype, (case.name, i, g.dtype, w.dtype)
            assert g.shape == w.shape, (case.name, i, g.shape, w.shape)
            np.testing.assert_allclose(g, w, rtol=rtol, atol=atol, err_msg=f"{case.name} output {i}")
