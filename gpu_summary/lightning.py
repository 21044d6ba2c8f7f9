"""Lightning's ``TensorBoardLogger`` writing through gpu_summary.

    from gpu_summary.lightning import TensorBoardLogger
    trainer = lightning.Trainer(logger=TensorBoardLogger("runs", name="exp"))

It is Lightning's own logger (its folders, versions, ``hp_metric`` and hyperparameters) whose
``experiment`` is a :class:`gpu_summary.SummaryWriter` (extra keyword arguments go to it, e.g.
``flush_secs``), so ``self.logger.experiment.add_histogram(...)`` in a LightningModule reduces
device tensors on the device. Lightning is imported only when the class is first used.
"""

from __future__ import annotations

import functools

from gpu_summary.writer import SummaryWriter

__all__ = ["TensorBoardLogger"]  # noqa: F822 - made on first use, by __getattr__


@functools.cache
def _logger_class() -> type:
    try:
        from lightning.pytorch.loggers import TensorBoardLogger as LightningLogger
        from lightning.pytorch.loggers.logger import rank_zero_experiment
        from lightning.pytorch.utilities import rank_zero_only
    except ImportError as exc:
        raise ImportError(
            f"gpu_summary.lightning needs Lightning ({exc}); pip install lightning"
        ) from exc

    class TensorBoardLogger(LightningLogger):
        """Lightning's TensorBoardLogger with a gpu_summary SummaryWriter as ``experiment``."""

        @property
        @rank_zero_experiment
        def experiment(self) -> SummaryWriter:
            if self._experiment is not None:
                return self._experiment
            assert rank_zero_only.rank == 0, "the experiment is made on global rank 0 only"
            if self.root_dir:
                self._fs.makedirs(self.root_dir, exist_ok=True)
            self._experiment = SummaryWriter(log_dir=self.log_dir, **self._kwargs)
            return self._experiment

    TensorBoardLogger.__module__ = __name__
    return TensorBoardLogger


def __getattr__(name: str) -> type:
    if name == "TensorBoardLogger":
        return _logger_class()
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
