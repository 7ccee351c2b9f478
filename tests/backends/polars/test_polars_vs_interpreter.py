"""Every Polars executor against the reference interpreter on random small streams
split into random batches (a quick in-package check; the full differential suite
lives in tests/differential/)."""

from __future__ import annotations

import random

import pytest
from polars.testing import assert_frame_equal

from cepdsl import interpret
from cepdsl.frontend import compile_source

from drive import M, frame, run_batches

STREAM = "stream m (ts: timestamp, host: str, cpu: float, n: int)\n"
AGG = (
    "count() >= 0 and (avg(cpu) > 50 or sum(n) > 3 or std(cpu) >= 1 or percentile(cpu, 90) > 0"
    ' or distinct(n) > 1 or min(cpu) > 0 or max(n) > 0 or count(cpu) > 1 or min(host) > "a")'
)
BODIES = [
    f"group by host window sliding 3m every 1m having {AGG}",
    f"window sliding 5m every 2m having {AGG}",
    f"group by host window tumbling 2m having {AGG}",
    f"group by host window session gap 90s having {AGG}",
    f"group by host window last 3 events having {AGG}",
    f"window last 1 events having {AGG}",
    f'group by host schedule "*/2 * * * *" over 3m having {AGG}',
    f'schedule "*/3 * * * *" over 5m having {AGG}',
    'where cpu > 50 and host != "c"',
]


@pytest.mark.parametrize("body", BODIES)
def test_matches_the_interpreter_across_random_batches(body: str) -> None:
    rng = random.Random(hash(body) & 0xFFFF)
    program = compile_source(STREAM + "rule r from m " + body)
    rule = program.rules[0]
    for _ in range(12):
        n = rng.randint(0, 30)
        times = sorted(rng.randint(0, 20 * M) for _ in range(n))
        rows = [
            dict(
                ts=t,
                host=rng.choice(["a", "b", "c", None]),
                cpu=rng.choice([None, round(rng.uniform(0, 100), 1), 3.0]),
                n=rng.choice([None, 1, 2, 5]),
            )
            for t in times
        ]
        df = frame(rule, rows)
        expected = interpret.run(program, {"m": df.drop(["__seq", "__t"])})["r"]
        cuts = sorted(rng.sample(range(n + 1), min(n + 1, rng.randint(0, 4))))
        assert_frame_equal(run_batches(rule, df, cuts=cuts), expected, check_exact=False, rel_tol=1e-9)
