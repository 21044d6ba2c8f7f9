"""What tensorboardX's ``tests/`` and PyTorch's ``test/test_tensorboard.py`` check of their
writers, checked here of ours (our own tests of the same behaviours, read back through
TensorBoard's reader): the file writer's lifecycle, ``use_metadata``, the values and inputs
those suites pass, and the errors they expect."""

from __future__ import annotations

import json
import os
import pathlib
import time

import numpy as np
import pytest

import gpu_summary as gs
from conftest import legacy_reader
from gpu_summary._events.records import read_records
from gpu_summary.proto import summary_pb2

torch = pytest.importorskip("torch", reason="the peers' suites log torch tensors")


def test_after_close_the_file_writer_is_none_until_a_call_reopens(tmp_path):
    with gs.SummaryWriter(tmp_path, filename_suffix=".test") as writer:
        writer.add_scalar("test", 1)
        assert writer.all_writers == {str(tmp_path): writer.file_writer} != {str(tmp_path): None}
    assert writer.file_writer is None and writer.all_writers is None  # as both peers'
    reopened = writer._get_file_writer()  # what Lightning calls: reopens, as torch's does
    assert reopened is writer.file_writer is not None
    later = summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag="later", simple_value=2.0)])
    reopened.add_summary(later, 1)
    writer.close()
    assert [e.value for e in legacy_reader(tmp_path).Scalars("later")] == [2.0]


def test_opening_and_closing_many_writers_leaks_no_file(tmp_path):
    before = len(os.listdir("/proc/self/fd"))
    for i in range(300):
        writer = gs.SummaryWriter(pathlib.Path(tmp_path) / str(i % 3))  # a pathlib.Path too
        writer.add_scalar("x", float(i), i)
        writer.close()
    assert len(os.listdir("/proc/self/fd")) <= before + 2
    assert len(legacy_reader(tmp_path / "0").Scalars("x")) == 100


def test_records_reach_the_file_within_flush_secs_without_flush(tmp_path):
    writer = gs.SummaryWriter(tmp_path, flush_secs=1)
    for step in range(5):
        writer.add_scalar("a", float(step), step)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:  # the writer thread's timer, not a flush(), writes them
        records, _ = read_records(writer.file_path)
        if len(records) == 6:
            break
        time.sleep(0.05)
    assert len(records) == 6  # the file version and the five scalars
    writer.close()
    writer.flush()  # after close: harmless, as both peers


def test_use_metadata_gives_the_calls_inside_their_step_and_walltime(tmp_path):
    with gs.SummaryWriter(tmp_path) as writer:
        with writer.use_metadata(global_step=10, walltime=5.0) as same:
            assert same is writer
            writer.add_scalar("defaults", 0.1)
            writer.add_scalar("own_step", 0.2, global_step=7)
            writer.add_scalar("own_walltime", 0.3, walltime=18.0)
            writer.add_histogram("h", np.arange(4.0))
            writer.add_text("t", "hello")
            with pytest.raises(ValueError, match="already open"):
                with writer.use_metadata(global_step=1):
                    pass
        writer.add_scalar("after_block", 0.4)  # after the block: step 0 again, as torch
        with pytest.raises(ValueError, match="global_step or walltime"):
            with writer.use_metadata():
                pass
        with pytest.raises(TypeError, match="step must be an int"):
            with writer.use_metadata(global_step="ten"):
                pass
    acc = legacy_reader(tmp_path)
    (first,) = acc.Scalars("defaults")
    assert (first.step, first.wall_time) == (10, 5.0)
    assert [e.step for e in acc.Scalars("after_block")] == [0]
    assert [(e.step, e.wall_time) for e in acc.Scalars("own_step")] == [(7, 5.0)]
    assert [(e.step, e.wall_time) for e in acc.Scalars("own_walltime")] == [(10, 18.0)]
    assert [(e.step, e.wall_time) for e in acc.Histograms("h")] == [(10, 5.0)]


def test_the_values_torchs_suite_logs(tmp_path):
    with gs.SummaryWriter(tmp_path) as writer:
        writer.add_scalar("scalar", torch.autograd.Variable(torch.rand(1)), 0)
        writer.add_scalar("customtime", 0.2, 0, walltime=0)
        writer.add_histogram("float", torch.rand((50,)))
        writer.add_histogram("int", torch.randint(0, 100, (50,)))
        writer.add_histogram("bfloat16", torch.rand(50, dtype=torch.bfloat16))
        writer.add_images("Image", np.zeros((32, 3, 64, 64)), 0)  # float64 NCHW
    acc = legacy_reader(tmp_path)
    assert acc.Scalars("customtime")[0].wall_time == 0.0
    for tag in ("float", "int", "bfloat16"):
        (histogram,) = acc.Histograms(tag)
        assert histogram.step == 0 and histogram.histogram_value.num == 50
    assert acc.Tags()["images"] == ["Image"]  # torch's grid: 8 columns, 4 rows
    assert [(e.width, e.height) for e in acc.Images("Image")] == [(8 * 64, 4 * 64)]


