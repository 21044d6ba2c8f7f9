"""gpu_summary: TensorBoard summaries reduced where the tensors live.

Public names only; see docs/ for the API reference (docs/api/) and the on-disk formats
(docs/formats.md).
"""

from gpu_summary._backend import warm_up
from gpu_summary._backend.probe_operator import Probe
from gpu_summary._core.anomaly import AnomalyHandle, AnomalyReport, Position
from gpu_summary._events.writer import WriterError
from gpu_summary.distributed import AggregationError, MismatchError
from gpu_summary.hparams import HParam, IntegerRange, Metric, RealRange, ValueSet
from gpu_summary.monitor import GpuMonitor
from gpu_summary.watch import Watch, unwatch, watch
from gpu_summary.writer import SummaryWriter

__version__ = "0.1.0"

__all__ = [
    "AggregationError",
    "AnomalyHandle",
    "AnomalyReport",
    "GpuMonitor",
    "HParam",
    "IntegerRange",
    "Metric",
    "MismatchError",
    "Position",
    "Probe",
    "RealRange",
    "SummaryWriter",
    "ValueSet",
    "Watch",
    "WriterError",
    "__version__",
    "unwatch",
    "warm_up",
    "watch",
]
