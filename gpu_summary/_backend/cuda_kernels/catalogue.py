"""Which template instantiations each kernel module holds: what the backend compiles together
on first use of a dtype, and what tests compile for every dtype."""

from __future__ import annotations

from gpu_summary._backend.cuda_kernels.anomaly import (
    ANOMALY_KERNELS,
    ANOMALY_PLAIN_KERNELS,
    anomaly_expression,
)
from gpu_summary._backend.cuda_kernels.flight import flight_expression
from gpu_summary._backend.cuda_kernels.formats import format_expression
from gpu_summary._backend.cuda_kernels.pr_curve import pr_expression
from gpu_summary._backend.cuda_kernels.reduce import (
    EDGES,
    EVEN,
    LADDER,
    PROBE,
    STATS,
    multi_expression,
    reduce_expression,
)
from gpu_summary._backend.cuda_kernels.sources import (
    ANOMALY_FILE,
    CUDA_TYPES,
    FORMATS_FILE,
    IMAGE_DTYPES,
    PR_CURVE_FILE,
    REDUCE_FILE,
    THUMBNAILS_FILE,
)
from gpu_summary._backend.cuda_kernels.thumbnails import thumbnails_expression

# Every kernel module, in the order warm_up compiles them.
MODULES = (REDUCE_FILE, ANOMALY_FILE, THUMBNAILS_FILE, PR_CURVE_FILE, FORMATS_FILE)


def name_expressions(filename: str) -> list[str]:
    """Every instantiation the backend may ask a module for (all dtypes)."""
    names: list[str] = []
    for dtype in CUDA_TYPES:
        names += [e for e in module_expressions(filename, dtype) if e not in names]
    return names


def module_expressions(filename: str, dtype: str) -> list[str]:
    """The instantiations compiled together, in one NVRTC program, when the backend first
    needs a kernel of ``filename`` for storage type ``dtype`` (a dtype name of CUDA_TYPES):
    every kernel of the module for that dtype, and the module's untemplated kernels."""
    if filename == REDUCE_FILE:
        return [reduce_expression(dtype, m) for m in (STATS, LADDER, EDGES, EVEN, PROBE)] + [
            multi_expression(dtype),
            flight_expression(dtype),
        ]
    if filename == THUMBNAILS_FILE:
        return [thumbnails_expression(dtype)] if dtype in IMAGE_DTYPES else []
    if filename == ANOMALY_FILE:
        return [*(anomaly_expression(name, dtype) for name in ANOMALY_KERNELS),
                *ANOMALY_PLAIN_KERNELS]  # fmt: skip
    if filename == PR_CURVE_FILE:
        return [pr_expression(dtype)]
    if filename == FORMATS_FILE:
        return [format_expression(dtype)]
    raise ValueError(f"unknown kernel file {filename!r}")


def first_expressions(dtype: str) -> list[tuple[str, str]]:
    """(module, one instantiation) for each module a ``dtype`` may need: requesting these
    compiles everything :func:`module_expressions` lists for it."""
    return [
        (filename, expressions[0])
        for filename in MODULES
        if (expressions := module_expressions(filename, dtype))
    ]
