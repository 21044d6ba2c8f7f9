"""SummaryWriter end to end: every kind read back through TensorBoard's readers."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
from PIL import Image

import gpu_summary as gs
from conftest import DTYPES, legacy_reader, plugin_reader, tensor_values
from gpu_summary._core import ladder as _ladder
from gpu_summary._events.records import read_records


@pytest.fixture
def writer(tmp_path):
    w = gs.SummaryWriter(str(tmp_path), flush_secs=3600)
    yield w
    w.close()


# -- scalars -----------------------------------------------------------------------------------


def test_scalars_round_trip(writer, tmp_path, xp):
    values = [
        0.5,
        -3,
        np.float32(2.25),
        np.int64(7),
        xp.asarray(1.5),
        xp.asarray([4.0]),
        True,
        math.nan,
        math.inf,
    ]
    for step, value in enumerate(values):
        writer.add_scalar("s", value, step)
    writer.flush()
    got = [(e.step, e.value) for e in legacy_reader(tmp_path).Scalars("s")]
    assert [s for s, _ in got] == list(range(len(values)))
    assert got[:7] == [(0, 0.5), (1, -3.0), (2, 2.25), (3, 7.0), (4, 1.5), (5, 4.0), (6, 1.0)]
    assert math.isnan(got[7][1]) and got[8][1] == math.inf
    # The Rust-compatible plugin path sees the same values (data_compat -> scalars plugin).
    tensors = tensor_values(tmp_path, "s")
    assert float(tensors[0][1]) == 0.5


def test_scalar_walltime_and_steps(writer, tmp_path):
    writer.add_scalar("s", 1.0, 2**62, walltime=1234.5)
    writer.add_scalar("s", 2.0, -5)
    writer.add_scalar("s", 3.0, np.array([9], dtype=np.int64))
    writer.flush()
    events = legacy_reader(tmp_path).Scalars("s")
    assert [(e.step, e.wall_time) for e in events[:1]] == [(2**62, 1234.5)]
    assert [e.step for e in events] == [2**62, -5, 9]


def test_a_missing_step_is_zero_as_torchs(writer, tmp_path):
    for value in range(3):
        writer.add_scalar("a", value)
    writer.add_scalar("b", 1.0, 10)
    writer.add_scalar("b", 2.0)
    writer.flush()
    assert [e.step for e in legacy_reader(tmp_path).Scalars("a")] == [0, 0, 0]
    assert [e.step for e in legacy_reader(tmp_path).Scalars("b")] == [10, 0]


def test_unicode_and_slashes_in_tags(writer, tmp_path):
    tag = "loss/训练 set/α β"
    writer.add_scalar(tag, 1.0, 0)
    writer.flush()
    assert legacy_reader(tmp_path).Scalars(tag)[0].value == 1.0


# -- histograms --------------------------------------------------------------------------------


def _expected_ladder_counts(values: np.ndarray) -> np.ndarray:
    x = np.asarray(values, dtype=np.float64).ravel()
    x = x[np.isfinite(x)]
    index = np.minimum(np.searchsorted(_ladder.LIMITS, x, side="right"), _ladder.LIMITS.size - 1)
    return np.bincount(index, minlength=_ladder.LIMITS.size), x


def _expand(histo, limits: np.ndarray) -> np.ndarray:
    """Map the emitted (limit, count) pairs back onto the full limit table."""
    full = np.zeros(limits.size)
    index = np.searchsorted(limits, np.asarray(histo.bucket_limit))
    np.testing.assert_array_equal(limits[index], histo.bucket_limit)
    full[index] = histo.bucket
    return full


def _read_histogram(tmp_path, tag):
    (event,) = legacy_reader(tmp_path).Histograms(tag)
    return event.histogram_value


@pytest.mark.parametrize("dtype", DTYPES)
def test_histogram_every_dtype(writer, tmp_path, dtype, xp):
    rng = np.random.default_rng(11)
    if dtype == np.bool_:
        values = rng.random((40, 25)) < 0.5
    elif np.issubdtype(dtype, np.integer):
        values = rng.integers(
            0 if dtype in (np.uint8, np.uint16, np.uint32, np.uint64) else -100, 100, (40, 25)
        ).astype(dtype)
    else:
        values = (rng.standard_normal((40, 25)) * 3).astype(dtype)
    writer.add_histogram("h", xp.asarray(values), 3)
    writer.flush()
    histo = _read_histogram(tmp_path, "h")
    counts, finite = _expected_ladder_counts(values)
    np.testing.assert_array_equal(_expand(histo, _ladder.LIMITS), counts)
    assert histo.num == finite.size
    assert histo.min == finite.min() and histo.max == finite.max()
    assert histo.sum == pytest.approx(math.fsum(finite), rel=1e-12, abs=1e-12)
    assert histo.sum_squares == pytest.approx(math.fsum(finite**2), rel=1e-12)


def test_histogram_span_and_collapsed_empty_runs(writer, tmp_path):
    values = np.array([-1.0, 1e-3, 1e-3, 100.0, 100.0, 100.0])
    writer.add_histogram("h", values, 0)
    writer.flush()
    histo = _read_histogram(tmp_path, "h")
    limits = np.asarray(histo.bucket_limit)
    counts = np.asarray(histo.bucket)
    # The span starts and ends on non-empty buckets, and no two empty buckets are adjacent.
    assert counts[0] > 0 and counts[-1] > 0
    assert not np.any((counts[:-1] == 0) & (counts[1:] == 0))
    assert counts.sum() == 6 and (counts > 0).sum() == 3
    assert limits[0] == _ladder.LIMITS[np.searchsorted(_ladder.LIMITS, -1.0, side="right")]
    # TensorBoard's conversion to its k x 3 tensor: first bucket starts at min.
    (tensor_event,) = plugin_reader(tmp_path).Tensors("h")
    from tensorboard.util import tensor_util

    table = tensor_util.make_ndarray(tensor_event.tensor_proto)
    assert table[0, 0] == -1.0 and table[:, 2].sum() == 6


def test_histogram_values_exactly_on_limits_and_non_finite(writer, tmp_path):
    limits = _ladder.LIMITS[1:-1]
    values = np.concatenate(
        [
            limits,
            np.nextafter(limits, np.inf),
            np.nextafter(limits, -np.inf),
            [np.nan, np.inf, -np.inf, 0.0, -0.0],
        ]
    )
    writer.add_histogram("h", values, 0)
    writer.flush()
    histo = _read_histogram(tmp_path, "h")
    counts, finite = _expected_ladder_counts(values)
    np.testing.assert_array_equal(_expand(histo, _ladder.LIMITS), counts)
    assert histo.num == finite.size == values.size - 3


@pytest.mark.parametrize("values", [np.array([], np.float32), np.array([np.nan, np.inf])])
def test_histogram_empty_input_is_readable(writer, tmp_path, values):
    writer.add_histogram("h", values, 0)
    writer.flush()
    histo = _read_histogram(tmp_path, "h")
    assert histo.num == 0 and sum(histo.bucket) == 0
    assert len(plugin_reader(tmp_path).Tensors("h")) == 1  # data_compat accepts it


def test_histogram_even_bins(writer, tmp_path):
    values = np.random.default_rng(2).standard_normal(10_000)
    writer.add_histogram("h", values, 0, bins=20)
    writer.flush()
    histo = _read_histogram(tmp_path, "h")
    counts, edges = np.histogram(values, bins=20)
    np.testing.assert_array_equal(histo.bucket, counts)
    np.testing.assert_array_equal(histo.bucket_limit, edges[1:])
    assert histo.min == values.min()


def test_histogram_caller_edges(writer, tmp_path):
    values = np.array([-3.0, 0.1, 0.2, 0.7, 5.0, 50.0])
    writer.add_histogram("h", values, 0, bins=[0.0, 0.5, 1.0, 10.0])
    writer.flush()
    histo = _read_histogram(tmp_path, "h")
    assert list(histo.bucket_limit) == [0.0, 0.5, 1.0, 10.0, _ladder.DBL_MAX]
    assert list(histo.bucket) == [1, 2, 1, 1, 1]


def test_histogram_of_strided_and_fortran_arrays(writer, tmp_path):
    base = np.random.default_rng(4).standard_normal((300, 400))
    writer.add_histogram("strided", base[::2, 1::3], 0)
    writer.add_histogram("fortran", np.asfortranarray(base), 0)
    writer.add_histogram("scalar", np.float64(2.5), 0)
    writer.add_histogram("list", [1, 2, 3], 0)
    writer.flush()
    np.testing.assert_array_equal(
        _expand(_read_histogram(tmp_path, "strided"), _ladder.LIMITS),
        _expected_ladder_counts(base[::2, 1::3])[0],
    )
    np.testing.assert_array_equal(
        _expand(_read_histogram(tmp_path, "fortran"), _ladder.LIMITS),
        _expected_ladder_counts(base)[0],
    )
    assert _read_histogram(tmp_path, "scalar").num == 1
    assert _read_histogram(tmp_path, "list").sum == 6


# -- images ------------------------------------------------------------------------------------


def _decode(tmp_path, tag):
    """[(step, width, height, [HWC arrays])] read back through TensorBoard."""
    out = []
    for step, tensor in tensor_values(tmp_path, tag):
        width, height = int(tensor[0]), int(tensor[1])
        images = [np.asarray(Image.open(io.BytesIO(png))) for png in tensor[2:]]
        out.append((step, width, height, images))
    return out


@pytest.mark.parametrize("channels", [1, 3, 4])
@pytest.mark.parametrize("layout", ["HWC", "CHW"])
def test_image_uint8_round_trip(writer, tmp_path, channels, layout, xp):
    hwc = np.random.default_rng(channels).integers(0, 256, (17, 23, channels), dtype=np.uint8)
    image = hwc if layout == "HWC" else hwc.transpose(2, 0, 1)
    writer.add_image("img", xp.asarray(image), 5, dataformats=layout)
    writer.flush()
    ((step, width, height, (decoded,)),) = _decode(tmp_path, "img")
    assert (step, width, height) == (5, 23, 17)
    expected = np.repeat(hwc, 3, axis=2) if channels == 1 else hwc  # gray as RGB, as torch's
    np.testing.assert_array_equal(decoded, expected)
    meta = plugin_reader(tmp_path).SummaryMetadata("img")
    assert meta.plugin_data.plugin_name == "images"


def test_image_float_and_bool_and_gray(writer, tmp_path):
    gray = np.linspace(0, 1, 12 * 8).reshape(12, 8)
    writer.add_image("float", gray, 0, dataformats="HW")
    writer.add_image("bool", gray > 0.5, 0, dataformats="HW")
    writer.flush()
    ((_, _, _, (decoded,)),) = _decode(tmp_path, "float")
    torchs = (gray.astype(np.float32) * np.float32(255)).astype(np.uint8)  # truncated, as torch
    np.testing.assert_array_equal(decoded, np.repeat(torchs[..., None], 3, axis=2))
    ((_, _, _, (decoded,)),) = _decode(tmp_path, "bool")
    np.testing.assert_array_equal(decoded[..., 0], np.where(gray > 0.5, 255, 0))


def _legacy_images(tmp_path, tag):
    """{tag: [(step, width, height, HWC array)]} of Summary.Image events, as
    EventAccumulator.Images reads them."""
    reader = legacy_reader(tmp_path)
    return [
        (e.step, e.width, e.height, np.asarray(Image.open(io.BytesIO(e.encoded_image_string))))
        for e in reader.Images(tag)
    ]


@pytest.mark.parametrize("layout", ["NHWC", "NCHW"])
def test_images_samples_layout_is_a_summary_image_per_sample(writer, tmp_path, layout):
    nhwc = np.random.default_rng(9).random((5, 10, 14, 3)).astype(np.float32)
    batch = nhwc if layout == "NHWC" else nhwc.transpose(0, 3, 1, 2)
    writer.add_images("batch", batch, 1, dataformats=layout, layout="samples")
    writer.flush()
    expected = np.floor(nhwc.astype(np.float64) * 255 + 0.5).astype(np.uint8)
    assert sorted(legacy_reader(tmp_path).Tags()["images"]) == [
        f"batch/image/{i}" for i in range(5)
    ]
    for i in range(5):
        ((step, width, height, decoded),) = _legacy_images(tmp_path, f"batch/image/{i}")
        assert (step, width, height) == (1, 14, 10)
        np.testing.assert_array_equal(decoded, expected[i])
    ((_, _, _, samples),) = _decode(tmp_path, "batch/image/3")  # the dashboard's form
    np.testing.assert_array_equal(samples[0], expected[3])
    records, _ = read_records(writer.file_path)
    assert len(records) == 2  # the file version and one event holding the five


def test_images_one_tag_is_one_tensor_of_samples(writer, tmp_path):
    nhwc = np.random.default_rng(9).integers(0, 256, (4, 6, 7, 3), dtype=np.uint8)
    writer.add_images("batch", nhwc, 2, dataformats="NHWC", one_tag=True)
    writer.flush()
    ((step, width, height, decoded),) = _decode(tmp_path, "batch")
    assert (step, width, height, len(decoded)) == (2, 7, 6, 4)
    np.testing.assert_array_equal(np.stack(decoded), nhwc)
    with pytest.raises(TypeError, match="one_tag must be True or False"):
        writer.add_images("batch", nhwc, 3, dataformats="NHWC", one_tag="yes")


def test_images_max_size(writer, tmp_path):
    batch = np.random.default_rng(1).integers(0, 256, (3, 40, 100, 4), dtype=np.uint8)
    writer.add_images("small", batch, 0, max_size=25, dataformats="NHWC", layout="samples")
    writer.flush()
    block = batch.reshape(3, 10, 4, 25, 4, 4).astype(np.int64).sum(axis=(2, 4))
    for i in range(3):
        ((_, width, height, decoded),) = _legacy_images(tmp_path, f"small/image/{i}")
        assert (width, height) == (25, 10)
        np.testing.assert_array_equal(decoded, (2 * block[i] + 16) // 32)


# -- text --------------------------------------------------------------------------------------


def test_text_round_trip(writer, tmp_path):
    writer.add_text("notes", "**bold** and 中文", 0)
    writer.add_text("nets", ["vgg16", "resnet50", "mask-rcnn", "yolov3"], 1)
    writer.flush()
    ((step, value),) = tensor_values(tmp_path, "notes/text_summary")  # torch's tag and shape
    assert step == 0 and value.shape == (1,) and value[0].decode() == "**bold** and 中文"
    ((step, value),) = tensor_values(tmp_path, "nets/text_summary")
    assert step == 1 and [v.decode() for v in value] == ["vgg16", "resnet50", "mask-rcnn", "yolov3"]
    metadata = plugin_reader(tmp_path).SummaryMetadata("nets/text_summary")
    assert metadata.plugin_data.plugin_name == "text"


# -- bad input ---------------------------------------------------------------------------------


BAD_CALLS = [
    (lambda w: w.add_scalar("s", "high"), TypeError, "value"),
    (lambda w: w.add_scalar("s", [1.0, 2.0]), ValueError, "value"),
    (lambda w: w.add_scalar("s", None), TypeError, "value"),
    (lambda w: w.add_scalar(3, 1.0), TypeError, "tag"),
    (lambda w: w.add_scalar("", 1.0), ValueError, "tag"),
    (lambda w: w.add_scalar("s", 1.0, step=1.5), TypeError, "step"),
    (lambda w: w.add_scalar("s", 1.0, step=2**63), ValueError, "step"),
    (lambda w: w.add_scalar("s", 1.0, walltime="now"), TypeError, "walltime"),
    (lambda w: w.add_histogram("h", [1.0], bins=0), ValueError, "bins"),
    (lambda w: w.add_histogram("h", [1.0], bins=-3), ValueError, "bins"),
    (lambda w: w.add_histogram("h", [1.0], bins=True), TypeError, "bins"),
    (lambda w: w.add_histogram("h", [1.0], bins="log"), ValueError, "bins"),
    (lambda w: w.add_histogram("h", [1.0], bins=[3.0, 1.0]), ValueError, "bins"),
    (lambda w: w.add_histogram("h", [1.0], bins=[0.0, np.nan]), ValueError, "bins"),
    (lambda w: w.add_histogram("h", ["a", "b"]), TypeError, "values"),
    (lambda w: w.add_histogram("h", np.array([1 + 1j])), TypeError, "values"),
    (
        lambda w: w.add_image("i", np.zeros((4, 4, 2), np.uint8), dataformats="HWC"),
        ValueError,
        "channels",
    ),
    (
        lambda w: w.add_image("i", np.zeros((4, 4), np.uint8), dataformats="HWC"),
        ValueError,
        "dataformats",
    ),
    (
        lambda w: w.add_image("i", np.zeros((4, 4, 3), np.uint8), dataformats="XYZ"),
        ValueError,
        "dataformats",
    ),
    (
        lambda w: w.add_image("i", np.zeros((4, 4, 3), np.int32), dataformats="HWC"),
        TypeError,
        "img",
    ),
    (
        lambda w: w.add_image("i", np.zeros((0, 4, 3), np.uint8), dataformats="HWC"),
        ValueError,
        "empty",
    ),
    (
        lambda w: w.add_image("i", np.zeros((4, 4, 3)), max_size=0, dataformats="HWC"),
        ValueError,
        "max_size",
    ),
    (
        lambda w: w.add_images("i", np.zeros((4, 4, 3), np.uint8), dataformats="NHWC"),
        ValueError,
        "dataformats",
    ),
    (lambda w: w.add_text("t", 5), TypeError, "text_string"),
    (lambda w: w.add_text("t", ["a", 5]), TypeError, "text_string"),
    (lambda w: w.add_text("t", []), ValueError, "text_string"),
]


@pytest.mark.parametrize("call,error,word", BAD_CALLS)
def test_bad_input_is_rejected_and_the_writer_goes_on(writer, tmp_path, call, error, word):
    writer.add_scalar("before", 1.0, 0)
    with pytest.raises(error, match=word):
        call(writer)
    writer.add_scalar("after", 2.0, 0)
    writer.flush()
    records, problems = read_records(writer.file_path)
    assert problems == [] and len(records) == 3
    acc = legacy_reader(tmp_path)
    assert acc.Scalars("after")[0].value == 2.0


def test_bad_writer_arguments(tmp_path):
    with pytest.raises(ValueError, match="flush_secs"):
        gs.SummaryWriter(str(tmp_path), flush_secs=0)
    with pytest.raises(ValueError, match="max_queue"):
        gs.SummaryWriter(str(tmp_path), max_queue=0)
    with pytest.raises(TypeError, match="logdir"):
        gs.SummaryWriter(5)


def test_unencodable_image_surfaces_on_next_call(writer, tmp_path, monkeypatch):
    from gpu_summary.summaries import image

    def broken(_):
        raise OSError("encoder exploded")

    monkeypatch.setattr(image, "encode_png", broken)
    writer.add_image(
        "img", np.zeros((4, 4, 3), np.uint8), 0, dataformats="HWC"
    )  # fails on the writer thread
    writer.add_scalar("s", 0.0, 0)
    with pytest.raises(gs.WriterError, match="image 'img' at step 0") as info:
        writer.flush()  # the next call reports it, once, with its cause
    assert "encoder exploded" in str(info.value.__cause__)
    monkeypatch.undo()
    writer.add_image("img", np.zeros((4, 4, 3), np.uint8), 1, dataformats="HWC")
    writer.add_scalar("s", 1.0, 1)
    writer.flush()
    assert [e.step for e in legacy_reader(tmp_path).Scalars("s")] == [0, 1]
    assert [step for step, *_ in _decode(tmp_path, "img")] == [1]


def test_logdir_and_default(tmp_path, monkeypatch):
    with gs.SummaryWriter(tmp_path / "run") as w:
        assert w.logdir == w.get_logdir() == str(tmp_path / "run")
        assert w.file_path.startswith(str(tmp_path / "run"))
    monkeypatch.chdir(tmp_path)
    with gs.SummaryWriter() as w:
        assert w.logdir.startswith("runs")
    assert len(list((tmp_path / "runs").iterdir())) == 1
