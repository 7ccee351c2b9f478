"""Run every benchmark, one after the other, keep their reports, and compare their
headline figures with the last recorded run.

    .venv/bin/python bench/run_all.py                        # full sizes (10M events; ~15-30 min on 2 cores)
    .venv/bin/python bench/run_all.py --quick                # 1M events where the bench allows it
    .venv/bin/python bench/run_all.py bench_filters.py       # only these benches
    .venv/bin/python bench/run_all.py --fail-on-regression   # exit 2 when a figure is > 10 % worse
    .venv/bin/python bench/run_all.py --out /tmp/mine.json   # compare, but leave the recorded run alone
    .venv/bin/python bench/run_all.py --compare-only /tmp/mine.json [--against OLD.json]

Each bench prints its data size, our figure, the peers' figures from the same run
and the ratio; this script runs them in sequence (never in parallel: they would
measure each other) and writes the combined output to bench/results.txt.

Each bench also `record`s (bench/common.py) its headline figures, ours and our ratio to
each peer (never a peer's own figure), as JSON lines into the file named by
$BENCH_RECORD, which this script sets for it. After the run those figures are compared
with the last recorded run, bench/last_run.json, or bench/last_run_quick.json for
`--quick` (different sizes are never compared), and then saved there with the date, the
git revision and the load average: a figure more than 10 % worse is a regression, one
measured at a much different load is "not comparable" rather than passed or failed, and
a figure the last run had and this one lacks is "missing". A run of some benches only
replaces those benches' figures in the file and keeps the others'.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

HERE = Path(__file__).resolve().parent
BENCHES = [
    "bench_frontdoor.py",
    "bench_check.py",
    "bench_filters.py",
    "bench_windows.py",
    "bench_replay.py",
    "bench_patterns.py",
    "bench_anomaly.py",
    "bench_state.py",
    "bench_streaming.py",
    "bench_notify.py",
]
#: Full and quick runs are kept apart: a 1M-event figure is no baseline for a 10M-event one.
RECORDED = {False: HERE / "last_run.json", True: HERE / "last_run_quick.json"}
#: A figure this much worse than the last run's is a regression (issues 13 and 18).
TOLERANCE = 0.10
#: Two 1-minute load averages are comparable unless the higher exceeds LOAD_FACTOR × the
#: lower + LOAD_SLACK. On 2 cores a bench adds 1–2 to the load by itself, so a quiet run
#: reads 1–2.5 and a shared one 5–20; the slack keeps 0.3 vs 1.2 comparable.
LOAD_FACTOR, LOAD_SLACK = 1.5, 1.0

# Verdicts of a compared figure.
BETTER, OK, REGRESSION, NOT_COMPARABLE, MISSING, NEW = "better", "ok", "REGRESSION", "not comparable", "missing", "new"


@dataclass
class Row:
    """One figure of the comparison; `prev` or `now` is None for a missing or new figure."""

    bench: str
    case: str
    unit: str
    better: str
    prev: float | None
    now: float | None
    status: str
    note: str = ""

    @property
    def change(self) -> float | None:
        """(now - previous) / previous; its sign alone does not say better or worse (see `better`)."""
        if self.prev is None or self.now is None or self.prev == 0:
            return None
        return (self.now - self.prev) / abs(self.prev)


# --------------------------------------------------------------------------- comparing two runs


def record_load(run: dict[str, Any], rec: dict[str, Any]) -> float | None:
    """The load a figure was measured at: its own, else its bench's at start, else the run's."""
    for load in (rec.get("load"), run.get("benches", {}).get(rec["bench"], {}).get("load_avg"), run.get("load_avg")):
        if load is not None:
            return float(load)
    return None


def loads_comparable(a: float | None, b: float | None) -> bool:
    if a is None or b is None:  # unknown (a hand-made file): nothing to go on, compare
        return True
    lo, hi = sorted((a, b))
    return hi <= LOAD_FACTOR * lo + LOAD_SLACK


def verdict(prev: float, now: float, better: str, tolerance: float = TOLERANCE) -> str:
    """BETTER, OK (within `tolerance` either way) or REGRESSION (worse by more than `tolerance`)."""
    if better == "higher":
        return REGRESSION if now < prev * (1 - tolerance) else BETTER if now > prev * (1 + tolerance) else OK
    return REGRESSION if now > prev * (1 + tolerance) else BETTER if now < prev * (1 - tolerance) else OK


def by_case(run: dict[str, Any]) -> dict[tuple[str, str], dict[str, Any]]:
    """The run's records by (bench, case); a case recorded twice keeps its last figure."""
    return {(r["bench"], r["case"]): r for r in run.get("records", [])}


