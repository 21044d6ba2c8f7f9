"""Argument checks shared by every public method: clear errors before any work is queued.

Each check names the argument, what was expected and how to fix it, and raises TypeError or
ValueError on the caller's thread, so a bad call leaves the writer and its files as they were.
"""

from __future__ import annotations

import math
import numbers
import os
from collections.abc import Callable

import numpy as np

from gpu_summary._core import ladder

NOT_PICKLED = (
    "a SummaryWriter cannot be sent to another process (pickled); create one in each process "
    "— each writes its own file — or use SummaryWriter(..., distributed=...)"
)
INT64_MIN = -(1 << 63)
INT64_MAX = (1 << 63) - 1


def check_unicode(text: str, argument: str) -> str:
    """Return ``text`` if UTF-8 can encode it: no lone surrogates (which ``os.fsdecode`` leaves
    for file-name bytes that are not UTF-8), so that nothing fails later on the writer thread."""
    if not text.isascii():
        try:
            text.encode("utf-8")
        except UnicodeEncodeError as exc:
            near = text[max(exc.start - 12, 0) : exc.start + 12]
            raise ValueError(
                f"{argument} holds a lone surrogate at index {exc.start} (near {near!r}), which "
                "UTF-8 cannot encode; clean it first, e.g. "
                "text.encode('utf-8', 'surrogateescape').decode('utf-8', 'replace')"
            ) from None
    return text


def check_tag(tag: object, argument: str = "tag") -> str:
    """Return ``tag`` if it is a non-empty str that UTF-8 can encode."""
    if not isinstance(tag, str):
        raise TypeError(f"{argument} must be a str, got {type(tag).__name__}: {tag!r}")
    if not tag:
        raise ValueError(f"{argument} must not be empty; give the series a name such as 'loss'")
    return check_unicode(tag, argument)


def check_step(step: object) -> int:
    """Return ``step`` as an int that fits int64 (Python or NumPy integer, or a one-element
    integer array)."""
    if isinstance(step, np.ndarray) and step.size == 1 and step.dtype.kind in "iu":
        step = step.reshape(()).item()
    if isinstance(step, (bool, np.bool_)) or not isinstance(step, numbers.Integral):
        raise TypeError(f"step must be an int, got {type(step).__name__}: {step!r}")
    value = int(step)
    if not INT64_MIN <= value <= INT64_MAX:
        raise ValueError(f"step must fit in int64 (|step| < 2**63), got {value}")
    return value


def to_float(value: object) -> float:
    """``float(value)``, and ±inf for an int beyond float64 (Python's ints are unbounded:
    ``float(10**400)`` raises OverflowError, which no caller should see)."""
    try:
        return float(value)
    except OverflowError:
        return math.inf if value > 0 else -math.inf


def check_walltime(walltime: object) -> float:
    """Return ``walltime`` (seconds since the epoch) as a finite float."""
    if isinstance(walltime, bool) or not isinstance(walltime, numbers.Real):
        raise TypeError(
            f"walltime must be a number of seconds since the epoch, got {type(walltime).__name__}"
        )
    value = to_float(walltime)
    if not math.isfinite(value):
        raise ValueError(f"walltime must be a finite number of seconds, got {walltime!r:.40}")
    return value


def check_positive_int(value: object, argument: str, fix: str) -> int:
    """Return ``value`` if it is an int > 0 (bool rejected)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{argument} must be a positive int, got {type(value).__name__}: {value!r}")
    if value <= 0:
        raise ValueError(f"{argument} must be > 0, got {value}; {fix}")
    return int(value)


def check_positive_number(value: object, argument: str, example: str) -> float:
    """Return ``value`` as a float if it is a finite real number > 0 (bool rejected)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Real):
        raise TypeError(f"{argument} must be a number, got {type(value).__name__}: {value!r}")
    if not math.isfinite(value) or value <= 0:
        raise ValueError(f"{argument} must be a finite number > 0, got {value!r}; e.g. {example}")
    return float(value)


def check_count(value: object, argument: str, most: int) -> int:
    """Return ``value`` if it is an int in [0, most] (bool rejected)."""
    if isinstance(value, (bool, np.bool_)) or not isinstance(value, numbers.Integral):
        raise TypeError(f"{argument} must be an int, got {type(value).__name__}: {value!r}")
    if not 0 <= value <= most:
        raise ValueError(f"{argument} must be between 0 and {most}, got {value}")
    return int(value)


