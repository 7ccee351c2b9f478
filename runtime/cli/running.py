"""`cep run`: rules over live sources."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable, Iterable
from typing import Any, TypedDict

import click

from runtime.cli.common import DURATION, load_program
from runtime.cli.distributing import cluster_options, distributed_run_options, run_on_workers
from runtime.cli.group import main


def option_group(
    name: str, keys: Iterable[str], options: list[Callable[..., Any]]
) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """A decorator that adds `options` to a command and hands it the values of `keys` as one
    dict argument, `name`; the other options' values stay arguments of their own."""
    keys = tuple(keys)

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        @functools.wraps(fn)
        def command(**kw: Any) -> Any:
            return fn(**{name: {k: kw.pop(k) for k in keys}}, **kw)

        for option in reversed(options):
            command = option(command)
        return command

    return decorate


class EngineOptions(TypedDict):
    """Where state, notifications and matches go: what `cep run` and `cep serve` hand alike to
    the engine they start (`run_forever`, `serve_forever`)."""

    state: str | None
    outbox: str | None
    checkpoint_every: float
    out_dir: str | None
    allow_hosts: tuple[str, ...]


#: The options `cep run` and `cep serve` share (`cep run --api` is `cep serve`): EngineOptions
#: as one `engine` argument, then --log-format and the cluster's (`--workers`: the same flow).
engine_options = option_group(
    "engine",
    EngineOptions.__annotations__,
    [
        click.option(
            "--state",
            default=None,
            help="State store: a SQLite path (default .cep-state.sqlite; sqlite:PATH too), memory, or redis://host:port/db.",
        ),
        click.option(
            "--outbox",
            default=None,
            help="Notification outbox: a SQLite path (default .cep-outbox.sqlite; sqlite:PATH too) or redis://...",
        ),
        click.option(
            "--checkpoint-every",
            default="5s",
            show_default=True,
            type=DURATION,
            help="Time between state checkpoints (5s, 500ms, 1m or seconds).",
        ),
        click.option(
            "--out",
            "out_dir",
            default=None,
            help="Also append matches to DIR/<rule>.jsonl and dead letters to DIR/_dead_letter.jsonl.",
        ),
        click.option("--allow-host", "allow_hosts", multiple=True, help="Allow notifications to this host/network (e.g. 127.0.0.1)."),
        click.option(
            "--log-format",
            type=click.Choice(("text", "json")),
            default="text",
            show_default=True,
            help="Log lines (the API server's included) as text or one JSON object per line.",
        ),
        cluster_options,
        distributed_run_options,
    ],
)


def workers_asked(distributed: dict[str, Any]) -> bool:
    """`--workers`, `-a` or `-i`: the command runs as a flow on Bytewax."""
    return any(distributed.get(k) is not None for k in ("workers", "addresses", "process_id"))


def program_and_sources(source_help: str, *, required: bool) -> Callable[[Callable[..., Any]], Callable[..., Any]]:
    """FILES, the rules (several files, or a directory, form one program), and the repeatable
    `--source [STREAM=]SPEC` feeding its streams."""

    def decorate(fn: Callable[..., Any]) -> Callable[..., Any]:
        fn = click.option("--source", "sources", multiple=True, required=required, help=source_help)(fn)
        return click.argument("files", nargs=-1, required=True)(fn)

    return decorate


@main.command()
@program_and_sources("[STREAM=]SPEC: jsonl:-, jsonl:PATH, parquet-dir:DIR, redis://..., http://...", required=True)
@click.option("--fresh", is_flag=True, help="Start over: forget saved rule state and source offsets (never rules or alert history).")
@click.option(
    "--stats/--no-stats",
    default=None,
    help="Live per-rule table (default: on a terminal) and the summary on exit; --no-stats prints neither.",
)
@click.option(
    "--api",
    "api",
    default=None,
    metavar="HOST:PORT",
    help="Serve the operations API while running (the same as `cep serve --listen HOST:PORT`).",
)
@click.option(
    "--redis", "redis", default=None, metavar="URL", help="Redis for redis(...) lookup tables (default: a redis:// --state)."
)
@click.option(
    "--max-future",
    "max_future",
    default="1h",
    show_default=True,
    metavar="DURATION",
    help="Events further ahead of the wall clock are dead letters (they would move time).",
)
@engine_options
def run(
    files: tuple[str, ...],
    sources: tuple[str, ...],
    fresh: bool,
    stats: bool | None,
    api: str | None,
    redis: str | None,
    max_future: str,
    engine: EngineOptions,
    log_format: str,
    **distributed: Any,
) -> None:
    """Run rules continuously over live sources (reloads FILES on change or SIGHUP).
    Several files, or a directory, form one program."""
    from runtime.cli.common import host_port

    if workers_asked(distributed):
        from runtime.cli.common import fail

        if engine["state"]:
            fail("--state is for one process; with --workers state is kept by Bytewax: use --recovery DIR", 2)
        if api:
            fail("--api with --workers: use `cep serve FILE --workers N --source ...`", 2)
        sys.exit(
            run_on_workers(
                load_program(files),
                sources,
                outbox=engine["outbox"],
                out_dir=engine["out_dir"],
                allow_hosts=engine["allow_hosts"],
                **distributed,
            )
        )
    if api is not None:
        host_port(api, "--api")
        # `cep run --api HOST:PORT` is `cep serve --listen HOST:PORT`: one server process.
        from runtime import logs
        from runtime.serve import serve_forever

        logs.configure(log_format, level=os.environ.get("CEP_LOG", "INFO"))
        sys.exit(serve_forever(list(files), sources, listen=api, **engine))
    from runtime.run import run_forever
    from runtime.sources.spec import parse_duration_s

    try:
        max_future_s = parse_duration_s(max_future)
    except ValueError as e:
        raise click.BadParameter(str(e), param_hint="--max-future") from None
    program = load_program(files)
    file: str | list[str] = files[0] if len(files) == 1 else list(files)
    show = sys.stderr.isatty() if stats is None else stats
    code = run_forever(
        file,
        program,
        sources,
        **engine,
        show_stats=show,
        redis=redis,
        fresh=fresh,
        summary=stats is not False,
        log_format=log_format,
        max_future_s=max_future_s,
    )
    sys.exit(code)