def compare(prev: dict[str, Any], now: dict[str, Any], benches: set[str] | None = None, tolerance: float = TOLERANCE) -> list[Row]:
    """Every figure of `now` beside the same (bench, case) of `prev`, and the figures of
    `prev` that `now` lacks, restricted to `benches` (names without .py) when given: a run
    of some benches does not report the others as missing. Rows in `now`'s order, then
    the missing ones in `prev`'s."""
    old, new = by_case(prev), by_case(now)
    if benches is not None:
        old = {k: r for k, r in old.items() if k[0] in benches}
    rows = []
    for key, rec in new.items():
        bench, case = key
        was = old.get(key)
        if was is None:
            rows.append(Row(bench, case, rec["unit"], rec["better"], None, rec["value"], NEW))
            continue
        p_load, n_load = record_load(prev, was), record_load(now, rec)
        row = Row(bench, case, rec["unit"], rec["better"], was["value"], rec["value"], "")
        if (was["unit"], was["better"]) != (rec["unit"], rec["better"]):
            row.status, row.note = NOT_COMPARABLE, f"was {was['unit']}, {was['better']} is better"
        elif not loads_comparable(p_load, n_load):
            row.status, row.note = NOT_COMPARABLE, f"load {p_load:.1f} → {n_load:.1f}"
        else:
            row.status = verdict(was["value"], rec["value"], rec["better"], tolerance)
        rows.append(row)
    rows += [Row(b, c, r["unit"], r["better"], r["value"], None, MISSING) for (b, c), r in old.items() if (b, c) not in new]
    return rows


def failing(rows: list[Row]) -> list[Row]:
    """What `--fail-on-regression` fails on: regressions, and figures that went missing
    (nothing then shows they are within 10 %). Not comparable figures are listed, not failed."""
    return [r for r in rows if r.status in (REGRESSION, MISSING)]


def number(v: float | None) -> str:
    if v is None:
        return "-"
    a = abs(v)
    return f"{v:,.0f}" if a >= 100 else f"{v:.1f}" if a >= 10 else f"{v:#.3g}"


def describe_run(run: dict[str, Any]) -> str:
    loads = [load for r in run.get("records", []) if (load := r.get("load")) is not None]
    spread = f" (figures at {min(loads):.1f}–{max(loads):.1f})" if loads else ""
    load = run.get("load_avg")
    return (
        f"{run.get('date', '?')}, rev {run.get('git_rev', '?')}, "
        f"load average {'?' if load is None else f'{load:.1f}'}{spread}, {len(run.get('records', []))} figures"
    )


def table(rows: list[Row], tolerance: float = TOLERANCE) -> str:
    """The comparison as text: one block per bench, then a summary line."""
    head = ("case", "previous", "now", "unit", "change", "verdict")
    cells = {
        id(r): (
            r.case,
            number(r.prev),
            number(r.now),
            r.unit + (" ↑" if r.better == "higher" else " ↓"),
            "-" if r.change is None else f"{r.change:+.1%}",
            r.status + (f" ({r.note})" if r.note else ""),
        )
        for r in rows
    }
    widths = [max([len(head[i])] + [len(c[i]) for c in cells.values()]) for i in range(len(head))]

    def line(c: tuple[str, ...]) -> str:
        return "  " + "  ".join(c[i].ljust(widths[i]) if i in (0, 3, 5) else c[i].rjust(widths[i]) for i in range(len(c))).rstrip()

    out = [line(head)]
    for bench in dict.fromkeys(r.bench for r in rows):
        out.append(bench)
        out += [line(cells[id(r)]) for r in rows if r.bench == bench]
    counts = {s: sum(r.status == s for r in rows) for s in (BETTER, OK, REGRESSION, NOT_COMPARABLE, MISSING, NEW)}
    out.append(
        f"{len(rows)} figures: {counts[BETTER]} better, {counts[OK]} within {tolerance:.0%}, "
        f"{counts[REGRESSION]} regressions (worse by more than {tolerance:.0%}), "
        f"{counts[NOT_COMPARABLE]} not comparable, {counts[MISSING]} missing, {counts[NEW]} new   (↑ higher is better, ↓ lower)"
    )
    if counts[NOT_COMPARABLE]:
        out.append("not comparable: measured at a much different load (or unit); re-run both on a quiet machine to judge them")
    return "\n".join(out)


