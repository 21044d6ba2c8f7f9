"""Backend dispatch: host data stays on NumPy and never imports CuPy."""

from __future__ import annotations

import subprocess
import sys
import textwrap

import numpy as np
import pytest

from gpu_summary._backend import backend_for
from gpu_summary._backend import numpy as numpy_backend


def test_numpy_input_never_imports_cupy():
    # A fresh interpreter whose import system refuses CuPy: every host path must still work.
    code = textwrap.dedent("""
        import sys, importlib.abc
        class Refuse(importlib.abc.MetaPathFinder):
            def find_spec(self, name, path, target=None):
                if name.split(".")[0] in ("cupy", "cupyx", "torch", "jax"):
                    raise ImportError("gpu_summary must not import " + name)
        sys.meta_path.insert(0, Refuse())
        import numpy as np, tempfile
        import gpu_summary as gs
        with gs.SummaryWriter(tempfile.mkdtemp()) as w:
            w.add_scalar("s", np.float32(1), 0)
            w.add_histogram("h", np.arange(10), 0)
            w.add_histogram("e", np.arange(10), 0, bins=4)
            w.add_image("i", np.zeros((4, 4, 3), np.uint8), 0, dataformats="HWC", max_size=2)
            w.add_text("t", "x", 0)
        print(sorted(m for m in sys.modules if m.split(".")[0] in ("cupy", "torch", "jax")))
    """)
    proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip() == "[]"


class _CpuDLPack:
    """A foreign CPU tensor that only speaks DLPack (like a torch CPU tensor)."""

    def __init__(self, array):
        self._array = array

    def __dlpack__(self, **kwargs):
        return self._array.__dlpack__(**kwargs)

    def __dlpack_device__(self):
        return self._array.__dlpack_device__()


class _CudaTensor:
    def __dlpack_device__(self):
        return (2, 0)  # kDLCUDA


class _CudaArrayInterface:
    @property
    def __cuda_array_interface__(self):
        return {"shape": (3,), "typestr": "<f4", "data": (0, False), "version": 3}


def test_foreign_cpu_tensor_goes_to_numpy_without_copy():
    base = np.arange(6.0)
    backend, array = backend_for(_CpuDLPack(base), "values")
    assert backend is numpy_backend
    assert np.shares_memory(array, base)


@pytest.mark.parametrize("tensor", [_CudaTensor(), _CudaArrayInterface()])
def test_device_arrays_without_cupy_name_the_extra(tensor, monkeypatch):
    import gpu_summary._backend

    monkeypatch.setitem(sys.modules, "cupy", None)  # as if CuPy were not installed
    monkeypatch.delitem(sys.modules, "gpu_summary._backend.cuda", raising=False)
    monkeypatch.delattr(gpu_summary._backend, "cuda", raising=False)
    with pytest.raises(TypeError, match=r"values is on a CUDA device .*gpu_summary\[cuda12\]"):
        backend_for(tensor, "values")


@pytest.mark.parametrize("value", [1, 2.5, True, [1, 2], (3,), np.float16(1), np.arange(3)])
def test_host_values(value):
    backend, array = backend_for(value, "values")
    assert backend is numpy_backend and isinstance(array, np.ndarray)


def test_numpy_backend_provides_the_interface():
    import inspect

    from gpu_summary._backend import BACKEND_FUNCTIONS

    for name in BACKEND_FUNCTIONS:
        assert callable(getattr(numpy_backend, name)), name
    params = inspect.signature(numpy_backend.histogram_fixed).parameters
    assert list(params) == ["values", "limits"]


def test_numpy_backend_satisfies_the_protocol():
    import inspect

    from gpu_summary._backend.protocol import BACKEND_FUNCTIONS, Backend

    assert isinstance(numpy_backend, Backend)
    assert len(BACKEND_FUNCTIONS) == 16
    for name in BACKEND_FUNCTIONS:
        declared = list(inspect.signature(getattr(Backend, name)).parameters)[1:]  # no self
        assert list(inspect.signature(getattr(numpy_backend, name)).parameters) == declared, name
