"""``from gpu_summary import SummaryWriter`` in place of torch's: the constructor, the
``global_step`` names, CHW images and the file writer, held against torch's own writer on the
same calls and read back through TensorBoard's readers and tbparse."""

from __future__ import annotations

import io
import math
import os
import re
import warnings

import numpy as np
import pytest
from PIL import Image
from tensorboard.backend.event_processing import event_accumulator

import gpu_summary as gs
from conftest import legacy_reader, plugin_reader, tensor_values
from gpu_summary._backend.cuda_kernels.sources import MOMENT_RTOL
from gpu_summary._core.results import HistogramResult, TensorStats
from gpu_summary.summaries.histogram import merge_buckets

torch = pytest.importorskip("torch", reason="torch's writer is the reference (pip install torch)")
from torch.utils.tensorboard import SummaryWriter as TorchWriter  # noqa: E402


def test_the_constructor_takes_torchs_arguments_in_torchs_order(tmp_path, monkeypatch):
    writer = gs.SummaryWriter(str(tmp_path / "a"), "_ignored", None, 10, 2.0, ".v2")
    assert writer.log_dir == writer.logdir == writer.get_logdir() == str(tmp_path / "a")
    assert writer.file_path.endswith(".v2")
    writer.close()
    assert gs.SummaryWriter(logdir=tmp_path / "b").log_dir == str(tmp_path / "b")
    with pytest.raises(TypeError, match="give the folder once"):
        gs.SummaryWriter(tmp_path / "c", logdir=tmp_path / "d")
    monkeypatch.chdir(tmp_path)
    with gs.SummaryWriter(comment="_lr0.1") as commented:
        folder = commented.log_dir
    assert folder.startswith("runs" + os.sep) and folder.endswith("_lr0.1")
    assert os.path.isdir(tmp_path / folder)


def test_write_to_disk_false_writes_nothing(tmp_path):
    with gs.SummaryWriter(tmp_path / "off", write_to_disk=False) as writer:
        writer.add_scalar("x", 1.0, 0)
        writer.add_image("i", np.zeros((3, 4, 4), np.uint8), 0)
        writer.add_embedding(np.eye(3), ["a", "b", "c"])
        writer.add_graph([{"name": "x", "class_name": "InputLayer", "config": {}}])
        writer.add_hparams({"lr": 0.1}, {"m": 1.0})
        writer.flush()
        assert writer.file_path is None
    assert not (tmp_path / "off").exists()  # not even the folder, as tensorboardX
    with gs.SummaryWriter(str(tmp_path / "positional"), "", None, 10, 1.0, "", False):
        pass  # tensorboardX's seventh argument
    assert not (tmp_path / "positional").exists()
    with pytest.raises(TypeError, match="write_to_disk"):
        gs.SummaryWriter(tmp_path, write_to_disk="no")


def test_purge_step_discards_what_a_crashed_run_logged_after_it(tmp_path):
    with gs.SummaryWriter(tmp_path) as first:
        for step in range(10):
            first.add_scalar("loss", float(step), step)
    with gs.SummaryWriter(tmp_path, purge_step=5) as resumed:  # restarted from step 5
        for step in range(5, 8):
            resumed.add_scalar("loss", 100.0 + step, step)
    scalars = legacy_reader(tmp_path).Scalars("loss")
    assert [(s.step, s.value) for s in scalars] == [(s, float(s)) for s in range(5)] + [
        (s, 100.0 + s) for s in range(5, 8)
    ]


def test_global_step_is_the_name_and_step_its_alias(tmp_path):
    with gs.SummaryWriter(tmp_path) as writer:
        writer.add_scalar("a", 1.0, global_step=3)
        writer.add_scalar("a", 2.0, step=4)
        writer.add_histogram("h", np.arange(5.0), global_step=2)
        writer.add_text("t", "x", global_step=6)
        with pytest.raises(TypeError, match="give the step once"):
            writer.add_scalar("a", 1.0, global_step=1, step=1)
    reader = legacy_reader(tmp_path)
    assert [s.step for s in reader.Scalars("a")] == [3, 4]
    assert [h.step for h in reader.Histograms("h")] == [2]


