"""`cepdsl.backends.EXECUTORS`, the one table from a plan node to its executor: every
rule of the corpus gets one, the Numba window kernels take only the rules they can run,
and a backend asked for a node it does not run says so by rule and node."""

from __future__ import annotations

from pathlib import Path

import pytest

from cepdsl.backends import EXECUTORS, executor_for, node_of
from cepdsl.backends.numba.absence import AbsenceExecutor
from cepdsl.backends.numba.window_kernels import KernelPaneExecutor
from cepdsl.backends.polars.count_windows import CountWindowExecutor
from cepdsl.backends.polars.filters import FilterExecutor
from cepdsl.backends.polars.pane_windows import SlidingExecutor, TumblingExecutor
from cepdsl.backends.polars.sessions import SessionExecutor
from cepdsl.executor import Executor
from cepdsl.frontend import compile_source
from cepdsl.plan import RuleKind

VALID = Path(__file__).resolve().parents[1] / "corpus" / "valid"
STREAM = "stream m (ts: timestamp, host: str, cpu: float, n: int, tag: str)\n"


def rule(text: str):  # noqa: ANN201
    return compile_source(STREAM + "rule r from m " + text).rules[0]


def test_every_rule_kind_and_window_kind_has_a_route() -> None:
    kinds = {k.value for k in RuleKind if k is not RuleKind.WINDOW}
    windows = {f"window {w}" for w in ("tumbling", "sliding", "session", "count")}
    assert set(EXECUTORS) == kinds | windows


@pytest.mark.parametrize("node", sorted(EXECUTORS))
def test_every_route_names_an_executor_that_exists(node: str) -> None:
    for route in EXECUTORS[node]:
        assert route.backend in ("polars", "numba")
        cls = route.load(route.executor)
        assert isinstance(cls, type) and issubclass(cls, Executor), (node, route)
        if route.accepts:
            assert callable(route.load(route.accepts))


def test_every_corpus_rule_gets_an_executor_of_its_node() -> None:
    seen = set()
    for path in sorted(VALID.glob("*.cep")):
        for r in compile_source(path.read_text(), str(path)).rules:
            ex = executor_for(r)
            assert isinstance(ex, Executor) and ex.rule is r, (path.name, r.id)
            seen.add(node_of(r))
    assert len(seen) >= 8, seen  # the corpus reaches (nearly) every node


def test_window_kernels_take_decomposable_numeric_aggregates_only() -> None:
    assert type(executor_for(rule("group by host window tumbling 1m having avg(cpu) > 1"))) is KernelPaneExecutor
    assert type(executor_for(rule("window sliding 2m every 1m having count() > 0"))) is KernelPaneExecutor
    # percentile keeps values and max of a string is not numeric: the Polars pane path.
    assert type(executor_for(rule("window tumbling 1m having percentile(cpu, 50) > 1"))) is TumblingExecutor
    assert type(executor_for(rule("window sliding 2m every 1m having max(tag) > \"a\""))) is SlidingExecutor
    assert type(executor_for(rule("group by host window session gap 1m"))) is SessionExecutor
    assert type(executor_for(rule("group by host window last 3 events"))) is CountWindowExecutor
    assert type(executor_for(rule("where cpu > 1"))) is FilterExecutor
    assert type(executor_for(rule("group by host absent for 1m"))) is AbsenceExecutor


def test_one_backend_alone() -> None:
    decomposable = rule("group by host window tumbling 1m having avg(cpu) > 1")
    assert type(executor_for(decomposable, backend="polars")) is TumblingExecutor
    assert type(executor_for(decomposable, backend="numba")) is KernelPaneExecutor
    with pytest.raises(NotImplementedError, match=r"rule r: the polars backend does not run absent rules"):
        executor_for(rule("group by host absent for 1m"), backend="polars")
    with pytest.raises(NotImplementedError, match=r"rule r: the numba backend does not run window session rules"):
        executor_for(rule("group by host window session gap 1m"), backend="numba")
