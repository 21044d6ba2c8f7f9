"""What adversarial passes broke (issues 21 and 32), each case held to the promise: a clear
``ValueError``/``TypeError`` at the call naming the argument, or the value logged as it is —
never another exception type, never an error from a later call, never a half-logged call."""

from __future__ import annotations

import re

import numpy as np
import pytest

import gpu_summary as gs
from conftest import legacy_reader

BIG = 10**400  # a Python int beyond float64


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda w: w.add_scalar("s", 1.0, 3, walltime=BIG), "walltime must be a finite"),
        (lambda w: w.add_histogram("h", np.arange(3.0), 0, bins=[0, BIG]), "edges must be finite"),
        (lambda w: w.add_anomaly("a", np.arange(3.0), 0, lower=BIG), "lower must be a finite"),
        (lambda w: w.add_anomaly("a", np.arange(3.0), 0, upper=-BIG), "upper must be a finite"),
        (lambda w: w.add_hparams({"x": BIG}, {"m": 1.0}), "'x' = 1000.*finite float64"),
        (lambda w: w.add_hparams({"x": 1}, {}, {"x": [1, BIG]}), "ValueSet numbers must be"),
        (lambda w: gs.IntegerRange(0, BIG), "IntegerRange bounds must be finite"),
        (lambda w: gs.ValueSet([1, BIG]), "ValueSet numbers must be finite"),
        (lambda w: gs.SummaryWriter(w.log_dir, flush_secs=BIG), "flush_secs must be a finite"),
        (lambda w: w.add_scalar("s", 1.0, BIG), "step must fit in int64"),
    ],
)  # fmt: skip
def test_ints_beyond_float64_are_a_value_error_where_a_finite_number_is_needed(
    tmp_path, call, match
):
    with gs.SummaryWriter(tmp_path) as writer:
        with pytest.raises(ValueError, match=match):
            call(writer)
        writer.flush()  # nothing deferred


def test_ints_beyond_float64_are_logged_as_infinities_where_a_value_may_be_one(tmp_path):
    with gs.SummaryWriter(tmp_path) as writer:
        writer.add_scalar("s", BIG, 0)  # the hot path
        writer.add_scalar("s", -BIG, 1, walltime=5.0)  # the general path
        writer.add_scalar("t", BIG, 0, new_style=True)
        writer.add_hparams({"x": 1}, {"m": BIG}, run_name="r")  # a metric may be ±inf
    acc = legacy_reader(tmp_path)
    assert [(e.step, e.value) for e in acc.Scalars("s")] == [(0, np.inf), (1, -np.inf)]
    assert legacy_reader(tmp_path / "r").Scalars("m")[0].value == np.inf
    assert "t" in acc.Tags()["tensors"]