def _images(logdir, tag):
    reader = event_accumulator.EventAccumulator(str(logdir), size_guidance={"images": 0})
    reader.Reload()
    return [
        (e.step, e.width, e.height, np.asarray(Image.open(io.BytesIO(e.encoded_image_string))))
        for e in reader.Images(tag)
    ]


@pytest.mark.parametrize("channels", [1, 3, 4])
def test_add_image_is_chw_and_reads_back_as_torchs(tmp_path, channels):
    chw = np.random.default_rng(channels).integers(0, 256, (channels, 9, 13), dtype=np.uint8)
    with gs.SummaryWriter(tmp_path / "ours") as ours:
        ours.add_image("img", torch.from_numpy(chw), 7)
    peer = TorchWriter(str(tmp_path / "torch"))
    peer.add_image("img", torch.from_numpy(chw), 7)
    peer.close()
    ((step, width, height, pixels),) = _images(tmp_path / "ours", "img")
    ((t_step, t_width, t_height, t_pixels),) = _images(tmp_path / "torch", "img")
    assert (step, width, height) == (t_step, t_width, t_height) == (7, 13, 9)
    hwc = chw.transpose(1, 2, 0)
    np.testing.assert_array_equal(pixels, np.repeat(hwc, 3, axis=2) if channels == 1 else hwc)
    np.testing.assert_array_equal(pixels, t_pixels)  # gray repeated into RGB by both


def test_tbparse_reads_scalars_histograms_and_text_as_torchs(tmp_path):
    tbparse = pytest.importorskip("tbparse")
    rng = np.random.default_rng(0)
    values = np.concatenate([rng.standard_normal(10_000), [0.0, 1e-13, -1e-13, 5.0]])
    for writer_type, run in ((gs.SummaryWriter, "ours"), (TorchWriter, "torch")):
        with writer_type(str(tmp_path / run)) as writer:
            writer.add_scalar("loss", 0.25, 2)
            writer.add_histogram("normal", values, 3)  # bins="tensorflow", both defaults
            writer.add_histogram("ints", np.arange(100), 3)
            writer.add_text("plain", "hello *markdown*", 1)
            writer.add_text("table", "a|b\n-|-\nc|d", 1)
    stats = {"min", "max", "num", "sum", "sum_squares"}
    ours, theirs = (tbparse.SummaryReader(str(tmp_path / run), extra_columns=stats)
                    for run in ("ours", "torch"))  # fmt: skip
    assert ours.scalars.values.tolist() == theirs.scalars.values.tolist() == [[2, "loss", 0.25]]
    assert ours.text.values.tolist() == theirs.text.values.tolist()
    mine, torchs = ours.histograms, theirs.histograms
    assert sorted(mine["tag"]) == sorted(torchs["tag"]) == ["ints", "normal"]
    for tag in ("ints", "normal"):
        a, b = mine[mine.tag == tag].iloc[0], torchs[torchs.tag == tag].iloc[0]
        assert {k: a[k] for k in ("min", "max", "num")} == {k: b[k] for k in ("min", "max", "num")}
        # sums in another order (compiled, multi-threaded): within the documented tolerance
        for k in ("sum", "sum_squares"):
            assert a[k] == pytest.approx(b[k], rel=MOMENT_RTOL, abs=MOMENT_RTOL)
        # the same ladder, the same count in every bucket (each writer lists empty ones its way)
        assert {x: n for x, n in zip(a.limits, a.counts, strict=True) if n} == {
            x: n for x, n in zip(b.limits, b.counts, strict=True) if n
        }


