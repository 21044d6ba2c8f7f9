"""The event-file writer: naming, framing, flushing, back-pressure, failures, fork."""

from __future__ import annotations

import errno
import os
import re
import socket
import threading
import time

import numpy as np
import pytest
from tensorboard.compat.proto import event_pb2 as tb_event_pb2

import gpu_summary as gs
from conftest import legacy_reader, run_python
from gpu_summary._events import writer as _events
from gpu_summary._events.channel import Channel
from gpu_summary._events.event_file import EventFile
from gpu_summary._events.jobs import Job, JobKind
from gpu_summary._events.records import read_records
from gpu_summary._events.writer import EventFileWriter
from gpu_summary.proto import event_pb2


def _events_in(path):
    records, problems = read_records(path)
    assert problems == []
    return [tb_event_pb2.Event.FromString(r) for r in records]


def _job(build, *args, nbytes=0, description=""):
    return Job(JobKind(getattr(build, "__name__", "job"), build), args, nbytes, description)


def _scalar_job(tag, step, value=1.0):
    def job():
        event = event_pb2.Event(wall_time=time.time(), step=step)
        event.summary.value.add(tag=tag, simple_value=value)
        return event

    return _job(job)


def test_file_name_and_first_record(tmp_path):
    writer = EventFileWriter(str(tmp_path / "run"), filename_suffix=".v2")
    writer.close()
    name = os.path.basename(writer.path)
    host = re.escape(socket.gethostname())
    assert re.fullmatch(rf"events\.out\.tfevents\.\d{{10}}\.{host}\.{os.getpid()}\.\d+\.v2", name)
    (first,) = _events_in(writer.path)
    assert first.file_version == "brain.Event:2"
    assert abs(first.wall_time - time.time()) < 60


def test_two_writers_never_share_a_file(tmp_path):
    a, b = EventFileWriter(str(tmp_path)), EventFileWriter(str(tmp_path))
    assert a.path != b.path
    a.close(), b.close()
    assert len(os.listdir(tmp_path)) == 2


def test_flush_makes_everything_readable(tmp_path):
    writer = EventFileWriter(str(tmp_path), flush_secs=3600)
    for step in range(100):
        writer.add(_scalar_job("x", step))
    writer.flush()
    events = _events_in(writer.path)
    assert [e.step for e in events[1:]] == list(range(100))
    writer.close()


def test_records_reach_disk_within_flush_secs_without_flush(tmp_path):
    writer = EventFileWriter(str(tmp_path), flush_secs=0.2)
    writer.add(_scalar_job("x", 7))
    deadline = time.monotonic() + 5
    while len(_events_in(writer.path)) < 2:
        assert time.monotonic() < deadline, "the record did not reach the file by itself"
        time.sleep(0.05)
    writer.close()


@pytest.mark.parametrize("limit,nbytes,queued", [("max_queue", 0, 3), ("max_queue_bytes", 60, 2)])
def test_queue_is_bounded(tmp_path, limit, nbytes, queued):
    writer = EventFileWriter(str(tmp_path), **{limit: 2 if limit == "max_queue" else 100})
    release = threading.Event()

    def slow_job():
        release.wait()
        return event_pb2.Event(step=0)

    for _ in range(queued):  # the first runs (and waits) on the writer thread; the rest queue
        writer.add(_job(slow_job, nbytes=nbytes))
        time.sleep(0.05)
    blocked = threading.Thread(target=writer.add, args=(_job(slow_job, nbytes=nbytes),))
    blocked.start()
    blocked.join(0.3)
    assert blocked.is_alive(), "add() should block while the queue is full"
    release.set()
    blocked.join(5)
    assert not blocked.is_alive()
    writer.close()
    assert len(_events_in(writer.path)) == 1 + queued + 1


