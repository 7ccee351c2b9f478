"""A small share of `bench/fuzz_frontend.py` in CI: mangled corpus files must come
back as diagnostics, never as an exception, and none may be slow."""

from __future__ import annotations

import importlib.util
import os
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
_spec = importlib.util.spec_from_file_location("fuzz_frontend", ROOT / "bench" / "fuzz_frontend.py")
assert _spec and _spec.loader
fuzz = importlib.util.module_from_spec(_spec)
sys.modules[_spec.name] = fuzz  # dataclasses look their module up there
_spec.loader.exec_module(fuzz)

N = int(os.environ.get("CEP_FUZZ_INPUTS", "2000"))


def test_mutated_corpus_never_raises_and_never_stalls() -> None:
    texts = fuzz.corpus_texts()
    assert len(texts) >= 100  # the corpus is the seed; an empty one would fuzz nothing
    # Check only here (fast); tests/engine/test_start_what_checks.py starts the engine on a share.
    stats = fuzz.run(fuzz.inputs(N, seed=20240611, texts=texts), engine=False)
    assert stats.count == N
    assert stats.crashes == [], stats.crashes[0][1]
    assert stats.slow == [], stats.slow[0][1][:200]
    # Some mutations leave a file valid: the fuzzer reaches the checker, not only the parser.
    assert stats.clean > 0
    assert stats.slowest[0] < 2.0, f"slowest input took {stats.slowest[0]:.2f} s: {stats.slowest[1][:200]!r}"


def test_mutations_are_deterministic_per_seed() -> None:
    texts = fuzz.corpus_texts()
    first = list(fuzz.inputs(50, seed=7, texts=texts))
    assert first == list(fuzz.inputs(50, seed=7, texts=texts))
    assert first != list(fuzz.inputs(50, seed=8, texts=texts))
    assert sum(1 for x in first if x not in texts) >= 45  # nearly every input is actually mutated


def test_hostile_inputs_give_diagnostics() -> None:
    cases = {
        "nul": "stream s (ts: timestamp)\x00",
        "surrogates": "stream s (ts: timestamp, x: int)\nrule r from s where x > \udce9",
        "huge_duration": "stream s (ts: timestamp)\nrule r from s window tumbling 99999999999999999999999d",
        "deep_parens": "stream s (ts: timestamp, x: int)\nrule r from s where " + "(" * 5000 + "x > 1" + ")" * 5000,
        "long_chain": "stream s (ts: timestamp, x: int)\nrule r from s where " + " + ".join(["x"] * 20000) + " > 1",
        "long_line": "stream s (ts: timestamp, x: int)\nrule r from s where x" + "y" * 200_000 + " > 1",
        # Python refuses int() of strings over 4,300 digits: found by the 100k run.
        "huge_digits_having": "stream s (ts: timestamp, x: int)\nrule r from s window tumbling 1m having count() > " + "9" * 23001,
        "huge_digits_everywhere": "stream s (ts: timestamp, x: int)\nrule r from s pattern a{"
        + "9" * 5000
        + "} within "
        + "9" * 5000
        + "m\nrule q from s anomaly zscore(x) baseline "
        + "9" * 5000
        + " warmup "
        + "9" * 5000,
        # Found by the issue-12 fuzz run: int() of an env() value in the checker.
        "env_retries": 'stream s (ts: timestamp)\nchannel c = webhook(url = "https://x.example", retries = env("R"))',
        "env_timeout": 'stream s (ts: timestamp)\nchannel c = webhook(url = "https://x.example", timeout = env("T"))',
        "form_feed_lines": "stream s (ts: timestamp, x: int)\x0c\nrule r from s where\x0b x >",
    }
    stats = fuzz.run(cases.values(), engine=False)
    assert stats.crashes == [], stats.crashes[0][1]
    assert stats.clean == 0  # every one of them is an error
