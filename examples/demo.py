"""The cep demo: check, explain, replay and embed — on the bundled example data.

Runs on a bare machine (no Redis, no network): state is in memory, notifications
go to the console and to out/notifications.jsonl.

With `--serve` it runs live instead: `cep serve examples/ops.cep` follows two
JSON-lines files under out/live/ that this script keeps appending generated
events to (see live_feed.py), and the web console shows the rules firing.
"""

from __future__ import annotations

import argparse
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
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


def demo() -> None:
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

    step("Next: watch rules and alerts live in the web console")
    print("$ .venv/bin/python examples/demo.py --serve     # then open the address it prints")


def port_in_use(host: str, port: int) -> bool:
    """Whether `cep serve` would fail to listen there. SO_REUSEADDR as uvicorn sets it, so
    connections of a server stopped a moment ago (TIME_WAIT) do not count as a listener."""
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        try:
            s.bind((host, port))
        except OSError:
            return True
    return False


def free_port(host: str) -> int:
    with socket.socket(socket.AF_INET6 if ":" in host else socket.AF_INET) as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def wait_until_up(server: subprocess.Popen[bytes], url: str, timeout_s: float = 180.0) -> bool:
    """Until /cep/health answers (503, degraded, is an answer too); False if the server exits first."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline and server.poll() is None:
        try:
            with urllib.request.urlopen(url + "/cep/health", timeout=1):
                return True
        except urllib.error.HTTPError:
            return True
        except OSError:
            time.sleep(0.2)
    return False


def stop(server: subprocess.Popen[bytes]) -> int:
    """Stop `cep serve` as Ctrl-C does (it drains its notifications and exits); kill it only
    if it has not gone after 30 s, or on a second Ctrl-C."""
    if server.poll() is None:
        server.send_signal(signal.SIGINT)
    try:
        return server.wait(30)
    except (subprocess.TimeoutExpired, KeyboardInterrupt):
        server.kill()
        return server.wait()


def serve_live(listen: str, rate: float, seconds: float | None) -> int:
    """`--serve`: cep serve over out/live/*.jsonl, fed here until Ctrl-C or `seconds`."""
    from live_feed import LiveFeed

    from runtime.serve import split_listen

    try:
        host, port = split_listen(listen)
    except ValueError as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    if port_in_use(host, port):
        print(f"error: {host}:{port} is already in use; pick another port with --listen {host}:PORT", file=sys.stderr)
        return 2
    port = port or free_port(host)
    address = f"http://[{host}]:{port}" if ":" in host else f"http://{host}:{port}"
    live = ROOT / "out" / "live"
    shutil.rmtree(live, ignore_errors=True)
    live.mkdir(parents=True)
    for name in ("metrics.jsonl", "auth.jsonl"):
        (live / name).touch()  # a followed file that does not exist yet is a source error
    args = (
        "serve",
        "examples/ops.cep",
        "--source",
        "metrics=jsonl:out/live/metrics.jsonl",
        "--source",
        "auth=jsonl:out/live/auth.jsonl",
        "--state",
        "memory",
        "--outbox",
        "out/live/outbox.sqlite",
        "--listen",
        f"{host}:{port}",
    )
    print("$ cep " + " ".join(args), flush=True)
    # Warnings and alerts only (unless CEP_LOG says otherwise): ops.cep's console channel
    # prints the critical alerts here.
    env = {"CEP_LOG": "WARNING", **os.environ}
    # SIGTERM (a service manager, a test) stops the server by the same path as Ctrl-C.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    server = subprocess.Popen([*CEP, *args], cwd=ROOT, env=env)
    failed = None
    feed = LiveFeed(live, rate)
    try:
        if not wait_until_up(server, address):
            failed = "cep serve did not start"
        else:
            step(f"open {address}/ in a browser — rules and alerts update live; Ctrl-C stops")
            print("(a first run compiles the engine's kernels: the numbers may take half a minute to move)", flush=True)
            feed.run(seconds, running=lambda: server.poll() is None)
            if server.poll() is not None:
                failed = "cep serve stopped"
    except KeyboardInterrupt:
        pass
    code = stop(server)
    if failed:
        print(f"error: {failed} (exit code {code}; its messages are above)", file=sys.stderr)
        return code or 1
    print(f"\nstopped: {feed.written} events written to out/live/; cep serve exited with {code}", flush=True)
    return code


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--serve", action="store_true", help="run live: cep serve and its web console over generated events")
    parser.add_argument("--listen", default="127.0.0.1:8080", help="with --serve: HOST:PORT of the web console (default %(default)s)")
    parser.add_argument("--rate", type=float, default=5.0, help="with --serve: metric samples a second over all hosts (default 5)")
    parser.add_argument("--seconds", type=float, default=None, help="with --serve: stop after this many seconds (default: at Ctrl-C)")
    opts = parser.parse_args(argv)
    if not opts.serve:
        if opts.seconds is not None or opts.rate != 5.0 or opts.listen != "127.0.0.1:8080":
            parser.error("--listen, --rate and --seconds go with --serve")
        demo()
        return 0
    if opts.rate <= 0:
        parser.error("--rate must be above 0")
    return serve_live(opts.listen, opts.rate, opts.seconds)


if __name__ == "__main__":
    sys.exit(main())
