"""``gpu-summary inspect`` and ``gpu_summary.reader``: inventories that agree with TensorBoard's
reader, and damaged files reported with their offsets instead of crashing."""

from __future__ import annotations

import json
import os
import struct
import subprocess
import sys

import numpy as np
import pytest

import gpu_summary as gs
from conftest import legacy_reader
from gpu_summary import reader
from gpu_summary._events.records import encode_record, iter_records


def _cli(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "gpu_summary", *args], capture_output=True, text=True, timeout=120
    )


def _scalar_run(folder, steps: int = 10) -> str:
    with gs.SummaryWriter(folder) as writer:
        for step in range(steps):
            writer.add_scalar("loss", float(step), step)
    return writer.file_path


def _offsets(path) -> list[int]:
    with open(path, "rb") as file:
        return [item[0] for item in iter_records(file.read())]


def test_inventory_matches_tensorboards_reader(tmp_path):
    with gs.SummaryWriter(tmp_path / "a") as writer:
        for step in range(3, 8):
            writer.add_scalar("loss", 1.0 / step, step)
            writer.add_histogram("w", np.arange(10.0), step)
        writer.add_text("notes", "hi", 2)
        writer.add_image("img", np.zeros((4, 4, 3), np.uint8), 0, dataformats="HWC")
        writer.add_graph([{"name": "x", "class_name": "InputLayer", "config": {}}])
        writer.add_embedding(np.eye(3), ["a", "b", "c"], tag="emb", step=4)
    _scalar_run(tmp_path / "b" / "nested", steps=2)

    runs = reader.inspect_logdir(tmp_path)
    assert [run.name for run in runs] == ["a", os.path.join("b", "nested")]
    a = runs[0]
    acc = legacy_reader(tmp_path / "a")
    assert a.series[("scalars", "loss")] == reader.Series("scalars", "loss", 5, 3, 7)
    assert a.series[("histograms", "w")].records == len(acc.Histograms("w")) == 5
    assert a.series[("text", "notes/text_summary")].first_step == 2
    assert a.series[("images", "img")].records == 1
    assert ("graphs", "(graph)") in a.series
    assert a.embeddings == ["emb:00004"]
    assert a.records == 1 + 5 + 5 + 3  # file_version, scalars, histograms, text/image/graph
    assert not a.all_problems()

    proc = _cli("inspect", str(tmp_path))
    assert proc.returncode == 0, proc.stderr
    assert "run a: 1 event file(s), 14 records" in proc.stdout
    assert "scalars" in proc.stdout and "steps 3..7" in proc.stdout and "5 records" in proc.stdout
    assert "projector    1 embedding(s): emb:00004" in proc.stdout
    assert proc.stdout.rstrip().endswith("2 run(s), 2 event file(s), 17 records, 0 problem(s)")

    listed = json.loads(_cli("inspect", "--json", str(tmp_path)).stdout)
    assert listed[0]["series"][0] == {
        "plugin": "graphs", "tag": "(graph)", "records": 1, "first_step": 0, "last_step": 0,
    }  # fmt: skip


def test_damage_is_reported_with_offsets_and_the_rest_is_read(tmp_path):
    path = _scalar_run(tmp_path)
    offsets = _offsets(path)  # file_version + 10 scalars
    data = bytearray(open(path, "rb").read())
    data[offsets[4] + 14] ^= 0xFF  # inside the data of the record of step 3
    data += encode_record(b"\xff\xff not an event")  # checksums hold, the payload is junk
    junk_at = len(data) - len(encode_record(b"\xff\xff not an event"))
    tail_at = len(data)
    data += encode_record(b"x" * 40)[:30]  # a record cut short, as a crash leaves it
    open(path, "wb").write(bytes(data))

    items = list(reader.read_events(path))
    problems = [item for item in items if isinstance(item, reader.Problem)]
    steps = [item[1].step for item in items[1:] if not isinstance(item, reader.Problem)]
    assert steps == [0, 1, 2, 4, 5, 6, 7, 8, 9]
    assert [(p.offset, p.reason.split(":")[0], p.unread) for p in problems] == [
        (offsets[4], "data checksum mismatch", 0),
        (junk_at, "valid record, but not an Event message", 0),
        (tail_at, "truncated data", 30),
    ]

    proc = _cli("inspect", str(tmp_path))
    assert proc.returncode == 1
    assert "steps 0..9" in proc.stdout and "9 records" in proc.stdout
    name = os.path.basename(path)
    assert f"PROBLEM {name}: offset {offsets[4]}: data checksum mismatch" in proc.stdout
    assert f"offset {tail_at}: truncated data" in proc.stdout
    assert "3 problem(s)" in proc.stdout
    # TensorBoard's own reader stops at the damaged record; what it read, it read the same.
    assert [e.step for e in legacy_reader(tmp_path).Scalars("loss")] == steps[:3]


