"""Reading logs back: the events of an event file with their offsets, and an inventory of a
whole logdir (what ``gpu-summary inspect`` prints).

Nothing here trusts the bytes: a record whose checksums fail, a truncated tail (a writer may
still be appending it), a record that is not an Event, or a projector config that does not
parse is reported with its byte offset and skipped; the rest is read. A run is, as for
TensorBoard, each directory holding an event file (``*tfevents*``) or a
``projector_config.pbtxt``; its name is its path relative to the logdir (``.`` for the logdir
itself).
"""

from __future__ import annotations

import dataclasses
import os
import stat
from collections.abc import Iterator

from google.protobuf import message as _message
from google.protobuf import text_format

from gpu_summary._events.records import RecordProblem, iter_records
from gpu_summary.proto import event_pb2, projector_config_pb2, summary_pb2

__all__ = [
    "EventFile",
    "Problem",
    "Run",
    "Series",
    "format_report",
    "inspect_logdir",
    "read_events",
    "report_json",
]

PROJECTOR_CONFIG = "projector_config.pbtxt"
# What each Summary.Value kind is shown by, when its metadata names no plugin.
_VALUE_PLUGINS = {
    "simple_value": "scalars",
    "histo": "histograms",
    "image": "images",
    "audio": "audio",
    "tensor": "tensors",
}


@dataclasses.dataclass(frozen=True)
class Problem:
    """A stretch of a file that could not be read.

    Attributes:
        path: the file.
        offset: byte offset where it starts (the record's header for event files).
        reason: what is wrong.
        unread: bytes from ``offset`` to the end of the file that were not read (a damaged
            length field or a truncated tail ends the walk; 0 for a record that was skipped).
    """

    path: str
    offset: int
    reason: str
    unread: int = 0

    def describe(self) -> str:
        text = f"offset {self.offset}: {self.reason}"
        if self.unread:
            text += f" ({self.unread} bytes to the end of the file not read)"
        return text


def read_events(path: str | os.PathLike) -> Iterator[tuple[int, event_pb2.Event] | Problem]:
    """The events of an event file, in order: ``(offset, Event)`` for every whole, valid
    record that holds an Event, and a :class:`Problem` for everything else.

    The file is read one record at a time (memory holds one record), up to the size it had
    when the walk began.
    """
    path = os.fspath(path)
    with open(path, "rb") as file:
        size = os.fstat(file.fileno()).st_size
        for item in iter_records(file):
            if isinstance(item, RecordProblem):
                terminal = item.reason != "data checksum mismatch"
                reason = item.reason
                if item.reason.startswith("truncated"):
                    reason += ": an incomplete record at the end (a writer may be appending)"
                yield Problem(path, item.offset, reason, size - item.offset if terminal else 0)
                continue
            offset, record = item
            try:
                event = event_pb2.Event.FromString(record)
            except _message.DecodeError:
                yield Problem(path, offset, "valid record, but not an Event message")
                continue
            yield offset, event


@dataclasses.dataclass
class Series:
    """One tag of one plugin in a run: how many events hold it, over which steps."""

    plugin: str
    tag: str
    records: int = 0
    first_step: int | None = None
    last_step: int | None = None

    def add(self, step: int) -> None:
        self.records += 1
        if self.first_step is None or step < self.first_step:
            self.first_step = step
        if self.last_step is None or step > self.last_step:
            self.last_step = step


@dataclasses.dataclass
class EventFile:
    """One event file: its size, how many records were read, and its problems."""

    path: str
    size: int
    records: int = 0
    problems: list[Problem] = dataclasses.field(default_factory=list)


@dataclasses.dataclass
class Run:
    """One run directory: its event files, its series by (plugin, tag), its embeddings."""

    name: str
    path: str
    files: list[EventFile] = dataclasses.field(default_factory=list)
    series: dict[tuple[str, str], Series] = dataclasses.field(default_factory=dict)
    embeddings: list[str] = dataclasses.field(default_factory=list)
    problems: list[Problem] = dataclasses.field(default_factory=list)  # of other files

    @property
    def records(self) -> int:
        return sum(file.records for file in self.files)

    def all_problems(self) -> list[Problem]:
        return [p for file in self.files for p in file.problems] + self.problems

    def _add(self, plugin: str, tag: str, step: int) -> None:
        series = self.series.get((plugin, tag))
        if series is None:
            series = self.series[(plugin, tag)] = Series(plugin, tag)
        series.add(step)


