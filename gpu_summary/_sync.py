"""Waiting between threads in a way a KeyboardInterrupt cannot wedge.

``threading.Condition``, ``Event``, ``Semaphore`` and ``concurrent.futures`` are written in
Python: a signal handler that raises (Ctrl-C's ``KeyboardInterrupt``, a timeout alarm) runs
between any two of their bytecodes, and when it lands between the acquire of their inner lock
and its release, that lock stays held by nobody. The next thread to touch the object — our
writer thread, setting an Event or notifying a Condition — then blocks forever, and so do
``close()`` and the interpreter's exit, which wait for it. Training loops that catch Ctrl-C to
save and close are exactly the loops that get interrupted at every bytecode.

What the callers' side of our queues uses instead is built on the interpreter's own lock
(``_thread.LockType``) alone: its ``acquire`` and ``release`` run in C, so an interrupt either
happens before one (nothing changed) or after it (the change is whole), and a lock may be
released by any thread. No lock here is held across Python code.

- :class:`Flag` — set once, by any thread; waited for with a timeout.
- :class:`Doorbell` — rings a sleeping thread awake; rings before the sleep are not lost.
- :class:`Waiters` — threads waiting for a state to change, woken all at once by the one that
  changes it; a waiter interrupted while registered leaves an entry that the next wake drops.
- :class:`WorkerPool` — run functions on worker threads; their results waited for as above.
- :class:`StoppableThread` — a daemon thread with the ``stop()`` that the peers' threads have.
"""

from __future__ import annotations

import _thread
import collections
import os
import queue
import sys
import threading
from collections.abc import Callable
from typing import Any

__all__ = ["Doorbell", "Flag", "StoppableThread", "Task", "Waiters", "WorkerPool", "in_worker"]


class Flag:
    """Set once (by any thread), then every ``wait`` returns True at once."""

    __slots__ = ("_is_set", "_lock")

    def __init__(self) -> None:
        self._is_set = False
        self._lock = _thread.allocate_lock()
        self._lock.acquire()  # held until set

    def set(self) -> None:
        self._is_set = True
        try:
            self._lock.release()
        except RuntimeError:  # set already
            pass

    def is_set(self) -> bool:
        return self._is_set

    def wait(self, timeout: float | None = None) -> bool:
        """Whether it is set, waiting at most ``timeout`` seconds (None: for ever)."""
        if self._is_set:  # also when a waiter was interrupted holding the lock it took
            return True
        if self._lock.acquire(True, -1 if timeout is None else max(0.0, timeout)):
            self._lock.release()  # for the next waiter
            return True
        return self._is_set


class Doorbell:
    """Wakes one sleeping thread. A ring while nobody sleeps is kept for the next sleep, so a
    sleeper that looks at its work, finds none and sleeps cannot miss a ring made in between
    (more rings than sleeps collapse into one: the sleeper looks at its work again anyway)."""

    __slots__ = ("_lock",)

    def __init__(self) -> None:
        self._lock = _thread.allocate_lock()
        self._lock.acquire()  # held: no ring pending

    def ring(self) -> None:
        try:
            self._lock.release()
        except RuntimeError:  # a ring is pending already
            pass

    def sleep(self, timeout: float | None = None) -> bool:
        """Sleep until a ring (True; the ring is used up) or ``timeout`` seconds (False)."""
        return self._lock.acquire(True, -1 if timeout is None else max(0.0, timeout))


