"""Reliability under faults and awkward input: nothing flushed is lost, no reader sees a corrupt
record, and every failure is a clear error on the caller's side.

Each test prints its figures (records written / recovered, peak memory) with ``-s``; the
reliability page of the documentation (docs/reliability.md) quotes them.
"""

from __future__ import annotations

import contextlib
import errno
import importlib.util
import io
import os
import pickle
import random
import shutil
import signal
import subprocess
import sys
import tempfile
import textwrap
import threading
import time

import numpy as np
import pytest
from google.protobuf import text_format
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image

import gpu_summary as gs
from conftest import legacy_reader, plugin_reader, run_python, tensor_values
from gpu_summary import reader
from gpu_summary.__main__ import main as cli
from gpu_summary._events.records import encode_record, masked_crc32c, read_records
from gpu_summary.proto import event_pb2, projector_config_pb2


def _only_whole_records_and_a_tail(path) -> tuple[list, list]:
    """The events of ``path``; asserts every problem is one truncated tail at the very end."""
    items = list(reader.read_events(path))
    problems = [item for item in items if isinstance(item, reader.Problem)]
    events = [item[1] for item in items if not isinstance(item, reader.Problem)]
    assert len(problems) <= 1, problems
    if problems:
        (tail,) = problems
        assert tail.reason.startswith("truncated") and items[-1] is tail
        assert tail.offset + tail.unread == os.path.getsize(path)
    return events, problems


# -- crash ------------------------------------------------------------------------------------

_LOGGER = """
    import sys
    import numpy as np
    import gpu_summary as gs
    writer = gs.SummaryWriter(sys.argv[1], flush_secs=0.02)
    values = np.random.default_rng(0).standard_normal(20_000)
    step = 0
    while True:  # full speed, until killed
        writer.add_scalar("crash/loss", float(step), step)
        writer.add_histogram("crash/weights", values + step, step)
        step += 1
        if step % 25 == 0:
            writer.flush()
            print(step, flush=True)  # every step below this is in the file
"""


@pytest.mark.slow
@pytest.mark.parametrize("kill_after", [0.3, 1.0, 2.0])
def test_sigkill_loses_nothing_flushed(tmp_path, kill_after):
    pause = random.Random(kill_after).uniform(0, 0.05)  # into the next writes
    logger = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(_LOGGER), str(tmp_path)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    flushed = 0
    started = time.monotonic()
    try:
        for line in logger.stdout:
            flushed = int(line)
            if time.monotonic() - started > kill_after and flushed >= 25:
                break
        time.sleep(pause)
        os.kill(logger.pid, signal.SIGKILL)  # mid-stride: the logger never stops on its own
    finally:
        logger.kill()
        logger.wait()
    assert flushed >= 25 and logger.returncode == -signal.SIGKILL  # it ran, and was killed
    (path,) = tmp_path.glob("events.*")
    events, problems = _only_whole_records_and_a_tail(path)
    steps = [e.step for e in events if e.HasField("summary")]
    scalars = [s for e, s in zip(events[1:], steps, strict=True)
               if e.summary.value[0].tag == "crash/loss"]  # fmt: skip
    assert scalars == list(range(len(scalars))) and len(scalars) >= flushed
    # TensorBoard and `gpu-summary inspect` read the same and skip the tail.
    assert [s.step for s in legacy_reader(tmp_path).Scalars("crash/loss")] == scalars
    out = io.StringIO()
    with contextlib.redirect_stdout(out):
        status = cli(["inspect", str(tmp_path)])
    assert status == (1 if problems else 0)
    print(f"\nSIGKILL after {kill_after} s: {flushed} steps flushed, {len(events)} records "
          f"recovered ({len(scalars)} steps), truncated tail: {bool(problems)}")  # fmt: skip
    if not problems:  # a write torn by the kill, as a crash inside os.write would leave it
        with open(path, "ab") as file:
            file.write(encode_record(b"\x08" * 300)[:150])
        _, problems = _only_whole_records_and_a_tail(path)
        assert len(problems) == 1
        assert [s.step for s in legacy_reader(tmp_path).Scalars("crash/loss")] == scalars
        with contextlib.redirect_stdout(io.StringIO()):
            assert cli(["inspect", str(tmp_path)]) == 1


_TERMINATED = """
    import signal, sys
    import numpy as np
    import gpu_summary as gs
    # docs/reliability.md's recipe: SIGTERM raises SystemExit, so writers are closed at exit.
    signal.signal(signal.SIGTERM, lambda signum, frame: sys.exit(128 + signum))
    writer = gs.SummaryWriter(sys.argv[1])  # flush_secs=1: records wait in memory
    values = np.random.default_rng(0).standard_normal(20_000)
    step = 0
    while True:
        writer.add_scalar("term/loss", float(step), step)
        writer.add_histogram("term/weights", values + step, step)
        print(step, flush=True)  # logged (not yet flushed) up to here
        step += 1
"""


