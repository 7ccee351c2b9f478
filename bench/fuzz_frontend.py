"""Mutation fuzzer for the front end: corpus files, mangled, through `check_source`.

Every input must come back as diagnostics (or a clean plan): no exception,
and no input may take long.  Mutations work on tokens (delete, insert,
duplicate, swap, replace with a keyword, punctuation or an extreme literal),
on bytes (random bytes, NUL, invalid UTF-8, truncation) and on whole files
(splice two files, repeat a declaration, nest brackets deeply).

    .venv/bin/python bench/fuzz_frontend.py              # 100,000 inputs
    .venv/bin/python bench/fuzz_frontend.py -n 5000 --seed 7

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


@dataclass
class Stats:
    count: int = 0
    clean: int = 0
    seconds: float = 0.0
    slowest: tuple[float, str] = (0.0, "")
    crashes: list[tuple[str, str]] = field(default_factory=list)


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
    if roll < 0.8:
        return rng.choice(EXTREMES)
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
        op = rng.randrange(12)
        if op == 0:
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


def run(cases: Iterable[str], stats: Stats | None = None) -> Stats:
    stats = stats or Stats()
    for text in cases:
        t0 = time.perf_counter()
        try:
            program, diags = check_source(text, "fuzz.cep")
            # The CLI prints what check returns: rendering is part of the path.
            render_all(diags, {"fuzz.cep": text})
            if program is not None and not diags:
                stats.clean += 1
        except CheckError:
            pass
        except BaseException as exc:  # noqa: BLE001 - anything else is a finding
            if isinstance(exc, KeyboardInterrupt):
                raise
            stats.crashes.append((text, "".join(traceback.format_exception(exc))[-3000:]))
        elapsed = time.perf_counter() - t0
        stats.count += 1
        stats.seconds += elapsed
        if elapsed > stats.slowest[0]:
            stats.slowest = (elapsed, text)
    return stats


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("-n", type=int, default=100_000, help="number of inputs (default 100,000)")
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--crash-dir", default="/tmp/cep-fuzz-crashes")
    args = ap.parse_args(argv)

    texts = corpus_texts()
    t0 = time.perf_counter()
    stats = Stats()
    step = max(args.n // 10, 1)
    gen = inputs(args.n, args.seed, texts)
    done = 0
    while done < args.n:
        batch = [x for _, x in zip(range(min(step, args.n - done)), gen)]
        run(batch, stats)
        done += len(batch)
        print(f"  {done:>7,} inputs  {time.perf_counter() - t0:7.1f} s  crashes {len(stats.crashes)}", flush=True)
    wall = time.perf_counter() - t0
    slow_s, slow_text = stats.slowest
    print(f"fuzz_frontend: {stats.count:,} inputs from {len(texts)} corpus files in {wall:.1f} s "
          f"({stats.count / wall:,.0f}/s), {stats.clean:,} checked clean, {len(stats.crashes)} crashes")
    print(f"slowest input: {slow_s * 1000:.1f} ms ({len(slow_text):,} chars): {slow_text[:120]!r}")
    if stats.crashes:
        out = Path(args.crash_dir)
        out.mkdir(parents=True, exist_ok=True)
        for k, (text, tb) in enumerate(stats.crashes):
            (out / f"crash_{k}.cep").write_text(text, encoding="utf-8", errors="surrogateescape")
            (out / f"crash_{k}.txt").write_text(tb, encoding="utf-8")
        print(f"crashing inputs written to {out}")
        print(stats.crashes[0][1])
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
