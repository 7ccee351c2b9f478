"""docs/extending.md is true: its code blocks, run as written, add a toy aggregate, a toy
function and a toy channel kind through the registries, and each then works end to end —
checked, compiled, and replayed equal to the reference interpreter (the aggregate on
every path: Numba kernels, Polars partials, Polars from rows, streaming batches); the
channel delivering to a real HTTP server on 127.0.0.1."""

from __future__ import annotations

import contextlib
import datetime as dt
import random
import re
import sys
from collections.abc import Iterator
from pathlib import Path

import polars as pl
import pytest

import cepdsl
import cepdsl.backends.polars.aggregates  # noqa: F401  (the parts the docs' blocks sit beside)
import cepdsl.interpret  # noqa: F401
import cepdsl.kernels.polars_expressions  # noqa: F401
import runtime.notify.channels  # noqa: F401
from cepdsl import interpret
from cepdsl.backends.numba.window_kernels import kernel_fields
from cepdsl.channels import CHANNEL_KINDS
from cepdsl.diagnostics import CheckError
from cepdsl.explain import explain
from cepdsl.frontend import check_source
from cepdsl.functions import AGGREGATES, FUNCTIONS
from cepdsl.registry import Registry
from tests.support.frames import assert_frames_match

ROOT = Path(__file__).resolve().parents[1]
DOC = ROOT / "docs" / "extending.md"

pytestmark = pytest.mark.timeout(300)


def code_blocks(section: str) -> list[tuple[str, str]]:
    """(file, code) of each `python` block starting with `# in FILE` under `## {section}`."""
    text = DOC.read_text(encoding="utf-8")
    body = text.split(f"## {section}\n", 1)[1].split("\n## ", 1)[0]
    return [(m.group(1), m.group(2)) for m in re.finditer(r"```python\n# in (\S+)\n(.*?)```", body, re.S)]


def run_blocks(section: str) -> list[str]:
    files = []
    for file, code in code_blocks(section):
        assert (ROOT / file).is_file(), f"docs/extending.md names {file}, which does not exist"
        exec(compile(code, f"docs/extending.md ({file})", "exec"), {"__name__": f"extending_{len(files)}"})
        files.append(file)
    return files


@contextlib.contextmanager
def added(section: str, registry: Registry, name: str, n_files: int) -> Iterator[None]:
    """The section's blocks run (registering `name`); the registry complete; `name` gone after."""
    assert name not in registry
    assert len(run_blocks(section)) == n_files
    try:
        assert registry.missing() == []
        yield
    finally:
        registry.remove(name)


def test_the_examples_touch_at_most_three_files_of_code() -> None:
    for section in ("Adding an aggregate", "Adding a function", "Adding a channel kind"):
        files = {f for f, _ in code_blocks(section)}
        required = files - {"cepdsl/backends/numba/window_kernels.py"}  # the kernel part is optional
        assert files and len(required) <= 3, (section, files)


# --------------------------------------------------------------------------- aggregate


@pytest.fixture
def spread() -> Iterator[None]:
    with added("Adding an aggregate", AGGREGATES, "spread", 4):
        yield


STREAM = "stream s (ts: timestamp, k: str, x: float, n: int, lo: float)\n  time ts\n"
T0 = dt.datetime(2024, 5, 1, 12, 0, 0)


def events(rows: int = 400, seed: int = 7) -> pl.DataFrame:
    rnd = random.Random(seed)
    t = T0
    out = []
    for _ in range(rows):
        t += dt.timedelta(seconds=rnd.choice([0, 1, 3, 7, 20, 90]))
        out.append({
            "ts": t,
            "k": rnd.choice(["a", "b", "c"]),
            "x": None if rnd.random() < 0.1 else round(rnd.uniform(-50, 150), 3),
            "n": None if rnd.random() < 0.1 else rnd.randint(-1000, 1000),
            "lo": None if rnd.random() < 0.1 else rnd.choice([0.0, 10.0, 25.5]),
        })  # fmt: skip
    return pl.DataFrame(out, schema={"ts": pl.Datetime("us"), "k": pl.String, "x": pl.Float64, "n": pl.Int64, "lo": pl.Float64})


def replay_equals_interpreter(text: str, data: pl.DataFrame) -> pl.DataFrame:
    rules = cepdsl.compile(STREAM + text)
    expected = interpret.run(rules.program, {"s": data})["r"]
    got = rules.replay({"s": data})["r"]
    assert_frames_match(got, expected, ordered=True, label=text)
    # Streaming, in uneven batches, gives the same records.
    session = rules.session()
    parts = [session.push("s", data[a:b])["r"] for a, b in ((0, 37), (37, 38), (38, 250), (250, data.height))]
    assert_frames_match(pl.concat([*parts, session.flush()["r"]]), expected, ordered=True, label=f"streamed: {text}")
    return expected


SPREAD_RULES = {
    "numba kernels": "rule r from s group by k window tumbling 1m having spread(x) > 20 and spread(n) >= 0",
    "polars partials": "rule r from s group by k window sliding 2m every 30s having spread(x) > 20 and percentile(n, 50) > -2000",
    "session partials": "rule r from s group by k window session gap 30s having spread(n) > 100",
    "rows (count window)": "rule r from s group by k window last 5 events having spread(x) >= 0",
    "rows (schedule)": 'rule r from s group by k schedule "*/5 * * * *" over 10m having spread(x) > 0 or count() > 0',
}