@pytest.mark.parametrize("double_precision", [False, True])
def test_new_style_scalars_equal_torchs(tmp_path, double_precision):
    value = 1 / 3
    with gs.SummaryWriter(tmp_path / "ours") as ours:
        ours.add_scalar("s", value, 1, new_style=True, double_precision=double_precision)
    peer = TorchWriter(str(tmp_path / "torch"))
    peer.add_scalar("s", value, 1, new_style=True, double_precision=double_precision)
    peer.close()
    ((step, got),) = tensor_values(tmp_path / "ours", "s")
    ((_, expected),) = tensor_values(tmp_path / "torch", "s")
    assert step == 1 and got.dtype == expected.dtype and got == expected


def test_the_file_writer_takes_torchs_messages(tmp_path):
    from tensorboard.compat.proto import event_pb2, graph_pb2, node_def_pb2, summary_pb2
    from tensorboard.plugins.hparams import plugin_data_pb2
    from torch.utils.tensorboard.summary import hparams

    with gs.SummaryWriter(tmp_path) as writer:
        file_writer = writer._get_file_writer()  # as Lightning's TensorBoardLogger calls it
        assert file_writer is writer.file_writer and file_writer.get_logdir() == str(tmp_path)
        for message in hparams({"lr": 0.1, "opt": "adam"}, {"hp_metric": 0.5}):
            file_writer.add_summary(message)
        scalar = summary_pb2.Summary(value=[summary_pb2.Summary.Value(tag="x", simple_value=2)])
        file_writer.add_event(event_pb2.Event(summary=scalar), step=9, walltime=5.0)
        file_writer.add_graph(graph_pb2.GraphDef(node=[node_def_pb2.NodeDef(name="n", op="Op")]))
        with pytest.raises(TypeError, match="event must be a Event protobuf message"):
            file_writer.add_event("not an event")
        file_writer.flush()
    reader = legacy_reader(tmp_path)
    (event,) = reader.Scalars("x")
    assert (event.step, event.wall_time, event.value) == (9, 5.0, 2.0)
    assert [n.name for n in reader.Graph().node] == ["n"]
    contents = plugin_reader(tmp_path).PluginTagToContent("hparams")
    experiment = plugin_data_pb2.HParamsPluginData.FromString(contents["_hparams_/experiment"])
    assert sorted(h.name for h in experiment.experiment.hparam_infos) == ["lr", "opt"]
    assert "_hparams_/session_start_info" in contents


def test_max_bins_merges_neighbours_exactly():
    counts = np.arange(10, dtype=np.int64)
    result = HistogramResult(
        limits=np.arange(1.0, 11.0),
        counts=counts,
        stats=TensorStats.of(45, 0.0, 9.0, 0.0, 0.0, 0, 0, 0),
    )
    merged = merge_buckets(result, 4)
    assert merged.counts.tolist() == [0 + 1 + 2, 3 + 4 + 5, 6 + 7 + 8, 9]
    assert merged.limits.tolist() == [3.0, 6.0, 9.0, 10.0]
    assert merge_buckets(result, 10) is result


def test_max_bins_through_the_writer(tmp_path):
    values = np.random.default_rng(0).standard_normal(1000)
    with gs.SummaryWriter(tmp_path) as writer:
        writer.add_histogram("h", values, 0, bins=100, max_bins=7)
        with pytest.raises(ValueError, match="max_bins must be > 0"):
            writer.add_histogram("h", values, 1, max_bins=0)
    (event,) = legacy_reader(tmp_path).Histograms("h")
    histogram = event.histogram_value
    assert len(histogram.bucket) <= 8 and sum(histogram.bucket) == 1000


