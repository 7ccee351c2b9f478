"""Terminal output for replay: a progress bar while it runs, a summary table after."""

from __future__ import annotations

import contextlib
import sys
from collections.abc import Callable, Iterator
from typing import Any

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, TimeRemainingColumn
from rich.table import Table


@contextlib.contextmanager
def replay_progress() -> Iterator[Callable[[int, int | None], None]]:
    """A callback `(rows_done, rows_total)` that drives a rich progress bar on stderr."""
    console = Console(file=sys.stderr)
    columns = (
        TextColumn("replay"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("rows"),
        TextColumn("{task.fields[rate]}"),
        TimeElapsedColumn(),
        TextColumn("ETA"),
        TimeRemainingColumn(),
    )
    with Progress(*columns, console=console, transient=False) as bar:
        task = bar.add_task("replay", total=None, rate="")

        def update(done: int, total: int | None) -> None:
            elapsed = bar.tasks[0].elapsed or 0.0
            rate = f"{done / elapsed / 1e6:,.1f}M rows/s" if elapsed > 0 else ""
            bar.update(task, completed=done, total=total, rate=rate)

        yield update


def print_summary(summary: Any) -> None:
    """The per-rule table: rule, matches, suppressed, late, time; then totals."""
    console = Console()
    table = Table(title=None, show_edge=False)
    for col, just in (("rule", "left"), ("matches", "right"), ("suppressed", "right"), ("late", "right"), ("time", "right")):
        table.add_column(col, justify=just)
    for r in summary.rules:
        table.add_row(r.rule, f"{r.matches:,}", f"{r.suppressed:,}", f"{r.late:,}", f"{r.seconds:.3f}s")
    console.print(table)
    console.print(
        f"{summary.rows:,} rows in {summary.seconds:.2f}s ({summary.rows_per_s:,.0f} rows/s); "
        f"dead letters: {summary.dead_letters:,} ({summary.dead_letter_path}); output: {summary.dead_letter_path.parent}"
    )