def _value_plugin(value: summary_pb2.Summary.Value, known: dict[str, str]) -> str:
    """The plugin that shows ``value``: its metadata's, else the one an earlier value of the
    same tag named (TensorBoard writers send metadata with a tag's first value only), else
    the kind of value it holds."""
    name = value.metadata.plugin_data.plugin_name
    if name:
        known[value.tag] = name
        return name
    return known.get(value.tag) or _VALUE_PLUGINS.get(value.WhichOneof("value"), "other")


def _read_file(run: Run, path: str) -> None:
    file = EventFile(path, os.path.getsize(path))
    run.files.append(file)
    plugins: dict[str, str] = {}
    try:
        for item in read_events(path):
            if isinstance(item, Problem):
                file.problems.append(item)
                continue
            file.records += 1
            _, event = item
            kind = event.WhichOneof("what")
            if kind == "summary":
                for value in event.summary.value:
                    run._add(_value_plugin(value, plugins), value.tag, event.step)
            elif kind == "graph_def":
                run._add("graphs", "(graph)", event.step)
            elif kind == "tagged_run_metadata":
                run._add("graphs", event.tagged_run_metadata.tag, event.step)
            elif kind == "session_log":
                run._add("session_log", str(event.session_log.status), event.step)
            elif kind is not None and kind != "file_version":
                run._add(kind, f"({kind})", event.step)
    except OSError as exc:
        file.problems.append(Problem(path, 0, f"cannot read the file: {exc}", file.size))


def _read_projector(run: Run) -> None:
    path = os.path.join(run.path, PROJECTOR_CONFIG)
    config = projector_config_pb2.ProjectorConfig()
    try:
        with open(path, encoding="utf-8") as file:
            text_format.Parse(file.read(), config)
    except (OSError, UnicodeDecodeError, text_format.ParseError) as exc:
        run.problems.append(Problem(path, 0, f"projector config unreadable: {exc}"))
        return
    for embedding in config.embeddings:
        run.embeddings.append(embedding.tensor_name)
        for field in ("tensor_path", "metadata_path"):
            named = getattr(embedding, field)
            if named and not os.path.isfile(os.path.join(run.path, named)):
                run.problems.append(
                    Problem(path, 0, f"{embedding.tensor_name}: {field} {named!r} is missing")
                )
        sprite = embedding.sprite.image_path
        if sprite and not os.path.isfile(os.path.join(run.path, sprite)):
            run.problems.append(
                Problem(path, 0, f"{embedding.tensor_name}: sprite {sprite!r} is missing")
            )


def _not_a_regular_file(path: str) -> str | None:
    """None for a regular file (not a link); else what it is, in words."""
    try:
        mode = os.lstat(path).st_mode
    except OSError as exc:
        return f"cannot be examined ({exc.strerror or exc})"
    if stat.S_ISREG(mode):
        return None
    if stat.S_ISLNK(mode):
        return "a symbolic link (not followed)"
    if stat.S_ISFIFO(mode):
        return "a FIFO"
    return "a socket or device" if not stat.S_ISDIR(mode) else "a folder"


