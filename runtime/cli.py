"""`cep` — the command line (LANGUAGE.md §8).

Each command imports what it needs when it runs, so `cep check` does not pay
for Numba, Redis or HTTP clients.  User mistakes end with a message and exit
code 1 or 2; tracebacks are for bugs.
"""

from __future__ import annotations

import json
import os
import sys
from pathlib import Path
from typing import Any, NoReturn

import click

from cepdsl.diagnostics import CheckError, render_all


def _fail(message: str, code: int = 1) -> NoReturn:
    click.echo(f"error: {message}", err=True)
    sys.exit(code)


def _read(path: str) -> str:
    from cepdsl.frontend import read_rule_file

    try:
        return read_rule_file(path)
    except FileNotFoundError:
        _fail(f"{path}: no such file", 2)
    except IsADirectoryError:
        _fail(f"{path}: is a directory, not a rule file", 2)
    except CheckError as e:
        click.echo(render_all(e.diagnostics, {}), err=True)
        sys.exit(1)


def _program(path: str) -> Any:
    """The checked plan of a rule file, or exit 1 with every diagnostic on stderr."""
    from cepdsl.frontend import check_source

    text = _read(path)
    program, diags = check_source(text, path)
    if diags:
        click.echo(render_all(diags, {path: text}), err=True)
        sys.exit(1)
    return program


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="cep")
def main() -> None:
    """cep — complex-event processing with checked, compiled rules."""


# ----------------------------------------------------------------------------- check / fmt / explain


@main.command()
@click.argument("files", nargs=-1, required=True)
def check(files: tuple[str, ...]) -> None:
    """Check rule files; print every error as FILE:LINE:COL with the line and a caret."""
    from cepdsl.frontend import check_source

    failed = False
    for path in files:
        text = _read(path)
        _, diags = check_source(text, path)
        if diags:
            failed = True
            click.echo(render_all(diags, {path: text}), err=True)
    if failed:
        sys.exit(1)


@main.command()
@click.argument("file")
@click.option("--write", is_flag=True, help="Rewrite the file in place.")
@click.option("--check", "check_only", is_flag=True, help="Exit 1 if the file is not formatted.")
def fmt(file: str, write: bool, check_only: bool) -> None:
    """Print a rule file in canonical layout (comments kept)."""
    from cepdsl.fmt import format_source

    text = _read(file)
    try:
        out = format_source(text, file)
    except CheckError as e:
        click.echo(render_all(e.diagnostics, {file: text}), err=True)
        sys.exit(1)
    if check_only:
        if out != text:
            click.echo(f"{file}: would be reformatted", err=True)
            sys.exit(1)
        return
    if write:
        if out != text:
            Path(file).write_text(out, encoding="utf-8")
        return
    click.echo(out, nl=False)


@main.command()
@click.argument("file")
def explain(file: str) -> None:
    """Print the compiled plan of each rule."""
    from cepdsl.explain import explain as explain_program

    click.echo(explain_program(_program(file)), nl=False)


# ----------------------------------------------------------------------------- import


@main.command(name="import")
@click.argument("json_file")
@click.option("-o", "--output", help="Write the .cep file here instead of stdout.")
@click.option("--stream", default="events", show_default=True, help="Name of the stream to declare.")
def import_(json_file: str, output: str | None, stream: str) -> None:
    """Convert rules in the original design's JSON shape into a .cep file."""
    from cepdsl import compat

    try:
        data = json.loads(Path(json_file).read_text(encoding="utf-8"))
    except FileNotFoundError:
        _fail(f"{json_file}: no such file", 2)
    except json.JSONDecodeError as e:
        _fail(f"{json_file}:{e.lineno}:{e.colno}: invalid JSON: {e.msg}")
    try:
        text = compat.import_rules(data, json_file, stream=stream)
    except compat.ImportFailed as e:
        for p in e.problems:
            click.echo(f"{json_file}: {p}", err=True)
        sys.exit(1)
    if output:
        Path(output).write_text(text, encoding="utf-8")
    else:
        click.echo(text, nl=False)


# ----------------------------------------------------------------------------- replay


def _data_specs(program: Any, specs: tuple[str, ...]) -> dict[str, list[Path]]:
    from runtime.sources.parquet import resolve_paths

    names = [s.name for s in program.streams]
    out: dict[str, list[Path]] = {}
    for spec in specs:
        stream, sep, path = spec.partition("=")
        if not sep:
            if len(names) != 1:
                _fail(f"--data {spec}: say which stream it feeds, e.g. --data {names[0] if names else 'STREAM'}={spec}", 2)
            stream, path = names[0], spec
        if stream not in names:
            _fail(f"--data {spec}: the file declares no stream `{stream}` (streams: {', '.join(names)})", 2)
        try:
            out.setdefault(stream, []).extend(resolve_paths(path))
        except Exception as e:  # a spec that matches nothing names itself
            _fail(f"--data {spec}: {e}", 2)
    return out


