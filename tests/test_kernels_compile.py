"""The kernels' host-side contract: name expressions, launch arguments and buffer layouts
against the sources. (tests/test_cupy_path.py compiles every instantiation through CuPy.)"""

from __future__ import annotations

import os
import re
import shutil
import subprocess

import numpy as np
import pytest

from gpu_summary._backend.cuda_kernels import anomaly as anomaly_abi
from gpu_summary._backend.cuda_kernels import catalogue
from gpu_summary._backend.cuda_kernels import flight as flight_abi
from gpu_summary._backend.cuda_kernels import formats as formats_abi
from gpu_summary._backend.cuda_kernels import layout as kernel_layout
from gpu_summary._backend.cuda_kernels import pr_curve as pr_abi
from gpu_summary._backend.cuda_kernels import reduce as reduce_abi
from gpu_summary._backend.cuda_kernels import sources as kernel_sources
from gpu_summary._backend.cuda_kernels import thumbnails as thumbnails_abi
from gpu_summary._core import ladder as _ladder
from gpu_summary._core import probe_layout


def test_name_expressions_cover_every_dtype():
    reduce_names = catalogue.name_expressions(kernel_sources.REDUCE_FILE)
    assert len(reduce_names) == 7 * len(kernel_sources.CUDA_TYPES)
    assert "gs_multi_ladder<gs::half16>" in reduce_names
    assert "gs_flight<gs::bfloat16>" in reduce_names
    assert "gs_reduce<gs::bfloat16, 1>" in reduce_names
    assert "gs_reduce<gs::bfloat16, 4>" in reduce_names  # PROBE
    assert len(catalogue.name_expressions(kernel_sources.THUMBNAILS_FILE)) == 6
    pr_names = catalogue.name_expressions(kernel_sources.PR_CURVE_FILE)
    assert len(pr_names) == len(kernel_sources.CUDA_TYPES)
    assert "gs_pr_counts<gs::bfloat16>" in pr_names
    format_names = catalogue.name_expressions(kernel_sources.FORMATS_FILE)
    assert len(format_names) == len(kernel_sources.CUDA_TYPES)
    assert "gs_format_counts<gs::half16>" in format_names
    with pytest.raises(ValueError, match="unknown kernel file"):
        catalogue.name_expressions("nope.cu")


def _parameters(filename: str, kernel: str) -> list[str]:
    """The parameter types of a kernel, read from its source."""
    source = kernel_sources.kernel_source(filename)
    match = re.search(rf"\b{kernel}\(([^)]*)\)\s*{{", source)
    assert match, kernel
    return [" ".join(p.split()[:-1]) for p in match.group(1).split(",")]


def _width(parameter: str) -> tuple[str, int]:
    """(NumPy kind, bytes) a launch argument needs for a C parameter type."""
    if "*" in parameter:
        return "u", 8  # a device address
    if parameter == "unsigned long long":
        return "u", 8
    if "long long" in parameter:
        return "i", 8
    if parameter.split()[-1] == "int":
        return "i", 4
    if parameter.split()[-1] == "double":
        return "f", 8
    raise AssertionError(f"unexpected kernel parameter type {parameter!r}")


