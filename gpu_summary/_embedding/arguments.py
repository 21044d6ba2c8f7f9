"""Arguments of ``add_embedding`` (and the seed's ``Projector``): checked on the caller's thread,
turned into pending host results that the same call then waits for and writes."""

from __future__ import annotations

import math

import numpy as np

from gpu_summary._backend import backend_for
from gpu_summary._core import arguments
from gpu_summary._core.results import Pending, Ready
from gpu_summary._embedding import projector_format as projector_files


def sprite_thumbnails(label_img: object, layout: str | None, n: int) -> Pending:
    """Launch the sprite thumbnails of ``n`` sample images (see ``add_embedding``)."""
    backend, images = backend_for(label_img, "label_img")
    shape = tuple(images.shape)
    if layout is None:
        if len(shape) == 3:
            layout = "NHW"
        elif len(shape) == 4:
            layout = "NCHW" if shape[1] in (1, 3, 4) else "NHWC"
        else:
            raise ValueError(f"label_img must be N×C×H×W, N×H×W×C or N×H×W, got shape {shape}")
    layout = arguments.check_dataformats(layout, arguments.IMAGES_FORMATS, "label_img_format")
    nhwc = arguments.check_images(images, layout, "label_img", "label_img_format", count=n)
    _, height, width, _ = nhwc.shape
    side = projector_files.sprite_side(n, height, width)
    return backend.thumbnails(nhwc, side)


# The Projector's matrix as float32 at most this large: TensorBoard serves the file whole, and
# a browser holds it in one buffer.
MAX_POINTS_BYTES = arguments.MAX_RECORD_BYTES
# Labels of one call at most: each becomes a str on the caller's thread.
MAX_LABELS = 1 << 24


def check_points(shape: tuple[int, ...], argument: str) -> None:
    """Raise ValueError, before anything is converted, for an N×D matrix (N×d1×... counted
    whole) larger than the Projector takes (``MAX_POINTS_BYTES`` as float32)."""
    values = math.prod(shape)
    if 4 * values > MAX_POINTS_BYTES:
        raise ValueError(
            f"{argument} has {values:,} values ({shape[0]:,} points): {4 * values / 2**30:.1f} "
            f"GiB as float32, more than the 2 GiB the Projector serves in one file; log fewer "
            f"points or dimensions (e.g. {argument}[::k])"
        )


def check_labels(count: int) -> None:
    """Raise ValueError for more than ``MAX_LABELS`` labels, before any is converted."""
    if count > MAX_LABELS:
        raise ValueError(
            f"metadata has {count:,} labels, more than the {MAX_LABELS:,} one call may give; "
            "log fewer columns or points"
        )


def labels(metadata: object, n: int) -> tuple[Pending, int] | None:
    """(pending host copy of the labels, number of columns), after checking the count."""
    if metadata is None:
        return None
    if isinstance(metadata, str):
        raise TypeError("metadata must be a sequence of N labels, not one str")
    if isinstance(metadata, (list, tuple)):
        if len(metadata) != n:
            raise ValueError(f"metadata has {len(metadata)} labels but mat has {n} rows")
        widths = {len(row) if isinstance(row, (list, tuple)) else 1 for row in metadata}
        if len(widths) != 1:
            raise ValueError(
                f"metadata rows must all have the same number of columns, found {sorted(widths)}"
            )
        check_labels(n * min(widths))
        # Made str before anything is launched or written: a bad label raises at once.
        return Ready(label_rows(metadata)), widths.pop()
    backend, labels = backend_for(metadata, "metadata")
    shape = tuple(labels.shape)
    if len(shape) not in (1, 2) or shape[0] != n:
        raise ValueError(f"metadata must be N or N×columns with N = {n}, got shape {shape}")
    check_labels(math.prod(shape))
    return backend.to_host(labels), (shape[1] if len(shape) == 2 else 1)


def label_cell(cell: object) -> str:
    if isinstance(cell, str):
        return arguments.check_unicode(cell, "metadata label")
    if isinstance(cell, bytes):
        return cell.decode("utf-8", errors="replace")
    if isinstance(cell, np.generic):
        cell = cell.item()
    elif hasattr(cell, "item") and getattr(cell, "shape", None) is not None:
        if int(np.prod(cell.shape)) == 1:  # a one-element tensor or array: its number
            cell = cell.item()
    if isinstance(cell, (int, float, bool)):
        return str(cell)
    raise TypeError(
        f"metadata labels must be str, bytes, numbers or one-element tensors, got "
        f"{type(cell).__name__}: {cell!r:.80}"
    )


def label_rows(labels: object) -> list[tuple[str, ...]]:
    rows = []
    for row in labels:
        if isinstance(row, (list, tuple, np.ndarray)):
            rows.append(tuple(label_cell(cell) for cell in row))
        else:
            rows.append((label_cell(row),))
    return rows


def header(header: object, columns: int) -> list[str]:
    if isinstance(header, str) or not isinstance(header, (list, tuple)):
        raise TypeError("metadata_header must be a list of column names")
    if len(header) != columns or not all(isinstance(h, str) for h in header):
        raise ValueError(
            f"metadata_header must name each of the {columns} metadata columns with a str, "
            f"got {header!r}"
        )
    return [arguments.check_unicode(h, "metadata_header") for h in header]
