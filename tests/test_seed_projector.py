"""gpu_summary._seed.projector: the seed's ``Projector`` files, read back by TensorBoard's
projector plugin and the seed's own format."""

from __future__ import annotations

import os

import numpy as np
import pytest

import gpu_summary.summary as summary
from conftest import legacy_reader
from conftest import projector_config as _config
from conftest import projector_tensor as _tensor
from gpu_summary.proto import summary_projector_pb2


def test_seed_projector_example_runs_and_keeps_every_call(tmp_path):
    logdir = str(tmp_path)
    projecotr = summary.Projector(logdir)
    projecotr.create_embedding_projector()
    rng = np.random.default_rng(0)
    value = rng.random((10, 10, 10)).astype(np.float32)
    label = (rng.random(10) * 10).astype(np.int64)
    x = (rng.random((10, 10, 10)) * 255).astype(np.uint8)
    for step in (1, 2):
        projecotr.embedding_projector(value=value, label=label, tag="embedding_projector",
                                      step=step, sample_name="sample", sample_type="image",
                                      x=x)  # fmt: skip
    projecotr.create_exception_projector()
    projecotr.exception_projector(value=value, tag=np.frombuffer(b"exception", np.int8),
                                  step=np.array([5], np.int64), sample_name="sample",
                                  sample_type="image", x=x)  # fmt: skip
    assert os.path.basename(projecotr.embedding_filename).startswith("projector.")
    assert os.path.basename(projecotr.exception_filename).startswith("projector.gradit.")
    message = summary_projector_pb2.SummaryProjector.FromString(
        open(projecotr.embedding_filename, "rb").read()
    )
    assert message.metadata.type == summary_projector_pb2.MetaData.EMBEDDING
    assert [p.step for p in message.projector] == [1, 2]
    first = message.projector[0]
    assert first.tag == "embedding_projector" and first.value.dtype == "float32"
    assert [d.size for d in first.value.shape.dim] == [10, 10, 10]
    np.testing.assert_array_equal(np.frombuffer(first.value.content, np.float32), value.ravel())
    np.testing.assert_array_equal(np.frombuffer(first.label.content, np.int64), label)
    assert message.sample.name == "sample" and message.sample.type == 0
    np.testing.assert_array_equal(np.frombuffer(message.sample.X.content, np.uint8), x.ravel())
    exception = summary_projector_pb2.SummaryProjector.FromString(
        open(projecotr.exception_filename, "rb").read()
    )
    assert exception.metadata.type == summary_projector_pb2.MetaData.EXCEPTION
    assert [(p.tag, p.step) for p in exception.projector] == [("exception", 5)]
    # The embedding also in TensorBoard's format, with labels and a sprite of the samples.
    infos = _config(tmp_path).embeddings
    assert [i.tensor_name for i in infos] == [
        "embedding_projector:00001",
        "embedding_projector:00002",
    ]
    np.testing.assert_array_equal(_tensor(tmp_path, infos[0]), value.reshape(10, 100))
    assert (tmp_path / infos[0].metadata_path).read_text().split("\n")[:10] == [
        str(v) for v in label
    ]
    assert infos[0].sprite.image_path
    assert legacy_reader(tmp_path).Tags()["scalars"] == []


def test_seed_projector_errors(tmp_path):
    with pytest.raises(ValueError, match="needs a logdir"):
        summary.Projector(None)
    projector = summary.Projector(str(tmp_path))
    with pytest.raises(ValueError, match=r"call create_embedding_projector\(\) before"):
        projector.embedding_projector(value=np.ones((2, 2)))
    projector.create_embedding_projector()
    with pytest.raises(ValueError, match="already writes"):
        projector.create_embedding_projector()
    with pytest.raises(ValueError, match="sample_type must be one of"):
        projector.embedding_projector(value=np.ones((2, 2)), sample_name="s", sample_type="video")
    with pytest.raises(ValueError, match="one label per point"):
        projector.embedding_projector(value=np.ones((2, 2)), label=np.arange(3))
    with open(projector.embedding_filename, "rb") as file:  # the file holds no entry
        assert not summary_projector_pb2.SummaryProjector.FromString(file.read()).projector
