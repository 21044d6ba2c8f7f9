"""gpu_summary._core.arguments: every check names the argument, and bad input never gets far."""

from __future__ import annotations

import math

import numpy as np
import pytest

from gpu_summary._core import arguments, ladder


@pytest.mark.parametrize("bins", ["tensorboard", "TensorFlow", "default"])
def test_bin_spec_names_the_ladder(bins):
    assert arguments.bin_spec(bins) == ("ladder", None)


def test_bin_spec_even_and_edges():
    assert arguments.bin_spec(64) == ("even", 64)
    assert arguments.bin_spec(np.int16(3)) == ("even", 3)
    mode, edges = arguments.bin_spec([0, 1.5, 2])
    assert mode == "edges" and edges.tolist() == [0.0, 1.5, 2.0, ladder.DBL_MAX]
    assert not edges.flags.writeable
    _, open_top = arguments.bin_spec([0, ladder.DBL_MAX])
    assert open_top.tolist() == [0.0, ladder.DBL_MAX]  # no second top bucket


@pytest.mark.parametrize(
    ("bins", "error", "match"),
    [
        ("blocks", ValueError, "bins must be 'tensorflow', one of numpy's"),
        (True, TypeError, "bins must be"),
        (0, ValueError, "bins must be > 0"),
        (arguments.MAX_BINS + 1, ValueError, "TensorBoard shows about 30"),
        ({"a": 1}, TypeError, "got dict"),
        ([], ValueError, "non-empty 1-D"),
        ([[0, 1]], ValueError, "non-empty 1-D"),
        ([0, np.nan], ValueError, "finite"),
        ([1, 1, 2], ValueError, "strictly increasing"),
    ],
)
def test_bin_spec_refuses(bins, error, match):
    with pytest.raises(error, match=match):
        arguments.bin_spec(bins)


def test_bounds():
    assert arguments.check_bound(None, "lower") is None
    assert arguments.check_bound(np.float32(0.5), "lower") == 0.5
    with pytest.raises(TypeError, match="upper must be a number or None"):
        arguments.check_bound(True, "upper")
    with pytest.raises(ValueError, match="lower must be a finite"):
        arguments.check_bound(-math.inf, "lower")


def test_named_pairs():
    assert arguments.named_pairs({"a": 1, "b": None}) == [("a", 1)]
    assert arguments.named_pairs(iter([("x", 2)])) == [("x", 2)]
    with pytest.raises(TypeError, match="named_tensors must be a mapping"):
        arguments.named_pairs("weights")
    with pytest.raises(TypeError, match=r"\(name, tensor\) pairs"):
        arguments.named_pairs([("a", 1, 2)])
    with pytest.raises(TypeError, match="tensor names must be str"):
        arguments.named_pairs([(3, 1)])
    with pytest.raises(ValueError, match="holds no tensor"):
        arguments.named_pairs({"a": None})


def test_steps_tags_and_walltimes():
    assert arguments.check_step(np.array([5], np.int64)) == 5
    assert arguments.check_step(-(2**63)) == -(2**63)
    with pytest.raises(ValueError, match="int64"):
        arguments.check_step(2**63)
    with pytest.raises(TypeError, match="step must be an int"):
        arguments.check_step(1.0)
    assert arguments.check_tag("loss/ü") == "loss/ü"
    with pytest.raises(ValueError, match="lone surrogate at index 1"):
        arguments.check_tag("a\udc80")
    with pytest.raises(ValueError, match="walltime must be a finite"):
        arguments.check_walltime(math.nan)


@pytest.mark.parametrize(
    ("layout", "shape", "nhwc"),
    [("HWC", (4, 5, 3), (1, 4, 5, 3)), ("CHW", (1, 4, 5), (1, 4, 5, 1)),
     ("HW", (4, 5), (1, 4, 5, 1)), ("NCHW", (2, 4, 6, 7), (2, 6, 7, 4))],
)  # fmt: skip
def test_images_come_back_as_nhwc_views(layout, shape, nhwc):
    array = np.zeros(shape, np.uint8)
    view = arguments.check_images(array, layout, "img", "dataformats")
    assert view.shape == nhwc and np.shares_memory(view, array)


@pytest.mark.parametrize(
    ("shape", "dtype", "count", "error", "match"),
    [
        ((4, 5), np.uint8, None, ValueError, "needs 3 dimensions"),
        ((2, 4, 5, 3), np.uint8, 3, ValueError, r"one image per point \(3\)"),
        ((4, 5, 3), np.int16, None, TypeError, "uint8 .0..255., float .0..1. or bool"),
        ((4, 5, 2), np.uint8, None, ValueError, "1, 3 or 4 channels"),
        ((0, 5, 3), np.float32, None, ValueError, "at least one pixel"),
    ],
)
def test_images_refused(shape, dtype, count, error, match):
    layout = "NHWC" if len(shape) == 4 else "HWC"
    with pytest.raises(error, match=match):
        arguments.check_images(np.zeros(shape, dtype), layout, "img", "dataformats", count)


def test_dataformats_and_text():
    assert arguments.check_dataformats("nchw", arguments.IMAGES_FORMATS, "dataformats") == "NCHW"
    with pytest.raises(ValueError, match=r"dataformats must be one of \['HWC'"):
        arguments.check_dataformats("WHC", arguments.IMAGE_FORMATS, "dataformats")
    assert arguments.check_text("hi") == (["hi"], True)
    assert arguments.check_text(("a", "b")) == (["a", "b"], False)
    with pytest.raises(TypeError, match="only str, found int"):
        arguments.check_text(["a", 1])
    with pytest.raises(ValueError, match="empty list"):
        arguments.check_text([])


def test_writer_options():
    assert arguments.check_folder_path(b"x".decode()) == "x"
    with pytest.raises(ValueError, match="folder's path"):
        arguments.check_folder_path("")
    with pytest.raises(TypeError, match="logdir must be a str or path"):
        arguments.check_folder_path(3)
    arguments.check_writer_options(0.5, 1, 1, ".v2", print)
    for bad, error in [
        ((0, 1, 1, ""), ValueError),
        ((True, 1, 1, ""), TypeError),
        ((1, 0, 1, ""), ValueError),
        ((1, 1, 1, "a/b"), ValueError),
        ((1, 1, 1, "", "not callable"), TypeError),
    ]:
        with pytest.raises(error):
            arguments.check_writer_options(*bad)