@pytest.mark.parametrize(
    "rule", ["auto", "fd", "doane", "scott", "stone", "rice", "sturges", "sqrt"]
)
def test_numpys_bin_rules_count_as_numpy_histogram(tmp_path, rule):
    values = np.random.default_rng(5).gamma(2.0, size=2000)
    values[:3] = [np.nan, np.inf, -np.inf]  # counted apart, as always
    with gs.SummaryWriter(tmp_path) as writer:
        writer.add_histogram("h", values, 0, bins=rule)
    (event,) = legacy_reader(tmp_path).Histograms("h")
    histogram = event.histogram_value
    expected, edges = np.histogram(values[3:], bins=rule)
    got = dict(zip(histogram.bucket_limit, histogram.bucket, strict=True))
    inner = [got.get(limit, 0.0) for limit in edges[1:-1]]
    assert inner == expected[:-1].tolist()  # bucket [e_i, e_i+1) ends at e_i+1
    assert sum(histogram.bucket) == expected.sum() == 1997  # the last, closed one included
    assert (histogram.min, histogram.max) == (values[3:].min(), values[3:].max())


def _same_counts(got, want):
    """Buckets, limits, count, min and max equal; the sums within the moments' tolerance."""
    assert list(got.bucket_limit) == list(want.bucket_limit)
    assert list(got.bucket) == list(want.bucket)
    assert (got.num, got.min, got.max) == (want.num, want.min, want.max)
    assert got.sum == pytest.approx(want.sum, rel=1e-12)
    assert got.sum_squares == pytest.approx(want.sum_squares, rel=1e-12)


@pytest.mark.parametrize(  # a cube, a power of two, a prime
    "rule,size",
    [
        ("auto", 1000),
        ("fd", 4099),
        ("sqrt", 4099),
        ("sturges", 1024),
        ("rice", 1000),
        ("stone", 1024),
    ],
)
def test_numpys_summary_rules_on_a_device_tensor_equal_the_host(tmp_path, emulated_cupy, rule,
                                                                 size):  # fmt: skip
    import threading

    values = np.random.default_rng(size).gamma(2.0, size=size).astype(np.float32)
    values[:3] = [np.nan, np.inf, -np.inf]
    device = emulated_cupy.asarray(values)
    emulated_cupy.waits.clear()
    with gs.SummaryWriter(tmp_path) as writer:
        writer.add_histogram("host", values, 0, bins=rule)
        writer.add_histogram("device", device, 0, bins=rule)
        assert threading.get_ident() not in emulated_cupy.waits  # no sync on the caller
        device._host[...] = 0  # the producer overwrites the tensor: counted is what was logged
    acc = legacy_reader(tmp_path)
    (host,), (on_device,) = acc.Histograms("host"), acc.Histograms("device")
    _same_counts(on_device.histogram_value, host.histogram_value)
    expected, _ = np.histogram(values[3:].astype(np.float64), bins=rule)
    assert list(on_device.histogram_value.bucket)[-len(expected) :] == expected.tolist()


@pytest.mark.parametrize("rule", ["doane", "scott"])
def test_numpys_host_only_rules_on_a_device_tensor_are_refused_clearly(tmp_path, emulated_cupy,
                                                                       rule):  # fmt: skip
    device = emulated_cupy.asarray(np.ones(4, np.float32))
    with gs.SummaryWriter(tmp_path) as writer:
        with pytest.raises(ValueError, match=r"numpy's own summation order.*one of \['auto'"):
            writer.add_histogram("h", device, 0, bins=rule)
        writer.add_histogram("h", device, 0, bins="auto")  # the writer goes on
    assert len(legacy_reader(tmp_path).Histograms("h")) == 1


