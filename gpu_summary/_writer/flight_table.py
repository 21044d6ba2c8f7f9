"""The flight recorder's table: Markdown, logged as text (plugin ``text``), naming the first
tensor that held NaN or ±Inf, then the last steps of every watched tensor's statistics.

TensorBoard's Text tab renders it as Markdown: a heading line, the tensors that offended at
that step (in the order the step produced them), and one table row per tensor and step.
"""

from __future__ import annotations

from gpu_summary._core.flight import FlightStats
from gpu_summary.proto import summary_pb2
from gpu_summary.summaries.text import text_summary

COLUMNS = ("tensor", "step", "min", "max", "mean", "rms", "nonfinite", "zeros")
MISSING = "—"  # a statistic there is none of (no finite value), or a step the ring lost


def _number(value: float | None) -> str:
    return MISSING if value is None else f"{value:.6g}"


def _name(tag: str) -> str:
    """``tag`` as a code span, as TensorBoard's Markdown reads it: a ``|`` inside a code span
    stays in the cell (no escape, which would show), a backtick needs a double fence."""
    if "`" in tag:
        return f"`` {tag} ``"
    return f"`{tag}`"


MAX_ROWS = 5_000  # the table's rows at most (a row is some 100 bytes): K steps x every tensor


def _capped(rows: list, offenders: set[str]) -> tuple[list, str]:
    """``rows`` cut to at most MAX_ROWS: the last steps of each tensor, as many as fit (two
    at least), and past that the tensors holding NaN/±Inf first; the sentence saying so."""
    total = sum(len(per_step) for _, per_step in rows)
    if total <= MAX_ROWS:
        return rows, ""
    per = max(2, MAX_ROWS // len(rows))
    fit = MAX_ROWS // per
    chosen = [tag for tag, _ in rows if tag in offenders][:fit]
    chosen += [tag for tag, _ in rows if tag not in offenders][: fit - len(chosen)]
    keep = set(chosen)
    kept = [(tag, per_step[-per:]) for tag, per_step in rows if tag in keep]
    left = len(rows) - len(kept)
    note = (f"The table is capped at {MAX_ROWS:,} rows: the last {per} steps of each tensor"
            + (f", and {left:,} tensors not holding NaN/±Inf left out" if left else "")
            + ".")  # fmt: skip
    return kept, note


def _row(tag: str, step: int, stats: FlightStats | None) -> str:
    if stats is None:
        cells = [_name(tag), str(step), *[MISSING] * 6]
    else:
        cells = [_name(tag), str(step), _number(stats.min), _number(stats.max),
                 _number(stats.mean), _number(stats.rms),
                 f"**{stats.nonfinite:,}**" if stats.nonfinite else "0",
                 str(stats.zeros)]  # fmt: skip
    return "| " + " | ".join(cells) + " |"


def _kinds(stats: FlightStats) -> str:
    parts = [(stats.nan, "NaN"), (stats.posinf, "+Inf"), (stats.neginf, "-Inf")]
    return ", ".join(f"{n:,} {kind}" for n, kind in parts if n)


def flight_table(
    first: str, step: int, offenders: list[tuple[str, FlightStats]],
    rows: list[tuple[str, list[tuple[int, FlightStats | None]]]],
) -> str:  # fmt: skip
    """The Markdown of the table.

    Args:
        first: the tag of the first offending tensor.
        step: the step it offended at.
        offenders: (tag, stats) of every tensor holding NaN/±Inf at ``step``, in the order
            the step produced them (``first``'s first).
        rows: (tag, [(step, stats or None where the ring no longer held it)]) per tensor, in
            the order the table shows them.
    """
    stats = offenders[0][1]
    size = stats.count + stats.nonfinite
    rows, cap = _capped(rows, {tag for tag, _ in offenders})
    steps = [s for _, per_step in rows[:1] for s, _ in per_step]
    span = f"{steps[0]}–{steps[-1]}" if steps else str(step)
    lines = [
        f"**First NaN/±Inf: {_name(first)} at step {step}** ({_kinds(stats)} of {size:,} "
        f"value{'' if size == 1 else 's'}).",
        "",
        "Holding NaN/±Inf at that step, in the order it produced them: "
        + ", ".join(_name(tag) for tag, _ in offenders) + ".",
        "",
        f"Every watched tensor at steps {span} (min, max, mean and rms of the finite values; "
        f"{MISSING} where there are none):" + (f" {cap}" if cap else ""),
        "",
        "| " + " | ".join(COLUMNS) + " |",
        "|---|" + "---:|" * (len(COLUMNS) - 1),
    ]  # fmt: skip
    for tag, per_step in rows:
        lines.extend(_row(tag, s, found) for s, found in per_step)
    return "\n".join(lines)


def flight_summary(tag: str, markdown: str) -> summary_pb2.Summary:
    """The table as ``add_text`` logs text: under ``<tag>/text_summary``, a vector of one."""
    return text_summary(tag + "/text_summary", [markdown], False)
