"""Mutation fuzzer for the front end: corpus files, mangled, through `check_source`,
and every input that checks clean through the engine (issue 12: whatever `cep check`
accepts, the engine can start and run).

Every input must come back as diagnostics (or a clean plan): no exception,
and no input may take long.  Mutations work on tokens (delete, insert,
duplicate, swap, replace with a keyword, punctuation or an extreme literal),
on bytes (random bytes, NUL, invalid UTF-8, truncation), on whole files
(splice two files, repeat a declaration, nest brackets deeply) and on message
templates and patterns (unknown filters and tests, nested tags and brackets,
nested bounded repeats). A clean program is then compiled (every executor), started
(a `Session`), fed a few rows per stream and flushed, and every message is rendered
with a sample record: anything but a `TemplateError` from a render is a crash.

    .venv/bin/python bench/fuzz_frontend.py              # 100,000 inputs
    .venv/bin/python bench/fuzz_frontend.py -n 5000 --seed 7

An input is "slow" when it takes over 1 s twice in a row (the second run is warm:
kernel compilation is not counted).

Crashing inputs are written to `--crash-dir` (default /tmp/cep-fuzz-crashes)
and the run exits 1.  `tests/test_fuzz_frontend.py` runs a small share in CI.
"""

from __future__ import annotations

import argparse
import random
import re
import sys
import time
import traceback
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from cepdsl.diagnostics import CheckError, render_all  # noqa: E402
from cepdsl.frontend import check_source  # noqa: E402

CORPUS = ROOT / "tests" / "corpus"

_TOKEN = re.compile(
    r'"""(?:.|\n)*?"""|"(?:\\.|[^"\\\n])*"|`[^`\n]*`|#[^\n]*|[0-9]+(?:\.[0-9]+)?[A-Za-z]*|[A-Za-z_][A-Za-z0-9_]*'
    r"|==|!=|<=|>=|\s+|."
)

KEYWORDS = (
    "stream channel rule from where group by window tumbling sliding every session gap last events having "
    "schedule over pattern within define as absent for anomaly baseline warmup severity throttle notify "
    "fallback message time lateness and or not in is null true false contains starts_with ends_with matches"
).split()
PUNCT = list("()[]{},.:=+-*/%?|<>`\"#") + ["==", "!=", "<=", ">=", '"""', "\n", " ", "\t"]
EXTREMES = [
    "0", "-1", "99999999999999999999999", "9223372036854775808", "-9223372036854775808", "1e999", "1e-999",
    "0s", "0ms", "99999999999999999999999d", "36501d", "1.5", "{0}", "{99999999999999999999999,}", "{3,1}",
    '"(a"', '"\\\\1"', '"(?=x)"', '"\\q"', '""', '"""\n"""', "`window`", "`", "env(\"X\")", "count(*)",
    "percentile(x, 101)", '"61 * * * *"', '"0 9 31 2 *"', "{{ nope }}", '"{{ x "', "\x00", "\ufeff", "\u2028",
    "é", "漢字", "\x0c", "\r\n", "\\",
]  # fmt: skip
#: Template and pattern mutations: what broke the engine in issue 12.
TEMPLATE_EXTREMES = [
    '"{{ x|rond }}"', '"{{ x is nosuchtest }}"', '"{{ range }}"', '"{{ ' + "(" * 80 + "x" + ")" * 80 + ' }}"',
    '"' + "{% for a in [1] %}" * 25 + "{% endfor %}" * 25 + '"', '"' + "{% if x %}" * 120 + "{% endif %}" * 120 + '"',
    '"' + "{% for a in [1] %}" * 12 + "{% endfor %}" * 12 + '"', '"{{ ' + "not " * 150 + 'x }}"',
    '"{{ ' + " + ".join(["1"] * 300) + ' }}"', '"{{ x' + "|upper" * 150 + ' }}"', '"{{ x' + ".a" * 150 + ' }}"',
    "\"{% set x = 'x'*15000 %}{% for a in x %}{% for b in x %}.{% endfor %}{% endfor %}\"",
    "\"{{ 'a'.center(2000000000) }}\"", "\"{{ '%200000000d'|format(1) }}\"", '"{% macro m() %}{{ m() }}{% endmacro %}{{ m() }}"',
    '"{% if x is nosuchtest %}y{% endif %}"', '"{% if x %}{{ x|rond }}{% endif %}"', '"{{ x"', '"{% if %}"', '"{% endfor %}"', '"{{ }}"', '"{% raw %}"', '"""{{ x }}\n{{ y|rond }}"""',
    "(a{1000}){1000}", "(a{100}|b{100}){100}", "((a*)*)*", "(a?){1000}", "a{1000}", "(a b c){300,}",
]  # fmt: skip


@dataclass
class Stats:
    count: int = 0
    clean: int = 0
    started: int = 0  # clean programs started, fed and flushed by a Session
    rendered: int = 0  # messages rendered (or refused with a TemplateError)
    seconds: float = 0.0
    slowest: tuple[float, str] = (0.0, "")
    slow: list[tuple[float, str]] = field(default_factory=list)  # over SLOW_S twice in a row
    crashes: list[tuple[str, str]] = field(default_factory=list)