def test_a_range_too_narrow_for_the_rules_bins_halves_them_on_both_backends(
    tmp_path, emulated_cupy
):
    values = np.full(1000, 1.0)
    values[::2] = np.nextafter(1.0, 2.0)  # two adjacent doubles: numpy refuses 11 bins here
    with pytest.raises(ValueError, match="Too many bins"):
        np.histogram(values, bins="sturges")
    with gs.SummaryWriter(tmp_path) as writer:
        with pytest.warns(RuntimeWarning, match="distinct edges"):
            writer.add_histogram("host", values, 0, bins="sturges")
        writer.add_histogram("device", emulated_cupy.asarray(values), 0, bins="sturges")
        with pytest.warns(RuntimeWarning, match="distinct edges"):
            writer.flush()  # the device's bin count is known on the writer thread
    acc = legacy_reader(tmp_path)
    (host,), (on_device,) = acc.Histograms("host"), acc.Histograms("device")
    _same_counts(on_device.histogram_value, host.histogram_value)
    assert sum(host.histogram_value.bucket) == 1000
    with gs.SummaryWriter(tmp_path / "refused") as writer:
        for rule in ("scott", "doane", "stone"):  # numpy's own refusal, reworded
            with pytest.raises(ValueError, match="numpy cannot make its bins over this data"):
                writer.add_histogram("h", values, 0, bins=rule)


def _sample(rng, kind, size):
    if kind == 0:
        return rng.standard_normal(size)
    if kind == 1:
        return rng.integers(-5, 5, size).astype(np.float64)
    if kind == 2:
        return rng.standard_cauchy(size) * 1e300  # the span may overflow float64
    if kind == 3:
        return rng.random(size).astype(np.float32).astype(np.float64)
    return np.full(size, -2.5)


def test_fd_asking_for_more_than_max_bins_gets_them_halved_on_both_backends(
    tmp_path, emulated_cupy
):
    values = np.random.default_rng(3).normal(0.0, 1e-9, 1001)
    values[0] = 1e6  # the quartiles 1e-9 apart, the range 1e6: numpy asks for ~1e15 bins
    with gs.SummaryWriter(tmp_path) as writer:
        with pytest.warns(RuntimeWarning, match=r"halved until they fit"):
            writer.add_histogram("host", values, 0, bins="fd")
        # The device rule's warning comes from the writer thread, whenever it takes the job:
        # the call and the flush that waits for it are both inside the check.
        with pytest.warns(RuntimeWarning, match=r"halved until they fit"):
            writer.add_histogram("device", emulated_cupy.asarray(values), 0, bins="fd")
            writer.flush()
    acc = legacy_reader(tmp_path)
    (host,), (on_device,) = acc.Histograms("host"), acc.Histograms("device")
    _same_counts(on_device.histogram_value, host.histogram_value)
    assert sum(host.histogram_value.bucket) == 1001


def test_stones_bin_count_is_numpys_from_exact_counts():
    from gpu_summary._backend import numpy as numpy_backend
    from gpu_summary._core import bin_rules

    rng = np.random.default_rng(2)
    for trial in range(40):
        size = [2, 5, 100, 1000, 5000, 10007][trial % 6]
        x = _sample(rng, trial % 4, size)
        lo, hi = x.min(), x.max()

        def counts_for(nbins, x=x, lo=lo, hi=hi):
            return numpy_backend.even_counts(x, lo, hi, nbins).result()

        with warnings.catch_warnings():
            warnings.simplefilter("ignore", RuntimeWarning)  # "may be suboptimal", both
            want = len(np.histogram_bin_edges(x, bins="stone")) - 1
            assert bin_rules.stone_bin_count(x.size, lo, hi, counts_for) == want, trial


def test_the_summary_rules_bin_count_is_numpys_bit_for_bit():
    from gpu_summary._core import bin_rules

    rng = np.random.default_rng(11)
    sizes = [1, 2, 3, 7, 8, 27, 64, 100, 125, 343, 1000, 1024, 4096, 8000, 10007, 2**15 + 1]
    compared = 0
    for trial in range(300):
        size = sizes[trial % len(sizes)]
        x = _sample(rng, trial % 5, size)
        x = x[np.isfinite(x)]
        q25, q75 = np.percentile(x, [25, 75])
        for rule in bin_rules.SUMMARY_RULES:
            got = bin_rules.bin_count(rule, x.size, x.min(), x.max(), q25, q75)
            assert got >= 1
            try:  # numpy fails where the span overflows, or ±0.5 is lost at 1e299
                want = len(np.histogram_bin_edges(x, bins=rule)) - 1
            except ValueError:
                continue
            assert got == want, (rule, size, trial)
            compared += 1
    assert compared > 1000