@pytest.mark.slow
def test_sigterm_with_the_readme_handler_keeps_every_logged_step(tmp_path):
    logger = subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(_TERMINATED), str(tmp_path)],
        stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        for line in logger.stdout:
            if int(line) >= 500:
                break
        logger.send_signal(signal.SIGTERM)
        logged = max(int(line), *map(int, logger.stdout.read().split() or [0]))
        logger.wait(60)
    finally:
        logger.kill()
    assert logger.returncode == 128 + signal.SIGTERM
    (path,) = tmp_path.glob("events.*")
    records, problems = read_records(str(path))
    assert problems == []  # closed, not cut
    steps = [s.step for s in legacy_reader(tmp_path).Scalars("term/loss")]
    assert steps == list(range(len(steps))) and len(steps) >= logged + 1
    print(f"\nSIGTERM after step {logged}: {len(steps)} steps, {len(records)} whole records")


# -- full disk --------------------------------------------------------------------------------


@pytest.fixture
def tiny_disk(tmp_path):
    """A 256 KiB tmpfs mounted for the test (needs root); skipped, saying why, elsewhere."""
    folder = tmp_path / "tiny"
    folder.mkdir()
    if not hasattr(os, "geteuid") or os.geteuid() != 0:
        pytest.skip("mounting a small tmpfs needs root")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", "size=256k", "tmpfs", str(folder)],
                          capture_output=True, text=True)  # fmt: skip
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield folder
    finally:
        subprocess.run(["umount", "-l", str(folder)], check=False)


_FILLER = """
    import sys, time
    import numpy as np
    import gpu_summary as gs
    writer = gs.SummaryWriter(sys.argv[1], flush_secs=0.05)
    values = np.random.default_rng(0).standard_normal(5_000)
    started = time.monotonic()
    try:
        for step in range(1_000_000):
            writer.add_scalar("disk/loss", float(step), step)
            writer.add_histogram("disk/weights", values + step, step)
        print("never full")
    except OSError as exc:
        print("raised by add_*:", exc.errno, exc)
    try:
        writer.close()
        print("closed")
    except OSError as exc:
        print("raised by close:", exc.errno, exc)
    print("seconds", time.monotonic() - started)
"""