def test_the_cell_table_is_built_once_however_many_threads_ask_first(monkeypatch):
    import threading
    import time

    from gpu_summary._core import ladder

    builds = []
    real_build = ladder._build_cell_table

    def slow_build(dtype, compare=False):
        builds.append(dtype)
        time.sleep(0.2)  # every thread is waiting at the table by now (or already has it)
        return real_build(dtype, compare)

    monkeypatch.setattr(ladder, "_tables", {})
    monkeypatch.setattr(ladder, "_build_cell_table", slow_build)
    start = threading.Barrier(16)
    tables = []

    def first_histogram():
        start.wait()
        tables.append(ladder.cell_table(np.dtype(np.float32)))

    threads = [threading.Thread(target=first_histogram) for _ in range(16)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(60)
    assert builds == [np.dtype(np.float32)]  # without the lock: one build per thread
    assert len(tables) == 16 and all(t is tables[0] for t in tables)


# -- inspect and the reader on crafted files (item 5) ----------------------------------------


def _crafted_claim(path, length):
    """A sparse file: one record header claiming ``length`` bytes (its checksum right), then
    zeros (holes) up to the claimed size."""
    import struct

    from gpu_summary._events.records import masked_crc32c

    header = struct.pack("<Q", length)
    with open(path, "wb") as file:
        file.write(header + struct.pack("<I", masked_crc32c(header)))
        file.truncate(12 + length + 4)


@pytest.mark.parametrize("claim", [3 << 30, 10 << 30])
def test_a_record_claiming_gigabytes_is_reported_without_being_read(tmp_path, claim):
    from conftest import run_python

    path = tmp_path / "events.out.tfevents.crafted"
    _crafted_claim(path, claim)
    proc = run_python(f"""
        import resource
        from gpu_summary import reader
        before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        items = list(reader.read_events({str(path)!r}))
        grown = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss - before
        print(len(items), items[0].reason, grown // 1024)
    """, timeout=120)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    count, *reason, grown_mib = proc.stdout.split()
    assert count == "1" and "too long to be an Event" in " ".join(reason)
    assert int(grown_mib) < 64  # was 6.3 GB for 3 GiB, and MemoryError for 10 GiB


def _inspect(*args, timeout=60):
    import subprocess
    import sys

    return subprocess.run(
        [sys.executable, "-m", "gpu_summary", "inspect", *map(str, args)],
        capture_output=True, text=True, timeout=timeout,
    )  # fmt: skip


def test_inspect_skips_fifos_and_links_instead_of_blocking_or_following(tmp_path):
    import os

    outside = tmp_path / "outside"
    with gs.SummaryWriter(outside) as writer:
        writer.add_scalar("secret/outside", 1.0, 0)
    logdir = tmp_path / "logs"
    with gs.SummaryWriter(logdir) as writer:
        writer.add_scalar("inside", 1.0, 0)
    os.mkfifo(logdir / "events.out.tfevents.fifo")  # open() on it would wait for a writer
    (outside_file,) = outside.glob("events.*")
    os.symlink(outside_file, logdir / "events.out.tfevents.link")
    proc = _inspect(logdir)  # returns: a FIFO would hang it until the timeout
    assert "inside" in proc.stdout and "secret/outside" not in proc.stdout
    assert "a FIFO, not a regular file" in proc.stdout
    assert "a symbolic link (not followed)" in proc.stdout
    assert proc.returncode == 1  # skipped files are problems to see


def test_one_huge_tag_does_not_pad_every_line(tmp_path):
    with gs.SummaryWriter(tmp_path, max_queue_bytes=64 << 20) as writer:
        for i in range(1000):
            writer.add_scalar(f"tag{i}", 1.0, 0)
        writer.add_scalar("x" * (1 << 20), 1.0, 0)  # a 1 MiB tag
    proc = _inspect(tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert len(proc.stdout) < (1 << 20) + 200_000  # was 1.05 GB: 1,001 lines of 1 MiB


def test_inspect_into_a_pipe_that_closes_early_prints_no_traceback(tmp_path):
    import subprocess
    import sys

    with gs.SummaryWriter(tmp_path) as writer:
        for i in range(5000):  # far more JSON than a pipe buffers
            writer.add_scalar(f"series/{i}", 1.0, 0)
    errors = tmp_path / "stderr.txt"
    command = f"{sys.executable} -m gpu_summary inspect --json {tmp_path} 2> {errors} | head -c 100"
    done = subprocess.run(["sh", "-c", command], capture_output=True, timeout=120)
    assert len(done.stdout) == 100
    assert errors.read_text() == ""  # was a BrokenPipeError traceback


# -- long embedding tags (item 2) ------------------------------------------------------------


@pytest.mark.parametrize("tag", ["a" * 300, "é" * 100, "中" * 29, "x" * 250 + "/end"])
def test_embedding_tags_too_long_for_a_file_name_are_written(tmp_path, tag):
    from conftest import projector_config, projector_tensor

    points = np.arange(6.0).reshape(3, 2)
    with gs.SummaryWriter(tmp_path) as writer:
        writer.add_embedding(points, ["p", "q", "r"], tag=tag, global_step=1)
        writer.add_embedding(points + 1, ["p", "q", "r"], tag=tag + "!", global_step=1)
    infos = projector_config(tmp_path).embeddings
    assert [info.tensor_name for info in infos] == [f"{tag}:00001", f"{tag}!:00001"]
    folders = {info.tensor_path.rsplit("/", 1)[0] for info in infos}
    assert len(folders) == 2  # one shared prefix, two folders
    assert all(len(folder.rsplit("/", 1)[1].encode()) <= 200 for folder in folders)
    np.testing.assert_array_equal(projector_tensor(tmp_path, infos[0]), points)
    np.testing.assert_array_equal(projector_tensor(tmp_path, infos[1]), points + 1)


# -- a callback that logs through its own writer (item 6) ------------------------------------


@pytest.mark.parametrize("action", ["flush", "flush_fsync", "close", "add_text", "add_scalar"])
def test_an_on_anomaly_callback_may_call_its_own_writer(tmp_path, action):
    import threading

    writers = []

    def callback(report):
        writer = writers[0]
        if action == "flush":
            writer.flush()
        elif action == "flush_fsync":
            writer.flush(fsync=True)
        elif action == "close":
            writer.close()
        elif action == "add_text":
            writer.add_text("alert", f"NaN at step {report.step}", report.step)
        else:
            writer.add_scalar("alerts", 1.0, report.step)

    writers.append(gs.SummaryWriter(tmp_path, max_queue=2, on_anomaly=callback))
    values = np.ones(10)
    values[3] = np.nan
    outcome = []

    def train():
        writer = writers[0]
        for step in range(5):
            writer.add_anomaly("grad", values, step)
            writer.add_scalar("loss", 1.0, step)
        writer.flush()
        writer.close()  # the alerts of the last steps are logged while it closes
        outcome.append("done")

    thread = threading.Thread(target=train, daemon=True)
    thread.start()
    thread.join(60)
    assert outcome == ["done"]  # was: the writer thread deadlocked, flush() hung forever
    acc = legacy_reader(tmp_path)
    assert [e.step for e in acc.Scalars("loss")] == list(range(5))
    if action == "add_text":
        assert [e.step for e in acc.Tensors("alert/text_summary")] == list(range(5))  # none dropped
    if action == "add_scalar":
        assert [e.step for e in acc.Scalars("alerts")] == list(range(5))


# -- memory bounded by max_queue_bytes (item 7) ----------------------------------------------


@pytest.mark.parametrize("kind", ["histogram", "text"])
@pytest.mark.slow
def test_queued_histograms_and_texts_count_against_max_queue_bytes(tmp_path, kind):
    """A slow disk (each write 30 ms) and a producer far faster than it: the memory the queue
    holds stays near ``max_queue_bytes`` (32 MiB here) instead of growing with every call.

    Measured as the peak of the allocations made while logging (tracemalloc traces NumPy's
    buffers, the strings and the records' bytes, on every thread), not the process's peak RSS:
    RSS also counts memory freed but kept by the allocator's per-thread arenas, which grows
    when a loaded machine lets the writer thread fall behind, so its bound had to be loose and
    still failed on a busy machine. The traced peak depends only on how many results are alive
    at once, which is what ``max_queue_bytes`` bounds."""
    from conftest import run_python

    proc = run_python(f"""
        import os, time, tracemalloc
        import numpy as np
        import gpu_summary as gs
        real_write = os.write
        def slow_write(fd, data):
            time.sleep(0.03)
            return real_write(fd, data)
        os.write = slow_write  # the disk, not the writer's code, is slow
        values = np.random.default_rng(0).standard_normal(1000)
        text = "x" * (10 << 20)
        writer = gs.SummaryWriter({str(tmp_path)!r}, max_queue_bytes=32 << 20, flush_secs=0.01)
        writer.add_scalar("warm", 1.0, 0)
        writer.flush()
        tracemalloc.start()
        before = tracemalloc.get_traced_memory()[0]
        for step in range(24):
            if {kind!r} == "histogram":
                writer.add_histogram("h", values, step, bins=2**20)  # 16 MiB of result each
            else:
                writer.add_text("t", text + str(step), step)  # a new 10 MiB str each
        writer.close()
        print((tracemalloc.get_traced_memory()[1] - before) >> 20)
    """, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    grown_mib = int(proc.stdout.split()[-1])
    # 120 MiB of histograms and 80 of texts, the same in every run: the 32 MiB queue, the result
    # waiting for room, the one being written and, for histograms, the caller's working arrays
    # of a 2**20-bucket histogram. With max_queue_bytes=100 << 30: 296-352 and 260.
    assert grown_mib < (160 if kind == "histogram" else 120), grown_mib


# -- the seed's Projector (item 3) -----------------------------------------------------------


def _entries(folder):
    from gpu_summary.proto import summary_projector_pb2

    found = 0
    for path in sorted(folder.glob("projector.*.log")):
        message = summary_projector_pb2.SummaryProjector.FromString(path.read_bytes())
        found += len(message.projector)
    return found


def test_seed_projectors_started_in_one_second_keep_every_entry(tmp_path):
    import subprocess
    import sys
    import textwrap

    code = textwrap.dedent(f"""
        import numpy as np
        import gpu_summary.summary as summary
        projector = summary.Projector({str(tmp_path)!r})
        projector.create_embedding_projector()
        for step in range(5):
            projector.embedding_projector(value=np.ones((3, 2)), tag="e", step=step)
    """)
    processes = [subprocess.Popen([sys.executable, "-c", code]) for _ in range(2)]
    import gpu_summary.summary as summary

    mine = [summary.Projector(str(tmp_path)) for _ in range(2)]  # two in this process too
    for projector in mine:
        projector.create_embedding_projector()
    for step in range(5):
        for projector in mine:
            projector.embedding_projector(value=np.ones((3, 2)), tag="f", step=step)
    assert [process.wait(120) for process in processes] == [0, 0]
    assert _entries(tmp_path / "projector") == 20  # was 10 of 20: files overwritten


def test_a_seed_projector_call_that_raises_leaves_no_entry(tmp_path):
    import gpu_summary.summary as summary

    projector = summary.Projector(str(tmp_path))
    projector.create_embedding_projector()
    call = {"value": np.ones((3, 2)), "tag": "e", "step": 0, "sample_name": "s",
            "sample_type": "image"}  # fmt: skip
    with pytest.raises(ValueError, match="channels"):
        projector.embedding_projector(**call, x=np.zeros((3, 5, 5, 2), np.uint8))  # 2 channels
    ambiguous = np.zeros((3, 4, 5, 3), np.uint8)  # N×4×H×3: RGB of 4 rows, or RGBA of 3?
    with pytest.raises(ValueError, match="x_format='NHWC' or 'NCHW'"):
        projector.embedding_projector(**call, x=ambiguous)
    assert _entries(tmp_path / "projector") == 0  # was: the failed calls' entries were kept
    projector.embedding_projector(**call, x=ambiguous, x_format="NHWC")
    assert _entries(tmp_path / "projector") == 1
    config = (tmp_path / "projector_config.pbtxt").read_text()
    assert "single_image_dim: 5" in config and "single_image_dim: 4" in config  # W 5, H 4


# -- symbolic links inside the run folder (item 4) -------------------------------------------


def _outside_untouched(outside, before):
    import os

    assert sorted(os.listdir(outside)) == before


@pytest.mark.parametrize("folder", ["00000", "graph", "projector"])  # 00000: step 0's
def test_a_link_where_an_asset_folder_should_be_is_refused(tmp_path, folder):
    import os

    import gpu_summary.summary as summary

    outside = tmp_path / "outside"
    outside.mkdir()
    (outside / "keep.txt").write_text("mine")
    run = tmp_path / "run"
    run.mkdir()
    os.symlink(outside, run / folder)
    with gs.SummaryWriter(run) as writer:
        if folder == "graph":
            with pytest.raises(OSError, match="symbolic link or a file, not a folder"):
                writer.add_graph([{"name": "x", "class_name": "InputLayer", "config": {}}])
        elif folder == "00000":
            with pytest.raises(OSError, match="symbolic link or a file, not a folder"):
                writer.add_embedding(np.eye(3), ["a", "b", "c"], tag="e")  # written at the call
            writer.flush()  # nothing deferred
        else:
            with pytest.raises(OSError, match="symbolic link or a file, not a folder"):
                summary.Projector(str(run))
    _outside_untouched(outside, ["keep.txt"])


def test_links_at_the_lock_the_temporary_names_and_the_targets_are_not_followed(tmp_path):
    import os
    import threading

    outside = tmp_path / "outside"
    outside.mkdir()
    victim = outside / "victim.txt"
    victim.write_text("mine")
    run = tmp_path / "run"
    (run / "graph").mkdir(parents=True)
    # the temporary name the writer used to use, and the target itself
    old_temporary = f"structure_graph.json.{os.getpid()}.{threading.get_ident()}.tmp"
    os.symlink(victim, run / "graph" / old_temporary)
    os.symlink(victim, run / "graph" / "structure_graph.json")
    os.symlink(outside / "created.lock", run / ".projector_config.lock")
    with gs.SummaryWriter(run) as writer:
        writer.add_graph([{"name": "x", "class_name": "InputLayer", "config": {}}])
        with pytest.raises(OSError, match="symbolic link; remove it"):
            # the config's lock is a link: refused at the call, not created outside
            writer.add_embedding(np.eye(3), ["a", "b", "c"], tag="e")
        writer.flush()  # nothing deferred
    assert victim.read_text() == "mine"
    assert not (outside / "created.lock").exists()
    graph = run / "graph" / "structure_graph.json"
    assert not graph.is_symlink() and '"x"' in graph.read_text()  # the link replaced


def test_assets_are_not_world_writable_under_umask_000(tmp_path):
    from conftest import run_python

    proc = run_python(f"""
        import os, stat
        import numpy as np
        import gpu_summary as gs
        import gpu_summary.summary as summary
        os.umask(0)
        run = {str(tmp_path / "run")!r}
        with gs.SummaryWriter(run) as writer:
            writer.add_embedding(np.eye(3), ["a", "b", "c"], tag="e")
            writer.add_graph([{{"name": "x", "class_name": "InputLayer", "config": {{}}}}])
        projector = summary.Projector(run)
        projector.create_embedding_projector()
        projector.embedding_projector(value=np.ones((3, 2)), tag="p", step=0)
        for folder, names, files in os.walk(run):
            for name in [folder] + [os.path.join(folder, f) for f in files]:
                mode = stat.S_IMODE(os.stat(name).st_mode)
                if mode & 0o022:
                    print("writable by others:", name, oct(mode))
        print("checked")
    """)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout.strip().splitlines() == ["checked"], proc.stdout


# -- the seed's full-size image batch (item 8) -----------------------------------------------


@pytest.mark.slow
def test_a_large_host_batch_grows_memory_by_its_pngs_only(tmp_path):
    """Eighty 500×500 RGBA images (76 MiB, incompressible) without max_size, an image each
    (``layout="samples"``; torch's grid is one image, its memory a test of its own): encoded
    at the call from the caller's array, the record written from its parts. Measured as what the
    promise is about — the allocations the call makes (tracemalloc traces NumPy's buffers and
    the PNGs' bytes), not process RSS, which the allocator and a loaded machine move: the call
    keeps its PNGs and nothing else, and never holds a copy of the batch (76 MiB) — at any
    moment at most a few images' encoding buffers beside the PNGs."""
    from conftest import run_python

    proc = run_python(f"""
        import glob, os, tracemalloc
        import numpy as np
        import gpu_summary as gs
        batch = np.empty((80, 500, 500, 4), np.uint8)
        batch[...] = np.random.default_rng(0).integers(0, 256, batch.shape[1:], dtype=np.uint8)
        writer = gs.SummaryWriter({str(tmp_path)!r})
        writer.add_scalar("warm", 0.0, 0)  # the writer thread and its buffers exist
        writer.flush()
        tracemalloc.start()
        writer.add_images("seed", batch, 0, dataformats="NHWC", layout="samples")
        kept = tracemalloc.get_traced_memory()[0]  # what the call holds until written
        writer.close()
        peak = tracemalloc.get_traced_memory()[1]  # the call and the writer thread's work
        print(kept, peak, sum(os.path.getsize(p) for p in glob.glob({str(tmp_path)!r} + "/ev*")))
    """, timeout=300)  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    kept, peak, file_size = map(int, proc.stdout.split())
    pngs = file_size - (1 << 20)  # the file: the PNGs, their tags and headers (< 1 MiB)
    assert pngs <= kept <= file_size + (1 << 20), (kept >> 20, file_size >> 20)
    assert peak <= file_size + (24 << 20), (peak >> 20, file_size >> 20)  # a copy: +76 MiB
    acc = legacy_reader(tmp_path)
    assert [len(acc.Images(f"seed/image/{i}")) for i in range(80)] == [1] * 80


# -- masked arrays (issue 32, item 3) ---------------------------------------------------------

MASKED = np.ma.masked_array([1.0, 2.0, 1e6, 3.0, 0.5], mask=[0, 0, 1, 0, 0])


def test_a_masked_histogram_counts_the_unmasked_values_only(tmp_path):
    import gpu_summary.summary as seed

    plain = MASKED.compressed()
    with gs.SummaryWriter(tmp_path) as writer:
        for bins in ["tensorflow", 4, [0.0, 1.5, 2.5], "auto", "sturges", "scott"]:
            writer.add_histogram(f"{bins}", MASKED, 0, bins=bins)
            writer.add_histogram(f"{bins}/plain", plain, 0, bins=bins)
        writer.add_histogram("window", MASKED, 0, window=1)
        writer.add_histograms({"many": MASKED, "many/plain": plain}, 0)
        seed.create_summary_writer(str(tmp_path / "seed"))
        seed.histogram(MASKED, np.array([0]), "seed")
        seed.histogram(plain, np.array([0]), "seed/plain")
        seed.close_summary_writer()
    acc = legacy_reader(tmp_path)
    tags = [f"{b}" for b in ["tensorflow", 4, [0.0, 1.5, 2.5], "auto", "sturges", "scott"]]
    for tag in [*tags, "many"]:
        (got,), (want,) = acc.Histograms(tag), acc.Histograms(f"{tag}/plain")
        assert got.histogram_value == want.histogram_value, tag
        assert got.histogram_value.num == 4 and got.histogram_value.max == 3.0, tag
    assert (
        acc.Histograms("window")[0].histogram_value
        == acc.Histograms("tensorflow/plain")[0].histogram_value
    )
    seed_acc = legacy_reader(tmp_path / "seed")
    assert seed_acc.Histograms("seed")[0].histogram_value.num == 4


MASKED_IMAGE = np.ma.masked_array(np.zeros((3, 4, 4)), mask=np.zeros((3, 4, 4), bool))


@pytest.mark.parametrize(
    "call,argument",
    [
        (lambda w: w.add_scalar("s", np.ma.masked_array(1.0, mask=True), 0), "scalar_value"),
        (lambda w: w.add_scalar("s", np.ma.masked_array([2.0]), 0), "scalar_value"),
        (lambda w: w.add_scalars("m", {"a": np.ma.masked_array(1.0, mask=True)}), "value"),
        (lambda w: w.add_image("i", MASKED_IMAGE, 0), "img_tensor"),
        (lambda w: w.add_images("i", MASKED_IMAGE[None], 0), "img_tensor"),
        (lambda w: w.add_video("v", MASKED_IMAGE[None, None], 0), "vid_tensor"),
        (lambda w: w.add_audio("a", np.ma.masked_array(np.zeros(8)), 0), "snd_tensor"),
        (lambda w: w.add_anomaly("a", MASKED, 0), "values"),
        (lambda w: w.add_tensor("t", MASKED, 0), "tensor"),
        (lambda w: w.add_embedding(np.ma.masked_array(np.eye(3)), tag="e"), "mat"),
        (lambda w: w.add_embedding(np.eye(3), np.ma.masked_array([1, 2, 3]), tag="e"), "metadata"),
        (lambda w: w.add_embedding(np.eye(1), label_img=MASKED_IMAGE[None], tag="e"), "label_img"),
        (lambda w: w.add_pr_curve("p", np.ma.masked_array([0, 1]), [0.2, 0.8], 0), "labels"),
        (lambda w: w.add_pr_curve("p", [0, 1], np.ma.masked_array([0.2, 0.8]), 0), "predictions"),
        (lambda w: w.add_pr_curve_raw("p", *[np.ma.masked_array([1.0, 2.0])] * 6, 0),
         "true_positive_counts"),
        (lambda w: w.add_mesh("m", np.ma.masked_array(np.zeros((1, 3, 3)))), "vertices"),
        (lambda w: w.add_image_with_boxes("b", MASKED_IMAGE, [[0, 0, 1, 1]], 0), "img_tensor"),
        (lambda w: w.add_image_with_boxes("b", np.zeros((3, 4, 4)),
                                          np.ma.masked_array([[0, 0, 1, 1]]), 0), "box_tensor"),
        (lambda w: w.add_histogram("h", [1.0], 0, bins=np.ma.masked_array([0.0, 1.0, 2.0])),
         "bins as edges"),
        (lambda w: w.add_histogram_raw("r", 0, 1, 1, 1, 1, np.ma.masked_array([1.0]), [1]),
         "bucket_limits"),
        (lambda w: w.add_histogram_raw("r", 0, 1, 1, 1, 1, [1.0], np.ma.masked_array([1])),
         "bucket_counts"),
    ],
)  # fmt: skip
def test_a_masked_array_is_refused_where_a_hole_has_no_place(tmp_path, call, argument):
    with gs.SummaryWriter(tmp_path) as writer:
        with pytest.raises(TypeError, match=rf"{argument}.* is a masked array .*\.filled\(0\)"):
            call(writer)
        writer.flush()  # nothing deferred
    acc = legacy_reader(tmp_path)
    assert sum(len(names) for names in acc.Tags().values() if isinstance(names, list)) == 0


# -- tensors without plain data (issue 32, item 4) --------------------------------------------


def _odd_tensors():
    torch = pytest.importorskip("torch")
    import warnings

    with warnings.catch_warnings():
        warnings.simplefilter("ignore", UserWarning)  # "nested tensors is in prototype stage"
        nested = torch.nested.nested_tensor([torch.ones(2), torch.ones(3)])
    packed = torch.zeros(3, dtype=torch.uint8).view(torch.float4_e2m1fn_x2)
    return {
        "nested (jagged) tensor": nested,
        "meta tensor": torch.ones(3, device="meta"),
        "dtype torch.float4_e2m1fn_x2": packed,
    }


@pytest.mark.parametrize("kind", ["nested (jagged) tensor", "meta tensor",
                                  "dtype torch.float4_e2m1fn_x2"])  # fmt: skip
def test_nested_meta_and_packed_tensors_are_type_errors_naming_the_argument(tmp_path, kind):
    tensor = _odd_tensors()[kind]
    calls = [
        (lambda w: w.add_histogram("h", tensor, 0), "values"),
        (lambda w: w.add_histograms({"h": tensor}, 0), r"named_tensors\['h'\]"),
        (lambda w: w.add_scalar("s", tensor, 0), "scalar_value"),
        (lambda w: w.add_image("i", tensor, 0), "img_tensor"),
        (lambda w: w.add_anomaly("a", tensor, 0), "values"),
        (lambda w: w.add_tensor("t", tensor, 0), "tensor"),
        (lambda w: w.add_histogram("h", [1.0], 0, bins=tensor), "bins as edges"),
    ]
    with gs.SummaryWriter(tmp_path) as writer:
        for call, argument in calls:
            with pytest.raises(TypeError, match=rf"^{argument} (is a|has) {re.escape(kind)}"):
                call(writer)
        writer.flush()  # nothing deferred
    acc = legacy_reader(tmp_path)
    assert sum(len(names) for names in acc.Tags().values() if isinstance(names, list)) == 0


# -- edges and counts of any library, checked (issue 32, items 3 and 4) ----------------------


def test_edges_and_counts_that_require_grad_are_read_detached(tmp_path):
    torch = pytest.importorskip("torch")

    def grad(values):
        return torch.tensor(values, requires_grad=True)

    with gs.SummaryWriter(tmp_path) as writer:
        writer.add_histogram("h", np.array([0.5, 1.5, 1.7]), 0, bins=grad([0.0, 1.0, 2.0]))
        writer.add_histogram_raw("r", 0.5, 1.7, 3, 3.7, 5.39, grad([1.0, 2.0]), grad([1.0, 2.0]))
    acc = legacy_reader(tmp_path)
    assert list(acc.Histograms("h")[0].histogram_value.bucket) == [1.0, 2.0]
    raw = acc.Histograms("r")[0].histogram_value
    assert (list(raw.bucket_limit), list(raw.bucket)) == ([1.0, 2.0], [1.0, 2.0])


DATES = np.array(["2020-01-01", "2021-01-01"], "datetime64[D]")


@pytest.mark.parametrize(
    "call,match",
    [
        (lambda w: w.add_histogram("h", [1.0], 0, bins=np.array([1 + 2j, 3])), "bins as edges"),
        (lambda w: w.add_histogram("h", [1.0], 0, bins=DATES), "bins as edges"),
        (lambda w: w.add_histogram_raw("r", 0, 1, 1, 1, 1, [1.0], np.array([1 + 1j])),
         "bucket_counts"),
        (lambda w: w.add_histogram_raw("r", 0, 1, 1, 1, 1, DATES[:1], [1]), "bucket_limits"),
    ],
)  # fmt: skip
def test_complex_and_date_edges_and_counts_are_type_errors(tmp_path, call, match):
    with gs.SummaryWriter(tmp_path) as writer:
        with pytest.raises(TypeError, match=rf"^{match} must hold bool, integer or floating"):
            call(writer)
        writer.flush()
    assert legacy_reader(tmp_path).Tags()["histograms"] == []


# -- zero-stride views of billions of values (issue 32, item 4) -------------------------------

_HUGE_CALLS = """
import resource, sys, tracemalloc
resource.setrlimit(resource.RLIMIT_AS, (12 << 30, 12 << 30))  # a copy fails fast, never swaps
import numpy as np, torch
import gpu_summary as gs
N = 10**10
view = np.broadcast_to(np.float32(0.5), (N,))
def grid(*shape, dtype=np.float32):
    return np.broadcast_to(np.array(0.5 if dtype == np.float32 else 1, dtype), shape)
writer = gs.SummaryWriter(sys.argv[1])
cases = {
    "image": lambda: writer.add_image("i", grid(3, 10**5, 10**5)),
    "image torch": lambda: writer.add_image("i", torch.tensor(0.5).expand(3, 10**5, 10**5)),
    "images": lambda: writer.add_images("i", grid(100, 3, 10**4, 10**4, dtype=np.uint8)),
    "video": lambda: writer.add_video("v", grid(1, 100, 3, 10**4, 10**4, dtype=np.uint8)),
    "audio": lambda: writer.add_audio("a", view),
    "audio torch": lambda: writer.add_audio("a", torch.tensor(0.5).expand(N)),
    "embedding": lambda: writer.add_embedding(grid(10**5, 10**5), tag="e"),
    "embedding pca": lambda: writer.add_embedding(grid(10**5, 10**5), tag="e", reduce="pca"),
    "metadata": lambda: writer.add_embedding(np.eye(2), grid(2, N // 2, dtype=np.int64)),
    "mesh": lambda: writer.add_mesh("m", grid(1, N // 3, 3)),
    "boxes": lambda: writer.add_image_with_boxes("b", np.zeros((3, 8, 8)), grid(N // 4, 4)),
    "pr raw": lambda: writer.add_pr_curve_raw("p", *[view] * 6, 0),
    "anomaly": lambda: writer.add_anomaly("a", view, 0).result(),
    "bins auto": lambda: writer.add_histogram("h", view, 0, bins="auto"),
    "bins scott": lambda: writer.add_histogram("h", view, 0, bins="scott"),
    "edges": lambda: writer.add_histogram("h", [1.0], 0, bins=torch.tensor(1.0).expand(N)),
    "counts": lambda: writer.add_histogram_raw("r", 0, 1, 1, 1, 1, [1.0], view),
}
for name, call in cases.items():
    try:
        call()
        print(f"{name}|logged")
    except Exception as exc:
        print(f"{name}|{type(exc).__name__}|{exc}".replace("\\n", " "))
small = np.broadcast_to(np.float32(0.5), (10**8,))  # as histogram values: counted as before
for bins in ["tensorflow", 4, [0.0, 1.0]]:
    writer.add_histogram(f"kept/{bins}", small, 0, bins=bins)
writer.add_histogram("kept/window", small, 0, window=1)
tracemalloc.start()  # thumbnails of huge views: streamed, a few rows at a time
writer.add_image("shrunk", grid(3, 8000, 8000), 0, max_size=64)
print(f"image peak|{tracemalloc.get_traced_memory()[1]}")
tracemalloc.reset_peak()
writer.add_embedding(np.eye(1), label_img=grid(1, 1, 12000, 12000), tag="sprite")
# written at the call: the 8192² sprite, its PNG's filtered rows, the compressor's buffer
print(f"sprite peak|{tracemalloc.get_traced_memory()[1]}")
writer.close()
"""

_HUGE_REFUSALS = {  # what each refusal names: the argument, then the limit or the fix
    "image": ("img_tensor", "max_size"),
    "image torch": ("img_tensor", "max_size"),
    "images": ("img_tensor", "max_size"),
    "video": ("vid_tensor", "max_size"),
    "audio": ("snd_tensor", "a shorter clip"),
    "audio torch": ("snd_tensor", "a shorter clip"),
    "embedding": ("mat", "fewer points"),
    "embedding pca": ("mat", "fewer points"),
    "metadata": ("metadata", "16,777,216"),
    "mesh": ("vertices", "2 GiB"),
    "boxes": ("box_tensor", "1,048,576"),
    "pr raw": ("true_positive_counts", "1,048,576"),
    "anomaly": ("values", "zero strides"),
    "bins auto": ("values", "zero strides"),
    "bins scott": ("values", "zero strides"),
    "edges": ("bins as edges", "1,048,576"),
    "counts": ("bucket_counts", "1,048,576"),
}


@pytest.mark.slow
def test_zero_stride_views_of_billions_are_refused_at_the_call_or_read_a_few_rows_at_a_time(
    tmp_path,
):
    """Views that repeat one value 10**10 times (np.broadcast_to, Tensor.expand) where a call
    would convert them whole: a ValueError naming the argument and the limit or the fix —
    never a MemoryError (they asked for 37 to 298 GiB), never a half-logged call; thumbnails
    of a huge view are shrunk a few rows at a time, their memory bounded."""
    pytest.importorskip("torch")
    import subprocess
    import sys

    proc = subprocess.run(
        [sys.executable, "-c", _HUGE_CALLS, str(tmp_path)],
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr[-3000:]
    lines = dict(line.split("|", 1) for line in proc.stdout.splitlines())
    for name, (argument, words) in _HUGE_REFUSALS.items():
        error, _, message = lines[name].partition("|")
        assert error == "ValueError", (name, lines[name])
        assert message.startswith(argument) and words in message, (name, message)
    assert int(lines["image peak"]) < 64 << 20, lines  # a float64 copy: 1.4 GiB
    # The sprite's PNG is made at the call (its files are on disk when it returns): three
    # times its 64 MiB in all (four, on the writer thread, before); a float64 copy: 1.1 GiB.
    assert int(lines["sprite peak"]) < 3 * 8192**2 + (64 << 20), lines
    acc = legacy_reader(tmp_path)
    assert acc.Tags()["images"] == ["shrunk"] and acc.Images("shrunk")[0].width == 64
    kept = ["kept/tensorflow", "kept/4", "kept/[0.0, 1.0]", "kept/window"]
    assert sorted(acc.Tags()["histograms"]) == sorted(kept)  # nothing else logged
    assert [acc.Histograms(tag)[0].histogram_value.num for tag in kept] == [1e8] * 4
