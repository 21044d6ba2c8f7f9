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
    assert len(BACKEND_FUNCTIONS) == 20
    for name in BACKEND_FUNCTIONS:
        declared = list(inspect.signature(getattr(Backend, name)).parameters)[1:]  # no self
        assert list(inspect.signature(getattr(numpy_backend, name)).parameters) == declared, name


# -- what a call may not read as data (issue 32) -------------------------------------------


def test_a_masked_array_is_refused_or_stands_for_its_unmasked_values():
    masked = np.ma.masked_array([1.0, 2.0, 1e6, 3.0], mask=[0, 0, 1, 0])
    with pytest.raises(TypeError, match=r"img is a masked array .*img\.filled\(0\)"):
        backend_for(masked, "img")
    backend, array = backend_for(masked, "values", drop_masked=True)
    assert backend is numpy_backend and type(array) is np.ndarray
    assert array.tolist() == [1.0, 2.0, 3.0]
    unmasked = np.ma.masked_array(np.arange(4.0))  # nothing masked: the data itself, no copy
    assert np.shares_memory(backend_for(unmasked, "values", drop_masked=True)[1], unmasked)


def test_nested_meta_and_packed_float4_tensors_are_type_errors_naming_the_argument():
    import warnings

    torch = pytest.importorskip("torch")
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "nested tensors is in prototype stage"
        nested = torch.nested.nested_tensor([torch.ones(2), torch.ones(3)])
    with pytest.raises(TypeError, match=r"values is a nested \(jagged\) tensor"):
        backend_for(nested, "values")
    with pytest.raises(TypeError, match="values is a meta tensor, which holds no data"):
        backend_for(torch.ones(3, device="meta"), "values")
    packed = torch.zeros(3, dtype=torch.uint8).view(torch.float4_e2m1fn_x2)
    with pytest.raises(TypeError, match=r"values has dtype torch\.float4_e2m1fn_x2, which torch"):
        backend_for(packed, "values")


def test_host_numbers_are_checked_before_anything_is_converted():
    from gpu_summary._backend import host_numbers

    torch = pytest.importorskip("torch")
    edges = torch.tensor([0.0, 1.0, 2.0], requires_grad=True)
    assert host_numbers(edges, "bins", 8).tolist() == [0.0, 1.0, 2.0]  # detached
    assert host_numbers([1, 2**70], "bins", 8).tolist() == [1.0, 2.0**70]
    for values, match in [
        (np.array([1 + 2j, 3]), "bins must hold bool, integer or floating-point"),
        ([1 + 2j, 3], "bins must hold bool, integer or floating-point"),
        (np.array(["2020-01-01", "2021-01-01"], "datetime64[D]"), "got dtype datetime64"),
        (["a", "b"], "got dtype <U1"),
        (np.ma.masked_array([1.0, 2.0], mask=[0, 1]), "bins is a masked array"),
    ]:
        with pytest.raises(TypeError, match=match):
            host_numbers(values, "bins", 8)
    with pytest.raises(ValueError, match="bins must be finite float64 numbers; one is too large"):
        host_numbers([0, 10**400], "bins", 8)
    for huge in [np.broadcast_to(np.float32(1), (10**10,)), torch.tensor(1.0).expand(10**10)]:
        with pytest.raises(ValueError, match="bins must be at most 8 values, got 10,000,000,000"):
            host_numbers(huge, "bins", 8)


def test_a_zero_stride_view_is_never_widened_whole():
    torch = pytest.importorskip("torch")

    view = torch.tensor(1.0, dtype=torch.bfloat16).expand(10**10)
    with pytest.raises(ValueError, match=r"values is a view of 10,000,000,000 values over 2 "):
        backend_for(view, "values")
    small = torch.arange(4.0, dtype=torch.bfloat16).expand(1000, 4)  # 16 KB widened: made
    assert backend_for(small, "values")[1].shape == (1000, 4)


def test_exact_host_array_keeps_the_dtype():
    from gpu_summary._backend import exact_host_array

    array, name = exact_host_array(np.arange(3, dtype=np.float16), "tensor", "add_tensor")
    assert name == "float16" and array.dtype == np.float16
    torch = pytest.importorskip("torch")
    tensor = torch.tensor([1.0, -2.5], dtype=torch.bfloat16, requires_grad=True)
    bits, name = exact_host_array(tensor, "tensor", "add_tensor")
    assert name == "bfloat16" and bits.dtype == np.uint16
    widened = (bits.astype(np.uint32) << 16).view(np.float32)
    np.testing.assert_array_equal(widened, [1.0, -2.5])
    with pytest.raises(
        TypeError, match=r"tensor has dtype torch\.float8_e4m3fn, which add_x cannot store"
    ):
        exact_host_array(torch.zeros(2, dtype=torch.uint8).view(torch.float8_e4m3fn), "tensor",
                         "add_x")  # fmt: skip
