"""``add_embedding``: the matrix (or its principal components) reduced where it lives, the
labels and sprite prepared on the caller's thread, and the Projector's files written there
too, before the call returns (as torch's writer does)."""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from gpu_summary._backend import backend_for
from gpu_summary._core import arguments
from gpu_summary._embedding import arguments as embedding_args
from gpu_summary._embedding import projector_format as projector_files
from gpu_summary._writer.state import WriterState


def log_embedding(
    state: WriterState,
    mat: object,
    metadata: object = None,
    label_img: object = None,
    tag: str = "default",
    step: int | None = None,
    metadata_header: Sequence[str] | None = None,
    *,
    label_img_format: str | None = None,
    reduce: str | None = None,
    components: int = 10,
    tensor_format: str = "tsv",
) -> None:
    """SummaryWriter.add_embedding, on a writer's state."""
    tag, step, _ = state.begin(tag, step, None)
    tensor_format = projector_files.check_tensor_format(tensor_format)
    if reduce is not None and reduce != "pca":
        raise ValueError(f"reduce must be None or 'pca', got {reduce!r}")
    if reduce is not None:
        components = arguments.check_positive_int(
            components, "components", "keep at least one axis, e.g. components=3"
        )
    backend, matrix = backend_for(mat, "mat")
    shape = tuple(getattr(matrix, "shape", ()))
    if len(shape) == 0 or shape[0] == 0 or 0 in shape:
        raise ValueError(f"mat must be N×D with N, D >= 1, got shape {shape}")
    n = shape[0]
    embedding_args.check_points(shape, "mat")
    labels = embedding_args.labels(metadata, n)
    header = None
    if labels is not None:
        columns = labels[1]
        if metadata_header is not None:
            header = tuple(embedding_args.header(metadata_header, columns))
        elif columns > 1:
            header = tuple(f"column_{i}" for i in range(columns))
    if not state.writes_files:
        return  # rank 0's embedding only
    thumbnails = None
    if label_img is not None:
        thumbnails = embedding_args.sprite_thumbnails(label_img, label_img_format, n)
    pending = backend.embedding(matrix, components if reduce else None)
    step = state.resolve_step(tag, step)
    # Sync point (the call's documented one): the files are on disk when it returns, as
    # torch's are. Everything was launched above; each wait is for that result's own copy to
    # the host (a CUDA event on the producer's stream, not the whole device), in launch order.
    rows = None if labels is None else embedding_args.label_rows(labels[0].result())
    images = None if thumbnails is None else thumbnails.result()
    points = pending.result()
    if reduce and not np.isfinite(points).all():
        raise ValueError(
            "mat holds NaN or ±Inf, which principal components cannot place; log it without "
            "reduce='pca', or check it first with add_anomaly"
        )
    state.projector.write(tag, step, points, rows, header, images, tensor_format)
