"""How a process ends, and what interrupts it, never costs a record or a hang.

Writers in worker processes (multiprocessing's fork, forkserver and spawn children, torch
DataLoader workers, a bare ``os.fork`` that ends in ``os._exit``) keep every record they
logged, closed or not. A caller interrupted at any bytecode (Ctrl-C's KeyboardInterrupt, caught
by the loop) leaves the writer usable and ``close()`` returning.
"""

from __future__ import annotations

import dis
import functools
import multiprocessing
import os
import queue
import sys
import threading

import numpy as np
import pytest

import gpu_summary as gs
from conftest import legacy_reader, run_python
from gpu_summary import _sync
from support import workers

needs_fork = pytest.mark.skipif(not hasattr(os, "fork"), reason="needs os.fork")


def _files(logdir) -> list[str]:
    found = []
    for folder, _, names in os.walk(logdir):
        found += [os.path.join(folder, n) for n in names if n.startswith("events.out.tfevents")]
    return sorted(found)


def _scalars(path, tag) -> list[float]:
    """The values of ``tag`` in one event file, read by TensorBoard's own reader (one file at a
    time: the processes' steps interleave, which the reader would take for a restart)."""
    acc = legacy_reader(path)
    return [e.value for e in acc.Scalars(tag)] if tag in acc.Tags()["scalars"] else []


def _run(context, target, *args) -> None:
    process = context.Process(target=target, args=args)
    process.start()
    process.join(120)
    assert not process.is_alive(), "the child hangs at its end"
    assert process.exitcode == 0


@needs_fork
@pytest.mark.parametrize("method", ["fork", "forkserver", "spawn"])
def test_a_writer_left_open_in_a_multiprocessing_child_keeps_every_record(tmp_path, method):
    """Fork and forkserver children end in os._exit, where atexit never runs (0 of 300 were on
    disk): multiprocessing's own exit function closes the writer."""
    _run(multiprocessing.get_context(method), workers.log_and_leave_open, str(tmp_path), 300)
    (path,) = _files(tmp_path)
    assert _scalars(path, "loss") == [float(step) for step in range(300)]
    acc = legacy_reader(path)
    assert acc.Histograms("weights")[0].histogram_value.num == 1000
    assert len(acc.Images("picture")) == 1


@needs_fork
def test_fork_children_logging_through_the_parents_writer_keep_their_records(tmp_path):
    """Each child writes a file of its own (its pid in the name); 0 of 400 records reached them
    before."""
    workers.inherited = gs.SummaryWriter(str(tmp_path))
    try:
        workers.inherited.add_scalar("from_parent", 1.0, 0)
        context = multiprocessing.get_context("fork")
        children = [context.Process(target=workers.log_through_inherited, args=(100,))]
        children += [context.Process(target=workers.log_through_inherited, args=(100,))]
        children += [context.Process(target=workers.log_through_inherited, args=(100,))]
        for child in children:
            child.start()
        for child in children:
            child.join(120)
            assert child.exitcode == 0
        workers.inherited.close()
    finally:
        workers.inherited = None
    files = _files(tmp_path)
    assert len(files) == 4
    by_pid = {int(os.path.basename(f).split(".")[-2]): f for f in files}
    for child in children:
        assert _scalars(by_pid[child.pid], "from_child") == [float(s) for s in range(100)]
    assert _scalars(by_pid[os.getpid()], "from_parent") == [1.0]


@needs_fork
def test_a_writer_dropped_before_os_exit_keeps_every_record(tmp_path):
    """The drop waits for the records (it used to queue the close and return: 1 of 500)."""
    pid = os.fork()
    if pid == 0:  # pragma: no cover - the child
        code = 1
        try:
            workers.log_in_a_function(str(tmp_path), 500)
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    assert os.waitstatus_to_exitcode(status) == 0
    (path,) = _files(tmp_path)
    assert _scalars(path, "loss") == [float(step) for step in range(500)]


def test_dataloader_workers_keep_their_records(tmp_path):
    """Every worker of a torch DataLoader makes a writer and never closes it."""
    torch_data = pytest.importorskip("torch.utils.data")
    dataset = workers.LoggingDataset(64)
    loader = torch_data.DataLoader(
        dataset,
        batch_size=4,
        num_workers=2,
        worker_init_fn=functools.partial(workers.init_worker_writer, str(tmp_path)),
        multiprocessing_context="fork" if hasattr(os, "fork") else "spawn",
    )
    assert sorted(int(i) for batch in loader for i in batch) == list(range(64))
    del loader  # its workers are shut down and have ended
    logged = sorted(v for path in _files(tmp_path) for v in _scalars(path, "item"))
    assert logged == [float(i) for i in range(64)]