SLOW_S = 1.0
_T0_US = 1_704_067_200_000_000  # 2024-01-01


def sample_frame(stream: Any, rows: int = 24) -> Any:
    """A few rows for every declared field (dotted names as flat columns), in time order."""
    import polars as pl

    from cepdsl.types import Type

    values = {
        Type.INT: lambda i: i % 7 - 1,
        Type.FLOAT: lambda i: float(i * 13 % 100),
        Type.STR: lambda i: ("a", "b", "web-1", "")[i % 4],
        Type.BOOL: lambda i: i % 2 == 0,
        Type.TIMESTAMP: lambda i: _T0_US + i * 37_000_000,
    }
    cols = {}
    for f in stream.fields:
        series = pl.Series(f.name, [values[f.type](i) for i in range(rows)])
        cols[f.name] = series.cast(pl.Datetime("us")) if f.type is Type.TIMESTAMP else series
    return pl.DataFrame(cols)


def sample_record(rule: Any) -> dict[str, Any]:
    from datetime import datetime

    from cepdsl.types import Type

    value = {Type.INT: 3, Type.FLOAT: 91.5, Type.STR: "web-1", Type.BOOL: True, Type.TIMESTAMP: datetime(2024, 1, 1)}
    record = {f.name: value.get(f.type, "x") for f in rule.output}
    record.setdefault("title", rule.title or rule.id)
    return record


def start(program: Any, stats: Stats) -> None:
    """What `cep run` does with a checked program, minus I/O: build every executor, push
    rows through every stream, flush; compile and render every message."""
    from cepdsl.engine import Session
    from cepdsl.templates import TemplateError, precompile, render

    # Lookup tables come from files or Redis at run time (an I/O condition, not a check one):
    # the engine is started with a few rows of each, made up like the streams' rows.
    tables = {t.name: sample_frame(t, rows=4) for t in getattr(program, "tables", ())}
    session = Session(program, tables=tables) if tables else Session(program)
    for stream in program.streams:
        session.push(stream.name, sample_frame(stream))
    session.flush()
    stats.started += 1
    for rule in program.rules:
        if rule.message:
            try:
                precompile(rule.message)
                render(rule.message, sample_record(rule))
            except TemplateError:
                pass
            stats.rendered += 1


def corpus_texts(root: Path = CORPUS) -> list[str]:
    texts = [p.read_bytes().decode("utf-8", "replace") for p in sorted(root.glob("*/*.cep"))]
    return texts or ['stream s (ts: timestamp, x: int)\nrule r from s where x > 1\n']


def _tokens(text: str) -> list[str]:
    return _TOKEN.findall(text)


def _random_token(rng: random.Random, pool: list[str]) -> str:
    roll = rng.random()
    if roll < 0.35:
        return rng.choice(KEYWORDS)
    if roll < 0.6:
        return rng.choice(PUNCT)
    if roll < 0.72:
        return rng.choice(EXTREMES)
    if roll < 0.8:
        return rng.choice(TEMPLATE_EXTREMES)
    return rng.choice(pool) if pool else "x"


def _random_bytes(rng: random.Random, n: int) -> str:
    raw = bytes(rng.randrange(256) for _ in range(n))
    # Files are decoded before the parser sees them; undecodable bytes arrive as
    # U+FFFD (replace) or, from tools that keep them, as lone surrogates.
    return raw.decode("utf-8", "replace" if rng.random() < 0.8 else "surrogateescape")


def mutate(rng: random.Random, text: str, others: list[str], pool: list[str]) -> str:
    """One to four random edits of `text`."""
    for _ in range(rng.randint(1, 4)):
        toks = _tokens(text) or [""]
        i = rng.randrange(len(toks))
        op = rng.randrange(14)
        if op >= 12:  # a message or pattern swapped for a hostile one (issue 12)
            strings = [k for k, t in enumerate(toks) if t.startswith('"')]
            at = rng.choice(strings) if strings else i
            if op == 12 or not any(t == "pattern" for t in toks):
                toks[at] = rng.choice([t for t in TEMPLATE_EXTREMES if t.startswith('"')])
            else:
                k = toks.index("pattern")
                toks[k + 2 : k + 3] = [rng.choice([t for t in TEMPLATE_EXTREMES if not t.startswith('"')])]
        elif op == 0:
            del toks[i]
        elif op == 1:
            toks.insert(i, _random_token(rng, pool))
        elif op == 2:
            toks.insert(i, toks[i])
        elif op == 3:
            j = rng.randrange(len(toks))
            toks[i], toks[j] = toks[j], toks[i]
        elif op == 4:
            toks[i] = _random_token(rng, pool)
        elif op == 5:
            toks.insert(i, _random_bytes(rng, rng.randint(1, 8)))
        elif op == 6:  # truncate
            return "".join(toks[:i])
        elif op == 7:  # splice with another file
            other = _tokens(rng.choice(others)) if others else toks
            j = rng.randrange(len(other) + 1)
            toks = toks[:i] + other[j:]
        elif op == 8:  # a long run of one token
            toks.insert(i, _random_token(rng, pool) * rng.choice((10, 100, 1000)))
        elif op == 9:  # deep brackets around a token
            depth = rng.choice((5, 60, 70, 300))
            toks[i] = "(" * depth + toks[i] + ")" * depth
        elif op == 10:  # long operator chains
            toks.insert(i, " + x" * rng.choice((10, 150, 500)))
        else:  # drop or double a whole line
            lines = "".join(toks).split("\n")
            k = rng.randrange(len(lines))
            if rng.random() < 0.5:
                del lines[k]
            else:
                lines.insert(k, lines[k])
            return "\n".join(lines)
        text = "".join(toks)
    return text