@pytest.mark.parametrize("path", SPREAD_RULES)
def test_the_toy_aggregate_runs_on_every_path_equal_to_the_interpreter(spread: None, path: str) -> None:
    text = SPREAD_RULES[path]
    rules = cepdsl.compile(STREAM + text)
    rule = rules.program.rule("r")
    if path in ("numba kernels", "polars partials"):  # pane windows: which executor runs them
        assert (kernel_fields(rule) is not None) == (path == "numba kernels")
    expected = replay_equals_interpreter(text, events())
    assert expected.height > 0
    column = "spread_x" if "spread_x" in expected.columns else "spread_n"
    assert expected[column].drop_nulls().len() > 0


def test_the_toy_aggregate_is_typed_named_and_explained(spread: None) -> None:
    rules = cepdsl.compile(STREAM + "rule r from s window tumbling 1m having spread(n) > 1 and spread(x) > 1")
    out = {f.name: str(f.type) for f in rules.program.rule("r").output}
    assert out["spread_n"] == "int" and out["spread_x"] == "float"
    assert "spread(n):int" in explain(rules.program)
    _, diags = check_source(STREAM + "rule r from s window tumbling 1m having spread(k) > 1", "t.cep")
    assert [d.message for d in diags] == ["`spread` needs a numeric field, but `k` is `str`"]
    _, diags = check_source(STREAM + "rule r from s where spread(x) > 1", "t.cep")
    assert diags and "only allowed in `having`" in diags[0].message


# --------------------------------------------------------------------------- function


@pytest.fixture
def clamp() -> Iterator[None]:
    with added("Adding a function", FUNCTIONS, "clamp", 3):
        yield


@pytest.mark.parametrize("condition", [
    "clamp(x, 10, 50) > 20",
    "clamp(n, -5, 5) == 5 or clamp(n, -5, 5) < 0",
    "clamp(x, lo, 100.0) > 30",  # a null bound: null
    "clamp(n, lo, 20) is null",
    "clamp(x, 60, 40) == 40",  # lo above hi: hi wins, as `compare` orders it
])  # fmt: skip
def test_the_toy_function_equals_the_interpreter(clamp: None, condition: str) -> None:
    expected = replay_equals_interpreter(f"rule r from s where {condition}", events())
    assert expected.height > 0


def test_the_toy_function_is_typed(clamp: None) -> None:
    rules = cepdsl.compile(STREAM + "rule r from s window tumbling 1m having avg(x) > 0")
    assert rules  # the toy does not disturb other rules
    _, diags = check_source(STREAM + 'rule r from s where clamp(k, 1, 2) > 0', "t.cep")
    assert [d.message for d in diags] == ["`clamp` takes a number, not `str`"]
    _, diags = check_source(STREAM + "rule r from s where clamp(x, 1) > 0", "t.cep")
    assert [d.message for d in diags] == ["`clamp` takes 3 arguments, got 2"]


# --------------------------------------------------------------------------- channel


@pytest.fixture
def chat() -> Iterator[None]:
    with added("Adding a channel kind", CHANNEL_KINDS, "chat", 2):
        yield


CHAT_RULES = """
stream metrics (ts: timestamp, host: str, cpu: float)
  time ts
channel team = chat(url = env("CHAT_URL"), room = "ops")
rule high_cpu "High CPU"
  from metrics
  where cpu > 80
  group by host
  severity high
  notify team
"""


def test_the_toy_channel_is_checked_and_its_secret_masked(chat: None) -> None:
    _, diags = check_source('channel team = chat(room = "ops")', "t.cep")
    assert [d.message for d in diags] == ["a `chat` channel needs option `url`"]
    _, diags = check_source('channel team = chat(url = "http://x", rooms = "ops")', "t.cep")
    assert [d.message for d in diags] == ["unknown option `rooms` for a `chat` channel"]
    program = cepdsl.compile('channel team = chat(url = "http://secret.example/hook")\n').program
    text = explain(program)
    assert "chat" in text and "secret.example" not in text


def test_the_toy_channel_delivers_to_a_real_server(chat: None, tmp_path: Path) -> None:
    sys.path.insert(0, str(ROOT / "tests" / "notify"))
    try:
        from receiver import Receiver
    finally:
        sys.path.pop(0)
    from runtime.notify import BreakerConfig, DestinationPolicy, Notifier, RetryPolicy

    program = cepdsl.compile(CHAT_RULES).program
    rule = program.rule("high_cpu")
    records = pl.DataFrame(
        [{"rule": "high_cpu", "severity": "high", "ts": T0, "host": "web-0", "cpu": 93.5}], schema=rule.output_schema
    )
    with Receiver() as rx:
        notifier = Notifier(
            program, env={"CHAT_URL": rx.url + "/hooks/chat"}, outbox=tmp_path / "outbox.sqlite",
            policy=DestinationPolicy.allowing(hosts={"127.0.0.1"}), retry=RetryPolicy(base_s=0.05, jitter=0.0),
            breaker=BreakerConfig(),
        )  # fmt: skip
        try:
            notifier.start()
            assert notifier.submit("high_cpu", records) == 1
            assert notifier.drain(10)
            got = rx.wait_for(1)
        finally:
            notifier.stop(drain=False, timeout=2)
    assert [(r.method, r.path) for r in got] == [("POST", "/hooks/chat")]
    assert got[0].headers["content-type"] == "application/json"
    # No `message` in the rule: the kind's default template, group key and values inline.
    assert got[0].json() == {"room": "ops", "text": "[HIGH] High CPU: host=web-0, cpu=93.5"}


def test_a_program_using_a_removed_kind_no_longer_checks() -> None:
    with pytest.raises(CheckError):
        cepdsl.compile('channel team = chat(url = "http://x")\n')
