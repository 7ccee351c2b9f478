"""What every command shares: user mistakes end in one `error:` line and an exit code, never a traceback."""

from __future__ import annotations

import sys
from collections.abc import Iterable
from pathlib import Path
from typing import Any, NoReturn

import click

from cepdsl.diagnostics import CheckError, nearest, render_all
from runtime.cli.group import EXIT_USAGE, print_error

#: The name `-` stands for stdin in rule-file arguments (diagnostics call it `<stdin>`).
STDIN = "-"
STDIN_NAME = "<stdin>"


def fail(message: str, code: int = 1, hints: Iterable[str] = ()) -> NoReturn:
    print_error(message, tuple(hints))
    sys.exit(code)


def did_you_mean(word: str, candidates: Iterable[str]) -> tuple[str, ...]:
    """`did you mean X?` when a candidate is close, for `hint:` lines."""
    best = nearest(word, list(candidates))
    return (f"did you mean `{best}`?",) if best else ()


def rule_paths(args: Iterable[str]) -> list[str]:
    """Rule-file arguments as files: a directory stands for its `*.cep` files (recursively,
    sorted), `-` for stdin (once). A missing path or an empty directory is an error (exit 2)."""
    out: list[str] = []
    for arg in args:
        if arg == STDIN:
            if STDIN not in out:
                out.append(STDIN)
            continue
        p = Path(arg)
        if p.is_dir():
            found = sorted(
                str(f) for f in p.rglob("*.cep") if f.is_file() and not any(part.startswith(".") for part in f.relative_to(p).parts)
            )
            if not found:
                fail(f"{arg}: no .cep files in this directory", EXIT_USAGE)
            out.extend(f for f in found if f not in out)
        elif not p.exists():
            fail(f"{arg}: no such file", EXIT_USAGE)
        elif arg not in out:
            out.append(arg)
    return out


def display_name(path: str) -> str:
    return STDIN_NAME if path == STDIN else path


def read_rules(path: str) -> str:
    """A rule file's text (`-` reads stdin); a missing, unreadable or non-UTF-8 file ends here."""
    from cepdsl.frontend import read_rule_file

    try:
        if path == STDIN:
            if sys.stdin.isatty():  # not piped: say why nothing happens yet
                click.echo("cep: reading rules from the terminal (Ctrl-D ends the input)", err=True)
            data = sys.stdin.buffer.read()
            try:
                return data.decode("utf-8")
            except UnicodeDecodeError:
                fail(f"{STDIN_NAME}: the input is not valid UTF-8", EXIT_USAGE)
        return read_rule_file(path)
    except FileNotFoundError:
        fail(f"{path}: no such file", EXIT_USAGE)
    except IsADirectoryError:
        fail(f"{path}: is a directory, not a rule file", EXIT_USAGE)
    except PermissionError:
        fail(f"{path}: permission denied", EXIT_USAGE)
    except OSError as e:
        fail(f"{path}: {e.strerror or e}", EXIT_USAGE)
    except CheckError as e:
        click.echo(render_all(e.diagnostics, {}), err=True)
        sys.exit(1)


def read_program_files(paths: str | tuple[str, ...] | list[str]) -> dict[str, str]:
    """{file: text} of the rule files given (directories expanded to their `*.cep`
    files, `-` read from stdin as `<stdin>`); a missing path or an empty directory exits 2."""
    given = [paths] if isinstance(paths, str) else list(paths)
    return {display_name(f): read_rules(f) for f in rule_paths(given)}


def load_program(path: str | tuple[str, ...] | list[str]) -> Any:
    """The checked plan of a rule file, of several or of a directory (one program,
    LANGUAGE.md §9.1), or exit 1 with every diagnostic on stderr."""
    from cepdsl.frontend import check_sources

    sources = read_program_files(path)
    program, diags = check_sources(sources)
    if diags:
        click.echo(render_all(diags, sources), err=True)
        sys.exit(1)
    return program


def user_exit(e: BaseException) -> NoReturn:
    """A user error raised below the CLI (a spec, a store, a file): one line, exit 2."""
    from runtime.cli.group import user_error

    known = user_error(e)
    if known is None:
        raise e
    fail(known[0], EXIT_USAGE, known[1])


class DurationType(click.ParamType):
    """A flag that takes a duration the way rule files and specs do (`5s`, `500ms`, `1m`, or seconds)."""

    name = "duration"

    def convert(self, value: Any, param: Any, ctx: Any) -> float:
        if isinstance(value, (int, float)):
            return float(value)
        from cepdsl.durations import DurationError, parse_duration_s

        try:
            seconds = parse_duration_s(str(value))
        except DurationError as e:
            self.fail(str(e), param, ctx)
        if seconds <= 0:
            self.fail(f"{value!r} must be longer than zero", param, ctx)
        return seconds


DURATION = DurationType()


def host_port(address: str, flag: str) -> tuple[str, int]:
    """`HOST:PORT` (or `:PORT`) → (host, port); anything else ends in an error naming the flag."""
    host, sep, port = address.rpartition(":")
    if not sep or not port.isdigit() or not 0 < int(port) < 65536:
        fail(f"{flag} {address}: expected HOST:PORT, e.g. 127.0.0.1:8080", EXIT_USAGE)
    return host.strip("[]") or "127.0.0.1", int(port)
