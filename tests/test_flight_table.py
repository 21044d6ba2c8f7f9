"""The flight recorder's table as TensorBoard's Text tab renders it: names that hold Markdown's
own characters, and a table capped in size however many tensors and steps are watched."""

from __future__ import annotations

import numpy as np
from tensorboard.plugins.text import text_plugin

from gpu_summary._core.flight import FlightStats
from gpu_summary._writer import flight_table


def _stats(step, nan=0):
    return FlightStats(step=step, order=0, count=4, nan=nan, posinf=0, neginf=0, zeros=1,
                       min=-1.0, max=2.0, mean=0.5, rms=1.0)  # fmt: skip


def _html(markdown):
    return text_plugin.text_array_to_html(np.array(markdown.encode(), dtype=object), True)


def test_names_with_a_pipe_or_a_backtick_render_whole_in_their_cell():
    tags = ["gradients/a|b", "gradients/c`d"]
    rows = [(tag, [(3, _stats(3, nan=1))]) for tag in tags]
    markdown = flight_table.flight_table(tags[0], 3, [(t, _stats(3, nan=1)) for t in tags], rows)
    html = _html(markdown)
    assert "<code>gradients/a|b</code>" in html and "<code>gradients/c`d</code>" in html
    assert html.count("<tr>") == 3  # the header and one row a tensor: no cell split


def test_a_huge_table_is_capped_and_keeps_the_offenders():
    steps = list(range(1000))
    tags = [f"parameters/layer{k}.weight" for k in range(400)]
    bad = tags[-1]  # the last in the table's order went bad
    rows = [(tag, [(s, _stats(s, nan=int(tag == bad and s == 999))) for s in steps])
            for tag in tags]  # fmt: skip
    markdown = flight_table.flight_table(bad, 999, [(bad, _stats(999, nan=1))], rows)
    lines = [line for line in markdown.splitlines() if line.startswith("| `")]
    assert len(lines) <= flight_table.MAX_ROWS
    assert sum(f"`{bad}`" in line for line in lines) == flight_table.MAX_ROWS // len(tags)
    assert lines[-1].startswith(f"| `{bad}` | 999 |")  # its last steps, the bad one included
    assert "capped at 5,000 rows: the last 12 steps of each tensor." in markdown
    few = [(tag, per_step[-3:]) for tag, per_step in rows[:5]]
    small = flight_table.flight_table(bad, 999, [(bad, _stats(999, nan=1))], few)
    assert "capped" not in small and small.count("\n| `") == 15


def test_past_two_steps_a_tensor_the_tensors_not_holding_nan_are_left_out():
    tags = [f"gradients/p{k}" for k in range(3000)]
    bad = tags[2999]
    rows = [(tag, [(s, _stats(s)) for s in (7, 8, 9)]) for tag in tags]
    markdown = flight_table.flight_table(bad, 9, [(bad, _stats(9, nan=1))], rows)
    lines = [line for line in markdown.splitlines() if line.startswith("| `")]
    assert len(lines) == 5000 and any(line.startswith(f"| `{bad}`") for line in lines)
    assert "500 tensors not holding NaN/±Inf left out" in markdown
