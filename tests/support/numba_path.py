"""The compiled host path in tests: whether numba is here, a mark for the tests that need it,
and a fixture that compiles the kernels first (a module takes it with ``usefixtures``)."""

from __future__ import annotations

import importlib.util

import pytest

from gpu_summary._backend.numpy import compiled

HAVE_NUMBA = importlib.util.find_spec("numba") is not None
needs_numba = pytest.mark.skipif(not HAVE_NUMBA, reason="numba (the 'fast' extra) is missing")


@pytest.fixture(scope="module")
def compiled_kernels() -> None:
    """The kernels compiled before the module's first test (where numba is)."""
    if HAVE_NUMBA:
        assert compiled.prepare(), "numba is installed but the compiled path is off"