def test_add_scalars_writes_torchs_runs(tmp_path):
    tbparse = pytest.importorskip("tbparse")
    for writer_type, run in ((gs.SummaryWriter, "ours"), (TorchWriter, "torch")):
        with writer_type(str(tmp_path / run)) as writer:
            for step in range(3):
                writer.add_scalars("run/loss", {"train": 1.0 / (step + 1), "val": 2.0 * step,
                                                "t": torch.tensor(float(step))}, step)  # fmt: skip
    ours, torchs = (
        tbparse.SummaryReader(str(tmp_path / run), extra_columns={"dir_name"})
        .scalars.sort_values(["dir_name", "step"]).values.tolist()
        for run in ("ours", "torch")
    )  # fmt: skip
    assert ours == torchs and len(ours) == 9
    assert {row[3] for row in ours} == {"run_loss_train", "run_loss_val", "run_loss_t"}


def test_add_scalars_steps_reopening_and_bad_input(tmp_path):
    writer = gs.SummaryWriter(tmp_path, count_steps=True)
    writer.add_scalars("m", {"a": 1.0, "b": 2.0})  # no step: 0, then 1, shared by the lines
    writer.add_scalars("m", {"a": 3.0, "b": 4.0})
    for call, error, match in [
        (lambda: writer.add_scalars("m", [("a", 1.0)]), TypeError, "must be a dict"),
        (lambda: writer.add_scalars("m", {}), ValueError, "is empty"),
        (lambda: writer.add_scalars("m", {1: 1.0}), TypeError, "key must be a str"),
        (lambda: writer.add_scalars("m", {"a": "x"}), TypeError, "tag_scalar_dict value"),
        (lambda: writer.add_scalars("m", {"a": np.ones(2)}), ValueError, "single number"),
        (lambda: writer.add_scalars("m", {"/../../out": 1.0}), ValueError, "outside log_dir"),
        (lambda: writer.add_scalars("m", {"a": 1.0, "b": "x"}), TypeError, "value"),
    ]:
        with pytest.raises(error, match=match):
            call()
    writer.close()
    writer.add_scalars("m", {"a": 5.0})  # after close: reopened, as add_scalar
    writer.close()
    assert [(e.step, e.value) for e in legacy_reader(tmp_path / "m_a").Scalars("m")] == [
        (0, 1.0),
        (1, 3.0),
        (2, 5.0),
    ]
    assert [e.step for e in legacy_reader(tmp_path / "m_b").Scalars("m")] == [0, 1]
    assert not (tmp_path.parent / "out").exists()
    with gs.SummaryWriter(tmp_path / "off", write_to_disk=False) as off:
        off.add_scalars("m", {"a": 1.0})
    assert not (tmp_path / "off").exists()


@pytest.mark.parametrize(
    "main_tag,tags,match",
    [
        ("m", ["a", "k" * 300], "make the run folder 'm_kkk.*is 302 bytes, more than the 255"),
        ("m", ["a", "x/" + "k" * 300], "make the run folder 'm_x/kkk.*is 300 bytes"),
        ("m", ["a", "file"], "make the run folder 'm_file'.*a file is at"),
        ("m", ["a", "file/b"], "make the run folder 'm_file/b'.*a file is at"),
        ("m\0x", ["a"], r"^main_tag 'm\\x00x' holds a NUL character"),
        ("m", ["a", "b\0c"], r"^tag_scalar_dict key 'b\\x00c' holds a NUL character"),
        ("m", ["a", "x/../../out"], r"^tag_scalar_dict key 'x/\.\./\.\./out' would name a run "
                                    r"outside log_dir; drop the '\.\.'"),
    ],
)  # fmt: skip
def test_add_scalars_checks_every_run_before_logging_any(tmp_path, main_tag, tags, match):
    (tmp_path / "m_file").write_text("not a folder")
    with gs.SummaryWriter(tmp_path) as writer:
        with pytest.raises(ValueError, match=match):
            writer.add_scalars(main_tag, {tag: float(k) for k, tag in enumerate(tags)}, 0)
        writer.add_scalars("m", {"b": 1.0}, 1)  # nothing deferred
    assert sorted(p.name for p in tmp_path.iterdir() if p.is_dir()) == ["m_b"]  # no m_a
    assert [e.step for e in legacy_reader(tmp_path / "m_b").Scalars("m")] == [1]


