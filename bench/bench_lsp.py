"""`cep lsp`: how soon updated diagnostics arrive after a keystroke in a 1,000-rule file.

A real `cep lsp` subprocess over stdio (tests/support/lsp_client.py) opens the
generated 1,000-rule file of bench_check.py; then each edit types or deletes one
character (toggling an unknown-field error in a rule, so every edit changes the
diagnostics and is published) and the time from sending `didChange` to receiving
that version's `publishDiagnostics` is taken, debounce included (50 ms, the default).
A second series inserts and removes a line near the top (every declaration below
moves).  Target: ≤ 300 ms.

Peers, same run: what an editor plugin without a server does on each change, a whole
`check_source` of the file in process (parse + check), and a `cep check FILE` process.

    .venv/bin/python bench/bench_lsp.py [--rules 1000] [--edits 30]
"""

from __future__ import annotations

import argparse
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

from bench.bench_check import generate  # noqa: E402
from tests.support.lsp_client import LspClient  # noqa: E402


def _pos(text: str, offset: int) -> tuple[int, int]:
    line = text.count("\n", 0, offset)
    return line, offset - (text.rfind("\n", 0, offset) + 1)


def _series(client: LspClient, uri: str, text: str, version: int, edits: list[tuple[int, str, int]]) -> tuple[list[float], int, str]:
    """Apply (offset, inserted text, deleted length) edits one by one; seconds to each publish."""
    times = []
    for offset, insert, delete in edits:
        version += 1
        start = _pos(text, offset)
        end = _pos(text, offset + delete)
        n = len(client.notifications)
        t0 = time.perf_counter()
        client.change(uri, version, start, end, insert)
        client.diagnostics(uri, version=version, after=n, timeout=60)
        times.append(time.perf_counter() - t0)
        text = text[:offset] + insert + text[offset + delete :]
    return times, version, text


def _fmt(times: list[float]) -> str:
    ms = sorted(t * 1000 for t in times)
    p95 = ms[min(len(ms) - 1, int(round(0.95 * (len(ms) - 1))))]
    return f"p50 {statistics.median(ms):.0f} ms, p95 {p95:.0f} ms, max {ms[-1]:.0f} ms"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--rules", type=int, default=1000)
    ap.add_argument("--edits", type=int, default=30)
    args = ap.parse_args(argv)

    text, _ = generate(args.rules)
    tmp = Path(tempfile.mkdtemp(prefix="bench-lsp-"))
    path = tmp / "rules.cep"
    path.write_text(text)
    uri = path.as_uri()
    print(f"{args.rules} rules, {len(text) / 1024:.0f} KiB, {text.count(chr(10))} lines")

    client = LspClient(cwd=ROOT)
    try:
        client.initialize(tmp)
        t0 = time.perf_counter()
        client.open(uri, text)
        client.diagnostics(uri, version=1, timeout=120)
        print(f"open → first diagnostics: {1000 * (time.perf_counter() - t0):.0f} ms (one whole parse and check)")

        # Keystrokes in rules spread over the file: type an `x` after a field name, then delete it.
        spots = [text.index("  where ", int(len(text) * k / args.edits)) + len("  where ") for k in range(args.edits)]
        spots = [s + len(text[s:].split(" ", 1)[0].split("(")[-1]) for s in spots]
        typing = []
        for s in spots:
            typing += [(s, "x", 0), (s, "", 1)]
        char_times, version, text = _series(client, uri, text, 1, typing)
        top = text.index("rule ")  # above every rule: all of them move down and back
        lines = []
        for _ in range(max(args.edits // 3, 3)):
            lines += [(top, "rule broken from nowhere\n", 0), (top, "", len("rule broken from nowhere\n"))]
        line_times, version, text = _series(client, uri, text, version, lines)
    finally:
        client.close()

    from cepdsl.frontend import check_source

    whole = []
    for _ in range(5):
        t0 = time.perf_counter()
        check_source(text, str(path))
        whole.append(time.perf_counter() - t0)
    t0 = time.perf_counter()
    subprocess.run([sys.executable, "-m", "runtime.cli", "check", str(path)], capture_output=True, cwd=ROOT)
    process = time.perf_counter() - t0

    ours = statistics.median(char_times)
    peer = min(whole)
    print(f"keystroke in a rule → updated diagnostics ({len(char_times)} edits): {_fmt(char_times)}")
    print(f"line inserted/removed above every rule ({len(line_times)} edits): {_fmt(line_times)}")
    print(
        f"peer: whole check_source of the file in process: best {1000 * peer:.0f} ms; `cep check FILE` process: {1000 * process:.0f} ms"
    )
    print(f"ratio (peer in process / ours p50, ours with 50 ms debounce and the round trip): {peer / ours:.1f}x")
    worst = max(max(char_times), max(line_times))
    print(f"target ≤ 300 ms: {'met' if worst <= 0.3 else 'NOT met'} (worst {1000 * worst:.0f} ms)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