def test_a_model_input_that_fails_raises_runtime_error_as_torchs(tmp_path):
    with gs.SummaryWriter(tmp_path) as writer:
        with pytest.raises(RuntimeError, match="could not run through the model"):
            writer.add_graph(torch.nn.Linear(3, 5), torch.rand(1, 9))
        with pytest.raises(ValueError):  # and a ValueError, as every bad argument of ours
            writer.add_graph(torch.nn.Linear(3, 5), torch.rand(1, 9))

        class DictOut(torch.nn.Module):
            def __init__(self) -> None:
                super().__init__()
                self.l = torch.nn.Linear(3, 5)

            def forward(self, x, update_batch_stats=True):
                return {"out": self.l(x)}

        writer.add_graph(DictOut(), torch.zeros(1, 3), use_strict_trace=False)
    assert legacy_reader(tmp_path).Graph().node


@pytest.mark.parametrize("dtype", [torch.float32, torch.float64])
def test_embedding_labels_of_tensors_and_a_second_call_at_the_same_step(tmp_path, dtype):
    features = torch.tensor([[1.0, 2.0, 3.0], [5.0, 4.0, 1.0], [3.0, 7.0, 7.0]])
    labels = torch.tensor([33.0, 44.0, 55.0])
    images = torch.zeros((3, 3, 5, 5), dtype=dtype)
    with gs.SummaryWriter(tmp_path) as writer:
        writer.add_embedding(features, metadata=labels, label_img=images, global_step=2)
        # (0-d tensor, str) rows, as torch's suite makes them (zip stops at the 3 labels)
        rows = list(zip(labels, ["test"] * 2 + ["train"] * 2, strict=False))
        writer.add_embedding(features, metadata=rows, label_img=images,
                             metadata_header=["digit", "dataset"], global_step=2)  # fmt: skip
        with pytest.raises(TypeError, match="metadata labels must be"):
            writer.add_embedding(features, metadata=[{"a": 1}] * 3, global_step=3)
        with pytest.raises(TypeError, match="metadata labels must be"):
            writer.add_embedding(features, metadata=[None] * 3, global_step=3)
        writer.flush()  # nothing deferred: the bad calls raised above, the others are written
    # The second call's files replace the first's, in torch's folder, as torch's writer does;
    # its entry replaces the first's too, where torch's config lists the same entry twice.
    tsv = (tmp_path / "00002" / "default" / "metadata.tsv").read_text().splitlines()
    assert tsv == ["digit\tdataset", "33.0\ttest", "44.0\ttest", "55.0\ttrain"]  # the second
    config = (tmp_path / "projector_config.pbtxt").read_text()
    assert config.count("embeddings {") == 1 and "00002/default/sprite.png" in config


def test_export_scalars_to_json_as_tensorboardxs(tmp_path):
    tensorboardX = pytest.importorskip("tensorboardX")
    exported = {}
    for name, make in (("ours", gs.SummaryWriter), ("tbx", tensorboardX.SummaryWriter)):
        logdir = str(tmp_path / name)
        writer = make(logdir)
        for step in range(3):
            writer.add_scalars("data/group", {"a": step * 0.5, "b": np.float32(step)}, step,
                               walltime=100.0 + step)  # fmt: skip
        writer.add_scalar("plain", 1.0, 0)  # not exported (neither peer keeps add_scalar)
        writer.export_scalars_to_json(str(tmp_path / f"{name}.json"))
        writer.export_scalars_to_json(str(tmp_path / f"{name}_again.json"))
        writer.close()
        table = json.loads((tmp_path / f"{name}.json").read_text())
        exported[name] = {os.path.relpath(k, logdir): v for k, v in table.items()}
        assert json.loads((tmp_path / f"{name}_again.json").read_text()) == {}
    assert exported["ours"] == exported["tbx"]
    assert exported["ours"]["data/group/a"] == [[100.0, 0, 0.0], [101.0, 1, 0.5], [102.0, 2, 1.0]]
    with gs.SummaryWriter(str(tmp_path / "bad")) as writer:
        writer.add_scalars("x", {"a": 1.0}, 0)
        with pytest.raises(OSError):
            writer.export_scalars_to_json(str(tmp_path / "no" / "such" / "dir.json"))
        writer.export_scalars_to_json(str(tmp_path / "kept.json"))  # kept after the failure
    assert "[[" in (tmp_path / "kept.json").read_text()


def test_add_images_of_a_list_of_images_as_tensorboardxs(tmp_path):
    rng = np.random.default_rng(3)
    images = [rng.integers(0, 256, (3, 5, 7), dtype=np.uint8) for _ in range(3)]
    with gs.SummaryWriter(str(tmp_path)) as writer:
        writer.add_images("listed", images, 0, dataformats="CHW")
        writer.add_images("stacked", np.stack(images), 0)
        with pytest.raises(ValueError, match="differ in shape"):
            writer.add_images("bad", [images[0], images[1][:, :4]], 0, dataformats="CHW")
    reader = legacy_reader(tmp_path)
    (listed,), (stacked,) = reader.Images("listed"), reader.Images("stacked")  # one grid each
    assert (listed.width, listed.height) == (3 * 7, 5)
    assert listed.encoded_image_string == stacked.encoded_image_string