# -- interrupts ---------------------------------------------------------------------------------

# The caller's side of every call (the package: the writer, its queue, the waits and signals):
# an interrupt at any point of it must leave no lock held.
_WATCHED = (os.path.dirname(gs.__file__) + os.sep, threading.__file__, queue.__file__)


@functools.cache
def _interruptible(code) -> frozenset[int]:
    """Where CPython runs signal handlers in ``code``: on entering it, at the head of a loop,
    and right after each call returns (not between any two bytecodes: an interrupt cannot
    land between a C ``__enter__``/``__exit__`` and the ``with`` that calls it)."""
    found = set()
    instructions = list(dis.get_instructions(code))
    for index, instruction in enumerate(instructions):
        if instruction.opname == "RESUME":
            found.add(instruction.offset)
        elif instruction.opname.startswith("CALL") and index + 1 < len(instructions):
            found.add(instructions[index + 1].offset)
        elif instruction.opname == "JUMP_BACKWARD":
            found.add(instruction.argval)
    return frozenset(found)


class _InterruptAt:
    """A trace function for this thread that raises KeyboardInterrupt at the ``at``-th point
    where a signal handler may run in the watched modules (tracing then ends, as it does after
    any error in a tracer)."""

    def __init__(self, at: int) -> None:
        self.at = at
        self.seen = 0

    def __call__(self, frame, event, arg):
        if frame.f_code.co_filename.startswith(_WATCHED):
            frame.f_trace_opcodes = True
            return self._opcode
        return None

    def _opcode(self, frame, event, arg):
        if event == "opcode" and frame.f_lasti in _interruptible(frame.f_code):
            self.seen += 1
            if self.seen == self.at:
                raise KeyboardInterrupt
        return self._opcode


def _within(seconds: float, call) -> None:
    """Run ``call`` on a thread of its own; fail (rather than block the suite) if it hangs."""
    failure = []

    def run():
        try:
            call()
        except BaseException as exc:  # noqa: BLE001 - reported below
            failure.append(exc)

    thread = threading.Thread(target=run, daemon=True)
    thread.start()
    thread.join(seconds)
    assert not thread.is_alive(), f"{call} hangs"
    if failure:
        raise failure[0]


def test_an_interrupt_at_any_bytecode_of_the_queue_leaves_the_writer_working(tmp_path):
    """The old queue held a threading.Condition's lock across Python code: an interrupt there
    left it held, and the writer thread, and close(), blocked for ever."""
    writer = gs.SummaryWriter(str(tmp_path), max_queue=2, flush_secs=3600)
    image = np.zeros((3, 4, 4), np.float32)
    interrupted = 0
    at = 1
    while True:
        tracer = _InterruptAt(at)
        sys.settrace(tracer)
        try:
            writer.add_scalar("s", float(at), at)
            writer.add_image("i", image, at)  # declares bytes: the counted path of the queue
            writer.flush()
        except KeyboardInterrupt:
            interrupted += 1
        finally:
            sys.settrace(None)
        _within(60, writer.flush)  # the writer thread is not wedged
        if tracer.seen < at:  # the calls ran whole: every bytecode has had its interrupt
            break
        at += 1
    assert interrupted > 50
    writer.add_scalar("last", 1.0, 0)
    _within(60, writer.close)
    acc = legacy_reader(tmp_path)
    assert [e.value for e in acc.Scalars("last")] == [1.0]
    steps = [e.step for e in acc.Scalars("s")]
    assert steps == sorted(set(steps)) and steps[-1] == at  # none twice, the last one whole


def test_a_close_interrupted_anywhere_finishes_when_called_again(tmp_path):
    at = 1
    while True:
        writer = gs.SummaryWriter(str(tmp_path / str(at)), flush_secs=3600)
        writer.add_scalar("s", 1.0, 0)
        tracer = _InterruptAt(at)
        sys.settrace(tracer)
        try:
            writer.close()
        except KeyboardInterrupt:
            pass
        finally:
            sys.settrace(None)
        _within(60, writer.close)
        assert [e.value for e in legacy_reader(tmp_path / str(at)).Scalars("s")] == [1.0]
        if tracer.seen < at:
            break
        at += 1
    assert at > 10