def test_launch_arguments_match_kernel_parameters():
    # CuPy passes each argument's bytes as they are: a width mismatch would read garbage.
    cases = [
        (
            kernel_sources.REDUCE_FILE,
            "gs_reduce",
            reduce_abi.reduce_args(
                reduce_abi.ReduceBuffer(3, 2), 64, reduce_abi.EVEN, 8, 10, [2, 5], [7, 1], bins=3
            ),
        ),
        (
            kernel_sources.REDUCE_FILE,
            "gs_reduce",
            reduce_abi.probe_args(64, 2, 8, 10, [2, 5], [7, 1]),
        ),
        (
            kernel_sources.PR_CURVE_FILE,
            "gs_pr_counts",
            pr_abi.pr_args(8, 16, "bool", 0, None, 10, 127, "float32", 64),
        ),
        (
            kernel_sources.FORMATS_FILE,
            "gs_format_counts",
            formats_abi.format_args(8, 10, [2, 5], [7, 1], "bfloat16", ("float16",), 64),
        ),
        (
            kernel_sources.THUMBNAILS_FILE,
            "gs_thumbnails",
            thumbnails_abi.thumbnails_args(1, (2, 3, 4, 3), (36, 12, 3, 1), 2, 2, 9),
        ),
    ]
    buffer = anomaly_abi.AnomalyBuffer(max_positions=5, cells=6, tiles=7)
    layout = kernel_layout.layout_args(8, 10, [2, 5], [7, 1])
    anomaly = kernel_sources.ANOMALY_FILE
    cases += [
        (anomaly, "gs_anomaly_scan", anomaly_abi.anomaly_scan_args(layout, -1.0, None, 64, buffer)),
        (anomaly, "gs_anomaly_offsets", anomaly_abi.anomaly_offsets_args(64, buffer)),
        (
            anomaly,
            "gs_anomaly_collect",
            anomaly_abi.anomaly_collect_args(layout, None, 2, 64, buffer),
        ),
        (anomaly, "gs_heatmap", anomaly_abi.heatmap_args(layout, (3, 4, 3, 4), 64, buffer)),
        (anomaly, "gs_select_step", anomaly_abi.select_step_args(64, buffer, 32, 9, -1, 4)),
        (anomaly, "gs_select_count", anomaly_abi.select_count_args(layout, 64, buffer, 0)),
    ]
    multi = reduce_abi.MultiBuffer(tensors=3, chunks=5)
    cases.append((kernel_sources.REDUCE_FILE, "gs_multi_ladder", reduce_abi.multi_args(multi, 64)))
    ring, step = (
        flight_abi.RingBuffer(slots=4, tensors=3),
        flight_abi.StepBuffer(tensors=2, chunks=5),
    )
    cases.append((kernel_sources.REDUCE_FILE, "gs_flight",
                  flight_abi.flight_args(ring, 64, step, 4096, 9)))  # fmt: skip
    for filename, kernel, args in cases:
        parameters = _parameters(filename, kernel)
        assert len(args) == len(parameters), (kernel, parameters)
        for parameter, arg in zip(parameters, args, strict=True):
            assert (arg.dtype.kind, arg.dtype.itemsize) == _width(parameter), (kernel, parameter)


def test_a_window_gives_each_step_its_stats_slot():
    buffer = reduce_abi.WindowBuffer(n_buckets=3, size=4, grid=2, n_limits=5)
    assert [buffer.slot_stats(k) for k in range(4)] == [24, 88, 152, 216]
    assert [buffer.slot_done(k) for k in range(4)] == [280, 288, 296, 304]
    assert (buffer.zero_bytes, buffer.block_stats, buffer.limits) == (312, 312, 440)
    assert buffer.result_bytes(2) == 152 and buffer.total_bytes == 480
    args = reduce_abi.reduce_args(buffer, 1000, reduce_abi.EDGES, 8, 10, [2, 5], [7, 1],
                                  limits=1440, n_limits=5, slot=2)  # fmt: skip
    assert [int(a) for a in args[-4:]] == [1000, 1152, 1312, 1296]  # counts, slot 2, ...
    raw = np.zeros(buffer.result_bytes(2), np.uint8)
    raw[:24].view(np.uint64)[:] = [1, 2, 3]
    raw[88:96].view(np.uint64)[0] = 7  # slot 1's count
    counts, stats = reduce_abi.parse_window(raw, 3, 2)
    assert counts.tolist() == [1, 2, 3] and [s.count for s in stats] == [0, 7]


def test_a_multi_tensor_window_gives_each_step_its_slots():
    buffer = reduce_abi.MultiWindowBuffer(tensors=3, size=2, chunks=5)
    ladder = 8 * 3 * _ladder.N_LIMITS  # three tensors' ladder counts, 8 bytes each
    assert [buffer.slot_stats(k) for k in range(3)] == [ladder, ladder + 192, ladder + 384]
    assert [buffer.slot_done(k) for k in range(2)] == [ladder + 384, ladder + 400]
    assert buffer.chunk_stats == buffer.zero_bytes == ladder + 416
    assert buffer.table == ladder + 416 + 5 * 64
    parameters = _parameters(kernel_sources.REDUCE_FILE, "gs_multi_ladder")
    args = reduce_abi.multi_args(buffer, 1000, 1)
    assert len(args) == len(parameters)
    assert int(args[6]) == 1000 + buffer.slot_stats(1) and int(args[8]) == 1000 + ladder + 400


def test_reduce_args_pad_the_layout_and_place_the_buffer():
    buffer = reduce_abi.ReduceBuffer(n_buckets=3, grid=2, n_limits=4)
    args = reduce_abi.reduce_args(buffer, 1000, reduce_abi.EDGES, 8, 10, [2, 5], [7, 1], n_limits=4)
    assert [int(a) for a in args[2:14]] == [2, 5, 1, 1, 1, 1, 7, 1, 0, 0, 0, 0]
    assert [int(a) for a in args[-4:]] == [1000, 1024, 1096, 1088]  # counts, stats, ...
    assert (buffer.result_bytes, buffer.zero_bytes, buffer.limits) == (88, 96, 224)
    assert buffer.total_bytes == 256