# Most bytes one record may hold: a protobuf message (TensorBoard reads each Event as one)
# stops at 2 GiB.
MAX_RECORD_BYTES = (1 << 31) - (1 << 20)


def check_record(nbytes: int, argument: str, what: str, fix: str) -> None:
    """Raise ValueError, before anything is converted, when ``argument`` would make a record
    of ``nbytes`` (``what`` it makes, in words) over ``MAX_RECORD_BYTES``."""
    if nbytes > MAX_RECORD_BYTES:
        raise ValueError(
            f"{argument} makes {what}: {nbytes / 2**30:.1f} GiB in one record, more than the "
            f"2 GiB a record may hold (a protobuf message's limit); {fix}"
        )


# Most buckets one histogram may ask for: a record of 2**20 buckets is already 16 MB; beyond
# it the counts and the record grow without limit (bins=10**8 took 7 GB and 35 s).
MAX_BINS = 1 << 20


# numpy.histogram's bin estimators, which torch's add_histogram passes through.
NUMPY_BIN_RULES = ("auto", "fd", "doane", "scott", "stone", "rice", "sturges", "sqrt")


def bin_spec(bins: object) -> tuple[str, object]:
    """Validate ``bins``: ("ladder", None), ("even", n), ("edges", float64 limits) or
    ("numpy_rule", one of NUMPY_BIN_RULES)."""
    if isinstance(bins, str):
        if bins.lower() in ("tensorboard", "tensorflow", "default"):
            return "ladder", None
        if bins in NUMPY_BIN_RULES:
            return "numpy_rule", bins
        raise ValueError(
            f"bins must be 'tensorflow', one of numpy's {list(NUMPY_BIN_RULES)}, a positive int "
            f"or a sequence of edges, got {bins!r}"
        )
    if isinstance(bins, (bool, np.bool_)):
        raise TypeError(f"bins must be 'tensorboard', a positive int or edges, got {bins!r}")
    if isinstance(bins, (int, np.integer)):
        count = check_positive_int(bins, "bins", "ask for at least one bucket, e.g. bins=64")
        if count > MAX_BINS:
            raise ValueError(
                f"bins must be at most {MAX_BINS:,}, got {count:,}; TensorBoard shows about 30 "
                "buckets per histogram, so ask for fewer, e.g. bins=64"
            )
        return "even", count
    try:
        edges = np.asarray(bins, dtype=np.float64)
    except OverflowError:  # an int beyond float64 among the edges
        raise ValueError("bins as edges must be finite float64 numbers; one is too large") from None
    except (TypeError, ValueError):
        raise TypeError(
            f"bins must be 'tensorboard', a positive int or a sequence of edges, "
            f"got {type(bins).__name__}"
        ) from None
    if edges.ndim != 1 or edges.size == 0:
        raise ValueError(f"bins as edges must be a non-empty 1-D sequence, got shape {edges.shape}")
    if edges.size > MAX_BINS:
        raise ValueError(f"bins as edges must be at most {MAX_BINS:,} edges, got {edges.size:,}")
    if not np.isfinite(edges).all():
        raise ValueError("bins as edges must be finite numbers (NaN and ±Inf are counted apart)")
    if edges.size > 1 and not (np.diff(edges) > 0).all():
        raise ValueError("bins as edges must be strictly increasing; sort them and drop repeats")
    if edges[-1] < ladder.DBL_MAX:
        edges = np.append(edges, ladder.DBL_MAX)  # the bucket of values above the last edge
    edges.setflags(write=False)
    return "edges", edges


def check_bound(bound: object, argument: str) -> float | None:
    """Return ``bound`` (``lower``/``upper`` of add_anomaly) as a finite float, or None."""
    if bound is None:
        return None
    if isinstance(bound, (bool, np.bool_)) or not isinstance(
        bound, (int, float, np.integer, np.floating)
    ):
        raise TypeError(f"{argument} must be a number or None, got {type(bound).__name__}")
    number = to_float(bound)
    if not math.isfinite(number):
        raise ValueError(
            f"{argument} must be a finite float64, got {bound!r:.40}; NaN and ±Inf are always "
            "reported"
        )
    return number