def report(prev: dict[str, Any] | None, now: dict[str, Any], prev_path: Path, benches: set[str] | None = None) -> list[Row]:
    """Print the comparison of `now` with `prev` (read from `prev_path`); the rows."""
    shown = prev_path.relative_to(HERE.parent) if prev_path.is_relative_to(HERE.parent) else prev_path
    print(f"\n===== comparison with {shown} =====")
    if prev is None:
        print("no previous run recorded: nothing to compare with")
        return []
    if "quick" in prev and "quick" in now and bool(prev["quick"]) != bool(now["quick"]):
        print("the two runs are not the same kind (one --quick, one full): not compared")
        return []
    print(f"previous: {describe_run(prev)}")
    print(f"now:      {describe_run(now)}")
    rows = compare(prev, now, benches)
    print(table(rows))
    return rows


# --------------------------------------------------------------------------- runs on disk


def load_run(path: Path) -> dict[str, Any] | None:
    """A recorded run (JSON), or bare records (JSON lines, as $BENCH_RECORD holds them); None when absent."""
    if not path.exists():
        return None
    try:
        run = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError:  # more than one line of JSON: records
        return {"records": read_records(path)}
    return run if isinstance(run, dict) and "records" in run else {"records": read_records(path)}


def read_records(path: Path) -> list[dict[str, Any]]:
    records = []
    for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if line.strip():
            try:
                records.append(json.loads(line))
            except json.JSONDecodeError:
                print(f"{path}:{n}: not a record, skipped: {line[:120]}", file=sys.stderr)
    return records


def merged(prev: dict[str, Any] | None, now: dict[str, Any]) -> dict[str, Any]:
    """`now`, plus the benches of `prev` that `now` did not measure (a run of some benches,
    or a bench that failed before recording anything), with their own dates and loads."""
    if prev is None:
        return now
    ran = {r["bench"] for r in now["records"]}
    kept = [r for r in prev.get("records", []) if r["bench"] not in ran]
    benches = {b: m for b, m in prev.get("benches", {}).items() if b not in ran and any(r["bench"] == b for r in kept)}
    return {**now, "benches": {**benches, **now["benches"]}, "records": now["records"] + kept}


def dump_run(run: dict[str, Any]) -> str:
    """The run as JSON with one record per line: a re-recorded run reads as a diff of figures."""
    head = {k: v for k, v in run.items() if k != "records"}
    lines = [json.dumps(head, ensure_ascii=False)[:-1] + ', "records": [']
    lines += [" " + json.dumps(r, ensure_ascii=False) + "," for r in run["records"]]
    if run["records"]:
        lines[-1] = lines[-1][:-1]
    return "\n".join(lines) + "\n]}\n"


def git_rev() -> str:
    try:
        rev = subprocess.run(
            ["git", "rev-parse", "--short", "HEAD"], cwd=HERE, capture_output=True, text=True, check=True
        ).stdout.strip()
        # The recorded runs change with every run: they alone don't make the code dirty.
        dirty = subprocess.run(
            ["git", "status", "--porcelain", "--untracked-files=no", "--", ".", ":(exclude)bench/last_run*.json"],
            cwd=HERE.parent,
            capture_output=True,
            text=True,
        ).stdout
    except (OSError, subprocess.CalledProcessError):
        return "unknown"
    return rev + ("-dirty" if dirty.strip() else "")


# --------------------------------------------------------------------------- running


