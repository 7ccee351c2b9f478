"""Executors with known, trivial behaviour, so engine tests check the engine alone."""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from cepdsl.executor import SEQ, TIME, Executor, Progress, finalize


class EchoExecutor(Executor):
    """One match per row it is given (like a filter), whatever the rule's kind, and a log
    of every call: what the engine handed over and when.  Order-sensitive by default
    (the base `late_mask`); `accept_late=True` takes every late row."""

    def __init__(self, rule: Any, accept_late: bool = False) -> None:
        super().__init__(rule)
        self.accept_late = accept_late
        self.calls: list[tuple[str, list[int], list[int], Progress]] = []
        self.seen = 0

    def process(self, rows: pl.DataFrame, progress: Progress) -> pl.DataFrame:
        self.calls.append(("process", rows[TIME].to_list(), rows[SEQ].to_list(), progress))
        self.seen += rows.height
        return finalize(self.rule, rows.with_columns(pl.col(TIME).alias("ts")))

    def advance(self, progress: Progress) -> pl.DataFrame:
        self.calls.append(("advance", [], [], progress))
        return self.rule.empty_output()

    def finish(self, progress: Progress) -> pl.DataFrame:
        self.calls.append(("finish", [], [], progress))
        return self.rule.empty_output()

    def late_mask(self, ts_us: np.ndarray, released_us: int) -> np.ndarray:
        if self.accept_late:
            return np.zeros(len(ts_us), dtype=bool)
        return super().late_mask(ts_us, released_us)

    def state(self) -> Any:
        return {"seen": self.seen}

    def load_state(self, state: Any) -> None:
        self.seen = state["seen"]

    @property
    def released(self) -> list[tuple[int, int]]:
        """Every (TIME, SEQ) handed over, in the order handed over."""
        return [(t, s) for kind, ts, seqs, _ in self.calls if kind == "process" for t, s in zip(ts, seqs, strict=True)]


def echo_executors(accept_late: bool = False) -> tuple[dict[str, EchoExecutor], Any]:
    """A factory for `Session(executors=...)` that remembers what it built, by rule ID."""
    built: dict[str, EchoExecutor] = {}

    def make(rule: Any) -> EchoExecutor:
        built[rule.id] = EchoExecutor(rule, accept_late=accept_late)
        return built[rule.id]

    return built, make
