"""Shared fixtures: TensorBoard's own readers as the oracle, and the backend parametrisation."""

from __future__ import annotations

import contextlib
import ctypes
import functools
import importlib.util
import os
import subprocess
import sys
import textwrap
import threading

import numpy as np
import pytest
from google.protobuf import text_format
from tensorboard.backend.event_processing import event_accumulator, plugin_event_accumulator
from tensorboard.plugins.projector import projector_config_pb2 as tb_projector
from tensorboard.util import tensor_util

from gpu_summary._backend.cuda_kernels import sources as kernel_sources
from support.require_gpu import (  # noqa: F401 - GS_REQUIRE_GPU=1's hooks, registered here
    pytest_runtest_logreport,
    pytest_runtest_makereport,
    pytest_sessionfinish,
    pytest_terminal_summary,
)


def pytest_configure(config):
    # One line per missing capability in the terminal summary, and status 5 for a run in which
    # every test skipped (tests/support/skip_summary.py); unless -p loaded it already.
    if not config.pluginmanager.has_plugin("support.skip_summary"):
        config.pluginmanager.import_plugin("support.skip_summary")


# The cupy runs are GPU tests: `pytest -m gpu` selects them (and tests/test_backend_cuda.py);
# under GS_REQUIRE_GPU=1 (benchmarks/gpu_check.sh) their skips fail (tests/support/require_gpu.py).
# "emulated" runs the device backend on the CPU: tests/support/fake_cupy.py stands in for CuPy.
BACKENDS = ["numpy", pytest.param("cupy", marks=pytest.mark.gpu), "emulated"]
_DEVICE_MODULES = "gpu_summary._backend.cuda"
# Every dtype a reduction must accept.
DTYPES = [np.bool_, np.int8, np.int16, np.int32, np.int64, np.uint8, np.uint16, np.uint32]
DTYPES += [np.uint64, np.float16, np.float32, np.float64]


@functools.cache
def _cuda_available() -> bool:
    """Whether CuPy is installed and the CUDA driver sees a device.

    Asks the driver library itself: importing the real CuPy into the test process would make
    the ``emulated`` tests (which install tests/support/fake_cupy.py as ``cupy``) skip.
    """
    if importlib.util.find_spec("cupy") is None:
        return False
    try:
        driver = ctypes.CDLL("libcuda.so.1")
    except OSError:  # no driver on this machine
        return False
    count = ctypes.c_int(0)
    if driver.cuInit(0) != 0 or driver.cuDeviceGetCount(ctypes.byref(count)) != 0:
        return False
    return count.value > 0


def _forget_device_backend() -> None:
    import gpu_summary._backend as package

    # A snapshot first: another thread (a writer's, a release thread) may import meanwhile.
    for name in [m for m in list(sys.modules) if m.split(".")[:3] == _DEVICE_MODULES.split(".")]:
        del sys.modules[name]
    if hasattr(package, "cuda"):
        delattr(package, "cuda")


@pytest.fixture(scope="session")
def _emulated_kernels(tmp_path_factory):
    from support import fake_cupy

    return fake_cupy.install(tmp_path_factory.mktemp("emulated_kernels"))


@pytest.fixture
def emulated_cupy(request, monkeypatch):
    """tests/support/fake_cupy.py installed as ``cupy``; the device backend re-imported over it."""
    fake = request.getfixturevalue("_emulated_kernels")
    if "cupy" in sys.modules and sys.modules["cupy"] is not fake:
        pytest.skip("the real CuPy is loaded in this process")
    _forget_device_backend()
    monkeypatch.setitem(sys.modules, "cupy", fake)
    fake.log.clear()
    fake.compiles.clear()
    fake.waits.clear()
    fake.allocations.clear()
    fake.event_records.clear()
    yield fake
    _forget_device_backend()


@pytest.fixture(params=BACKENDS)
def xp(request):
    """The array module whose arrays a test feeds in: numpy, cupy when a GPU is present, or
    the CPU stand-in for CuPy that runs the device backend with emulated kernels."""
    if request.param == "numpy":
        return np
    if request.param == "emulated":
        return request.getfixturevalue("emulated_cupy")
    if not _cuda_available():
        pytest.skip("cupy backend: no CUDA device here")
    import cupy

    return cupy


def legacy_reader(logdir) -> event_accumulator.EventAccumulator:
    """TensorBoard's classic accumulator (scalars from simple_value, histograms from histo)."""
    acc = event_accumulator.EventAccumulator(
        str(logdir),
        size_guidance={
            event_accumulator.SCALARS: 0,
            event_accumulator.HISTOGRAMS: 0,
            event_accumulator.TENSORS: 0,
            event_accumulator.IMAGES: 0,
        },
    )
    acc.Reload()
    return acc


def plugin_reader(logdir) -> plugin_event_accumulator.EventAccumulator:
    """TensorBoard's plugin accumulator, as the server's loader uses (data_compat applied)."""
    acc = plugin_event_accumulator.EventAccumulator(str(logdir), size_guidance={"tensors": 0})
    acc.Reload()
    return acc


def tensor_values(logdir, tag):
    """[(step, ndarray)] of a plugin tag, read back through TensorBoard."""
    return [
        (e.step, tensor_util.make_ndarray(e.tensor_proto))
        for e in plugin_reader(logdir).Tensors(tag)
    ]