@main.command()
@click.argument("file")
@click.option("--data", "data", multiple=True, required=True, help="[STREAM=]PATH: a Parquet file, directory or glob.")
@click.option("--out", "out_dir", required=True, help="Directory for <rule>.parquet and _dead_letter.parquet.")
@click.option("--batch-rows", default=1_000_000, show_default=True, help="Rows read per chunk.")
@click.option("--progress/--no-progress", default=None, help="Progress bar (default: on a terminal).")
def replay(file: str, data: tuple[str, ...], out_dir: str, batch_rows: int, progress: bool | None) -> None:
    """Replay Parquet history through the rules; write matches per rule."""
    from runtime.replay import replay as run_replay
    from runtime.sources.errors import SchemaError

    program = _program(file)
    paths = _data_specs(program, data)
    show = sys.stderr.isatty() if progress is None else progress
    try:
        if show:
            from runtime.progress import replay_progress

            with replay_progress() as callback:
                summary = run_replay(program, paths, Path(out_dir), progress=callback, batch_rows=batch_rows)
        else:
            summary = run_replay(program, paths, Path(out_dir), batch_rows=batch_rows)
    except SchemaError as e:
        _fail(str(e))
    from runtime.progress import print_summary

    print_summary(summary)


# ----------------------------------------------------------------------------- run / notify / serve


@main.command()
@click.argument("file")
@click.option("--source", "sources", multiple=True, required=True, help="[STREAM=]SPEC: jsonl:-, jsonl:PATH, parquet-dir:DIR, redis://..., http://...")
@click.option("--state", default=None, help="State store: a SQLite path (default .cep-state.sqlite) or redis://host:port/db.")
@click.option("--outbox", default=None, help="Notification outbox: a SQLite path (default .cep-outbox.sqlite) or redis://...")
@click.option("--checkpoint-every", default=5.0, show_default=True, help="Seconds between state checkpoints.")
@click.option("--out", "out_dir", default=None, help="Also append matches to DIR/<rule>.jsonl.")
@click.option("--stats/--no-stats", default=None, help="Live per-rule table (default: on a terminal).")
@click.option("--allow-host", "allow_hosts", multiple=True, help="Allow notifications to this host/network (e.g. 127.0.0.1).")
@click.option("--api", "api", default=None, metavar="HOST:PORT", help="Serve /cep/health, /cep/stats (and the rest of the API) while running.")
def run(file: str, sources: tuple[str, ...], state: str | None, outbox: str | None, checkpoint_every: float,
        out_dir: str | None, stats: bool | None, allow_hosts: tuple[str, ...], api: str | None = None) -> None:
    """Run rules continuously over live sources (reloads FILE on change or SIGHUP)."""
    from runtime.run import run_forever

    program = _program(file)
    show = sys.stderr.isatty() if stats is None else stats
    code = run_forever(
        file,
        program,
        sources,
        state=state,
        outbox=outbox,
        checkpoint_every=checkpoint_every,
        out_dir=out_dir,
        show_stats=show,
        allow_hosts=allow_hosts,
        api=api,
    )
    sys.exit(code)


@main.group()
def notify() -> None:
    """Notification tools."""


@notify.command(name="test")
@click.argument("file")
@click.option("--rule", "rule_id", required=True, help="Rule whose message to render.")
@click.option("--channel", "channel", required=True, help="Channel to send it through.")
@click.option("--record", default=None, help="Match record as JSON (default: a sample built from the rule's columns).")
@click.option("--dry-run", is_flag=True, help="Render only; send nothing.")
@click.option("--allow-host", "allow_hosts", multiple=True, help="Allow this host/network (e.g. 127.0.0.1).")
def notify_test(file: str, rule_id: str, channel: str, record: str | None, dry_run: bool, allow_hosts: tuple[str, ...]) -> None:
    """Render a rule's message and send it through a channel, to see it before anything fires."""
    from runtime.notify import DestinationPolicy
    from runtime.notify import notify_test as send_test

    program = _program(file)
    if rule_id not in {r.id for r in program.rules}:
        _fail(f"{file}: no rule `{rule_id}` (rules: {', '.join(r.id for r in program.rules)})", 2)
    if channel not in {c.name for c in program.channels}:
        _fail(f"{file}: no channel `{channel}` (channels: {', '.join(c.name for c in program.channels) or 'none'})", 2)
    rec = None
    if record:
        try:
            rec = json.loads(record)
        except json.JSONDecodeError as e:
            _fail(f"--record: invalid JSON: {e.msg}", 2)
    try:
        result = send_test(program, rule_id, channel, rec, send=not dry_run, policy=DestinationPolicy.from_entries(allow_hosts))
    except Exception as e:  # channel errors are the user's to see, secrets already redacted
        _fail(str(e))
    click.echo(result if isinstance(result, str) else json.dumps(result, indent=2, default=str))


@main.command()
@click.argument("file", required=False)
@click.option("--host", default="127.0.0.1", show_default=True)
@click.option("--port", default=8080, show_default=True)
def serve(file: str | None, host: str, port: int) -> None:
    """Serve the HTTP API (health, rules, stats, check)."""
    import uvicorn

    from runtime.api import create_app

    program = _program(file) if file else None
    uvicorn.run(create_app(program, file), host=host, port=port, log_level="warning")


if __name__ == "__main__":  # pragma: no cover
    main()