def test_probe_args_place_the_accumulator_as_probe_layout_says():
    n_formats = 2
    args = reduce_abi.probe_args(1000, n_formats, 8, 10, [2, 5], [7, 1])
    counts, stats, block_stats, blocks_done = (int(a) for a in args[-4:])
    scratch = 1000 + 8 * probe_layout.scratch(n_formats)
    assert (counts, stats) == (1000, 1000 + 8 * probe_layout.STATS)
    assert (blocks_done, block_stats) == (scratch, scratch + 8)
    assert [int(a) for a in args[14:19]] == [0, 0, 0, 1, 0]  # the kernel's own ladder
    assert reduce_abi.in_shared_memory(reduce_abi.PROBE)
    assert reduce_abi.reduce_shared_bytes(reduce_abi.PROBE) == reduce_abi.reduce_shared_bytes(
        reduce_abi.LADDER
    )
    # The scratch holds the partials of the largest grid a launch may use.
    words = reduce_abi.probe_words(n_formats)
    assert words == probe_layout.words(n_formats, reduce_abi.PROBE_BLOCKS)
    last_partial = (block_stats - 1000) // 8 + reduce_abi.STATS_WORDS * reduce_abi.PROBE_BLOCKS
    assert last_partial == words


# The ladder's constants as the kernels once spelled them; they now come from _core/ladder.py.
_LADDER_LITERALS = re.compile(r"\b(1551|1550|775|774|773)\b|\b1e-?12\b|\b1e\+?20\b|7\.2725")


def test_kernel_files_hold_no_copy_of_the_ladder():
    files = sorted(kernel_sources.kernel_dir().glob("*.cu*"))
    assert {f.name for f in files} >= {kernel_sources.HEADER, kernel_sources.REDUCE_FILE}
    for path in files:
        for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            found = _LADDER_LITERALS.search(line)
            assert not found, f"{path.name}:{number} repeats the ladder's {found.group()}"


def _defines(prologue: str) -> dict[str, str]:
    defines = {}
    for line in prologue.splitlines():
        directive, name, value = line.split(None, 2)
        assert directive == "#define"
        defines[name] = value.split("//")[0].strip()
    return defines


def test_the_prologue_defines_the_ladder_bit_for_bit():
    defines = _defines(kernel_sources.ladder_prologue())
    assert int(defines.pop("GS_LADDER_SIZE")) == _ladder.N_LIMITS
    assert int(defines.pop("GS_LADDER_ZERO")) == _ladder.ZERO_INDEX
    values = [float.fromhex(v) for v in defines.pop("GS_LADDER_VALUES").split(", ")]
    assert [v.hex() for v in values] == [float(v).hex() for v in _ladder.LIMITS]
    doubles = {name: float.fromhex(value) for name, value in defines.items()}
    assert {name: value.hex() for name, value in doubles.items()} == {
        "GS_LADDER_SMALLEST": _ladder.SMALLEST.hex(),
        "GS_LADDER_CEILING": _ladder.CEILING.hex(),
        "GS_LADDER_BUCKETS_PER_OCTAVE": _ladder.BUCKETS_PER_OCTAVE.hex(),
    }
    for filename in _MODULES:
        assert kernel_sources.kernel_source(filename).startswith(kernel_sources.ladder_prologue())


_MODULES = catalogue.MODULES


@pytest.mark.parametrize("with_prologue", [False, True])
def test_the_header_stops_without_the_ladders_macros(tmp_path, with_prologue):
    compiler = os.environ.get("CXX") or shutil.which("c++") or shutil.which("g++")
    assert compiler, "a C++ compiler (c++ or g++) is needed to check the kernel header"
    unit = tmp_path / "unit.cpp"
    prologue = kernel_sources.ladder_prologue() if with_prologue else ""
    unit.write_text(f'{prologue}#include "{kernel_sources.HEADER}"\n', encoding="utf-8")
    command = [compiler, "-std=c++17", "-fsyntax-only", f"-I{kernel_sources.kernel_dir()}"]
    proc = subprocess.run([*command, str(unit)], capture_output=True, text=True, timeout=120)
    if with_prologue:
        assert proc.returncode == 0, proc.stderr
    else:
        assert proc.returncode != 0 and "no ladder macros" in proc.stderr, proc.stderr
