"""The device backend's anomaly report (``kernels/gs_anomaly.cu``): counts, positions, exact
quantiles by radix selection, and the heat map, launched without a sync."""

from __future__ import annotations

import functools

import cupy
import numpy as np

from gpu_summary._backend.cuda import reduce, runtime
from gpu_summary._backend.cuda.device_tensor import DeviceArray
from gpu_summary._backend.cuda_kernels import anomaly as anomaly_abi
from gpu_summary._backend.cuda_kernels import layout as kernel_layout
from gpu_summary._backend.cuda_kernels import reduce as reduce_abi
from gpu_summary._backend.cuda_kernels import sources as kernel_sources
from gpu_summary._core import anomaly as _anomaly
from gpu_summary._core import ladder as _ladder
from gpu_summary._core.results import AnomalyResult, HistogramResult, Pending


def _c_order_source(values: DeviceArray) -> tuple[tuple, object]:
    """(gs_anomaly layout arguments, array to keep) addressing ``values`` in C order."""
    pointer, shape, strides, array = runtime.flat_source(values, kernel_layout.c_order_view)
    return kernel_layout.layout_args(pointer, int(values.size), shape, strides), array


def anomaly(
    values: DeviceArray,
    lower: float | None,
    upper: float | None,
    max_positions: int,
    cells: int,
) -> Pending[AnomalyResult]:
    """The NumPy backend's ``anomaly`` on the device, without a host sync.

    Launches, all on the producer's stream: a memset of one buffer (``anomaly_abi.AnomalyBuffer``),
    gs_reduce's ladder pass (moments, non-finite counts and the report's histogram),
    gs_anomaly_scan (+ gs_anomaly_offsets and gs_anomaly_collect when
    positions are asked for), gs_heatmap, and the radix selection of the quantiles' order
    statistics (gs_select_step, then per byte of the order keys gs_select_count and
    gs_select_step: 4 rounds for 1-4 byte types, 8 for 8-byte ones); then two device copies
    (stats and ladder counts into the report's buffer) and one copy of the compact result to
    pinned memory. The order statistics are exact (found by counting, never
    by sorting a copy); the heat-map sums differ from NumPy's by summation order only.
    """
    dtype = values.dtype_name
    n = int(values.size)
    quantiles = np.asarray(_anomaly.QUANTILES, dtype=np.float64)
    grid_shape = _anomaly.heat_grid(n, cells)
    n_cells = grid_shape[2] * grid_shape[3]
    device = values.device_id
    with cupy.cuda.Device(device), values.stream:
        stream = values.stream
        stats = reduce.Reduction(
            values, reduce_abi.LADDER, _ladder.N_LIMITS
        )  # + the report's histogram
        stats.launch(reduce_abi.LADDER)
        layout, keep = _c_order_source(values)
        buffer = anomaly_abi.AnomalyBuffer(max_positions, n_cells, -(-n // anomaly_abi.TILE))
        memory = cupy.cuda.alloc(buffer.total_bytes)
        base = memory.ptr
        cupy.cuda.runtime.memsetAsync(base, 0, buffer.total_bytes, stream.ptr)
        staging = runtime.stage(quantiles, base + buffer.quantiles, stream)

        def run(name: str, args: tuple, work: int = 0, most: int | None = None) -> None:
            """Launch one kernel: one block without ``work``, else a grid for ``work`` items
            (at most ``most`` blocks)."""
            templated = name in anomaly_abi.ANOMALY_KERNELS
            expression = anomaly_abi.anomaly_expression(name, dtype) if templated else name
            kernel = runtime.kernel(device, kernel_sources.ANOMALY_FILE, expression, dtype)
            grid = runtime.grid_for(device, work, kernel) if work else 1
            grid = grid if most is None else min(grid, most)
            kernel((max(1, grid),), (kernel_sources.THREADS,), args)

        run("gs_anomaly_scan", anomaly_abi.anomaly_scan_args(layout, lower, upper, base, buffer),
            n, buffer.tiles)  # fmt: skip
        if max_positions:
            run("gs_anomaly_offsets", anomaly_abi.anomaly_offsets_args(base, buffer))
            run("gs_anomaly_collect",
                anomaly_abi.anomaly_collect_args(layout, lower, upper, base, buffer), n,
                buffer.tiles)  # fmt: skip
        run("gs_heatmap", anomaly_abi.heatmap_args(layout, grid_shape, base, buffer),
            n_cells * kernel_sources.THREADS * 4, n_cells)  # a cell a block  # fmt: skip
        stats_pointer = stats.memory.ptr + stats.buffer.stats
        passes = anomaly_abi.order_key_bits(dtype) // 8
        step = functools.partial(
            anomaly_abi.select_step_args, base, buffer, stats_pointer, quantiles.size
        )
        run("gs_select_step", step(-1, passes))
        for pass_ in range(passes):
            run("gs_select_count", anomaly_abi.select_count_args(layout, base, buffer, pass_), n)
            run("gs_select_step", step(pass_, passes))
        cupy.cuda.runtime.memcpyAsync(
            base + buffer.stats,
            stats_pointer,
            8 * reduce_abi.STATS_WORDS,
            runtime.DEVICE_TO_DEVICE,
            stream.ptr,
        )  # fmt: skip
        cupy.cuda.runtime.memcpyAsync(
            base + buffer.ladder, stats.memory.ptr, 8 * _ladder.N_LIMITS, runtime.DEVICE_TO_DEVICE,
            stream.ptr,
        )  # fmt: skip
        host, event = runtime.launch_copy(memory, buffer.result_bytes, stream)
        shape = tuple(values.shape)

        def parse(raw: np.ndarray) -> AnomalyResult:
            words = raw.view(np.uint64)
            stats_ = reduce_abi.parse_stats(raw[buffer.stats : buffer.keys])
            offending = stats_.nan + stats_.posinf + stats_.neginf + int(words[0] + words[1])
            kept = min(offending, max_positions)

            def region(offset: int, count: int, dtype_: type) -> np.ndarray:
                return raw[offset : offset + 8 * count].view(dtype_).copy()

            count = stats_.count
            keys = region(buffer.keys, 2 * quantiles.size, np.uint64)
            heat = (grid_shape[2], grid_shape[3])
            return AnomalyResult(
                shape=shape,
                stats=stats_,
                below=int(words[0]),
                above=int(words[1]),
                positions=region(buffer.positions, kept, np.int64),
                position_values=region(buffer.values, kept, np.float64),
                order_stats=anomaly_abi.order_key_values(keys, dtype) if count else np.zeros(0),
                heat_sum=region(buffer.heat_sum, n_cells, np.float64).reshape(heat),
                heat_count=region(buffer.heat_count, n_cells, np.int64).reshape(heat),
                heat_nonfinite=region(buffer.heat_nonfinite, n_cells, np.int64).reshape(heat),
                histogram=HistogramResult(
                    limits=_ladder.LIMITS,
                    counts=region(buffer.ladder, _ladder.N_LIMITS, np.int64),
                    stats=stats_,
                ),
            )

        keep_alive = (memory, staging, stats.memory, stats.keep, keep, values.owner)
        return runtime.DevicePending(event, host, parse, keep_alive)
