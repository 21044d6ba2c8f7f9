"""Targets of the worker processes in tests/test_process_life.py (importable by name, as
forkserver and spawn children need)."""

from __future__ import annotations

import os

import numpy as np

import gpu_summary as gs

inherited: gs.SummaryWriter | None = None  # a writer the parent made before the children forked


def log_and_leave_open(logdir: str, count: int) -> None:
    """Make a writer, log ``count`` scalars and a histogram and an image, and return without
    closing it: the child process ends (in os._exit, for fork and forkserver) holding it."""
    writer = gs.SummaryWriter(logdir)
    for step in range(count):
        writer.add_scalar("loss", float(step), step)
    writer.add_histogram("weights", np.arange(1000, dtype=np.float32), 0)
    writer.add_image("picture", np.zeros((3, 8, 8), np.float32), 0)
    _keep.append(writer)  # still referenced when the process ends: only an exit hook closes it


_keep: list[gs.SummaryWriter] = []


def log_through_inherited(count: int) -> None:
    """Log ``count`` scalars through the writer the parent made (a file of this child's own)."""
    assert inherited is not None
    for step in range(count):
        inherited.add_scalar("from_child", float(step), step)


def log_in_a_function(logdir: str, count: int) -> None:
    """A writer made, used and dropped (never closed) when this function returns."""
    writer = gs.SummaryWriter(logdir)
    for step in range(count):
        writer.add_scalar("loss", float(step), step)


class LoggingDataset:
    """A map-style dataset whose items log through a writer each DataLoader worker makes in
    ``worker_init_fn`` and never closes."""

    def __init__(self, size: int) -> None:
        self.size = size

    def __len__(self) -> int:
        return self.size

    def __getitem__(self, index: int) -> int:
        assert inherited is not None, "worker_init_fn makes the worker's writer"
        inherited.add_scalar("item", float(index), index)
        return index


def init_worker_writer(logdir: str, worker_id: int) -> None:
    global inherited
    inherited = gs.SummaryWriter(os.path.join(logdir, f"worker{worker_id}"))
