"""The CUDA kernel sources: where they are, how they are compiled, which types they take.

Kernels live in ``kernels/*.cu`` (shipped in the wheel as ``gpu_summary/kernels``). A module's
source is its ``.cu`` file with the shared header spliced in where it is included, after a
prologue that defines the ladder (:func:`ladder_prologue`), so the text handed to NVRTC is
complete: CuPy's on-disk cache, keyed by source and options, is never stale after a header or
ladder edit.

Nothing here imports CuPy; tests compile the same sources with NVRTC on machines with no GPU.
"""

from __future__ import annotations

import functools
from pathlib import Path

from gpu_summary._core import ladder as _ladder

HEADER = "gs_common.cuh"
REDUCE_FILE = "gs_reduce.cu"
THUMBNAILS_FILE = "gs_thumbnails.cu"
ANOMALY_FILE = "gs_anomaly.cu"
PR_CURVE_FILE = "gs_pr_curve.cu"
FORMATS_FILE = "gs_formats.cu"

# Options for every kernel module (NVRTC's dialect default differs between CUDA versions).
# CuPy's RawModule appends -ftz=true, the architecture and --device-as-default-execution-
# space; the kernels are written to be exact under -ftz=true (tests/test_cupy_path.py).
COMPILE_OPTIONS = ("--std=c++17",)

# The kernels' moments differ from the NumPy backend's by summation order only: for n finite
# values, |sum_gpu - sum_numpy| <= MOMENT_RTOL * sum(|x|) (and likewise for sum_squares) up to
# n = 2**31; min, max and every count are equal exactly.
MOMENT_RTOL = 1e-12

# Threads per block of every kernel (GS_THREADS in the sources).
THREADS = 256

# Storage types, by the dtype name the device backend reports.
CUDA_TYPES = {
    "bool": "bool",
    "int8": "signed char",
    "int16": "short",
    "int32": "int",
    "int64": "long long",
    "uint8": "unsigned char",
    "uint16": "unsigned short",
    "uint32": "unsigned int",
    "uint64": "unsigned long long",
    "float16": "gs::half16",
    "bfloat16": "gs::bfloat16",
    "float32": "float",
    "float64": "double",
}
IMAGE_DTYPES = ("bool", "uint8", "float16", "bfloat16", "float32", "float64")


def kernel_dir() -> Path:
    """The folder of the .cu sources: inside the installed package, or the source tree's."""
    package = Path(__file__).resolve().parents[2]  # gpu_summary/
    packaged = package / "kernels"
    if (packaged / HEADER).is_file():
        return packaged
    return package.parent / "kernels"


def _exact(value: float) -> str:
    """A C double literal of exactly ``value``: hexadecimal, with the decimal as a comment."""
    return f"{float(value).hex()}  // {float(value)!r}"


def ladder_prologue() -> str:
    """``#define`` lines of the ladder (``gpu_summary._core.ladder``) for the kernel sources.

    ``kernels/gs_common.cuh`` stops with ``#error`` without them: the kernels hold no copy of
    the ladder. Doubles are hexadecimal literals, the same bits as the Python floats.
    """
    values = ", ".join(float(v).hex() for v in _ladder.LIMITS)
    return (
        f"#define GS_LADDER_SIZE {_ladder.N_LIMITS}\n"
        f"#define GS_LADDER_ZERO {_ladder.ZERO_INDEX}\n"
        f"#define GS_LADDER_SMALLEST {_exact(_ladder.SMALLEST)}\n"
        f"#define GS_LADDER_CEILING {_exact(_ladder.CEILING)}\n"
        f"#define GS_LADDER_BUCKETS_PER_OCTAVE {_exact(_ladder.BUCKETS_PER_OCTAVE)}\n"
        f"#define GS_LADDER_VALUES {values}\n"
    )


@functools.cache
def kernel_source(filename: str) -> str:
    """The complete source of one kernel module, ready for NVRTC."""
    folder = kernel_dir()
    header = (folder / HEADER).read_text(encoding="utf-8")
    body = (folder / filename).read_text(encoding="utf-8")
    include = f'#include "{HEADER}"'
    if include not in body:
        raise ValueError(f"{filename} must include {HEADER}")
    header = header.replace("#pragma once\n", "", 1)  # spliced once, into this module only
    return ladder_prologue() + body.replace(include, header, 1)