def named_pairs(named_tensors: object) -> list[tuple[str, object]]:
    """``(name, tensor)`` pairs of a mapping or an iterable of pairs, None tensors dropped."""
    if isinstance(named_tensors, dict) or hasattr(named_tensors, "items"):
        items = list(named_tensors.items())
    elif isinstance(named_tensors, (str, bytes)) or not hasattr(named_tensors, "__iter__"):
        raise TypeError(
            "named_tensors must be a mapping {name: tensor} or an iterable of (name, tensor) "
            f"pairs such as model.named_parameters(), got {type(named_tensors).__name__}"
        )
    else:
        items = list(named_tensors)
    pairs = []
    for item in items:
        if not isinstance(item, tuple) or len(item) != 2:
            raise TypeError(f"named_tensors must hold (name, tensor) pairs, got {item!r:.80}")
        name, tensor = item
        if not isinstance(name, str):
            raise TypeError(f"tensor names must be str, got {type(name).__name__}: {name!r}")
        if tensor is not None:
            pairs.append((name, tensor))
    if not pairs:
        raise ValueError("named_tensors holds no tensor (every value was None, or it is empty)")
    return pairs


IMAGE_FORMATS = ("HWC", "CHW", "HW")
IMAGES_FORMATS = ("NHWC", "NCHW", "NHW")
VIDEO_FORMATS = ("NTCHW", "NTHWC", "TCHW", "THWC")


def check_dataformats(dataformats: object, formats: tuple[str, ...], argument: str) -> str:
    """Return ``dataformats`` upper-cased if it is one of ``formats``."""
    if not isinstance(dataformats, str) or dataformats.upper() not in formats:
        raise ValueError(f"{argument} must be one of {list(formats)}, got {dataformats!r}")
    return dataformats.upper()


def to_nhwc(array: object, layout: str) -> object:
    """A view of ``array`` in NHWC order (no copy); a video layout's (``T``) frames follow
    one another, video by video (N·T images; a copy where the strides do not allow a view)."""
    if "T" in layout:
        if "N" not in layout:
            array, layout = array[None], "N" + layout
        array = array.transpose([layout.index(axis) for axis in "NTHWC"])
        n, t, h, w, c = array.shape
        return array.reshape(n * t, h, w, c)
    if "N" not in layout:
        array = array[None]
        layout = "N" + layout
    if "C" not in layout:
        array = array[..., None]
        layout = layout + "C"
    return array.transpose([layout.index(axis) for axis in "NHWC"])


def check_images(
    array: object, layout: str, argument: str, format_argument: str, count: int | None = None
) -> object:
    """Check images (``add_image(s)``' ``img``/``imgs``, ``add_embedding``'s ``label_img``)
    laid out as ``layout`` and return their NHWC view.

    Args:
        array: a backend array (``shape``, ``dtype``, ``transpose``).
        layout: one of IMAGE_FORMATS or IMAGES_FORMATS, checked.
        argument, format_argument: the caller's names for the images and their layout.
        count: the number of images required (one per embedded point), or None.

    Raises:
        ValueError: dimensions that do not match the layout, a wrong count, other than 1, 3
            or 4 channels, no pixel. TypeError: not uint8, float or bool.
    """
    shape = tuple(array.shape)
    if len(shape) != len(layout) or (count is not None and shape[0] != count):
        per_point = "" if count is None else f" and one image per point ({count})"
        raise ValueError(
            f"{argument} has shape {shape} but {format_argument}={layout!r} needs "
            f"{len(layout)} dimensions{per_point}; pass the {format_argument} that matches "
            "its layout"
        )
    if array.dtype.kind not in "fb" and array.dtype != np.uint8:
        raise TypeError(
            f"{argument} must be uint8 (0..255), float (0..1) or bool, got {array.dtype}; "
            "convert it, e.g. with .astype(np.uint8)"
        )
    nhwc = to_nhwc(array, layout)
    n, height, width, channels = nhwc.shape
    if channels not in (1, 3, 4):
        raise ValueError(
            f"{argument} has {channels} channels in {format_argument}={layout!r}; images need "
            f"1, 3 or 4 channels (gray, RGB, RGBA) — check the {format_argument}"
        )
    if n == 0 or height == 0 or width == 0:
        raise ValueError(f"{argument} is empty (shape {shape}); images need at least one pixel")
    return nhwc


