"""gpu_summary.lightning.TensorBoardLogger in a real Lightning fit, and torch's SummaryWriter
replaced by ours inside Lightning's own logger: scalars, hp_metric and hyperparameters read
back through TensorBoard."""

from __future__ import annotations

import pytest

from conftest import legacy_reader, plugin_reader

torch = pytest.importorskip("torch", reason="Lightning runs on PyTorch")
lightning = pytest.importorskip("lightning", reason="pip install lightning")

import gpu_summary as gs  # noqa: E402
from gpu_summary.proto import hparams_pb2  # noqa: E402


class _Tiny(lightning.LightningModule):
    def __init__(self, lr: float = 0.05, width: int = 4) -> None:
        super().__init__()
        self.save_hyperparameters()
        self.layer = torch.nn.Linear(width, 1)

    def training_step(self, batch, batch_idx):
        x, y = batch
        loss = torch.nn.functional.mse_loss(self.layer(x), y)
        self.log("train_loss", loss, on_step=True, on_epoch=True)
        self.logger.experiment.add_histogram("weights", self.layer.weight, self.global_step)
        return loss

    def configure_optimizers(self):
        return torch.optim.SGD(self.parameters(), lr=self.hparams.lr)


def _fit(logger) -> None:
    torch.manual_seed(0)
    x = torch.randn(32, 4)
    data = torch.utils.data.TensorDataset(x, x.sum(dim=1, keepdim=True))
    loader = torch.utils.data.DataLoader(data, batch_size=8)
    trainer = lightning.Trainer(
        max_epochs=2, logger=logger, enable_checkpointing=False, enable_progress_bar=False,
        enable_model_summary=False, log_every_n_steps=1, accelerator="cpu", devices=1,
    )  # fmt: skip
    trainer.fit(_Tiny(), loader)


def _check_run(run_dir) -> None:
    reader = legacy_reader(run_dir)
    assert len(reader.Scalars("train_loss_step")) == 8  # 4 batches x 2 epochs
    assert len(reader.Scalars("train_loss_epoch")) == 2
    assert [e.value for e in reader.Scalars("hp_metric")] == [-1.0]
    assert len(reader.Histograms("weights")) == 8
    contents = plugin_reader(run_dir).PluginTagToContent("hparams")
    experiment = hparams_pb2.HParamsPluginData.FromString(contents["_hparams_/experiment"])
    assert sorted(h.name for h in experiment.experiment.hparam_infos) == ["lr", "width"]


def test_our_logger_in_a_real_fit(tmp_path):
    from gpu_summary.lightning import TensorBoardLogger

    logger = TensorBoardLogger(str(tmp_path), name="exp", flush_secs=5)
    _fit(logger)
    assert isinstance(logger.experiment, gs.SummaryWriter)
    _check_run(tmp_path / "exp" / "version_0")


def test_lightnings_own_logger_with_our_writer_swapped_in(tmp_path, monkeypatch):
    import torch.utils.tensorboard

    monkeypatch.setattr(torch.utils.tensorboard, "SummaryWriter", gs.SummaryWriter)
    logger = lightning.pytorch.loggers.TensorBoardLogger(str(tmp_path), name="swapped")
    _fit(logger)
    assert isinstance(logger.experiment, gs.SummaryWriter)
    _check_run(tmp_path / "swapped" / "version_0")