def inspect_logdir(logdir: str | os.PathLike) -> list[Run]:
    """Every run under ``logdir`` (sorted by name), read through; a folder that cannot be
    listed is a run of its own with that problem.

    Raises:
        FileNotFoundError: ``logdir`` is not a directory.
    """
    logdir = os.fspath(logdir)
    if not os.path.isdir(logdir):
        raise FileNotFoundError(f"no such directory: {logdir!r}")
    runs = []
    unreadable: list[OSError] = []  # folders os.walk could not list (it skips them silently)
    for folder, dirnames, filenames in os.walk(logdir, onerror=unreadable.append):
        dirnames.sort()  # symlinked folders: not entered
        names = sorted(name for name in filenames if "tfevents" in name)
        has_config = PROJECTOR_CONFIG in filenames
        if not names and not has_config:
            continue
        name = os.path.relpath(folder, logdir)
        run = Run(name, folder)
        for event_file in names:
            path = os.path.join(folder, event_file)
            kind = _not_a_regular_file(path)
            if kind is None:
                _read_file(run, path)
            else:  # a FIFO would block open() forever; a link may lead out of the logdir
                run.problems.append(Problem(path, 0, f"skipped: {kind}, not a regular file"))
        if has_config:
            _read_projector(run)
        runs.append(run)
    for error in unreadable:  # a run that may hold event files: reported, never passed over
        folder = os.fspath(error.filename or logdir)
        run = Run(os.path.relpath(folder, logdir), folder)
        run.problems.append(
            Problem(folder, 0, f"cannot list the folder: {error.strerror or error}")
        )
        runs.append(run)
    runs.sort(key=lambda run: run.name)
    return runs


TAG_COLUMN = 60  # widest tag column of the text report


def _steps(series: Series) -> str:
    if series.first_step == series.last_step:
        return f"step {series.first_step}"
    return f"steps {series.first_step}..{series.last_step}"


def _printable(text: str) -> str:
    """``text`` safe to print anywhere: file names that are not UTF-8 (surrogate escapes) and
    control characters shown as backslash escapes."""
    text = text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
    if text.isprintable():
        return text
    return "".join(c if c.isprintable() else c.encode("unicode_escape").decode() for c in text)


def _records(count: int) -> str:
    return "1 record" if count == 1 else f"{count} records"


def _size(size: int) -> str:
    for unit in ("B", "KiB", "MiB", "GiB"):
        if size < 1024 or unit == "GiB":
            return f"{size} {unit}" if unit == "B" else f"{size:.1f} {unit}"
        size /= 1024
    raise AssertionError("unreachable")


def format_report(logdir: str, runs: list[Run]) -> str:
    """The text ``gpu-summary inspect`` prints."""
    lines = []
    if not runs:
        return f"{_printable(logdir)}: no runs (no event file and no {PROJECTOR_CONFIG} under it)\n"
    for run in runs:
        size = sum(file.size for file in run.files)
        lines.append(
            f"run {_printable(run.name)}: {len(run.files)} event file(s), "
            f"{_records(run.records)}, "
            f"{_size(size)}"
        )
        # Tags are padded to the longest up to TAG_COLUMN characters; a longer one is printed
        # whole, unpadded (one huge tag must not pad every line to its length).
        width = min(max((len(_printable(tag)) for _, tag in run.series), default=0), TAG_COLUMN)
        for plugin, tag in sorted(run.series):
            series = run.series[(plugin, tag)]
            name = f"{_printable(plugin):<12} {_printable(tag):<{width}}"
            lines.append(f"  {name}  {_steps(series):<22} {_records(series.records)}")
        if run.embeddings:
            lines.append(f"  {'projector':<12} {len(run.embeddings)} embedding(s): "
                         + ", ".join(map(_printable, run.embeddings)))  # fmt: skip
        for problem in run.all_problems():
            where = _printable(os.path.relpath(problem.path, logdir))
            lines.append(f"  PROBLEM {where}: {_printable(problem.describe())}")
    problems = sum(len(run.all_problems()) for run in runs)
    files = sum(len(run.files) for run in runs)
    records = sum(run.records for run in runs)
    lines.append(
        f"{len(runs)} run(s), {files} event file(s), {_records(records)}, {problems} problem(s)"
    )
    return "\n".join(lines) + "\n"


def report_json(runs: list[Run]) -> list[dict]:
    """The inventory as plain data (``gpu-summary inspect --json``)."""
    return [
        {
            "run": run.name,
            "files": [{"path": f.path, "size": f.size, "records": f.records} for f in run.files],
            "series": [dataclasses.asdict(run.series[key]) for key in sorted(run.series)],
            "embeddings": run.embeddings,
            "problems": [dataclasses.asdict(p) for p in run.all_problems()],
        }
        for run in runs
    ]
