"""The Projector's files: pure builders of their bytes from host arrays.

TensorBoard's Projector reads ``projector_config.pbtxt`` (a text-format ``ProjectorConfig``) in a
run directory; each embedding names its tensor file (TSV of N rows of D numbers; or raw
little-endian float32, N×D, which the plugin reads when the file is not UTF-8 text, then shaped
by the config's ``tensor_shape``), its metadata TSV (one label per line; with several columns, a
header row first) and its sprite (a square grid of equal thumbnails, row-major, at most 8192 px
a side). Paths are relative to the config file and must stay inside its directory, which the
plugin enforces too. The files of ``<tag>`` at ``<step>`` go where torch's writer puts them,
``<run>/<step, 5 digits>/<tag>/{tensors.tsv, metadata.tsv, sprite.png}``.
"""

from __future__ import annotations

import hashlib
import math
import urllib.parse
from collections.abc import Iterator

import numpy as np
from google.protobuf import text_format

from gpu_summary.proto import projector_config_pb2

CONFIG_FILE = "projector_config.pbtxt"
MAX_SPRITE_SIDE = 8192
# How add_embedding may write the matrix: torch's text (the default), or our raw float32.
TENSOR_FORMATS = ("tsv", "bytes")
# Rows of text built at a time: the file is streamed, never held whole (a 2 GiB matrix is
# several times that as text).
_TSV_ROWS = 4096


def tensor_name(tag: str, step: int) -> str:
    """The embedding's name in the dashboard: ``<tag>:<step, 5 digits>``."""
    return f"{tag}:{step:05d}"


# File systems take names of at most 255 bytes; a longer encoded tag keeps its first
# _KEPT_BYTES and a digest of the whole (the full tag stays in the config's tensor_name).
MAX_COMPONENT = 200
_KEPT_BYTES = MAX_COMPONENT - 34


def safe_component(name: str) -> str:
    """``name`` as one path component that cannot leave its folder: every character but
    letters, digits, ``-``, ``_`` and ``.`` percent-encoded, and a leading dot too (so neither
    ``..`` nor hidden names survive); at most ``MAX_COMPONENT`` bytes (a longer one: its first
    characters, ``~`` and 32 hex digits of its SHA-256, so distinct names stay distinct)."""
    quoted = urllib.parse.quote(name, safe="")
    if quoted.startswith("."):
        quoted = "%2E" + quoted[1:]
    if len(quoted) <= MAX_COMPONENT:
        return quoted
    kept = quoted[:_KEPT_BYTES]
    escape = kept.rfind("%")
    if escape > len(kept) - 3:  # never cut inside a %XX escape
        kept = kept[:escape]
    digest = hashlib.sha256(name.encode("utf-8", "surrogatepass")).hexdigest()[:32]
    return f"{kept}~{digest}"


def asset_folder(tag: str, step: int) -> str:
    """Relative folder of one embedding's files (forward slashes, inside the run): torch's
    ``<step, 5 digits>/<tag>`` — the same path for a tag of letters, digits, ``-``, ``_`` and
    ``.``; any other character percent-encoded (torch writes most of them as given)."""
    return f"{step:05d}/{safe_component(tag)}"


def escape_label(label: str) -> str:
    """A TSV cell: backslash, tab, newline and carriage return written as ``\\\\``, ``\\t``,
    ``\\n``, ``\\r`` so that every label stays in its row and column."""
    return (
        label.replace("\\", "\\\\").replace("\t", "\\t").replace("\n", "\\n").replace("\r", "\\r")
    )


def metadata_tsv(rows: list[tuple[str, ...]], header: tuple[str, ...] | None) -> bytes:
    """UTF-8 TSV of the labels: one line per point; ``header`` first when there is one (the
    Projector takes a first line holding a tab for a header, so one column never has one)."""
    lines = []
    if header is not None and len(header) > 1:
        lines.append("\t".join(escape_label(h) for h in header))
    lines.extend("\t".join(escape_label(cell) for cell in row) for row in rows)
    return ("\n".join(lines) + "\n").encode("utf-8")


def check_tensor_format(tensor_format: object) -> str:
    """``tensor_format`` when it is one of ``TENSOR_FORMATS``; else ValueError naming them."""
    if tensor_format not in TENSOR_FORMATS:
        raise ValueError(
            f"tensor_format must be 'tsv' or 'bytes', got {tensor_format!r}: 'tsv' writes "
            "torch's tensors.tsv, 'bytes' the compact raw float32 tensors.bytes"
        )
    return tensor_format


def tensor_tsv(matrix: np.ndarray) -> Iterator[bytes]:
    """An N×D float32 matrix as torch's ``tensors.tsv``, in chunks of a few thousand rows: each
    value as ``str`` of its exact double (the shortest text that parses back to it, so also
    exactly to the float32), tab-separated, a newline after every row."""
    for start in range(0, len(matrix), _TSV_ROWS):
        rows = matrix[start : start + _TSV_ROWS].astype(np.float64).tolist()
        yield "".join("\t".join(map(repr, row)) + "\n" for row in rows).encode("ascii")


def tensor_file(matrix: np.ndarray, tensor_format: str) -> tuple[bytes | Iterator[bytes], str]:
    """(file content, file name) of an N×D float32 matrix in ``tensor_format``: ``"tsv"``,
    torch's text; ``"bytes"``, raw little-endian float32, unless those bytes happen to decode
    as UTF-8 (all zeros, for one), which the Projector would then parse as TSV: TSV instead."""
    if tensor_format == "bytes":
        data = np.ascontiguousarray(matrix, dtype="<f4").tobytes()
        try:
            data.decode("utf-8")
        except UnicodeDecodeError:
            return data, "tensors.bytes"
    return tensor_tsv(matrix), "tensors.tsv"


def sprite_side(n: int, height: int, width: int) -> int:
    """Longest side of each thumbnail so that ``ceil(sqrt(n))`` of them fit in 8192 px."""
    per_row = math.isqrt(n - 1) + 1
    return max(1, min(max(height, width), MAX_SPRITE_SIDE // per_row))


def sprite(thumbnails: np.ndarray) -> np.ndarray:
    """A square grid (``ceil(sqrt(n))`` a side, row-major, black padding) of uint8 NHWC
    thumbnails, as one HWC image: one image's memory beside the thumbnails (none for one
    thumbnail, which is the sprite), since the caller of ``add_embedding`` holds both."""
    n, height, width, channels = thumbnails.shape
    per_row = math.isqrt(n - 1) + 1
    if per_row == 1:
        return thumbnails[0]
    grid = np.zeros((per_row * height, per_row * width, channels), dtype=np.uint8)
    cells = grid.reshape(per_row, height, per_row, width, channels).transpose(0, 2, 1, 3, 4)
    for row in range(per_row):  # a view of the grid's cells, filled a row of images at a time
        images = thumbnails[row * per_row : (row + 1) * per_row]
        cells[row, : len(images)] = images
    return grid


def read_config(text: str) -> projector_config_pb2.ProjectorConfig:
    """Parse a ``projector_config.pbtxt``; ValueError when it is not one."""
    config = projector_config_pb2.ProjectorConfig()
    try:
        text_format.Parse(text, config)
    except text_format.ParseError as exc:
        raise ValueError(f"not a ProjectorConfig: {exc}") from None
    return config


def config_text(config: projector_config_pb2.ProjectorConfig) -> str:
    """The text format the Projector parses."""
    return text_format.MessageToString(config)