def test_add_histogram_raw_writes_what_torchs_does(tmp_path):
    values = np.random.default_rng(2).random(50)
    counts, edges = np.histogram(values, [0.0, 0.25, 0.5, 0.75, 1.0])
    call = {"min": values.min(), "max": values.max(), "num": 50, "sum": values.sum(),
            "sum_squares": float(values @ values), "bucket_limits": edges[1:].tolist(),
            "bucket_counts": counts.tolist()}  # fmt: skip
    for writer_type, run in ((gs.SummaryWriter, "ours"), (TorchWriter, "torch")):
        with writer_type(str(tmp_path / run)) as writer:
            writer.add_histogram_raw("raw", **call, global_step=3)
            writer.add_histogram_raw("raw", **{**call, "num": torch.tensor(50)}, global_step=4)
    ours, torchs = (legacy_reader(tmp_path / run).Histograms("raw") for run in ("ours", "torch"))
    assert [(e.step, e.histogram_value) for e in ours] == [
        (e.step, e.histogram_value) for e in torchs
    ]
    with gs.SummaryWriter(tmp_path / "bad") as writer:
        for change, error, match in [
            ({"bucket_counts": [1, 2]}, ValueError, "4 limits and bucket_counts 2"),
            ({"bucket_limits": [3, 2, 1, 0]}, ValueError, "increasing"),
            ({"bucket_counts": [1, -1, 0, 0]}, ValueError, ">= 0"),
            ({"min": "low"}, TypeError, "min must be a number"),
            ({"bucket_limits": [], "bucket_counts": []}, ValueError, "empty"),
        ]:
            with pytest.raises(error, match=match):
                writer.add_histogram_raw("raw", **{**call, **change})
    assert "raw" not in legacy_reader(tmp_path / "bad").Tags()["histograms"]


def _tags_and_steps(logdir) -> dict[str, list[int]]:
    """Every tag TensorBoard's plugin reader finds, with the steps of its records."""
    acc = plugin_reader(logdir)
    return {tag: [e.step for e in acc.Tensors(tag)] for tag in acc.Tags()["tensors"]}


def test_calls_without_a_step_and_text_land_where_torchs_do(tmp_path):
    """A drop-in's defaults are torch's: a missing step is step 0 (accelerate's log() without
    one gives [0, 0] with torch's writer), text is under <tag>/text_summary."""
    for writer_type, run in ((gs.SummaryWriter, "ours"), (TorchWriter, "torch")):
        with writer_type(str(tmp_path / run)) as writer:
            for value in (0.5, 0.25):
                writer.add_scalar("loss", value)
                writer.add_text("notes", f"value {value}")
            writer.add_histogram("weights", np.arange(10.0))
            writer.add_text("later", "at a step", 7)
    ours, theirs = (_tags_and_steps(tmp_path / run) for run in ("ours", "torch"))
    assert ours == theirs
    assert ours["loss"] == ours["notes/text_summary"] == [0, 0]
    assert ours["later/text_summary"] == [7]
    ours, theirs = ([(step, value.tolist()) for step, value in
                     tensor_values(tmp_path / run, "notes/text_summary")]
                    for run in ("ours", "torch"))  # fmt: skip
    assert ours == theirs == [(0, [b"value 0.5"]), (0, [b"value 0.25"])]