def test_close_is_idempotent_and_logging_after_it_reopens(tmp_path):
    writer = gs.SummaryWriter(str(tmp_path))
    writer.add_scalar("x", 1.0, 0)
    first = writer.file_path
    writer.close()
    writer.close()
    writer.flush()  # harmless after close
    assert writer.closed
    assert [s.value for s in legacy_reader(tmp_path).Scalars("x")] == [1.0]
    writer.add_scalar("x", 2.0, 1)  # as torch's and tensorboardX's: a new file, same folder
    assert not writer.closed and writer.file_path != first
    writer.add_histogram("h", np.arange(3.0), 1)
    writer.close()
    assert sorted(os.listdir(tmp_path)) == sorted(
        os.path.basename(p) for p in (first, writer.file_path)
    )
    for path in (first, writer.file_path):
        assert read_records(path)[1] == []  # both whole
    assert [s.value for s in legacy_reader(tmp_path).Scalars("x")] == [1.0, 2.0]


def test_files_reopened_in_one_second_are_read_in_the_order_made(tmp_path):
    writer = gs.SummaryWriter(str(tmp_path))
    for step in range(12):  # the counter passes from one digit to two
        writer.add_scalar("x", float(step), step)
        writer.close()
    names = sorted(os.listdir(tmp_path))
    assert len(names) == 12 and all(re.search(r"\.\d{6}$", name) for name in names)
    assert [s.step for s in legacy_reader(tmp_path).Scalars("x")] == list(range(12))


def test_context_manager_closes_and_a_later_call_reopens(tmp_path):
    with gs.SummaryWriter(str(tmp_path)) as writer:
        writer.add_scalar("x", 1.0, 0)
        first = writer.file_path
    assert writer.closed and read_records(first)[1] == []
    writer.add_scalar("x", 1.0, 1)
    writer.flush()
    assert [s.step for s in legacy_reader(tmp_path).Scalars("x")] == [0, 1]
    writer.close()


def test_interpreter_exit_writes_everything(tmp_path):
    proc = run_python(f"""
        import numpy as np
        import gpu_summary as gs
        w = gs.SummaryWriter({str(tmp_path)!r}, flush_secs=3600)
        for i in range(500):
            w.add_scalar("x", float(i), i)
        w.add_images("batch", np.zeros((3, 8, 8, 3), np.uint8), 0, dataformats="NHWC",
                     layout="samples")  # three PNGs, on the encoder threads, at exit
        dropped = gs.SummaryWriter({str(tmp_path / "dropped")!r}, flush_secs=3600)
        dropped.add_scalar("y", 1.0, 0)
        del dropped  # garbage-collected without close(): still written
    """)
    assert proc.returncode == 0, proc.stderr
    assert len(legacy_reader(tmp_path).Scalars("x")) == 500
    acc = legacy_reader(tmp_path)
    assert [len(acc.Images(f"batch/image/{i}")) for i in range(3)] == [1, 1, 1]
    assert len(legacy_reader(tmp_path / "dropped").Scalars("y")) == 1


@pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")
def test_fork_child_gets_its_own_file(tmp_path):
    proc = run_python(f"""
        import os, sys
        import gpu_summary as gs
        w = gs.SummaryWriter({str(tmp_path)!r}, flush_secs=3600)
        import numpy as np
        w.add_images("parent_images", np.zeros((2, 4, 4, 3), np.uint8), 0, dataformats="NHWC",
                     layout="samples")
        w.flush()  # the PNG encoder threads now exist in the parent
        for i in range(50):
            w.add_scalar("parent", float(i), i)   # buffered, not yet flushed
        pid = os.fork()
        if pid == 0:
            w.add_scalar("child", 1.0, 0)
            w.add_images("child_images", np.zeros((2, 4, 4, 3), np.uint8), 0,
                         dataformats="NHWC", layout="samples")
            w.close()
            os._exit(0)
        _, status = os.waitpid(pid, 0)
        assert os.waitstatus_to_exitcode(status) == 0
        w.add_scalar("parent", 50.0, 50)
        w.close()
        print(pid)
    """)
    assert proc.returncode == 0, proc.stderr
    child_pid = int(proc.stdout.split()[-1])
    files = sorted(os.listdir(tmp_path))
    assert len(files) == 2
    tags = {}
    for name in files:
        pid = int(name.split(".")[-2])  # host names may hold dots
        events = _events_in(str(tmp_path / name))
        tags[pid] = [v.tag for e in events if e.HasField("summary") for v in e.summary.value]
    assert tags[child_pid] == ["child", "child_images/image/0", "child_images/image/1"]
    (parent_pid,) = set(tags) - {child_pid}
    assert tags[parent_pid] == ["parent_images/image/0", "parent_images/image/1"] + ["parent"] * 51


