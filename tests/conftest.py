"""Shared pytest fixtures for gruinfer's tests."""
import pytest

import gruinfer


@pytest.fixture(params=gruinfer.kernel_info()["supported"])
def kernel(request):
    """Each kernel this CPU runs, by name: pass it as InferenceSession(..., kernel=kernel)."""
    return request.param
