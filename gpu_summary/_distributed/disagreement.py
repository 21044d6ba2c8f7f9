"""The message every rank raises when the ranks' headers for a step differ, from every rank's
description of what it sent (gathered, so each rank words the same message)."""

from __future__ import annotations

import collections

_MOST_LISTED = 8  # differing calls named in a message; the rest counted


def ranks_text(ranks: list[int]) -> str:
    """``rank 3``, ``ranks 0, 2`` or ``ranks 0-7, 9`` (runs collapsed)."""
    runs: list[str] = []
    start = previous = None
    for rank in [*sorted(ranks), None]:
        if start is not None and rank == previous + 1:
            previous = rank
            continue
        if start is not None:
            runs.append(str(start) if start == previous else f"{start}-{previous}")
        start = previous = rank
    return ("rank " if len(ranks) == 1 else "ranks ") + ", ".join(runs)


def _calls(report: dict) -> str:
    calls = report["calls"]
    shown = ", ".join(calls[:_MOST_LISTED])
    more = len(calls) - _MOST_LISTED
    return shown + (f" and {more} more" if more > 0 else "") if calls else "no merged call"


def explain(reports: list[dict]) -> str:
    """The message for ranks whose batch headers differ.

    Args:
        reports: each rank's ``{"rank", "step" (None: it closed), "closed", "calls" (the
            descriptions of its merged calls, in order), "error" (None, or why its own
            reduction failed)}``, in rank order.
    """
    closed = [r["rank"] for r in reports if r["closed"]]
    logging = [r for r in reports if not r["closed"]]
    if closed:
        alike: dict[tuple, list[int]] = {}
        for r in logging:
            alike.setdefault((r["step"], tuple(r["calls"])), []).append(r["rank"])
        groups = list(alike.items())[:_MOST_LISTED]
        what = "; ".join(
            f"{ranks_text(ranks)} logged step {step}: {_calls({'calls': list(calls)})}"
            for (step, calls), ranks in groups
        )
        return (f"{ranks_text(closed)} closed the distributed writer while {what} — "
                "nothing more is merged on any rank; every rank must make the same merged "
                "calls before close()")  # fmt: skip
    failed = [r for r in reports if r["error"]]
    steps = collections.Counter(r["step"] for r in reports)
    step = steps.most_common(1)[0][0]
    if failed:
        why = "; ".join(f"{ranks_text([r['rank']])} could not reduce its shard ({r['error']})"
                        for r in failed[:_MOST_LISTED])  # fmt: skip
        return f"step {step} is merged on no rank: {why}"
    if len(steps) > 1:
        by_step = collections.defaultdict(list)
        for r in reports:
            by_step[r["step"]].append(r["rank"])
        where = ", ".join(f"{ranks_text(ranks)} at step {s}" for s, ranks in by_step.items())
        latest = max(by_step)
        behind = sorted(r["rank"] for r in reports if r["step"] != latest)
        return (f"ranks disagree about the step: {where} (a step skipped, or steps counted "
                f"differently); {ranks_text(behind)} dropped their batch, unmerged, and the "
                f"others merge step {latest} with their next one. " + _RULE)  # fmt: skip
    return (f"ranks disagree at step {step}: {_differences(reports)}; nothing of that batch "
            "was merged, on any rank. " + _RULE)  # fmt: skip


_RULE = (
    "Every rank must make the same merged calls (kind, tag, step, bins, dtype) in the "
    "same order, with its own shard"
)


def _differences(reports: list[dict]) -> str:
    everyone = [r["rank"] for r in reports]
    holders: dict[str, set[int]] = {}
    counts = [collections.Counter(r["calls"]) for r in reports]
    for report in reports:
        for call in report["calls"]:
            holders.setdefault(call, set())
    differing = []
    for call in holders:
        have = [r["rank"] for r, c in zip(reports, counts, strict=True) if c[call]]
        if len({c[call] for c in counts}) > 1:
            lacking = sorted(set(everyone) - set(have))
            if not lacking:
                times = ", ".join(f"{ranks_text([r['rank']])}: {c[call]}"
                                  for r, c in zip(reports, counts, strict=True))  # fmt: skip
                differing.append(f"{call} logged a different number of times ({times})")
            elif len(have) <= len(lacking):
                differing.append(f"{call} logged by {ranks_text(have)} only")
            else:
                differing.append(f"{call} not logged by {ranks_text(lacking)}")
    if not differing:
        orders = "; ".join(f"{ranks_text([r['rank']])}: {_calls(r)}"
                           for r in reports[:_MOST_LISTED])  # fmt: skip
        return f"the same calls in another order ({orders})"
    more = len(differing) - _MOST_LISTED
    return "; ".join(differing[:_MOST_LISTED]) + (f"; and {more} more" if more > 0 else "")
