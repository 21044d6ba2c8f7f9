"""The device side of a probe (``writer.probe``): a tensor's ladder histogram and stats added
into the probe's accumulator (``gpu_summary._core.probe_layout``) by one ``gs_reduce`` PROBE
launch on the tensor's stream.

That launch is all a call queues while its stream captures — no allocation, memset, copy,
event or host sync — so it can be recorded into a CUDA graph and replayed any number of times,
each replay adding again: the kernel adds its counts, combines its stats with those already
there, and sets its block counter back to zero itself. Outside a capture one event follows it
(below). Launches into one accumulator must be ordered (one stream, or
streams ordered by the caller): they share its scratch. The NumPy backend's ``probe_add`` is
the specification (counts exact, moments within ``MOMENT_RTOL``).

Keeping the input alive until the kernel has read it:

* **Captured** (the stream is capturing a graph): the kernel reads the input's address at
  every replay, so its owner must keep it (a captured tensor lives in the graph's memory pool
  for the graph's life). Nothing is kept here, and no event is recorded: an event recorded on
  a capturing stream becomes a node of the user's graph, which no host thread may wait for.
* **Eager**: the input (and its producer's object) is kept until an event recorded after the
  launch has completed, then dropped by the release thread (``runtime.release_after``), as a
  window's step is: a tensor the caller drops at once is not handed back to its allocator
  while the queued kernel may still read it.
"""

from __future__ import annotations

import contextlib

import cupy
import numpy as np

from gpu_summary._backend.cuda import capture, runtime
from gpu_summary._backend.cuda.device_tensor import DeviceArray
from gpu_summary._backend.cuda_kernels import layout as kernel_layout
from gpu_summary._backend.cuda_kernels import reduce as reduce_abi
from gpu_summary._backend.cuda_kernels import sources as kernel_sources
from gpu_summary._core import probe_layout
from gpu_summary._core.results import Pending

PROBE_BLOCKS = reduce_abi.PROBE_BLOCKS
probe_words = reduce_abi.probe_words


def probe_add(state: DeviceArray, values: DeviceArray, formats: tuple[str, ...]) -> None:
    """Add ``values``' ladder counts and stats into a probe's accumulator, on the device.

    One kernel launch on ``values.stream`` (a second with ``formats``); legal while that
    stream captures a CUDA graph. Launches into one ``state`` must be ordered on the device.

    Args:
        state: the accumulator: ``probe_words(len(formats))`` contiguous int64 words on
            ``values``' device, initialised by ``probe_layout.empty(len(formats),
            PROBE_BLOCKS)`` (and set back to that, on the stream, when it is read out).
        values: a tensor of any dtype the kernels read (``kernel_sources.CUDA_TYPES``), read
            in place: strides of whole elements, at most ``kernel_layout.MAX_DIMS``
            dimensions once merged (``kernel_layout.kernel_view``).
        formats: low-precision formats whose overflow and underflow counts are added too
            (``formats.format_counts_into``); ``()`` for none.

    Raises:
        TypeError: ``state`` is not an int64 accumulator of the right length on ``values``'
            device, or ``values`` cannot be read without a copy (a probe never copies: it
            would allocate inside compiled or captured code).

    .. note:: Never synchronises and never allocates device memory. Outside a capture it
       records one event after the launch (see the module's docstring); inside one, none.
       The first call for a dtype on a device compiles the kernels (``runtime.warm_up``
       does it ahead); while a capture runs, that happens in relaxed capture mode, so that
       loading the module cannot invalidate the capture.
    """
    _check_state(state, values, len(formats))
    view = kernel_layout.kernel_view(values.array.data.ptr, values.shape, values.strides,
                                     values.array.dtype.itemsize)  # fmt: skip
    if view is None:
        raise TypeError(
            f"a probe cannot read a tensor of shape {values.shape} with byte strides "
            f"{values.strides} without copying it, which it never does (the copy would be "
            "an allocation inside compiled or captured code); pass a contiguous tensor "
            "(tensor.contiguous()) to the probe"
        )
    pointer, shape, strides = view
    base = state.array.data.ptr
    stream = values.stream
    with cupy.cuda.Device(values.device_id), stream:
        capturing = _is_capturing(stream)
        with capture.relaxed() if capturing else contextlib.nullcontext():
            kernel, grid, shared = _launch_shape(values)
        args = reduce_abi.probe_args(base, len(formats), pointer, int(values.size), shape,
                                     strides)  # fmt: skip
        kernel((grid,), (kernel_sources.THREADS,), args, shared_mem=shared)
        if formats:
            from gpu_summary._backend.cuda.formats import format_counts_into

            format_counts_into(values, formats, base + 8 * probe_layout.FORMATS)
        if not capturing:
            event = cupy.cuda.Event(block=True, disable_timing=True)
            event.record(stream)
            runtime.release_after(event, (values.owner, values.array, state.owner, state.array))