def inputs(n: int, seed: int, texts: list[str]) -> Iterator[str]:
    rng = random.Random(seed)
    pool = sorted({t for text in texts for t in _tokens(text) if t.strip()})
    for k in range(n):
        if k % 50 == 49:
            yield _random_bytes(rng, rng.randint(0, 400))
        else:
            yield mutate(rng, rng.choice(texts), texts, pool)


def one(text: str, stats: Stats, engine: bool) -> None:
    """Check `text` (and start what checks clean when `engine`); record a crash."""
    try:
        program, diags = check_source(text, "fuzz.cep")
        # The CLI prints what check returns: rendering is part of the path.
        render_all(diags, {"fuzz.cep": text})
        if program is not None and not diags:
            stats.clean += 1
            if engine:
                start(program, stats)
    except CheckError:
        pass
    except BaseException as exc:  # noqa: BLE001 - anything else is a finding
        if isinstance(exc, KeyboardInterrupt):
            raise
        stats.crashes.append((text, "".join(traceback.format_exception(exc))[-3000:]))


def run(cases: Iterable[str], stats: Stats | None = None, *, engine: bool = True) -> Stats:
    stats = stats or Stats()
    for text in cases:
        t0 = time.perf_counter()
        one(text, stats, engine)
        elapsed = time.perf_counter() - t0
        if elapsed > SLOW_S:  # again, warm: the first run may have compiled kernels
            t1 = time.perf_counter()
            one(text, Stats(), engine)
            if time.perf_counter() - t1 > SLOW_S:
                stats.slow.append((elapsed, text))
        stats.count += 1
        stats.seconds += elapsed
        if elapsed > stats.slowest[0]:
            stats.slowest = (elapsed, text)
    return stats


def _write_crash(out: Path, k: int, text: str, tb: str) -> None:
    out.mkdir(parents=True, exist_ok=True)
    (out / f"crash_{k}.cep").write_text(text, encoding="utf-8", errors="surrogateescape")
    (out / f"crash_{k}.txt").write_text(tb, encoding="utf-8")


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=100_000, help="number of inputs (default 100,000)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--crash-dir", default="/tmp/cep-fuzz-crashes")
    ap.add_argument("--check-only", action="store_true", help="do not start the engine on clean inputs")
    args = ap.parse_args(argv)

    texts = corpus_texts()
    t0 = time.perf_counter()
    stats = Stats()
    step = max(min(args.n // 10, 10_000), 1)  # a line every 10k inputs: long runs show their progress
    gen = inputs(args.n, args.seed, texts)
    done = 0
    while done < args.n:
        batch = [x for _, x in zip(range(min(step, args.n - done)), gen)]
        found = len(stats.crashes)
        run(batch, stats, engine=not args.check_only)
        done += len(batch)
        for k in range(found, len(stats.crashes)):  # written as found: a long run may be stopped
            _write_crash(Path(args.crash_dir), k, *stats.crashes[k])
        print(f"  {done:>7,} inputs  {time.perf_counter() - t0:7.1f} s  crashes {len(stats.crashes)}", flush=True)
    wall = time.perf_counter() - t0
    slow_s, slow_text = stats.slowest
    print(
        f"fuzz_frontend: {stats.count:,} inputs from {len(texts)} corpus files in {wall:.1f} s "
        f"({stats.count / wall:,.0f}/s), {stats.clean:,} checked clean, {stats.started:,} started, "
        f"{stats.rendered:,} messages rendered, {len(stats.crashes)} crashes, {len(stats.slow)} over {SLOW_S:.0f} s (warm)"
    )
    print(f"slowest input: {slow_s * 1000:.1f} ms ({len(slow_text):,} chars): {slow_text[:120]!r}")
    if stats.crashes or stats.slow:
        out = Path(args.crash_dir)
        out.mkdir(parents=True, exist_ok=True)
        for k, (_, text) in enumerate(stats.slow):
            (out / f"slow_{k}.cep").write_text(text, encoding="utf-8", errors="surrogateescape")
        print(f"crashing and slow inputs written to {out}")
        if stats.crashes:
            print(stats.crashes[0][1])
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
