"""GpuMonitor: NVML metrics as scalars, against a fake ``pynvml`` (the real one on a GPU)."""

from __future__ import annotations

import importlib.util
import threading
import types

import pytest

import gpu_summary as gs
from conftest import _cuda_available, legacy_reader
from gpu_summary import monitor as monitor_module


class _NVMLError(Exception):
    pass


def _fake_nvml(devices: int = 2, unsupported: tuple[int, str] | None = None):
    """A pynvml stand-in whose readings depend on the device and count the calls."""
    state = {"init": 0, "shutdown": 0, "samples": 0}

    def handle(i):
        if not 0 <= i < devices:
            raise _NVMLError("invalid index")
        return i

    def query(name, make):
        def read(h, *args):
            if unsupported == (h, name):
                raise _NVMLError("Not Supported")
            state["samples"] += 1
            return make(h)

        return read

    nvml = types.SimpleNamespace(
        NVMLError=_NVMLError,
        NVML_TEMPERATURE_GPU=0,
        NVML_CLOCK_SM=1,
        nvmlInit=lambda: state.__setitem__("init", state["init"] + 1),
        nvmlShutdown=lambda: state.__setitem__("shutdown", state["shutdown"] + 1),
        nvmlDeviceGetCount=lambda: devices,
        nvmlDeviceGetHandleByIndex=handle,
        nvmlDeviceGetUtilizationRates=query(
            "util", lambda h: types.SimpleNamespace(gpu=50 + h, memory=10)
        ),
        nvmlDeviceGetMemoryInfo=query(
            "memory", lambda h: types.SimpleNamespace(used=(h + 1) * 2**30, total=80 * 2**30)
        ),
        nvmlDeviceGetTemperature=query("temperature", lambda h: 60 + h),
        nvmlDeviceGetPowerUsage=query("power", lambda h: 250_000 + h * 1000),
        nvmlDeviceGetClockInfo=query("clock", lambda h: 1980),
    )
    return nvml, state


@pytest.fixture
def fake_nvml(monkeypatch):
    nvml, state = _fake_nvml(unsupported=(1, "power"))
    monkeypatch.setattr(monitor_module, "_load_nvml", lambda: (nvml.nvmlInit(), nvml)[1])
    return state


def test_samples_every_device_until_the_writer_closes(tmp_path, fake_nvml):
    with gs.SummaryWriter(tmp_path) as writer:
        monitor = writer.monitor_gpus(interval=0.05)
        assert monitor.devices == [0, 1]
        deadline = threading.Event()
        deadline.wait(0.4)
    samples_at_close = fake_nvml["samples"]
    threading.Event().wait(0.2)
    assert fake_nvml["samples"] == samples_at_close  # stopped with the writer
    assert fake_nvml["shutdown"] == 1
    acc = legacy_reader(tmp_path)
    tags = set(acc.Tags()["scalars"])
    for device in (0, 1):
        for metric in ("utilization_percent", "memory_used_mib", "memory_total_mib",
                       "temperature_c", "sm_clock_mhz"):  # fmt: skip
            assert f"system/gpu{device}/{metric}" in tags
    assert "system/gpu0/power_w" in tags and "system/gpu1/power_w" not in tags  # unsupported
    utilization = acc.Scalars("system/gpu1/utilization_percent")
    assert len(utilization) >= 3 and [e.step for e in utilization] == list(range(len(utilization)))
    assert {e.value for e in utilization} == {51.0}
    assert acc.Scalars("system/gpu0/memory_used_mib")[0].value == 1024.0
    assert acc.Scalars("system/gpu0/power_w")[0].value == 250.0


def test_one_device_and_manual_samples(tmp_path, fake_nvml):
    with gs.SummaryWriter(tmp_path) as writer, gs.GpuMonitor(writer, 3600, devices=[1]) as m:
        values = m.sample()
    assert set(values) == {f"system/gpu1/{k}" for k in monitor_module.METRICS} - {
        "system/gpu1/power_w"
    }
    assert values["system/gpu1/temperature_c"] == 61.0


def test_bad_arguments(tmp_path, fake_nvml):
    with gs.SummaryWriter(tmp_path) as writer:
        with pytest.raises(ValueError, match="devices must be between 0 and 1"):
            writer.monitor_gpus(devices=[2])
        with pytest.raises(ValueError, match="interval must be > 0"):
            writer.monitor_gpus(interval=0)
        with pytest.raises(TypeError, match="interval must be a number"):
            writer.monitor_gpus(interval="1")


def test_without_nvml_it_raises_or_warns_once(tmp_path, monkeypatch):
    def missing():
        raise ImportError("No module named 'pynvml'")

    monkeypatch.setattr(monitor_module, "_load_nvml", missing)
    monkeypatch.setattr(monitor_module, "_warned", False)
    with gs.SummaryWriter(tmp_path) as writer:
        with pytest.raises(RuntimeError, match=r"GPU metrics need NVML.*nvidia-ml-py.*lenient"):
            writer.monitor_gpus()
        with pytest.warns(RuntimeWarning, match="GPU metrics need NVML"):
            quiet = writer.monitor_gpus(lenient=True)
        assert quiet.devices == [] and quiet.sample() == {}
        with warnings_as_errors():
            writer.monitor_gpus(lenient=True)  # warned once only


class warnings_as_errors:
    def __enter__(self):
        import warnings

        self._catch = warnings.catch_warnings()
        self._catch.__enter__()
        warnings.simplefilter("error")

    def __exit__(self, *exc):
        self._catch.__exit__(*exc)


@pytest.mark.gpu
@pytest.mark.skipif(
    not _cuda_available() or importlib.util.find_spec("pynvml") is None,
    reason="needs an NVIDIA GPU and nvidia-ml-py",
)
def test_real_nvml(tmp_path):
    with gs.SummaryWriter(tmp_path) as writer:
        monitor = writer.monitor_gpus(interval=3600)
        values = monitor.sample()
    assert "system/gpu0/memory_total_mib" in values and values["system/gpu0/memory_total_mib"] > 0
    assert "system/gpu0/memory_total_mib" in legacy_reader(tmp_path).Tags()["scalars"]
