"""The NumPy backend: host reductions, and the specification every device kernel must match.

It satisfies :class:`gpu_summary._backend.protocol.Backend`, as the CUDA backend does; each
function has a twin with the same signature there. Results come back as
:class:`~gpu_summary._core.results.Pending` (always ready here). Arithmetic is float64 over
cache-sized chunks (``arrays``); statistics and histograms are in ``reduce`` (the
specification) and ``compiled`` (the same results from numba kernels where numba is installed:
what this backend runs), images in ``images``, the anomaly report in ``anomaly``,
precision-recall counts in ``curves``, the flight recorder's ring in ``flight``,
low-precision overflow and underflow counts in ``formats`` (and ``compiled_formats``).
"""

from gpu_summary._backend.numpy.arrays import (
    as_array,
    check_copy,
    check_numeric,
    embedding,
    is_narrow_float,
    numeric,
    snapshot,
    to_host,
    unmasked,
    widened,
)
from gpu_summary._backend.numpy.compiled import (
    even_counts,
    histogram_even,
    histogram_fixed,
    histograms,
    tensor_stats,
)
from gpu_summary._backend.numpy.compiled_formats import format_counts
from gpu_summary._backend.numpy.compiled_reports import anomaly, thumbnails
from gpu_summary._backend.numpy.curves import pr_counts
from gpu_summary._backend.numpy.flight import flight_add, flight_open, flight_result
from gpu_summary._backend.numpy.images import image_to_uint8, thumbnail_size
from gpu_summary._backend.numpy.probes import probe_add, probe_take
from gpu_summary._backend.numpy.reduce import even_edges, rule_limits, scalar
from gpu_summary._backend.numpy.step_windows import window_add, window_open, window_result

__all__ = [
    "anomaly",
    "as_array",
    "check_copy",
    "check_numeric",
    "embedding",
    "even_counts",
    "even_edges",
    "flight_add",
    "flight_open",
    "flight_result",
    "format_counts",
    "histogram_even",
    "histogram_fixed",
    "histograms",
    "image_to_uint8",
    "is_narrow_float",
    "numeric",
    "pr_counts",
    "probe_add",
    "probe_take",
    "rule_limits",
    "scalar",
    "snapshot",
    "tensor_stats",
    "thumbnail_size",
    "thumbnails",
    "to_host",
    "unmasked",
    "widened",
    "window_add",
    "window_open",
    "window_result",
]
