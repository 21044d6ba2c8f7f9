"""Anomaly reports as TensorBoard summaries: scalars, a positions table, a heat map, a histogram.

One report becomes one Summary whose values TensorBoard's dashboards show side by side:

- scalars ``<tag>/anomaly/nan``, ``.../posinf``, ``.../neginf`` (and ``.../below``,
  ``.../above`` when the bound was given), ``<tag>/quantile/p00`` .. ``p100`` and
  ``<tag>/quantile/whisker_low``/``whisker_high`` (the box plot's whiskers);
- text ``<tag>/anomaly/positions``: a Markdown table of the first offending positions;
- image ``<tag>/anomaly/heatmap``: each cell's mean of the finite values on a viridis-like
  scale, cells holding NaN/±Inf in red, cells past the tensor's end in dark gray;
- histogram ``<tag>/anomaly/values`` of the finite values (TensorBoard's default buckets).
"""

from __future__ import annotations

import numpy as np

from gpu_summary._core.anomaly import AnomalyReport
from gpu_summary._core.results import HistogramResult
from gpu_summary.proto import summary_pb2
from gpu_summary.summaries.histogram import histogram_proto
from gpu_summary.summaries.image import image_summary
from gpu_summary.summaries.text import text_metadata, text_tensor

# Viridis at 0, 1/4, 1/2, 3/4 and 1, interpolated linearly in between.
_SCALE = np.array(
    [[68, 1, 84], [59, 82, 139], [33, 145, 140], [94, 201, 98], [253, 231, 37]], dtype=np.float64
)
NONFINITE_COLOR = (230, 30, 30)
EMPTY_COLOR = (40, 40, 40)
HEATMAP_PIXELS = 256  # the heat map's longer side is scaled up to about this many pixels


def quantile_tag(tag: str, q: float) -> str:
    """``<tag>/quantile/pNN``: the percentage as two digits (p05, p50), p100 for the maximum."""
    return f"{tag}/quantile/p{round(q * 100):02d}"


def heatmap_pixels(report: AnomalyReport, nonfinite: np.ndarray) -> np.ndarray:
    """RGB uint8 heat map (H, W, 3) of the report's cell means; ``nonfinite`` marks red cells."""
    means = report.heatmap
    finite = np.isfinite(means)
    rgb = np.empty((*means.shape, 3), dtype=np.uint8)
    rgb[:] = EMPTY_COLOR
    if finite.any():
        lo, hi = float(means[finite].min()), float(means[finite].max())
        with np.errstate(over="ignore", invalid="ignore"):
            span = hi - lo
            if span > 0 and np.isfinite(span):
                t = (means[finite] - lo) / span
            else:  # one value everywhere (or a span beyond float64): the middle colour
                t = np.full(int(finite.sum()), 0.5)
        position = np.clip(np.nan_to_num(t, nan=0.5), 0.0, 1.0) * (len(_SCALE) - 1)
        low = np.minimum(position.astype(np.int64), len(_SCALE) - 2)
        weight = (position - low)[:, None]
        colors = _SCALE[low] * (1 - weight) + _SCALE[low + 1] * weight
        rgb[finite] = np.floor(colors + 0.5).astype(np.uint8)
    rgb[nonfinite > 0] = NONFINITE_COLOR
    scale = max(1, HEATMAP_PIXELS // max(means.shape))
    return np.repeat(np.repeat(rgb, scale, axis=0), scale, axis=1)


def positions_markdown(report: AnomalyReport) -> str:
    """The positions table: a summary line, then ``| index | value | kind |`` rows."""
    counts = (
        f"{report.total} offending of {report.count + report.nan + report.posinf + report.neginf}"
        f" values: NaN {report.nan}, +Inf {report.posinf}, -Inf {report.neginf}, "
        f"below {report.below}, above {report.above}"
    )
    if not report.positions:
        return counts
    ranked = any(p.rank is not None for p in report.positions)
    head = "| rank | index | value | kind |" if ranked else "| index | value | kind |"
    rows = [counts, f"first {len(report.positions)}:", "", head]
    rows.append("|---|---|---|---|" if ranked else "|---|---|---|")
    for position in report.positions:
        index = ", ".join(str(i) for i in position.index)
        cells = f"({index}) | {position.value!r} | {position.kind} |"
        rows.append(f"| {position.rank} | {cells}" if ranked else f"| {cells}")
    return "\n".join(rows)


def anomaly_summary(
    report: AnomalyReport,
    histogram: HistogramResult,
    heat_nonfinite: np.ndarray,
    lower: float | None,
    upper: float | None,
) -> summary_pb2.Summary:
    """Every value of one anomaly report (see the module docstring)."""
    tag = report.tag
    summary = summary_pb2.Summary()

    def scalar(name: str, number: float) -> None:
        summary.value.add(tag=name, simple_value=number)

    scalar(f"{tag}/anomaly/nan", report.nan)
    scalar(f"{tag}/anomaly/posinf", report.posinf)
    scalar(f"{tag}/anomaly/neginf", report.neginf)
    if lower is not None:
        scalar(f"{tag}/anomaly/below", report.below)
    if upper is not None:
        scalar(f"{tag}/anomaly/above", report.above)
    for q, number in report.quantiles.items():
        scalar(quantile_tag(tag, q), number)
    if report.whiskers is not None:
        scalar(f"{tag}/quantile/whisker_low", report.whiskers[0])
        scalar(f"{tag}/quantile/whisker_high", report.whiskers[1])
    text = summary.value.add(tag=f"{tag}/anomaly/positions", metadata=text_metadata())
    text.tensor.CopyFrom(text_tensor([positions_markdown(report)], scalar=True))
    pixels = heatmap_pixels(report, heat_nonfinite)
    summary.value.append(image_summary(f"{tag}/anomaly/heatmap", pixels[None]).value[0])
    histo = summary.value.add(tag=f"{tag}/anomaly/values")
    histo.histo.CopyFrom(histogram_proto(histogram, collapse_empty_runs=True))
    return summary
