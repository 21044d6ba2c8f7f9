"""Kernel modules compiled for the CPU: the exact NVRTC source after tests/native/cuda_on_cpu.h.

Used by tests/test_kernels_emulated.py (gs_reduce against NumPy), tests/test_formats.py
(gs_format_counts) and tests/support/fake_cupy.py (the
whole device backend on the CPU).
"""

from __future__ import annotations

import ctypes
import hashlib
import os
import shutil
import subprocess
from pathlib import Path

from gpu_summary._backend.cuda_kernels import anomaly as anomaly_abi
from gpu_summary._backend.cuda_kernels import sources as kernel_sources

NATIVE = Path(__file__).resolve().parent.parent / "native"
TYPE_CODES = {name: code for code, name in enumerate(kernel_sources.CUDA_TYPES)}
_WRAPPERS = {
    kernel_sources.REDUCE_FILE: "emulate_gs_reduce.cpp",
    kernel_sources.THUMBNAILS_FILE: "emulate_gs_thumbnails.cpp",
    kernel_sources.ANOMALY_FILE: "emulate_gs_anomaly.cpp",
    kernel_sources.PR_CURVE_FILE: "emulate_gs_pr_curve.cpp",
    kernel_sources.FORMATS_FILE: "emulate_gs_formats.cpp",
}


def build(filename: str, folder: Path, reuse: bool = False) -> ctypes.CDLL:
    """Compile kernel module ``filename`` for the CPU into ``folder`` and load it (``reuse``:
    load the library an earlier call of this session built there, if any).

    A library compiled before from the same source, headers, compiler and options is copied
    from .cache/emulated_kernels instead: the five modules take 15-30 s of a two-core machine
    to compile, once per change of the kernels instead of once per test session."""
    stem = Path(filename).stem
    library = Path(folder) / f"{stem}_emulated.so"
    if reuse and library.is_file():
        return _load(library)
    compiler = os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++")
    assert compiler, "a C++ compiler (c++ or g++) is needed to run the kernels on the CPU"
    source = emulated_source(filename)
    command = [compiler, "-std=c++20", "-O1", "-pthread", "-shared", "-fPIC", f"-I{NATIVE}"]
    cached = _CACHE / f"{stem}-{_build_key(source, command)}.so"
    if cached.is_file():
        shutil.copyfile(cached, library)
        return _load(library)
    unit = Path(folder) / f"{stem}_emulated.cpp"
    unit.write_text(source, encoding="utf-8")
    proc = subprocess.run([*command, str(unit), "-o", str(library)], capture_output=True,
                          text=True, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-5000:]
    _CACHE.mkdir(parents=True, exist_ok=True)
    partial = cached.with_name(f"{cached.name}.{os.getpid()}.tmp")
    shutil.copyfile(library, partial)
    os.replace(partial, cached)  # whole or absent: another session may be reading it
    for stale in _CACHE.glob(f"{stem}-*.so"):  # built from sources since changed
        if stale != cached:
            stale.unlink(missing_ok=True)
    return _load(library)


_CACHE = Path(__file__).resolve().parents[2] / ".cache" / "emulated_kernels"


def _build_key(source: str, command: list[str]) -> str:
    """A digest of everything the library depends on: the translation unit, the headers it
    includes from tests/native, the options and the compiler's identity."""
    digest = hashlib.sha256(source.encode())
    for header in sorted(NATIVE.glob("*.h")):
        digest.update(header.name.encode() + header.read_bytes())
    version = subprocess.run([command[0], "--version"], capture_output=True, timeout=60).stdout
    digest.update("\0".join(command).encode() + version)
    return digest.hexdigest()[:16]


TEAMS = 2  # GS_EMU_TEAMS in tests/native/cuda_on_cpu.h: blocks resident at once


def emulated_source(filename: str) -> str:
    """One translation unit: cuda_on_cpu.h, the module's text (NVRTC's, ladder spliced in)
    with the shared header once and the kernels once per team (namespaces gs_emu_slot<k>, so
    that each team has its own ``__shared__`` statics), then the module's C wrapper."""
    source = kernel_sources.kernel_source(filename)
    header = (kernel_sources.kernel_dir() / kernel_sources.HEADER).read_text(encoding="utf-8")
    header = header.replace("#pragma once\n", "", 1)
    prologue, found, body = source.partition(header)
    assert found, "kernel_source splices the header in whole"
    body = body.replace(
        "extern __shared__ double shared[];", "double* shared = gs_emu::dynamic_shared;"
    )
    copies = "".join(f"namespace gs_emu_slot{k} {{\n{body}\n}}\n" for k in range(TEAMS))
    wrapper = (NATIVE / _WRAPPERS[filename]).read_text(encoding="utf-8")
    return f'#include "cuda_on_cpu.h"\n{prologue}{header}\n{copies}{wrapper}'


def _load(library: Path) -> ctypes.CDLL:
    lib = ctypes.CDLL(str(library))
    for name in (
        "emu_gs_reduce",
        "emu_gs_multi_ladder",
        "emu_gs_thumbnails",
        "emu_gs_pr_counts",
        "emu_gs_format_counts",
        *EMULATED_ANOMALY,
    ):
        if hasattr(lib, name):
            getattr(lib, name).restype = ctypes.c_int
    return lib


EMULATED_ANOMALY = tuple(
    f"emu_{name}" for name in (*anomaly_abi.ANOMALY_KERNELS, *anomaly_abi.ANOMALY_PLAIN_KERNELS)
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