class Waiters:
    """Threads waiting until another thread changes some state (room in a queue).

    A waiter registers, looks at the state once more, and sleeps; the thread that changes the
    state calls :meth:`wake_all` after the change. Registering before the last look is what
    makes a wake impossible to miss. An interrupted waiter's entry stays until the next
    ``wake_all`` drops it: at most a spurious release of a lock nobody waits on."""

    __slots__ = ("_entries",)

    def __init__(self) -> None:
        self._entries: collections.deque[Any] = collections.deque()

    def __bool__(self) -> bool:
        return bool(self._entries)

    def wait(self, still_waiting: Callable[[], bool], poll: float = 0.1) -> None:
        """Return once ``still_waiting()`` is false (checked after each wake, and every
        ``poll`` seconds in case a state changed without a wake)."""
        lock = _thread.allocate_lock()
        lock.acquire()
        while True:
            self._entries.append(lock)
            if not still_waiting():
                return
            lock.acquire(True, poll)

    def wake_all(self) -> None:
        entries = self._entries
        while entries:
            try:
                entries.popleft().release()
            except (IndexError, RuntimeError):  # emptied meanwhile; woken already
                pass


class StoppableThread(threading.Thread):
    """A daemon thread with ``stop()``, as torch's and tensorboardX's writer threads have (test
    suites such as Lightning's stop every daemon thread a test leaves behind that way, and
    fail on one without it). ``stop()`` calls ``on_stop`` (None: the thread ends by itself),
    then waits for the thread to end."""

    def __init__(self, target: Callable[..., Any], name: str, args: tuple = (),
                 on_stop: Callable[[], None] | None = None) -> None:  # fmt: skip
        super().__init__(target=target, name=name, args=args, daemon=True)
        self._on_stop = on_stop

    def stop(self) -> None:
        if self._on_stop is not None:
            self._on_stop()
        if self is not threading.current_thread() and self.is_alive():
            self.join()


class Task:
    """A function's result from a :class:`WorkerPool`."""

    __slots__ = ("_call", "_done", "_error", "_value")

    def __init__(self, call: Callable[[], Any]) -> None:
        self._call = call
        self._done = Flag()
        self._value: Any = None
        self._error: BaseException | None = None

    def run(self) -> None:
        try:
            self._value = self._call()
        except BaseException as exc:  # noqa: BLE001 - handed to whoever asks for the result
            self._error = exc
        finally:
            self._call = None
            self._done.set()

    def result(self) -> Any:
        """Wait for the function to return; its value, or its exception raised here."""
        self._done.wait()
        if self._error is not None:
            raise self._error
        return self._value


class WorkerPool:
    """``workers`` daemon threads running submitted functions in order of submission.

    The threads start with the first submission, through ``_thread`` directly:
    ``threading.Thread.start`` waits on an ``Event``, which an interrupt can wedge. A forked
    child starts threads of its own (the parent's do not exist there). Submitting during
    interpreter shutdown raises RuntimeError, as ``concurrent.futures`` does: callers run the
    work themselves then.
    """

    def __init__(self, workers: int) -> None:
        self._size = workers
        self._lock = threading.Lock()
        self._started = 0
        self._queue: queue.SimpleQueue[Task] = queue.SimpleQueue()
        self._pid = os.getpid()

    def submit(self, function: Callable[..., Any], *args: Any) -> Task:
        task = Task(lambda: function(*args))
        if os.getpid() != self._pid:
            self._forget_threads()
        if self._started < self._size:
            self._start_threads()
        self._queue.put(task)
        return task

    def _start_threads(self) -> None:
        if sys.is_finalizing():
            raise RuntimeError("cannot start threads at interpreter shutdown")
        with self._lock:
            while self._started < self._size:
                _thread.start_new_thread(_work, (self._queue,))
                self._started += 1

    def _forget_threads(self) -> None:
        with self._lock:
            if os.getpid() != self._pid:
                self._pid = os.getpid()
                self._started = 0
                self._queue = queue.SimpleQueue()


_worker = threading.local()


def in_worker() -> bool:
    """Whether this thread is one of a :class:`WorkerPool`'s (work it submits and waits for
    could wait behind itself: run it here instead)."""
    return getattr(_worker, "busy", False)


def _work(tasks: queue.SimpleQueue[Task]) -> None:
    _worker.busy = True
    while True:
        tasks.get().run()