# add_images' layouts: torch's grid (the default), ours: an image per sample, one tensor.
IMAGE_LAYOUTS = ("grid", "samples", "tensor")


def check_image_layout(
    layout: object, one_tag: object = False, layouts: tuple = IMAGE_LAYOUTS
) -> str:
    """``layout`` checked against ``layouts``; ``one_tag=True`` (the older spelling) is
    ``"tensor"``."""
    if not isinstance(one_tag, bool):
        raise TypeError(f"one_tag must be True or False, got {one_tag!r}")
    if not isinstance(layout, str) or layout not in layouts:
        raise ValueError(f"layout must be one of {list(layouts)}, got {layout!r}")
    if one_tag and layout not in ("grid", "tensor"):
        raise ValueError(f"one_tag=True is layout='tensor', but layout={layout!r}; give one")
    return "tensor" if one_tag else layout


def check_text(text_string: object) -> tuple[list[str], bool]:
    """(the strings, whether one str was given) of ``add_text``'s ``text_string``."""
    if isinstance(text_string, str):
        strings, scalar = [text_string], True
    elif isinstance(text_string, (list, tuple)):
        strings, scalar = list(text_string), False
        bad = [type(s).__name__ for s in strings if not isinstance(s, str)]
        if bad:
            raise TypeError(f"text_string must hold only str, found {bad[0]}")
        if not strings:
            raise ValueError("text_string is an empty list; log at least one string")
    else:
        raise TypeError(
            f"text_string must be a str or a list of str, got {type(text_string).__name__}"
        )
    for string in strings:
        check_unicode(string, "text_string")
    return strings, scalar


def check_folder_path(logdir: object) -> str:
    """``logdir``, a str or path naming a folder, as a str (checked: not empty, no NUL)."""
    if not isinstance(logdir, (str, os.PathLike)):
        raise TypeError(f"logdir must be a str or path, got {type(logdir).__name__}")
    path = os.fspath(logdir)
    if not path or "\0" in path:
        raise ValueError(
            f"logdir must be a folder's path, got {path!r}; give one such as "
            "'runs/exp1', or None for runs/<date>_<host>"
        )
    return path


def run_folder(log_dir: object, logdir: object, comment: object, default: Callable[[], str]) -> str:
    """The run folder of ``SummaryWriter(log_dir, comment, ..., logdir=...)``: ``log_dir``
    (torch's name) or ``logdir`` (tensorboardX's), else ``default()`` with ``comment`` appended,
    as both peers name a run (``comment`` is ignored when a folder is given, as there)."""
    if not isinstance(comment, str):
        raise TypeError(f"comment must be a str, got {type(comment).__name__}")
    if log_dir is not None and logdir is not None and log_dir != logdir:
        raise TypeError(
            f"give the folder once: log_dir={log_dir!r} and logdir={logdir!r} are both set "
            "(they are the same argument, torch's and tensorboardX's names)"
        )
    folder = log_dir if log_dir is not None else logdir
    if folder is None:
        return check_folder_path(default() + comment)
    return check_folder_path(folder)


def check_run_name(run_name: object) -> str | None:
    """``add_hparams``' ``run_name``: None (or "") for a new run of its own, ``"."`` for the
    writer's own run, else a folder below the writer's, named relatively and staying inside."""
    if run_name is None or run_name == "":
        return None
    if not isinstance(run_name, str):
        raise TypeError(f"run_name must be a str or None, got {type(run_name).__name__}")
    check_unicode(run_name, "run_name")
    parts = run_name.replace(os.sep, "/").split("/")
    if "\0" in run_name or os.path.isabs(run_name) or ".." in parts:
        raise ValueError(
            f"run_name must name a folder inside the writer's log_dir (relative, no '..', no "
            f"NUL), got {run_name!r}; '.' logs into the writer's own run"
        )
    return os.path.normpath(run_name)


def _path_limits(base: str) -> tuple[int, int]:
    """(the longest file name, the longest path), in bytes, that the file system under
    ``base`` takes: 255 and 4096 where it does not say (Linux's NAME_MAX and PATH_MAX)."""
    folder = os.path.abspath(base)
    while not os.path.isdir(folder) and os.path.dirname(folder) != folder:
        folder = os.path.dirname(folder)
    limits = []
    for name, default in (("PC_NAME_MAX", 255), ("PC_PATH_MAX", 4096)):
        try:
            limits.append(int(os.pathconf(folder, name)))
        except (OSError, ValueError, AttributeError):
            limits.append(default)
    return limits[0], limits[1]


