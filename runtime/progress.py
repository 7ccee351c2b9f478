"""Terminal output for replay: a progress bar while it runs, a summary after (a table
for people, JSON for scripts)."""

from __future__ import annotations

import contextlib
import json
from collections.abc import Iterator
from typing import Any

from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table

from runtime.terminal import console as make_console


class ReplayBar:
    """`bar(rows_done, rows_total)` drives the bar; `bar.compiling(True)` says kernels are
    compiling, so a bar whose rows are all read never looks finished while work goes on."""

    def __init__(self, progress: Progress) -> None:
        self.progress = progress
        self.task = progress.add_task("replay", total=None, rate="", phase="replay")

    def __call__(self, done: int, total: int | None) -> None:
        elapsed = self.progress.tasks[0].elapsed or 0.0
        rate = f"{done / elapsed / 1e6:,.1f}M rows/s" if elapsed > 0 else ""
        self.progress.update(self.task, completed=done, total=total, rate=rate)

    def compiling(self, on: bool) -> None:
        self.progress.update(self.task, phase="compiling kernels (first run only)…" if on else "replay")


@contextlib.contextmanager
def replay_progress() -> Iterator[ReplayBar]:
    """A rich progress bar on stderr."""
    columns = (
        TextColumn("{task.fields[phase]}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("rows"),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=make_console(), transient=False) as progress:
        yield ReplayBar(progress)


def summary_dict(summary: Any) -> dict[str, Any]:
    """The replay summary for scripts (`cep replay --format json`)."""
    return {
        "rows": summary.rows,
        "seconds": round(summary.seconds, 6),
        "rows_per_s": round(summary.rows_per_s, 1) if summary.seconds > 0 else None,
        "dead_letters": summary.dead_letters,
        "dead_letter_path": str(summary.dead_letter_path),
        "output": str(summary.dead_letter_path.parent),
        "rules": {
            r.rule: {
                "matches": r.matches,
                "suppressed": r.suppressed,
                "late": r.late,
                "seconds": round(r.seconds, 6),
                "path": str(r.path),
            }
            for r in summary.rules
        },
    }


def print_summary_json(summary: Any) -> None:
    print(json.dumps(summary_dict(summary), indent=2))


def print_summary(summary: Any) -> None:
    """The per-rule table: rule, matches, suppressed, late, time; then totals."""
    import sys

    console = make_console(sys.stdout)
    table = Table(title=None, show_edge=False)
    for col, just in (("rule", "left"), ("matches", "right"), ("suppressed", "right"), ("late", "right"), ("time", "right")):
        table.add_column(col, justify=just)
    for r in summary.rules:
        table.add_row(r.rule, f"{r.matches:,}", f"{r.suppressed:,}", f"{r.late:,}", f"{r.seconds:.3f}s")
    console.print(table)
    console.print(
        f"{summary.rows:,} rows in {summary.seconds:.2f}s ({summary.rows_per_s:,.0f} rows/s); "
        f"dead letters: {summary.dead_letters:,} ({summary.dead_letter_path}); output: {summary.dead_letter_path.parent}",
        highlight=False,
    )