def _fail_after(limit, real_write=os.write):
    """An os.write that writes up to ``limit`` bytes in total, then fails like a full disk."""
    budget = {"left": limit}

    def write(fd, data):
        if budget["left"] <= 0:
            raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC))
        n = real_write(fd, bytes(data[: budget["left"]]))
        budget["left"] -= n
        return n

    return write


def test_disk_full_surfaces_and_file_ends_on_a_whole_record(tmp_path, monkeypatch):
    writer = gs.SummaryWriter(str(tmp_path), flush_secs=3600)
    writer.add_scalar("x", 0.0, 0)
    writer.flush()
    size = os.path.getsize(writer.file_path)
    monkeypatch.setattr(_events.os, "write", _fail_after(100))  # ~2.5 scalar records fit
    for step in range(1, 20):
        writer.add_scalar("x", float(step), step)
    with pytest.raises(OSError, match="No space left on device") as info:
        writer.flush()
    assert info.value.errno == errno.ENOSPC
    assert "dropped" in str(info.value)
    _, problems = read_records(writer.file_path)
    assert problems == []
    assert size < os.path.getsize(writer.file_path) <= size + 100
    monkeypatch.undo()
    # The error is raised once; the writer goes on once the disk has room again.
    writer.add_scalar("x", 99.0, 99)
    writer.close()
    steps = [s.step for s in legacy_reader(tmp_path).Scalars("x")]
    assert steps[0] == 0 and steps[-1] == 99 and steps == sorted(steps)


def test_failing_job_never_kills_the_writer(tmp_path):
    writer = EventFileWriter(str(tmp_path))

    def broken():
        raise ZeroDivisionError("boom")

    writer.add(_job(broken, description="image 'bad' at step 3"))
    writer.add(_scalar_job("ok", 1))
    with pytest.raises(gs.WriterError, match="image 'bad' at step 3") as info:
        writer.flush()
    assert isinstance(info.value.__cause__, ZeroDivisionError)
    writer.add(_scalar_job("ok", 2))
    writer.close()
    assert [e.step for e in _events_in(writer.path)[1:]] == [1, 2]