def check_folder(base: str, relative: str, what: str, look: bool = True) -> str:
    """``os.path.join(base, relative)``, a run folder a call is about to make, if it can be
    made: each name at most the file system's NAME_MAX bytes in UTF-8 (Linux: 255), the path
    with an event file's name in it at most PATH_MAX (Linux: 4096), and, with
    ``look``, no file in the way (the run folder or a folder above it an existing file) —
    checked at the call, before anything is made (``add_scalars``' folders are made later, on
    the writer thread), so a bad name is a ValueError, not an OSError.

    Raises:
        ValueError: naming ``what`` (the argument, e.g. ``"run_name 'r…'"``) and the fix.
    """
    most, longest = _path_limits(base)
    size = len(os.fsencode(os.path.abspath(os.path.join(base, relative))))
    if size + most + 2 > longest:  # the folder, a separator and its event file's name
        raise ValueError(
            f"{what}: its folder's path is {size} bytes; with an event file's name it would "
            f"pass the {longest} bytes a path may have here; use a shorter name"
        )
    path = base
    for part in relative.replace(os.sep, "/").split("/"):
        size = len(os.fsencode(part))
        if size > most:
            raise ValueError(
                f"{what}: its folder name {part[:24]!r}… is {size} bytes, more than the "
                f"{most} a file name may have here; use a shorter name"
            )
        path = os.path.join(path, part)
        if look and os.path.lexists(path) and not os.path.isdir(path):
            raise ValueError(
                f"{what}: a file is at {path!r}, where its folder would be; choose another "
                "name or move the file"
            )
    return os.path.join(base, relative)


def either_name(run_name: object, name: object) -> object:
    """``add_hparams``' ``run_name`` or its alias ``name`` (tensorboardX's)."""
    if run_name is not None and run_name != name:
        raise TypeError(
            f"give the run's name once: run_name={run_name!r} and name={name!r} are the same "
            "argument (torch's and tensorboardX's names)"
        )
    return name


def either_step(global_step: object, step: object) -> object:
    """``global_step`` or its alias ``step``: the one given (None if neither)."""
    if step is None:
        return global_step
    if global_step is not None:
        raise TypeError(
            f"give the step once: global_step={global_step!r} and step={step!r} are the same "
            "argument (step= is gpu_summary's name for torch's global_step)"
        )
    return step


def check_writer_options(
    flush_secs: object,
    max_queue: object,
    max_queue_bytes: object,
    filename_suffix: object,
    on_anomaly: object = None,
    write_to_disk: object = True,
) -> None:
    """Check SummaryWriter's queue, file and call-back options."""
    if not isinstance(write_to_disk, (bool, np.bool_)):
        raise TypeError(f"write_to_disk must be True or False, got {write_to_disk!r}")
    if isinstance(flush_secs, bool) or not isinstance(flush_secs, (int, float)):
        raise TypeError(f"flush_secs must be a number of seconds, got {flush_secs!r}")
    if not 0 < to_float(flush_secs) < math.inf:
        raise ValueError(f"flush_secs must be a finite number > 0, got {flush_secs!r:.40}")
    check_positive_int(max_queue, "max_queue", "use at least 1")
    check_positive_int(max_queue_bytes, "max_queue_bytes", "use at least 1")
    if not isinstance(filename_suffix, str) or any(c in filename_suffix for c in "/\0"):
        raise ValueError(
            f"filename_suffix must be a str without '/' or NUL, got {filename_suffix!r}"
        )
    if on_anomaly is not None and not callable(on_anomaly):
        raise TypeError(f"on_anomaly must be a callable taking a report, got {on_anomaly!r}")


def message_bytes(message: object, kind: str, argument: str) -> bytes:
    """The wire format of a protobuf message named ``kind`` (``"Summary"``, ``"Event"``, ...)
    of any package — ours, TensorBoard's, tensorboardX's, torch's: the same fields."""
    descriptor = getattr(message, "DESCRIPTOR", None)
    if getattr(descriptor, "name", None) != kind or not hasattr(message, "SerializeToString"):
        raise TypeError(
            f"{argument} must be a {kind} protobuf message, got {type(message).__name__}"
        )
    return message.SerializeToString()