def test_a_damaged_length_stops_the_walk_and_says_how_much_was_left(tmp_path):
    path = _scalar_run(tmp_path)
    offsets = _offsets(path)
    data = bytearray(open(path, "rb").read())
    data[offsets[6] : offsets[6] + 8] = struct.pack("<Q", 1 << 40)
    open(path, "wb").write(bytes(data))
    runs = reader.inspect_logdir(tmp_path)
    (problem,) = runs[0].all_problems()
    assert (problem.offset, problem.reason) == (offsets[6], "header checksum mismatch")
    assert problem.unread == len(data) - offsets[6]
    assert runs[0].series[("scalars", "loss")].records == 5


@pytest.mark.parametrize(
    "content", [b"", b"\x00" * 5, os.urandom(3000)], ids=["empty", "short", "random"]
)
def test_odd_files_never_crash(tmp_path, content):
    (tmp_path / "events.out.tfevents.1.host").write_bytes(content)
    runs = reader.inspect_logdir(tmp_path)
    assert runs[0].records == 0
    assert bool(runs[0].all_problems()) == bool(content)
    assert _cli("inspect", str(tmp_path)).returncode == (1 if content else 0)


def test_projector_config_problems(tmp_path):
    with gs.SummaryWriter(tmp_path) as writer:
        writer.add_embedding(np.eye(2), ["a", "b"], tag="emb", step=0)
    tensors = [name for name in os.listdir(tmp_path / "00000" / "emb")]
    os.remove(tmp_path / "00000" / "emb" / "metadata.tsv")
    (problem,) = reader.inspect_logdir(tmp_path)[0].all_problems()
    assert "metadata_path" in problem.reason and "is missing" in problem.reason
    assert "tensors.tsv" in tensors
    (tmp_path / "projector_config.pbtxt").write_text("embeddings { tensor_name: ")
    (problem,) = reader.inspect_logdir(tmp_path)[0].all_problems()
    assert problem.reason.startswith("projector config unreadable")


def test_no_runs_and_missing_logdir(tmp_path):
    proc = _cli("inspect", str(tmp_path))
    assert proc.returncode == 0 and "no runs" in proc.stdout
    proc = _cli("inspect", str(tmp_path / "nowhere"))
    assert proc.returncode == 2 and "is not a directory" in proc.stderr
    with pytest.raises(FileNotFoundError, match="no such directory"):
        reader.inspect_logdir(tmp_path / "nowhere")


def test_a_live_file_is_read_while_the_writer_appends(tmp_path):
    with gs.SummaryWriter(tmp_path, flush_secs=60) as writer:
        writer.add_scalar("loss", 1.0, 0)
        writer.flush()
        first = reader.inspect_logdir(tmp_path)[0].series[("scalars", "loss")].records
        writer.add_scalar("loss", 2.0, 1)
        writer.flush()
        second = reader.inspect_logdir(tmp_path)[0].series[("scalars", "loss")].records
    assert (first, second) == (1, 2)


def test_names_that_are_not_utf8_or_printable_never_break_the_report(tmp_path):
    run = os.fsdecode(b"run\xff")
    with gs.SummaryWriter(tmp_path / run) as writer:
        writer.add_scalar("tag\nwith\tcontrols", 1.0, 0)
    (tmp_path / os.fsdecode(b"events.out.tfevents.\xfe")).write_bytes(b"junk")
    proc = subprocess.run(
        [sys.executable, "-m", "gpu_summary", "inspect", str(tmp_path)],
        capture_output=True, text=True, timeout=60,
        env={**os.environ, "PYTHONIOENCODING": "utf-8:strict"},
    )  # fmt: skip
    assert proc.returncode == 1, proc.stderr
    assert "run run\\xff: 1 event file(s)" in proc.stdout
    assert "tag\\nwith\\tcontrols" in proc.stdout
    assert "PROBLEM events.out.tfevents.\\xfe: offset 0: truncated header" in proc.stdout


def test_a_run_folder_that_cannot_be_read_is_a_problem(tmp_path, monkeypatch):
    import io

    from gpu_summary.__main__ import inspect_command

    _scalar_run(tmp_path / "a", steps=2)
    locked = tmp_path / "b" / "locked"
    _scalar_run(locked, steps=2)
    if os.geteuid() != 0:
        locked.chmod(0)
    else:  # root reads any folder: list it as one that refused would be
        real_scandir = os.scandir

        def refusing(path="."):
            if os.fspath(path) == str(locked):
                raise PermissionError(13, "Permission denied", os.fspath(path))
            return real_scandir(path)

        monkeypatch.setattr(os, "scandir", refusing)
    try:
        runs = reader.inspect_logdir(tmp_path)
        out = io.StringIO()
        status = inspect_command(str(tmp_path), False, out)
    finally:
        locked.chmod(0o755)
    assert [run.name for run in runs] == ["a", os.path.join("b", "locked")]
    (problem,) = runs[1].all_problems()
    assert problem.reason.startswith("cannot list the folder: ") and "Permission denied" in (
        problem.reason
    )
    assert status == 1
    assert out.getvalue().endswith("2 run(s), 1 event file(s), 3 records, 1 problem(s)\n")