def _is_capturing(stream: object) -> bool:
    """Whether ``stream`` is capturing a CUDA graph; a stream that cannot even be asked (the
    legacy default stream while another captures) counts as capturing: nothing is recorded on
    it then but the launch."""
    try:
        return bool(stream.is_capturing())
    except Exception:  # noqa: BLE001 - the query itself is illegal during some captures
        return True


def _launch_shape(values: DeviceArray) -> tuple:
    """(kernel, grid, dynamic shared bytes) of a PROBE launch over ``values``: one wave of
    the device at most, and never more blocks than the accumulator's scratch holds."""
    dtype = values.dtype_name
    expression = reduce_abi.reduce_expression(dtype, reduce_abi.PROBE)
    kernel = runtime.kernel(values.device_id, kernel_sources.REDUCE_FILE, expression, dtype)
    shared = reduce_abi.reduce_shared_bytes(reduce_abi.PROBE)
    grid = runtime.grid_for(values.device_id, int(values.size), kernel, shared)
    return kernel, min(grid, PROBE_BLOCKS), shared


def _check_state(state: DeviceArray, values: DeviceArray, n_formats: int) -> None:
    words = probe_words(n_formats)
    if (
        state.dtype_name != "int64"
        or state.shape != (words,)
        or state.strides != (8,)
        or state.device_id != values.device_id
    ):
        raise TypeError(
            f"state must be a probe's accumulator: {words} contiguous int64 words on device "
            f"{values.device_id} (probe_words({n_formats})), got dtype {state.dtype}, shape "
            f"{state.shape}, strides {state.strides} on device {state.device_id}"
        )


def probe_take(state: DeviceArray, n_formats: int) -> Pending[np.ndarray]:
    """``writer.collect``'s read of an accumulator: its counts, stats and format counts
    copied to pinned host memory, then set back to empty, both queued on ``state.stream``
    (the current stream of the collect: after what was queued there before it), and an event
    after them that the writer thread waits for. Nothing waits here.

    Raises:
        RuntimeError: that stream is capturing a CUDA graph (``adopt`` refuses it first).
    """
    words = probe_layout.scratch(n_formats)
    nbytes = 8 * words
    stream = state.stream
    capture.refuse_capturing(stream, "writer.collect")
    with cupy.cuda.Device(state.device_id), stream:
        host = np.frombuffer(runtime.pinned(nbytes), np.uint8, nbytes)
        cupy.cuda.runtime.memcpyAsync(host.ctypes.data, state.array.data.ptr, nbytes,
                                      runtime.DEVICE_TO_HOST, stream.ptr)  # fmt: skip
        staged = runtime.stage(probe_layout.empty(n_formats)[:words], state.array.data.ptr,
                               stream)  # fmt: skip
        event = cupy.cuda.Event(block=True, disable_timing=True)
        event.record(stream)
        return runtime.DevicePending(event, host, _words,
                                     (state.owner, state.array, staged))  # fmt: skip


def _words(raw: np.ndarray) -> np.ndarray:
    return raw.view(np.int64).copy()
