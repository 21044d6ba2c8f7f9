"""What the writer thread is handed: jobs (build one Event) and markers (flush, sync, close).

A :class:`Job` names its :class:`JobKind` — how to build the Event from the job's arguments,
and optionally how to build many consecutive jobs of the kind at once — the memory it holds
until it runs (counted against the queue's byte limit) and what to call it in an error.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable

from gpu_summary._sync import Flag
from gpu_summary.proto import event_pb2


class RecordParts(list):
    """A serialized Event as the list of its byte strings, in order (a large one: images), so
    that it reaches the file through one ``os.writev`` without ever being joined."""


# What a kind's build returns: an Event message, its serialized bytes (or their parts), or
# None for a job that only acts (a user callback, files of its own) and writes no record.
Built = event_pb2.Event | bytes | RecordParts | None


@dataclasses.dataclass(frozen=True, slots=True)
class JobKind:
    """One kind of job: ``name`` (``"scalar"``, ``"histogram"``, ...) for error messages,
    ``build(*args)`` run on the writer thread, and ``build_many(list of args)`` returning the
    serialized Events (bytes) of consecutive jobs of this kind in one call (scalars come in
    bursts)."""

    name: str
    build: Callable[..., Built]
    build_many: Callable[[list[tuple]], list[bytes]] | None = None


@dataclasses.dataclass(slots=True)
class Job:
    """One Event (or one action) for the writer thread.

    ``nbytes`` is the memory the job holds until it runs (image thumbnails mostly);
    ``description`` names it in errors (default: the kind and, when the first argument is a
    str, the tag).
    """

    kind: JobKind
    args: tuple = ()
    nbytes: int = 0
    description: str = ""

    def build(self) -> Built:
        return self.kind.build(*self.args)

    def describe(self) -> str:
        if self.description:
            return self.description
        if self.args and isinstance(self.args[0], str):
            return f"{self.kind.name} for tag {self.args[0]!r}"
        return self.kind.name


@dataclasses.dataclass(frozen=True, slots=True)
class Marker:
    """An instruction that follows the jobs before it: ``"flush"`` (write what is built),
    ``"sync"`` (and ``os.fsync``), ``"close"``, or ``"tick"`` (the flush deadline passed;
    made by the writer thread itself). ``done`` is set once it has been carried out."""

    kind: str
    done: Flag | None = None
