"""Kernel modules compiled for the CPU: the exact NVRTC source after tests/native/cuda_on_cpu.h.

Used by tests/test_kernels_emulated.py (gs_reduce against NumPy) and tests/fake_cupy.py (the
whole device backend on the CPU).
"""

from __future__ import annotations

import ctypes
import os
import shutil
import subprocess
from pathlib import Path

from gpu_summary import _kernels

NATIVE = Path(__file__).with_name("native")
TYPE_CODES = {name: code for code, name in enumerate(_kernels.CUDA_TYPES)}
_WRAPPERS = {
    _kernels.REDUCE_FILE: "emulate_gs_reduce.cpp",
    _kernels.THUMBNAILS_FILE: "emulate_gs_thumbnails.cpp",
    _kernels.ANOMALY_FILE: "emulate_gs_anomaly.cpp",
}


def build(filename: str, folder: Path, reuse: bool = False) -> ctypes.CDLL:
    """Compile kernel module ``filename`` for the CPU into ``folder`` and load it (``reuse``:
    load the library an earlier call of this session built there, if any)."""
    built = Path(folder) / f"{Path(filename).stem}_emulated.so"
    if reuse and built.is_file():
        return _load(built)
    compiler = os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++")
    assert compiler, "a C++ compiler (c++ or g++) is needed to run the kernels on the CPU"
    source = _kernels.kernel_source(filename)
    dynamic = "extern __shared__ double shared[];"
    source = source.replace(dynamic, "double* shared = gs_emu::dynamic_shared;")
    stem = Path(filename).stem
    unit = folder / f"{stem}_emulated.cpp"
    wrapper = (NATIVE / _WRAPPERS[filename]).read_text(encoding="utf-8")
    unit.write_text(f'#include "cuda_on_cpu.h"\n{source}\n{wrapper}', encoding="utf-8")
    library = folder / f"{stem}_emulated.so"
    command = [compiler, "-std=c++20", "-O1", "-pthread", "-shared", "-fPIC", f"-I{NATIVE}"]
    command += [str(unit), "-o", str(library)]
    proc = subprocess.run(command, capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr[-5000:]
    return _load(library)


def _load(library: Path) -> ctypes.CDLL:
    lib = ctypes.CDLL(str(library))
    for name in ("emu_gs_reduce", "emu_gs_multi_ladder", "emu_gs_thumbnails", *EMULATED_ANOMALY):
        if hasattr(lib, name):
            getattr(lib, name).restype = ctypes.c_int
    return lib


EMULATED_ANOMALY = tuple(
    f"emu_{name}" for name in (*_kernels.ANOMALY_KERNELS, *_kernels.ANOMALY_PLAIN_KERNELS)
)
_CTYPES = {"u": ctypes.c_uint64, "i": ctypes.c_int64, "f": ctypes.c_double}


def as_ctypes(args: tuple) -> list:
    """Launch arguments (NumPy scalars of exact widths) as ctypes values of the same widths."""
    out = []
    for arg in args:
        if arg.dtype.kind == "f":
            out.append(ctypes.c_double(float(arg)))
        elif arg.dtype.itemsize == 4:
            out.append(ctypes.c_int32(int(arg)))
        else:
            out.append(_CTYPES[arg.dtype.kind](int(arg)))
    return out
