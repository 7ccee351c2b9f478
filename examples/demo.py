"""The cep demo: check, explain, replay and embed — on the bundled example data.

Runs on a bare machine (no Redis, no network): state is in memory, notifications
go to the console and to out/notifications.jsonl.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import polars as pl

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
CEP = [sys.executable, "-m", "runtime.cli"]


def step(title: str) -> None:
    # Bold on a terminal, plain with NO_COLOR (https://no-color.org) or into a file.
    bold = sys.stdout.isatty() and not os.environ.get("NO_COLOR")
    print(f"\n\033[1m== {title}\033[0m" if bold else f"\n== {title}", flush=True)


def cep(*args: str) -> None:
    print("$ cep " + " ".join(args), flush=True)
    subprocess.run([*CEP, *args], cwd=ROOT, check=True)


def main() -> None:
    if not (HERE / "data" / "auth.jsonl").exists():
        subprocess.run([sys.executable, str(HERE / "make_data.py")], check=True)
    out = ROOT / "out"
    shutil.rmtree(out, ignore_errors=True)

    step("1. Check the rules like a compiler would")
    cep("check", "examples/ops.cep")
    step("   ... and a file with mistakes")
    subprocess.run([*CEP, "check", "examples/broken.cep"], cwd=ROOT)

    step("2. The compiled plan of one rule")
    text = subprocess.run([*CEP, "explain", "examples/ops.cep"], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    block = text.split("\n\n")
    print(next((b for b in block if "brute_force" in b), text[:1500]))

    step("3. Replay four hours of history")
    cep(
        "replay",
        "examples/ops.cep",
        "--data",
        "metrics=examples/data/metrics.parquet",
        "--data",
        "auth=examples/data/auth.parquet",
        "--out",
        "out/replay",
        "--no-progress",
    )
    for name in ("hot_host", "brute_force", "heartbeat_lost", "morning_errors"):
        frame = pl.read_parquet(out / "replay" / f"{name}.parquet")
        print(f"\n{name}: {frame.height} match(es)")
        if frame.height:
            print(frame.head(3))

    step("4. Stream events through `cep run` (JSON lines; notifications to the console)")
    cep(
        "run",
        "examples/ops.cep",
        "--source",
        "auth=jsonl:examples/data/auth.jsonl?follow=false",
        "--out",
        "out/run",
        "--state",
        "out/state.sqlite",
        "--outbox",
        "out/outbox.sqlite",
    )
    dead = (out / "run" / "_dead_letter.jsonl").read_text().splitlines()
    print(f"dead letters: {len(dead)} -> {dead[0][:160]}")

    step("5. Embed compiled rules in your own pipeline")
    import cepdsl

    rules = cepdsl.compile(HERE / "ops.cep")
    session = rules.session()
    auth = pl.read_parquet(HERE / "data" / "auth.parquet")
    found = {}
    for batch in auth.iter_slices(3):  # micro-batches of three events
        for rule, matches in session.push("auth", batch).items():
            if matches.height:
                found.setdefault(rule, []).append(matches)
    for rule, matches in session.flush().items():
        if matches.height:
            found.setdefault(rule, []).append(matches)
    for rule, frames in found.items():
        print(f"{rule}: {sum(f.height for f in frames)} match(es) from micro-batches")
        print(pl.concat(frames).select("ts", "user", "match_start", "fail_count"))


if __name__ == "__main__":
    main()