def test_many_threads(tmp_path):
    writer = gs.SummaryWriter(str(tmp_path), max_queue=16)

    def log(t):
        for step in range(300):
            writer.add_scalar(f"thread{t}", float(step), step)

    threads = [threading.Thread(target=log, args=(t,)) for t in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    writer.close()
    acc = legacy_reader(tmp_path)
    for t in range(8):
        assert [s.step for s in acc.Scalars(f"thread{t}")] == list(range(300))


def test_bulk_jobs_fall_back_to_one_by_one_on_failure(tmp_path):
    writer = EventFileWriter(str(tmp_path), flush_secs=3600)

    def job(step):
        if step == 3:
            raise ValueError("step 3 is cursed")
        return _scalar_job("x", step).build()

    # Built in bulk, the burst fails as a whole at step 3.
    kind = JobKind("x", job, lambda calls: [job(*a).SerializeToString() for a in calls])
    release = threading.Event()
    writer.add(_job(lambda: (release.wait(), event_pb2.Event(step=-1))[1]))  # hold the writer
    for step in range(6):
        writer.add(Job(kind, (step,)))  # queued together: built by one build_many call
    release.set()
    with pytest.raises(gs.WriterError, match="cursed"):
        writer.flush()  # reported by the one-by-one retry
    writer.close()
    assert [e.step for e in _events_in(writer.path)[1:]] == [-1, 0, 1, 2, 4, 5]


def test_draining_a_full_queue_in_bulk_wakes_a_waiting_producer(tmp_path):
    """The writer thread builds bursts of one kind in bulk; emptying the queue that way must
    wake a producer blocked on the full queue (it once slept forever: 1 run in 7 of 200k
    scalars through a 1024-job queue). Driven step by step: the writer's loop runs here."""
    channel = Channel(EventFile(str(tmp_path)), flush_secs=3600)  # its thread never starts
    channel.room_poll_secs = 3600  # only a wake lets the producer go

    def build_many(calls):
        return [event_pb2.Event(step=step).SerializeToString() for (step,) in calls]

    kind = JobKind("x", lambda step: event_pb2.Event(step=step), build_many)
    for step in range(4):
        channel.put(Job(kind, (step,)), max_items=4, max_bytes=1 << 20)
    producer = threading.Thread(target=channel.put, args=(Job(kind, (4,)), 4, 1 << 20))
    producer.start()
    deadline = time.monotonic() + 30
    while not channel.producers and time.monotonic() < deadline:
        time.sleep(0.01)  # until it waits for room (a state, not a guess at scheduling)
    assert channel.producers
    first = channel.queue.popleft()  # the job the writer had taken before the producer waited
    channel._run_jobs(first)  # builds the other three in one bulk call
    producer.join(30)
    stuck = producer.is_alive()
    if stuck:  # let it go, so the test ends either way
        channel.closed = True
        channel.producers.wake_all()
        producer.join(30)
    assert not stuck, "the producer was never told that the queue had room"
    assert [job.args for job in channel.queue] == [(4,)]
    channel.file.write_batch()
    assert [e.step for e in _events_in(channel.file.path)[1:]] == [0, 1, 2, 3]
    channel.file.close()


def test_a_record_written_from_parts_is_whole_or_not_there(tmp_path, monkeypatch):
    file = EventFile(str(tmp_path))
    file.append(event_pb2.Event(step=1).SerializeToString())
    file.write_batch()
    size = os.path.getsize(file.path)
    real_writev = os.writev

    def full_disk(fd, pieces):
        if fd != file.fd:
            return real_writev(fd, pieces)
        os.write(fd, bytes(pieces[0])[:10])  # a part of the header reaches the disk
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(os, "writev", full_disk)
    with pytest.raises(OSError, match=r"1 record.*dropped.*last whole record") as info:
        file.write_parts([b"\x10\x02", b"more" * 1000])
    assert info.value.errno == errno.ENOSPC
    monkeypatch.setattr(os, "writev", real_writev)
    assert os.path.getsize(file.path) == size  # cut back
    file.write_parts([b"\x10\x03"])  # the next record is whole
    file.close()
    records, problems = read_records(file.path)
    assert problems == [] and [event_pb2.Event.FromString(r).step for r in records[1:]] == [1, 3]


def test_a_writer_asleep_but_marked_awake_is_woken_by_a_waiting_producer_and_by_flush(tmp_path):
    # What a KeyboardInterrupt between _wake's mark and its ring leaves behind: the writer
    # thread asleep, its state saying awake. A producer waiting for room, and flush(), ring
    # it themselves instead of waiting for ever.
    from gpu_summary._events import channel as channel_module

    writer = gs.SummaryWriter(tmp_path, max_queue=2, flush_secs=1000)
    writer.add_scalar("s", 0.0, 0)
    writer.flush()
    channel = writer._state.events._channel
    deadline = time.monotonic() + 60
    while channel.writer_state != channel_module._ASLEEP and time.monotonic() < deadline:
        time.sleep(0.01)  # polled with a deadline: the writer thread's own pace
    assert channel.writer_state == channel_module._ASLEEP
    done = threading.Event()

    def produce():
        channel.writer_state = channel_module._AWAKE  # the interrupted _wake's mark, no ring
        for step in range(1, 6):  # more than max_queue: waits for room at least once
            writer.add_scalar("s", float(step), step)
        channel.writer_state = channel_module._AWAKE
        writer.flush()
        done.set()

    worker = threading.Thread(target=produce, daemon=True)
    worker.start()
    assert done.wait(60), "the writer thread was never woken"
    writer.close()
    assert [e.step for e in legacy_reader(tmp_path).Scalars("s")] == list(range(6))