@pytest.mark.slow
def test_ctrl_c_every_few_milliseconds_never_hangs_close(tmp_path):
    """A training loop that catches KeyboardInterrupt, interrupted by a real signal every
    1-3 ms (5 runs in 6 hung for ever before), closes and exits; what it logged is readable."""
    proc = run_python(
        f"""
        import random, signal, time
        import numpy as np
        import gpu_summary as gs

        armed = True
        def interrupt(signum, frame):
            if armed:
                raise KeyboardInterrupt

        rng = random.Random(0)
        w = gs.SummaryWriter({str(tmp_path)!r}, max_queue=8)
        signal.signal(signal.SIGALRM, interrupt)
        images = np.random.default_rng(0).random((4, 3, 16, 16), dtype=np.float32)
        values = np.random.default_rng(1).standard_normal(1000).astype(np.float32)
        interrupts = step = 0
        end = time.monotonic() + 3
        while True:
            try:
                if time.monotonic() > end:
                    break
                signal.setitimer(signal.ITIMER_REAL, rng.uniform(0.001, 0.003))
                while True:
                    step += 1
                    w.add_scalar("s", 1.0, step)
                    w.add_histogram("h", values, step)
                    w.add_images("i", images, step)
                    if step % 5 == 0:
                        w.flush()
            except KeyboardInterrupt:
                interrupts += 1
        armed = False
        w.add_scalar("last", 2.0, 0)
        w.close()
        print(interrupts)
        """,
        timeout=300,
    )
    assert proc.returncode == 0, proc.stderr
    assert int(proc.stdout.split()[-1]) > 20
    assert [e.value for e in legacy_reader(tmp_path).Scalars("last")] == [2.0]


# -- the primitives ------------------------------------------------------------------------------


def test_the_worker_pool_returns_results_and_raises_failures_where_they_are_waited_for():
    pool = _sync.WorkerPool(2)
    tasks = [pool.submit(pow, 2, k) for k in range(20)]
    assert [t.result() for t in tasks] == [2**k for k in range(20)]
    failing = pool.submit(int, "not a number")
    with pytest.raises(ValueError, match="not a number"):
        failing.result()
    assert pool.submit(_sync.in_worker).result() and not _sync.in_worker()


def test_a_flag_waited_for_by_an_interrupted_waiter_still_reads_set():
    flag = _sync.Flag()
    assert not flag.wait(0.01) and not flag.is_set()
    flag.set()
    flag._lock.acquire()  # as a waiter interrupted between its acquire and release leaves it
    assert flag.wait(0) and flag.wait() and flag.is_set()


def test_every_thread_left_behind_stops_as_lightnings_suite_stops_them(tmp_path):
    """Lightning's test suite stops each daemon thread a test leaves with its ``stop()`` (or
    ``exit()``) and fails on one without: ours stop with nothing logged lost, and the writer
    logs on into a new file."""
    before = set(threading.enumerate())
    writer = gs.SummaryWriter(str(tmp_path), flush_secs=3600)
    for step in range(50):
        writer.add_scalar("loss", float(step), step)
    writer.add_histogram("weights", np.arange(1 << 17, dtype=np.float32), 0)  # may compile
    writer.add_images("batch", np.zeros((4, 3, 8, 8), np.float32), 0, layout="samples")  # pool
    left = [t for t in set(threading.enumerate()) - before if t.is_alive()]
    assert left
    for thread in left:
        stop = getattr(thread, "stop", None) or getattr(thread, "exit", None)
        assert thread.daemon and callable(stop), f"{thread} cannot be stopped"
        stop()
        assert not thread.is_alive()
    acc = legacy_reader(tmp_path)
    assert [e.value for e in acc.Scalars("loss")] == [float(s) for s in range(50)]
    assert acc.Histograms("weights")[0].histogram_value.num == 1 << 17
    writer.add_scalar("after", 1.0, 0)
    writer.close()
    assert len(_files(tmp_path)) == 2
    assert [e.value for e in legacy_reader(tmp_path).Scalars("after")] == [1.0]