def test_count_steps_restores_counting_up_per_tag(tmp_path):
    with gs.SummaryWriter(str(tmp_path), count_steps=True) as writer:
        for value in (0.5, 0.25, 0.125):
            writer.add_scalar("loss", value)
        writer.add_scalar("loss", 1.0, 10)
        writer.add_scalar("loss", 2.0)
    assert [e.step for e in legacy_reader(tmp_path).Scalars("loss")] == [0, 1, 2, 10, 11]
    with pytest.raises(TypeError, match="count_steps"):
        gs.SummaryWriter(str(tmp_path), count_steps="yes")


def test_add_histogram_raw_checks_every_statistic(tmp_path):
    """num and counts finite and >= 0, min <= max finite, sums finite (±inf only where num
    values within [min, max] can overflow float64, as add_histogram writes them),
    sum_squares >= 0: what torch writes as given (num=-5, num=nan, min=nan, sum=inf) is
    refused at the call, and nothing is logged. Weighted counts (fractions) and a num that is
    not their total are histograms torch takes: so do we."""
    good = {"min": -1.0, "max": 2.0, "num": 3, "sum": 1.5, "sum_squares": 5.25,
            "bucket_limits": [0.0, 2.0], "bucket_counts": [1, 2]}  # fmt: skip
    nan, inf = math.nan, math.inf
    with gs.SummaryWriter(tmp_path) as writer:
        for change, match in [
            ({"num": -5}, "num must be a finite count >= 0, got -5"),
            ({"num": nan}, "num must be a finite count >= 0, got nan"),
            ({"num": inf}, "num must be a finite count >= 0, got inf"),
            ({"min": nan}, "min must be a finite number, got nan"),
            ({"max": -inf}, "max must be a finite number, got -inf"),
            ({"min": 3.0}, "min 3.0 is above max 2.0"),
            ({"sum": inf}, "sum must be finite"),
            ({"sum": nan}, "sum must be finite"),
            ({"sum_squares": nan}, "sum_squares must be finite"),
            ({"sum_squares": -1.0}, "sum_squares must be >= 0"),
            ({"bucket_counts": [0.5, -2.5]}, "bucket_counts must be finite counts >= 0"),
            ({"bucket_counts": [0.5, nan]}, "bucket_counts must be finite counts >= 0"),
            (
                {"num": 0, "bucket_counts": [0, 0]},
                "num is 0 but sum is 1.5 and sum_squares 5.25: an empty",
            ),
        ]:
            with pytest.raises(ValueError, match=re.escape(match)):
                writer.add_histogram_raw("raw", **{**good, **change})
        writer.flush()  # nothing deferred
        assert "raw" not in legacy_reader(tmp_path).Tags()["histograms"]
        huge = {"min": 1e300, "max": 1e308, "num": 1000, "sum": inf, "sum_squares": inf,
                "bucket_limits": [1e308], "bucket_counts": [1000]}  # fmt: skip
        writer.add_histogram_raw("raw", **good, global_step=0)
        writer.add_histogram_raw("raw", **huge, global_step=1)  # float64 sums overflow: inf
        empty = {"num": 0, "sum": 0.0, "sum_squares": 0.0, "bucket_counts": [0, 0]}
        writer.add_histogram_raw("raw", **{**good, **empty}, global_step=2)
        weighted = {"num": 4, "bucket_counts": [0.5, 2.25]}
        writer.add_histogram_raw("raw", **{**good, **weighted}, global_step=3)
    written = [e.histogram_value for e in legacy_reader(tmp_path).Histograms("raw")]
    assert [(h.num, h.sum, h.sum_squares) for h in written] == [
        (3, 1.5, 5.25), (1000, inf, inf), (0, 0.0, 0.0), (4, 1.5, 5.25)
    ]  # fmt: skip
    assert list(written[3].bucket) == [0.5, 2.25]