# Moments of a device reduction differ from NumPy's by summation order only.
MOMENT_RTOL = kernel_sources.MOMENT_RTOL


def sample_values(dtype, n: int, seed: int = 0) -> np.ndarray:
    """n values of ``dtype`` over its whole range; floats span 28 decades and hold NaN, ±Inf."""
    rng = np.random.default_rng(seed)
    if dtype == np.bool_:
        return rng.random(n) < 0.3
    if np.issubdtype(dtype, np.integer):
        info = np.iinfo(dtype)
        return rng.integers(info.min, info.max, n, dtype=dtype, endpoint=True)
    with np.errstate(over="ignore"):  # float16 overflows to ±inf: more data to count
        x = (rng.standard_normal(n) * 10.0 ** rng.integers(-14, 14, n)).astype(dtype)
    x[::97] = np.nan
    x[::101] = np.inf
    x[::103] = -np.inf
    return x


def near_thresholds(dtype, ulps: int = 3) -> np.ndarray:
    """Values of ``dtype`` at and around every low-precision threshold (gpu_summary/_core/
    formats.py): each format's overflow midpoint, largest finite value, underflow limit
    (ties included) and smallest subnormal, ``ulps`` steps either side, both signs; then 0,
    -0, NaN and ±Inf (floats), or the type's extremes (integers)."""
    from gpu_summary._core import formats as _formats

    points = [v for f in _formats.BY_NAME.values()
              for v in (f.midpoint, f.largest, f.underflow_limit, f.smallest, 1.5 * f.smallest,
                        1.5 * f.underflow_limit)]  # fmt: skip
    dtype = np.dtype(dtype)
    if dtype.kind in "iu":
        info = np.iinfo(dtype)
        whole = {int(v) + d for v in points if v >= 1 for d in range(-ulps, ulps + 1)}
        whole |= {-w for w in whole} | {0, 1, -1, 2**62, info.min, info.max, info.min + 1}
        return np.array(sorted(w for w in whole if info.min <= w <= info.max), dtype)
    if dtype.kind == "b":
        return np.array([True, False, True])
    out = []
    with np.errstate(over="ignore", under="ignore"):
        for point in points:
            x = np.array(point, dtype)
            if not np.isfinite(x) or x == 0:
                continue  # beyond this type's range
            up = down = x
            out.append(x)
            for _ in range(ulps):
                up, down = np.nextafter(up, dtype.type(np.inf)), np.nextafter(down, dtype.type(0))
                out += [up, down]
    values = np.array(out, dtype)
    return np.concatenate([values, -values, np.array([0, -0.0, np.nan, np.inf, -np.inf], dtype)])


def assert_stats_match(got, want, values) -> None:
    """Counts, min and max exactly; sums within MOMENT_RTOL of the sums of magnitudes."""
    assert (got.count, got.nan, got.posinf, got.neginf) == (
        want.count,
        want.nan,
        want.posinf,
        want.neginf,
    )
    assert (got.min, got.max) == (want.min, want.max)
    with np.errstate(invalid="ignore", over="ignore"):
        x = np.asarray(values).astype(np.float64).ravel()
        x = x[np.isfinite(x)]
        scale, scale_sq = float(np.abs(x).sum()), float((x * x).sum())
    if np.isfinite(scale):
        assert abs(got.sum - want.sum) <= MOMENT_RTOL * scale
    if np.isfinite(scale_sq):
        assert abs(got.sum_squares - want.sum_squares) <= MOMENT_RTOL * scale_sq


def run_python(code: str, timeout: float = 60, **kwargs) -> subprocess.CompletedProcess:
    """Run dedented ``code`` in a fresh interpreter; its completed process (text output)."""
    return subprocess.run(
        [sys.executable, "-c", textwrap.dedent(code)],
        capture_output=True, text=True, timeout=timeout, **kwargs,
    )  # fmt: skip


def projector_config(logdir):
    """The run's projector_config.pbtxt, parsed with TensorBoard's own message."""
    config = tb_projector.ProjectorConfig()
    with open(os.path.join(logdir, "projector_config.pbtxt"), encoding="utf-8") as file:
        text_format.Parse(file.read(), config)
    return config


def projector_tensor(logdir, info):
    """The points of one embedding of the config, as the projector plugin reads them."""
    path = os.path.join(logdir, info.tensor_path)
    if path.endswith(".tsv"):
        return np.loadtxt(path, dtype=np.float32, delimiter="\t", ndmin=2)
    return np.fromfile(path, dtype="<f4").reshape(list(info.tensor_shape))


@contextlib.contextmanager
def busy_writer_thread(logdir, **options):
    """A new ``SummaryWriter`` whose writer thread is held busy until the block ends (inside an
    ``on_anomaly`` call back, after writing what was queued before it): what that thread would
    write later is not on disk inside the block. The caller closes the writer."""
    import gpu_summary as gs

    release, holding = threading.Event(), threading.Event()

    def hold(report):
        writer.flush()  # the anomaly's own records first: nothing of them is left to write
        holding.set()
        release.wait(120)

    writer = gs.SummaryWriter(logdir, on_anomaly=hold, **options)
    writer.add_anomaly("hold", np.array([np.nan]))
    assert holding.wait(60), "the writer thread never reached the call back"
    try:
        yield writer
    finally:
        release.set()
