"""GPU metrics from NVML, sampled on a background thread and logged as scalars.

``gs.GpuMonitor(writer, interval=10.0, devices=None)`` (or ``writer.monitor_gpus(...)``)
samples, every ``interval`` seconds, each device's utilisation, memory used and total,
temperature, power and SM clock through NVML (the ``pynvml`` module of nvidia-ml-py) and logs
them as ``system/gpu<i>/<metric>``, step = the sample's number. It stops with the writer (or
``stop()``). A metric a device does not report (NVML answers "not supported") is skipped for
that device. A distributed writer logs rank 0's devices.
"""

from __future__ import annotations

import importlib
import threading
import time
import warnings
from typing import Protocol, runtime_checkable

from gpu_summary._core import arguments
from gpu_summary._sync import StoppableThread


@runtime_checkable
class _Samples(Protocol):
    """What a monitor asks of a writer's state: to be stopped with it, and to log a sample."""

    def add_monitor(self, monitor: GpuMonitor) -> None: ...

    def add_sample(self, tag: str, value: float, step: int, wall: float) -> None: ...


@runtime_checkable
class MonitoredWriter(Protocol):
    """A writer as a monitor uses it: a :class:`gpu_summary.SummaryWriter`, which imports this
    module."""

    @property
    def _state(self) -> _Samples: ...


# metric name -> (NVML query, converter); each query takes (pynvml, handle).
METRICS = {
    "utilization_percent": lambda nvml, h: nvml.nvmlDeviceGetUtilizationRates(h).gpu,
    "memory_used_mib": lambda nvml, h: nvml.nvmlDeviceGetMemoryInfo(h).used / 2**20,
    "memory_total_mib": lambda nvml, h: nvml.nvmlDeviceGetMemoryInfo(h).total / 2**20,
    "temperature_c": lambda nvml, h: nvml.nvmlDeviceGetTemperature(h, nvml.NVML_TEMPERATURE_GPU),
    "power_w": lambda nvml, h: nvml.nvmlDeviceGetPowerUsage(h) / 1000.0,
    "sm_clock_mhz": lambda nvml, h: nvml.nvmlDeviceGetClockInfo(h, nvml.NVML_CLOCK_SM),
}

_warned = False


def _load_nvml() -> object:
    """``pynvml``, initialised; raises ImportError or pynvml.NVMLError."""
    nvml = importlib.import_module("pynvml")
    nvml.nvmlInit()
    return nvml


class GpuMonitor:
    """Samples NVML on a daemon thread and logs each device's metrics to ``writer``.

    Args:
        writer: the SummaryWriter to log to.
        interval: seconds between samples (> 0); the first sample is taken at once.
        devices: NVML device indices to watch; None for all.
        lenient: without NVML (no nvidia-ml-py, no driver), warn once and log nothing
            instead of raising.

    Raises:
        RuntimeError: NVML cannot start (unless ``lenient``); the message says why and how
            to install it.
        ValueError: a bad ``interval`` or a device index NVML does not have.
    """

    def __init__(
        self,
        writer: MonitoredWriter,
        interval: float = 10.0,
        devices: list[int] | None = None,
        *,
        lenient: bool = False,
    ) -> None:
        if isinstance(interval, bool) or not isinstance(interval, (int, float)):
            raise TypeError(f"interval must be a number of seconds, got {interval!r}")
        if not interval > 0:
            raise ValueError(f"interval must be > 0 seconds, got {interval}")
        self._writer = writer
        self._interval = float(interval)
        self._stop = threading.Event()
        self._step = 0
        self._skip: set[tuple[int, str]] = set()
        self._thread: threading.Thread | None = None
        self._nvml = None
        try:
            self._nvml = _load_nvml()
        except Exception as exc:
            reason = (
                f"GPU metrics need NVML: {type(exc).__name__}: {exc}. Install nvidia-ml-py "
                "(pip install 'gpu_summary[cuda12]' or [cuda13]) on a machine with an NVIDIA "
                "driver, or pass lenient=True to go on without GPU metrics"
            )
            if not lenient:
                raise RuntimeError(reason) from exc
            global _warned
            if not _warned:
                _warned = True
                warnings.warn(reason, RuntimeWarning, stacklevel=2)
            self.devices: list[int] = []
            return
        count = self._nvml.nvmlDeviceGetCount()
        if devices is None:
            devices = list(range(count))
        devices = [arguments.check_count(d, "devices", count - 1) for d in devices]
        self.devices = devices
        self._handles = [self._nvml.nvmlDeviceGetHandleByIndex(i) for i in devices]
        writer._state.add_monitor(self)
        self._thread = StoppableThread(self._run, "gpu_summary GPU monitor", on_stop=self.stop)
        self._thread.start()

    def sample(self) -> dict[str, float]:
        """Take one sample now and log it; returns ``{tag: value}``."""
        values: dict[str, float] = {}
        if self._nvml is None:
            return values
        wall = time.time()
        for index, handle in zip(self.devices, self._handles, strict=True):
            for name, query in METRICS.items():
                if (index, name) in self._skip:
                    continue
                try:
                    value = float(query(self._nvml, handle))
                except self._nvml.NVMLError:
                    self._skip.add((index, name))  # not supported on this device
                    continue
                values[f"system/gpu{index}/{name}"] = value
        for tag, value in values.items():
            self._writer._state.add_sample(tag, value, self._step, wall)
        self._step += 1
        return values

    def _run(self) -> None:
        while not self._stop.is_set():
            try:
                self.sample()
            except ValueError:  # the writer closed under us
                return
            self._stop.wait(self._interval)

    def stop(self) -> None:
        """Stop sampling (idempotent); the writer's close() calls it."""
        self._stop.set()
        thread, self._thread = self._thread, None
        if thread is not None and thread is not threading.current_thread():
            thread.join()
        if self._nvml is not None:
            nvml, self._nvml = self._nvml, None
            try:
                nvml.nvmlShutdown()
            except Exception:  # noqa: BLE001 - shutting down anyway
                pass

    def __enter__(self) -> GpuMonitor:
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()
