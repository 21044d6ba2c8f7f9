"""The device backend: CUDA kernels launched on the producer's stream, results copied back
asynchronously. Importing it imports CuPy.

It satisfies :class:`gpu_summary._backend.protocol.Backend` with the NumPy backend's
signatures and semantics (that backend is the specification; tests compare counts exactly and
moments within ``MOMENT_RTOL``). On the caller's thread a reduction only *launches*; nothing
there waits for the device — no ``.item()``, no ``float()``, no synchronising copy. The runtime
plumbing is in ``runtime``, device tensors of other libraries are adopted in ``device_tensor``,
and each kernel family has a module: ``reduce``, ``images``, ``anomaly``, ``arrays``, ``curves``,
``flight`` (the flight recorder's ring), ``formats``; ``probes`` adds into a probe's
accumulator from compiled or captured code.
Beyond the protocol, ``histograms_torch`` reads CUDA torch tensors without adopting them; only
the dispatch (``gpu_summary._backend.launch_ladder_histograms``) calls it; and
``format_counts_into`` adds a tensor's low-precision counts to a device buffer the caller
owns (probes), one launch, nothing allocated; ``format_counts_many`` counts many tensors into
one buffer, one copy back (``add_histograms(formats=...)``).
"""

from gpu_summary._backend.cuda.anomaly import anomaly
from gpu_summary._backend.cuda.arrays import embedding, snapshot, to_host
from gpu_summary._backend.cuda.curves import pr_counts
from gpu_summary._backend.cuda.device_tensor import adopt, adopt_for_probe
from gpu_summary._backend.cuda.flight import flight_add, flight_open, flight_result
from gpu_summary._backend.cuda.formats import (
    format_counts,
    format_counts_into,
    format_counts_many,
)
from gpu_summary._backend.cuda.images import thumbnail_size, thumbnails
from gpu_summary._backend.cuda.probes import PROBE_BLOCKS, probe_add, probe_take, probe_words
from gpu_summary._backend.cuda.reduce import (
    even_counts,
    histogram_even,
    histogram_fixed,
    histograms,
    histograms_torch,
    scalar,
    tensor_stats,
)
from gpu_summary._backend.cuda.runtime import MOMENT_RTOL, warm_up
from gpu_summary._backend.cuda.step_windows import (
    multi_window_add,
    multi_window_open,
    multi_window_result,
    window_add,
    window_open,
    window_result,
)

__all__ = [
    "MOMENT_RTOL",
    "PROBE_BLOCKS",
    "adopt",
    "adopt_for_probe",
    "anomaly",
    "embedding",
    "even_counts",
    "flight_add",
    "flight_open",
    "flight_result",
    "format_counts",
    "format_counts_into",
    "format_counts_many",
    "histogram_even",
    "histogram_fixed",
    "histograms",
    "histograms_torch",
    "multi_window_add",
    "multi_window_open",
    "multi_window_result",
    "pr_counts",
    "probe_add",
    "probe_take",
    "probe_words",
    "scalar",
    "snapshot",
    "tensor_stats",
    "thumbnail_size",
    "thumbnails",
    "to_host",
    "warm_up",
    "window_add",
    "window_open",
    "window_result",
]
