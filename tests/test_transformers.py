"""Hugging Face's ``TensorBoardCallback(tb_writer=gs.SummaryWriter(...))`` in a real Trainer
run (a tiny GPT-2 built from a config; nothing downloaded): its scalars, text and hparams read
back through TensorBoard."""

from __future__ import annotations

import pytest

from conftest import legacy_reader, plugin_reader

torch = pytest.importorskip("torch", reason="the Trainer runs on PyTorch")
transformers = pytest.importorskip("transformers", reason="pip install transformers")

import gpu_summary as gs  # noqa: E402


class _Tokens(torch.utils.data.Dataset):
    def __init__(self) -> None:
        generator = torch.Generator().manual_seed(0)
        self.ids = torch.randint(0, 64, (16, 12), generator=generator)

    def __len__(self) -> int:
        return len(self.ids)

    def __getitem__(self, index: int) -> dict:
        return {"input_ids": self.ids[index], "labels": self.ids[index]}


def test_trainer_logs_through_our_writer(tmp_path):
    config = transformers.GPT2Config(vocab_size=64, n_positions=16, n_embd=16, n_layer=1, n_head=2)
    model = transformers.GPT2LMHeadModel(config)
    writer = gs.SummaryWriter(tmp_path / "tb")
    arguments = transformers.TrainingArguments(
        output_dir=str(tmp_path / "out"), per_device_train_batch_size=4, max_steps=6,
        logging_steps=2, report_to=[], save_strategy="no", use_cpu=True, disable_tqdm=True,
    )  # fmt: skip
    trainer = transformers.Trainer(
        model=model, args=arguments, train_dataset=_Tokens(),
        callbacks=[transformers.integrations.TensorBoardCallback(tb_writer=writer)],
    )  # fmt: skip
    trainer.train()
    writer.flush()
    reader = legacy_reader(tmp_path / "tb")
    assert [e.step for e in reader.Scalars("train/loss")] == [2, 4, 6]
    assert all(e.value > 0 for e in reader.Scalars("train/loss"))
    assert "train/learning_rate" in reader.Tags()["scalars"]
    tags = set(plugin_reader(tmp_path / "tb").Tags()["tensors"])
    assert {"args/text_summary", "model_config/text_summary"} <= tags  # torch's text tags
    writer.close()