def run_benches(chosen: list[str], env: dict[str, str], records_path: Path) -> tuple[dict[str, dict[str, Any]], list[str]]:
    """Run each bench with $BENCH_RECORD set; (per-bench date/rev/load at start, failed benches)."""
    env = {**env, "BENCH_RECORD": str(records_path)}
    rev = git_rev()
    meta: dict[str, dict[str, Any]] = {}
    failed = []
    with open(HERE / "results.txt", "w", encoding="utf-8") as out:
        for name in chosen:
            load = os.getloadavg()[0]
            date = time.strftime("%Y-%m-%d %H:%M:%S %z")
            head = f"\n===== {name} ({date}, load {load:.1f}) =====\n"
            print(head, flush=True)
            out.write(head)
            t0 = time.perf_counter()
            proc = subprocess.run([sys.executable, str(HERE / name)], cwd=HERE.parent, env=env, capture_output=True, text=True)
            print(proc.stdout, proc.stderr[-2000:] if proc.returncode else "", flush=True)
            out.write(proc.stdout)
            meta[Path(name).stem] = {
                "date": date,
                "git_rev": rev,
                "load_avg": round(load, 2),
                "seconds": round(time.perf_counter() - t0, 1),
            }
            if proc.returncode:
                failed.append(name)
                out.write(proc.stderr)
    return meta, failed


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--quick", action="store_true", help="smaller inputs (BENCH_EVENTS=1000000), recorded in last_run_quick.json")
    ap.add_argument("--fail-on-regression", action="store_true", help="exit 2 when a figure is worse by > 10 %% or went missing")
    ap.add_argument("--compare-only", metavar="RUN", type=Path, help="run nothing: compare RUN (.json run or .jsonl records)")
    ap.add_argument("--against", metavar="RUN", type=Path, help="compare with RUN instead of the recorded last run")
    ap.add_argument("--out", metavar="RUN", type=Path, help="save this run here instead of the recorded last run")
    ap.add_argument("only", nargs="*", help="run only these (e.g. bench_filters.py)")
    args = ap.parse_args()

    if args.compare_only:
        now = load_run(args.compare_only)
        if now is None:
            ap.error(f"{args.compare_only}: no such file")
        now.setdefault("quick", args.quick)  # bare records don't say; --quick does
        against = args.against or RECORDED[bool(now["quick"])]
        # Only the benches RUN measured (or tried to) can have figures missing.
        ran = set(now.get("benches") or {r["bench"] for r in now["records"]})
        rows = report(load_run(against), now, against, ran)
        return 2 if args.fail_on_regression and failing(rows) else 0

    unknown = [b for b in args.only if b not in BENCHES]
    if unknown:
        ap.error(f"unknown bench {', '.join(unknown)}; choose from {', '.join(BENCHES)}")
    env = dict(os.environ)
    if args.quick:
        env.setdefault("BENCH_EVENTS", "1000000")
    chosen = [b for b in BENCHES if not args.only or b in args.only]
    fd, name = tempfile.mkstemp(prefix="bench-records-", suffix=".jsonl")
    os.close(fd)
    records_path = Path(name)
    try:
        meta, failed = run_benches(chosen, env, records_path)
        records = read_records(records_path)
    finally:
        records_path.unlink(missing_ok=True)
    for bench in meta:
        if not any(r["bench"] == bench for r in records):
            print(f"{bench}: recorded no figure", file=sys.stderr)
    loads = [m["load_avg"] for m in meta.values()]
    now = {
        "date": time.strftime("%Y-%m-%d %H:%M:%S %z"),
        "load_avg": round(sum(loads) / len(loads), 2) if loads else None,  # mean of the 1-minute loads as each bench started
        "git_rev": git_rev(),
        "quick": args.quick,
        "benches": meta,
        "records": records,
    }
    recorded = RECORDED[args.quick]
    against = args.against or recorded
    prev = load_run(against)
    rows = report(prev, now, against, {Path(b).stem for b in chosen})
    if rows:
        with open(HERE / "results.txt", "a", encoding="utf-8") as out:
            out.write(f"\n===== comparison with {against.name} =====\n{table(rows)}\n")
    target = args.out or recorded
    # Figures of benches not run now are kept from the file being replaced, whichever run was compared with.
    base = prev if target == against else load_run(target)
    target.write_text(dump_run(merged(base, now)), encoding="utf-8")
    print(f"\nfigures saved in {target}")
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
        return 1
    if args.fail_on_regression and failing(rows):
        print(f"{len(failing(rows))} figures regressed or went missing", file=sys.stderr)
        return 2
    return 0


if __name__ == "__main__":
    sys.exit(main())