@pytest.mark.slow
def test_a_full_disk_is_a_clear_error_and_the_file_stays_whole(tiny_disk):
    proc = subprocess.run(
        [sys.executable, "-c", textwrap.dedent(_FILLER), str(tiny_disk)],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr  # the process ends cleanly, nothing hangs
    assert f"raised by add_*: {errno.ENOSPC}" in proc.stdout, proc.stdout
    assert "No space left on device" in proc.stdout and "record(s) were dropped" in proc.stdout
    (path,) = tiny_disk.glob("events.*")
    records, problems = read_records(str(path))
    assert problems == []  # cut back to its last whole record
    steps = [s.step for s in legacy_reader(tiny_disk).Scalars("disk/loss")]
    assert steps == list(range(len(steps))) and steps
    print(f"\nfull disk: {len(records)} whole records kept in {os.path.getsize(path)} bytes; "
          f"{proc.stdout.strip().splitlines()[-1]}")  # fmt: skip


def _fill(folder) -> None:
    """Take every free byte of the tmpfs under ``folder``."""
    fd = os.open(folder / "filler", os.O_WRONLY | os.O_CREAT)
    with contextlib.suppress(OSError):
        while True:
            os.write(fd, b"\0" * 4096)
    os.close(fd)


def test_a_full_disk_raises_from_flush_and_from_close(tiny_disk):
    writer = gs.SummaryWriter(tiny_disk / "run", flush_secs=3600)
    writer.add_scalar("loss", 0.0, 0)
    writer.flush()
    _fill(tiny_disk)
    for step in range(1, 300):  # ~12 KB of records: more than the file's last page holds
        writer.add_scalar("loss", float(step), step)
    with pytest.raises(OSError, match=r"No space left on device.*record.*dropped") as info:
        writer.flush()
    assert info.value.errno == errno.ENOSPC
    for step in range(300, 600):
        writer.add_scalar("loss", float(step), step)
    with pytest.raises(OSError, match="No space left on device") as info:
        writer.close()
    assert info.value.errno == errno.ENOSPC and writer.closed
    writer.close()  # closing again is a no-op: the error was raised once
    (path,) = (tiny_disk / "run").glob("events.*")
    _, problems = read_records(str(path))
    assert problems == []  # whole records only, whatever fitted before the disk filled
    steps = [s.step for s in legacy_reader(tiny_disk / "run").Scalars("loss")]
    assert steps == list(range(len(steps))) and 1 <= len(steps) < 600
    print(f"\nfull disk at flush/close: {len(steps)} of 600 steps kept, whole")


def test_a_disk_full_from_the_start_fails_at_creation(tiny_disk):
    _fill(tiny_disk)
    with pytest.raises(OSError, match=r"could not start an event file.*No space left") as info:
        gs.SummaryWriter(tiny_disk / "run")
    assert info.value.errno == errno.ENOSPC
    assert not list((tiny_disk / "run").glob("events.*"))  # no empty or partial file left


# -- files removed under an open writer ----------------------------------------------------


def test_a_run_folder_deleted_while_logging_is_made_again(tmp_path):
    run = tmp_path / "run"
    writer = gs.SummaryWriter(run)
    for step in range(10):
        writer.add_scalar("loss", float(step), step)
    writer.flush()
    first = writer.file_path
    shutil.rmtree(run)  # `rm -rf runs/*` to start afresh while training goes on
    for step in range(10, 20):
        writer.add_scalar("loss", float(step), step)
    with pytest.warns(RuntimeWarning, match="was deleted while open.*goes on in"):
        writer.flush()
    assert writer.file_path != first and os.path.dirname(writer.file_path) == str(run)
    assert [s.step for s in legacy_reader(run).Scalars("loss")] == list(range(10, 20))
    # A folder that cannot be made again (a file took its name): an OSError, raised once.
    shutil.rmtree(run)
    run.write_text("in the way")
    writer.add_scalar("loss", 20.0, 20)
    with pytest.raises(OSError, match="was deleted while open and no new one could be made"):
        writer.flush()
    run.unlink()
    writer.add_scalar("loss", 21.0, 21)
    with pytest.warns(RuntimeWarning, match="was deleted while open"):
        writer.close()
    (path,) = run.glob("events.*")
    records, problems = read_records(str(path))
    assert problems == [] and len(records) == 2  # its own header, then step 21
    assert [s.step for s in legacy_reader(run).Scalars("loss")] == [21]


def test_a_file_system_that_reports_no_links_for_live_files_keeps_one_file(tmp_path, monkeypatch):
    from gpu_summary._events import writer as _events

    real_fstat = os.fstat

    def no_links(fd):  # as some FUSE file systems answer
        result = list(real_fstat(fd))
        result[3] = 0  # st_nlink
        return os.stat_result(result)

    writer = gs.SummaryWriter(tmp_path)
    monkeypatch.setattr(_events.os, "fstat", no_links)
    for step in range(5):
        writer.add_scalar("loss", float(step), step)
        writer.flush()
    monkeypatch.undo()
    writer.close()
    assert len(list(tmp_path.glob("events.*"))) == 1
    assert [s.step for s in legacy_reader(tmp_path).Scalars("loss")] == list(range(5))


# -- many writers -----------------------------------------------------------------------------

_THREADS = """
    import sys, threading
    import numpy as np
    import gpu_summary as gs
    process = int(sys.argv[2])
    writer = gs.SummaryWriter(sys.argv[1], max_queue=32)
    def log(thread):
        values = np.arange(100.0) * thread
        for step in range(200):
            writer.add_scalar(f"p{process}/t{thread}", float(step), step)
            if step % 20 == 0:
                writer.add_histogram(f"p{process}/t{thread}/h", values, step)
    threads = [threading.Thread(target=log, args=(t,)) for t in range(8)]
    for t in threads: t.start()
    for t in threads: t.join()
    writer.close()
"""


def _in_four_processes(script: str, folder) -> None:
    """Run ``script`` in 4 processes at once (argv: folder, process number); all must succeed."""
    procs = [
        subprocess.Popen([sys.executable, "-c", textwrap.dedent(script), str(folder), str(p)])
        for p in range(4)
    ]
    assert [proc.wait(180) for proc in procs] == [0, 0, 0, 0]


@pytest.mark.slow
def test_four_processes_and_eight_threads_on_one_logdir(tmp_path):
    _in_four_processes(_THREADS, tmp_path)
    files = sorted(tmp_path.glob("events.*"))
    assert len(files) == 4  # one file each, none shared
    for path in files:
        records, problems = read_records(str(path))
        assert problems == [] and len(records) == 1 + 8 * (200 + 10)
    acc = legacy_reader(tmp_path)
    for p in range(4):
        for t in range(8):
            assert [s.step for s in acc.Scalars(f"p{p}/t{t}")] == list(range(200))
            assert len(acc.Histograms(f"p{p}/t{t}/h")) == 10


@pytest.mark.slow
def test_closing_under_threads_that_still_log_never_hangs_them(tmp_path):
    """close() from one thread while eight others log into a full queue, and another flushes:
    no call waits forever for room that a closed file will never make, none raises; a call
    racing the close goes into the closing file or the reopened one — every call is in a file
    exactly once, and every file is whole. No thread is assumed to have run before the close."""
    for trial in range(20):
        folder = tmp_path / str(trial)
        writer = gs.SummaryWriter(folder, max_queue=4)
        stop = threading.Event()
        tried: dict[int, int] = {}
        errors: list[BaseException] = []

        def log(thread, writer=writer, stop=stop, tried=tried, errors=errors):
            step = 0
            try:
                while not stop.is_set() or step < 3:
                    writer.add_histogram(f"t{thread}", np.arange(1000.0), step)
                    step += 1
            except BaseException as exc:  # noqa: BLE001 - reported below
                errors.append(exc)
            tried[thread] = step

        def flush(writer=writer, stop=stop):
            while not stop.is_set():
                writer.flush()

        threads = [threading.Thread(target=log, args=(t,), daemon=True) for t in range(8)]
        threads.append(threading.Thread(target=flush, daemon=True))
        for thread in threads:
            thread.start()
        time.sleep(0.02)
        writer.close()
        stop.set()
        for thread in threads:
            thread.join(10)
        assert not any(thread.is_alive() for thread in threads), f"trial {trial}: hung"
        assert errors == []
        writer.close()
        files = sorted(folder.glob("events.*"))
        assert files and all(read_records(path)[1] == [] for path in files)
        reader = legacy_reader(folder)
        for t in range(8):
            steps = sorted(h.step for h in reader.Histograms(f"t{t}"))
            assert steps == list(range(tried[t]))  # each call once, none lost


# -- awkward arrays ---------------------------------------------------------------------------


def _read_only(array: np.ndarray) -> np.ndarray:
    array = array.copy()
    array.setflags(write=False)
    return array


def _same(array):
    return array


# name: (the data, as made on the host, and the view taken of it where it lives)
AWKWARD = {
    "strided": (np.arange(200.0).reshape(10, 20), lambda a: a[::3, ::-2]),
    "fortran": (np.arange(60.0).reshape(5, 4, 3), lambda a: a.transpose(2, 1, 0)),
    "0-d": (np.array(3.5), _same),
    "bool": (np.arange(30) % 3 == 0, _same),
    "float16": (np.linspace(-2, 2, 77).astype(np.float16), _same),
    "int64>2**53": (np.array([2**53 + 1, 2**62, -(2**62) - 7], np.int64), _same),
    "read-only": (_read_only(np.linspace(0, 1, 50)), _same),
    "empty": (np.zeros((0, 4)), _same),
}


@pytest.mark.parametrize("name", list(AWKWARD))
def test_awkward_arrays_in_every_reduction(tmp_path, name, xp):
    """On the host, and on the device (a GPU, or the CPU stand-in that runs the kernels)."""
    base, view = AWKWARD[name]
    host = view(base)
    values = host if xp is np else view(xp.asarray(base))
    if xp is np and name == "fortran":
        assert host.flags.f_contiguous and not host.flags.c_contiguous
    with gs.SummaryWriter(tmp_path) as writer:
        writer.add_histogram("h", values, 0)
        writer.add_histogram("even", values, 0, bins=7)
        if host.size == 0:
            with pytest.raises(ValueError, match="values is empty"):
                writer.add_anomaly("a", values, 0)
            report = None
        else:
            report = writer.add_anomaly("a", values, 0, lower=0.5).result()
        if host.size == 1:
            writer.add_scalar("s", values, 0)
    acc = legacy_reader(tmp_path)
    (histogram,) = acc.Histograms("h")
    flat = host.astype(np.float64).ravel()
    assert histogram.histogram_value.num == flat.size
    if flat.size:
        assert histogram.histogram_value.min == flat.min()
        assert histogram.histogram_value.sum == pytest.approx(
            flat.sum(), rel=1e-12, abs=1e-12 * abs(flat).sum()
        )
        assert report.quantiles[0.5] == np.quantile(flat, 0.5)
        assert report.below == int((flat < 0.5).sum()) and report.count == flat.size
    (even,) = acc.Histograms("even")
    assert sum(even.histogram_value.bucket) == flat.size
    if host.size == 1:
        assert acc.Scalars("s")[0].value == pytest.approx(float(host))


def _narrow_float_inputs() -> list:
    """Floats narrower than float16, from ml_dtypes (NumPy arrays) and PyTorch, where present."""
    cases = []
    values = np.random.default_rng(3).standard_normal(3_000).astype(np.float32) * 4
    values[:3] = [np.nan, np.inf, -np.inf]
    if importlib.util.find_spec("ml_dtypes"):
        import ml_dtypes

        for name in ("bfloat16", "float8_e4m3fn", "float8_e5m2"):
            cases.append(
                pytest.param(values.astype(getattr(ml_dtypes, name)), id=f"ml_dtypes-{name}")
            )
    if importlib.util.find_spec("torch"):
        import torch

        tensor = torch.from_numpy(values)
        for name in ("bfloat16", "float8_e5m2"):
            narrow = tensor.to(getattr(torch, name))
            cases.append(pytest.param(narrow, id=f"torch-{name}"))
        cases.append(pytest.param(tensor.to(torch.bfloat16).reshape(60, 50).t()[::2],
                                  id="torch-bfloat16-strided"))  # fmt: skip
    return cases or [pytest.param(None, marks=pytest.mark.skip(reason="needs ml_dtypes or torch"))]


def _widened(narrow) -> np.ndarray:
    if isinstance(narrow, np.ndarray):
        return narrow.astype(np.float32)
    return narrow.float().numpy()


@pytest.mark.parametrize("narrow", _narrow_float_inputs())
def test_floats_narrower_than_float16_are_widened_exactly(tmp_path, narrow):
    """bfloat16 and float8 (which NumPy lacks) reduce exactly as their float32 values."""
    wide = _widened(narrow)
    with gs.SummaryWriter(tmp_path) as writer:
        for tag, values in (("narrow", narrow), ("wide", wide)):
            writer.add_histogram(f"{tag}/ladder", values, 0)
            writer.add_histogram(f"{tag}/even", values, 0, bins=16)
            flat = values.reshape(-1)
            writer.add_scalar(f"{tag}/one", flat[5], 0)
            writer.add_image(f"{tag}/image", abs(flat[:48]).reshape(4, 4, 3), 0, dataformats="HWC")
        report, want_report = (
            writer.add_anomaly(f"{tag}/check", values, 0, upper=1.0).result()
            for tag, values in (("narrow", narrow), ("wide", wide))
        )
    acc = legacy_reader(tmp_path)
    for kind in ("ladder", "even"):
        (got,), (want,) = acc.Histograms(f"narrow/{kind}"), acc.Histograms(f"wide/{kind}")
        assert got.histogram_value == want.histogram_value
    finite = int(np.isfinite(wide).sum())
    assert acc.Histograms("narrow/ladder")[0].histogram_value.num == finite < wide.size
    assert acc.Scalars("narrow/one")[0].value == acc.Scalars("wide/one")[0].value
    ((_, got),), ((_, want),) = (tensor_values(tmp_path, f"{t}/image") for t in ("narrow", "wide"))
    assert got.tolist() == want.tolist()  # the same PNG
    for field in ("nan", "posinf", "neginf", "above", "count", "quantiles", "whiskers"):
        assert getattr(report, field) == getattr(want_report, field), field
    assert report.count == finite
    np.testing.assert_array_equal(report.heatmap, want_report.heatmap)


@pytest.mark.slow
def test_the_seeds_image_batch_is_never_copied(tmp_path):
    """The seed's 100×2000×2000×4 uint8 batch (1.5 GiB) on the CPU with max_size: the peak
    memory of the process grows by well under the batch's size."""
    proc = run_python(f"""
        import resource
        import numpy as np
        import gpu_summary as gs
        def peak():
            return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
        batch = np.empty((100, 2000, 2000, 4), np.uint8)
        batch[...] = 40
        batch[:, ::9, ::7, :3] = 220
        # numba's compiler (LLVM) costs a fixed ~100 MiB once loaded: loaded before measuring
        from gpu_summary._backend.numpy import compiled
        compiled.prepare((np.uint8,), (False,))
        before = peak()
        with gs.SummaryWriter({str(tmp_path)!r}) as writer:
            writer.add_images("seed", batch, 0, dataformats="NHWC", max_size=64)
        print(batch.nbytes, peak() - before)
    """, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    size, growth = map(int, proc.stdout.split())
    assert growth < size // 10, (growth, size)
    (grid,) = legacy_reader(tmp_path).Images("seed")  # torch's grid: 8 columns, 13 rows
    assert (grid.width, grid.height) == (8 * 64, 13 * 64)
    print(f"\nseed batch {size / 2**20:.0f} MiB: peak memory grew {growth / 2**20:.1f} MiB")


# -- steps and tags ---------------------------------------------------------------------------

TAGS = ["损失/训练 loss", "a/b/c", "with space", "ünïcödé ✓", "trailing/"]
STEPS = [2**62, -(2**62), -1, 0, 2**63 - 1, -(2**63)]


def test_extreme_steps_and_odd_tags_round_trip(tmp_path):
    with gs.SummaryWriter(tmp_path) as writer:
        for tag in TAGS:
            for step in STEPS:
                writer.add_scalar(f"s/{tag}", 1.0, step)
            writer.add_histogram(f"h/{tag}", np.arange(5), 2**62)
            writer.add_image(f"i/{tag}", np.zeros((2, 2, 3), np.uint8), -(2**62), dataformats="HWC")
            writer.add_text(f"t/{tag}", tag, 2**62)
    acc = legacy_reader(tmp_path)
    plugins = plugin_reader(tmp_path)
    for tag in TAGS:
        assert sorted(s.step for s in acc.Scalars(f"s/{tag}")) == sorted(STEPS)
        assert [h.step for h in acc.Histograms(f"h/{tag}")] == [2**62]
        assert [e.step for e in plugins.Tensors(f"i/{tag}")] == [-(2**62)]
        ((step, text),) = tensor_values(tmp_path, f"t/{tag}/text_summary")
        assert (step, [t.decode() for t in text]) == (2**62, [tag])


@pytest.mark.parametrize(
    "call",
    [
        lambda w: w.add_scalar("", 1.0, 0),
        lambda w: w.add_histogram("", [1.0], 0),
        lambda w: w.add_image("", np.zeros((2, 2, 3), np.uint8), 0, dataformats="HWC"),
        lambda w: w.add_images("", np.zeros((1, 2, 2, 3), np.uint8), 0, dataformats="NHWC"),
        lambda w: w.add_text("", "x", 0),
        lambda w: w.add_anomaly("", [1.0], 0),
        lambda w: w.add_embedding(np.eye(2), tag="", step=0),
        lambda w: w.add_scalar("x", 1.0, 2**63),
    ],
    ids=["scalar", "histogram", "image", "images", "text", "anomaly", "embedding", "step"],
)
def test_empty_tags_and_out_of_range_steps_are_refused(tmp_path, call):
    with gs.SummaryWriter(tmp_path) as writer:
        with pytest.raises(ValueError, match=r"must not be empty|int64"):
            call(writer)
        writer.add_scalar("after", 1.0, 0)  # the writer goes on
    assert [s.step for s in legacy_reader(tmp_path).Scalars("after")] == [0]


SURROGATE = "run/\udcff"  # os.fsdecode of a file name byte that is not UTF-8


@pytest.mark.parametrize(
    "call",
    [
        lambda w: w.add_scalar(SURROGATE, 1.0, 0),
        lambda w: w.add_histograms({SURROGATE: [1.0]}, 0),
        lambda w: w.add_text("t", ["fine", SURROGATE], 0),
        lambda w: w.add_hparams({SURROGATE: 1.0}, {"m": 1.0}),
        lambda w: w.add_hparams({"opt": SURROGATE}, {"m": 1.0}),
        lambda w: w.add_hparams({"lr": 1.0}, {SURROGATE: 1.0}),
        lambda w: w.add_embedding(np.eye(2), ["a", SURROGATE], tag="e", step=0),
        lambda w: w.add_embedding(
            np.eye(2), [["a", "b"], ["c", "d"]], metadata_header=["x", SURROGATE], tag="e", step=0
        ),
        lambda w: w.add_graph([{"name": SURROGATE, "class_name": "Dense", "config": {}}]),
    ],
    ids=["tag", "names", "text", "hparam", "hparam-value", "metric", "label", "header", "graph"],
)
def test_text_utf8_cannot_encode_is_refused_at_the_call(tmp_path, call):
    """Lone surrogates used to pass the call and fail on the writer thread (a WriterError from
    a later call); now the call itself raises ValueError naming the argument."""
    with gs.SummaryWriter(tmp_path) as writer:
        with pytest.raises(ValueError, match=r"lone surrogate at index 4.*UTF-8 cannot encode"):
            call(writer)
        writer.add_scalar("after", 1.0, 0)
    assert [s.step for s in legacy_reader(tmp_path).Scalars("after")] == [0]


def test_absurd_sizes_and_names_are_refused_before_any_work(tmp_path):
    with gs.SummaryWriter(tmp_path) as writer:
        with pytest.raises(ValueError, match=r"bins must be at most 1,048,576, got 100,000,000"):
            writer.add_histogram("h", [0.0, 1.0], 0, bins=10**8)  # was 7 GB and 35 s
        with pytest.raises(ValueError, match="at most 1,048,576 edges"):
            writer.add_histogram("h", [0.0, 1.0], 0, bins=np.arange(2.0**20 + 1))
        writer.add_histogram("h", [0.0, 1.0], 0, bins=2**20)  # the limit itself is fine
    assert legacy_reader(tmp_path).Histograms("h")[0].histogram_value.num == 2
    with pytest.raises(ValueError, match="logdir must be a folder's path, got ''"):
        gs.SummaryWriter("")
    with pytest.raises(ValueError, match="filename_suffix must be a str without '/' or NUL"):
        gs.SummaryWriter(tmp_path, filename_suffix="\0")


# -- reader fuzzing ---------------------------------------------------------------------------


def _sample_file() -> bytes:
    with tempfile.TemporaryDirectory() as folder:
        with gs.SummaryWriter(folder) as writer:
            for step in range(6):
                writer.add_scalar("loss", step / 3, step)
            writer.add_histogram("w", np.arange(50.0), 0)
            writer.add_text("notes", ["a", "b"], 0)
            writer.add_image("img", np.full((3, 3, 3), 9, np.uint8), 0, dataformats="HWC")
        with open(writer.file_path, "rb") as file:
            return file.read()


SAMPLE = _sample_file()
_edits = st.lists(
    st.tuples(
        st.sampled_from(["flip", "set", "cut", "insert", "delete"]),
        st.integers(0, len(SAMPLE) - 1),
        st.integers(0, 255),
    ),
    min_size=1,
    max_size=6,
)


def _corrupt(data: bytes, edits) -> bytes:
    data = bytearray(data)
    for kind, position, value in edits:
        position %= max(len(data), 1)
        if kind == "flip":
            data[position] ^= 1 << (value % 8)
        elif kind == "set":
            data[position] = value
        elif kind == "cut":
            del data[position:]
        elif kind == "insert":
            data[position:position] = bytes([value]) * (1 + value % 13)
        else:
            del data[position : position + 1 + value % 40]
        if not data:
            break
    return bytes(data)


@settings(max_examples=150, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(edits=_edits)
def test_corrupted_files_never_crash_the_readers(edits):
    data = _corrupt(SAMPLE, edits)
    with tempfile.TemporaryDirectory() as folder:
        path = os.path.join(folder, "events.out.tfevents.1.fuzz")
        with open(path, "wb") as file:
            file.write(data)
        for item in reader.read_events(path):
            if isinstance(item, reader.Problem):
                assert 0 <= item.offset < len(data) and item.unread <= len(data) - item.offset
                continue
            offset, event = item
            # Only records whose checksums hold come back, from where they are in the file.
            length = int.from_bytes(data[offset : offset + 8], "little")
            payload = data[offset + 12 : offset + 12 + length]
            footer = data[offset + 12 + length : offset + 16 + length]
            assert int.from_bytes(footer, "little") == masked_crc32c(payload)
            assert event_pb2.Event.FromString(payload) == event
        out = io.StringIO()
        with contextlib.redirect_stdout(out):
            status = cli(["inspect", folder])
        assert status in (0, 1)
        assert ("0 problem(s)" in out.getvalue()) == (status == 0)


# -- projector paths --------------------------------------------------------------------------

ESCAPES = ["../escape", "../../etc/passwd", "/absolute/path", "..", ".", "a/../../b", "~root",
           "C:\\windows", "tab\tand\nnewline"]  # fmt: skip


def test_projector_tags_cannot_leave_the_run_directory(tmp_path):
    run = tmp_path / "run"
    with gs.SummaryWriter(run) as writer:
        for step, tag in enumerate(ESCAPES):
            writer.add_embedding(np.eye(2), ["x\ty", "line\nbreak"], tag=tag, step=step - 3)
    written = {os.path.realpath(os.path.join(folder, name))
               for folder, _, names in os.walk(tmp_path) for name in names}  # fmt: skip
    assert all(path.startswith(os.path.realpath(run) + os.sep) for path in written)
    (inventory,) = reader.inspect_logdir(run)
    assert not inventory.all_problems() and len(inventory.embeddings) == len(ESCAPES)
    config = text_format.Parse(
        (run / "projector_config.pbtxt").read_text(), projector_config_pb2.ProjectorConfig()
    )
    for embedding in config.embeddings:  # names keep the tag; paths stay inside the run
        for path in (embedding.tensor_path, embedding.metadata_path):
            assert not os.path.isabs(path) and ".." not in path.split("/")
    assert [e.tensor_name for e in config.embeddings][:2] == ["../escape:-0003",
                                                              "../../etc/passwd:-0002"]  # fmt: skip
    labels = (run / "-0003" / "%2E.%2Fescape" / "metadata.tsv").read_text()
    assert labels == "x\\ty\nline\\nbreak\n"


# -- writer-thread failures -------------------------------------------------------------------


def test_failures_on_the_writer_thread_reach_the_next_call_with_their_cause(tmp_path):
    calls = []

    def callback(report):
        calls.append(report.step)
        raise KeyError("from the callback")

    with gs.SummaryWriter(tmp_path, on_anomaly=callback) as writer:
        writer.add_anomaly("grads", [np.nan, 1.0], 0)
        writer.add_scalar("loss", 1.0, 0)
        with pytest.raises(gs.WriterError) as info:
            writer.flush()
        assert isinstance(info.value.__cause__, KeyError)
        writer.add_scalar("loss", 2.0, 1)  # the loop goes on; the error was raised once
        errors = []
        thread = threading.Thread(target=lambda: errors.append(writer.flush()))
        thread.start()
        thread.join(30)
        assert not thread.is_alive() and errors == [None]
    assert calls == [0]
    assert [s.step for s in legacy_reader(tmp_path).Scalars("loss")] == [0, 1]
    assert legacy_reader(tmp_path).Scalars("grads/anomaly/nan")[0].value == 1.0


IMAGES = {
    "strided": np.arange(6 * 8 * 3, dtype=np.uint8).reshape(6, 8, 3)[::2, ::-1],
    "fortran": np.asfortranarray(np.arange(5 * 7 * 3, dtype=np.uint8).reshape(5, 7, 3)),
    "read-only": _read_only(np.full((4, 4, 4), 200, np.uint8)),
    "float16": np.linspace(0, 1, 4 * 5 * 3).astype(np.float16).reshape(4, 5, 3),
    "bool": (np.arange(4 * 4).reshape(4, 4, 1) % 3 == 0),
}


@pytest.mark.parametrize("name", list(IMAGES))
def test_awkward_images_round_trip(tmp_path, name):
    image = IMAGES[name]
    with gs.SummaryWriter(tmp_path) as writer:
        writer.add_image("img", image, 0, dataformats="HWC")
    ((_, (width, height, png)),) = tensor_values(tmp_path, "img")
    with Image.open(io.BytesIO(png)) as decoded:
        pixels = np.asarray(decoded)
    if image.dtype == np.uint8:
        want = image
    elif image.dtype == np.bool_:
        want = image.astype(np.uint8) * 255
    else:  # as torch's writer: float32 × 255, truncated
        want = (image.astype(np.float32) * np.float32(255)).clip(0, 255).astype(np.uint8)
    if want.shape[2] == 1:
        want = np.repeat(want, 3, axis=2)  # gray as RGB, as torch's
    np.testing.assert_array_equal(pixels, want)
    assert (int(width), int(height)) == (image.shape[1], image.shape[0])


def test_a_full_disk_under_the_projector_files_is_an_os_error_and_leaves_no_part(tiny_disk):
    run = tiny_disk / "run"
    with gs.SummaryWriter(run) as writer:
        writer.add_embedding(np.eye(4), ["a", "b", "c", "d"], tag="small", step=0)
        writer.flush()
        big = np.random.default_rng(0).standard_normal((400, 200))  # 320 KB of float32
        with pytest.raises(OSError, match="No space left on device") as info:
            writer.add_embedding(big, tag="big", step=1)  # written at the call: raised there
        assert info.value.errno == errno.ENOSPC and "embedding 'big:00001'" in str(info.value)
        writer.flush()  # nothing deferred
        writer.add_scalar("after", 1.0, 0)  # the writer goes on
    leftovers = [name for _, _, names in os.walk(run) for name in names if name.endswith(".tmp")]
    assert leftovers == []
    (inventory,) = reader.inspect_logdir(run)
    assert inventory.embeddings == ["small:00000"] and not inventory.all_problems()
    assert [s.step for s in legacy_reader(run).Scalars("after")] == [0]


def test_a_full_disk_under_the_structure_graph_raises_from_add_graph(tiny_disk):
    run = tiny_disk / "run"
    layers = [
        {"name": f"layer{i}", "class_name": "Dense", "config": {"note": "x" * 2000}}
        for i in range(200)
    ]  # fmt: skip  (a JSON of ~400 KB)
    with gs.SummaryWriter(run) as writer:
        with pytest.raises(OSError, match="No space left on device"):
            writer.add_graph(layers)
        writer.add_scalar("after", 1.0, 0)
    assert not (run / "graph" / "structure_graph.json").exists()
    assert os.listdir(run / "graph") == []  # no temporary file left
    acc = legacy_reader(run)
    assert acc.Tags()["graph"] is False  # nothing half-logged: no GraphDef without its JSON
    assert [s.step for s in acc.Scalars("after")] == [0]


def test_clear_errors_for_a_logdir_that_is_a_file_and_for_pickling(tmp_path):
    (tmp_path / "a_file").write_text("x")
    with pytest.raises(NotADirectoryError, match="exists and is not a directory"):
        gs.SummaryWriter(tmp_path / "a_file")
    with gs.SummaryWriter(tmp_path / "run") as writer:
        with pytest.raises(TypeError, match="cannot be sent to another process"):
            pickle.dumps(writer)
        writer.add_scalar("after", 1.0, 0)
    assert [s.step for s in legacy_reader(tmp_path / "run").Scalars("after")] == [0]


_EMBEDDER = """
    import sys
    import numpy as np
    import gpu_summary as gs
    process = int(sys.argv[2])
    with gs.SummaryWriter(sys.argv[1]) as writer:
        for step in range(10):
            writer.add_embedding(np.eye(3) * step, ["a", "b", "c"], tag=f"p{process}", step=step)
"""


@pytest.mark.slow
def test_processes_adding_embeddings_to_one_run_keep_each_others(tmp_path):
    _in_four_processes(_EMBEDDER, tmp_path)
    import gpu_summary.summary as summary

    seed = summary.Projector(tmp_path)  # a seed Projector beside them, in this process
    seed.create_embedding_projector()
    seed.embedding_projector(value=np.ones((2, 2)), tag="seed", step=1)
    (inventory,) = reader.inspect_logdir(tmp_path)
    assert len(inventory.embeddings) == 4 * 10 + 1 and not inventory.all_problems()
    assert {name.split(":")[0] for name in inventory.embeddings} == {"p0", "p1", "p2", "p3", "seed"}


def test_flush_with_fsync_reaches_the_device_and_reports_a_failing_sync(tmp_path, monkeypatch):
    from gpu_summary._events import writer as _events

    synced = []
    real_fsync = os.fsync
    monkeypatch.setattr(_events.os, "fsync", lambda fd: synced.append(fd) or real_fsync(fd))
    writer = gs.SummaryWriter(tmp_path)
    writer.add_scalar("x", 1.0, 0)
    writer.flush()
    assert synced == []  # a plain flush hands the records to the OS only
    writer.add_scalar("x", 2.0, 1)
    writer.flush(fsync=True)
    assert len(synced) == 1

    def broken(fd):
        raise OSError(errno.EIO, os.strerror(errno.EIO))

    monkeypatch.setattr(_events.os, "fsync", broken)
    writer.add_scalar("x", 3.0, 2)
    with pytest.raises(OSError, match="could not sync") as info:
        writer.flush(fsync=True)
    assert info.value.errno == errno.EIO
    monkeypatch.setattr(_events.os, "fsync", real_fsync)
    writer.add_scalar("x", 4.0, 3)
    writer.close()
    assert [s.step for s in legacy_reader(tmp_path).Scalars("x")] == [0, 1, 2, 3]
