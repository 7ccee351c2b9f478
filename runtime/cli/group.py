"""The `cep` command group; each command lives in a module of this package named for it.

Every way a command can end badly ends here in the same shape (docs/cli.md):
one `error: …` line on stderr, `hint: …` lines when there is something to suggest,
and an exit code — 1 for findings (diagnostics, a file not formatted, a failed
delivery), 2 for a bad flag, spec or file, 3 for a bug (the traceback only with
CEP_DEBUG=1), 130 for Ctrl-C.
"""

from __future__ import annotations

import os
import sys
import traceback
from typing import Any

import click

EXIT_FINDINGS = 1
EXIT_USAGE = 2
EXIT_BUG = 3


def print_error(message: str, hints: tuple[str, ...] | list[str] = ()) -> None:
    click.echo(f"error: {message}", err=True)
    for hint in hints:
        click.echo(f"hint: {hint}", err=True)


def _lower_first(text: str) -> str:
    return text[:1].lower() + text[1:] if text[:2] != text[:2].upper() else text


def _usage_error(e: click.UsageError) -> tuple[str, list[str]]:
    hints: list[str] = []
    if isinstance(e, click.NoSuchOption):
        message = f"no such option: {e.option_name}"
        if e.possibilities:
            hints.append(f"did you mean {' or '.join(sorted(e.possibilities))}?")
    else:
        message = _lower_first(e.format_message())
        # click writes its suggestion into the message ("No such command 'chek'. Did you mean 'check'?")
        message, sep, guess = message.partition(" Did you mean ")
        if sep:
            hints.append(f"did you mean {guess.replace(chr(39), '')}")
        message = message.rstrip(".")  # one line, like every other `error:` line
    if e.ctx is not None:
        hints.append(f"see `{e.ctx.command_path} --help`")
    return message, hints


def user_error(e: BaseException) -> tuple[str, tuple[str, ...]] | None:
    """(message, hints) when `e` is a mistake in what the user gave us, not a bug."""
    from cepdsl.durations import DurationError
    from runtime.sources.errors import SourceSpecError
    from runtime.state.spec import StateSpecError

    if isinstance(e, (SourceSpecError, StateSpecError)):
        return str(e), e.hints
    if isinstance(e, DurationError):
        return str(e), ()
    if isinstance(e, OSError) and e.filename is not None:
        return f"{e.filename}: {e.strerror or e}", ()
    return None


class CepGroup(click.Group):
    def main(
        self,
        args: Any = None,
        prog_name: str | None = None,
        complete_var: str | None = None,
        standalone_mode: bool = True,
        **extra: Any,
    ) -> Any:
        try:
            code = super().main(args, prog_name, complete_var, standalone_mode=False, **extra)
        except click.exceptions.NoArgsIsHelpError as e:  # bare `cep` or `cep notify`: the help, not an error
            click.echo(e.format_message(), err=True)
            sys.exit(EXIT_USAGE)
        except click.UsageError as e:
            message, hints = _usage_error(e)
            print_error(message, hints)
            sys.exit(EXIT_USAGE)
        except click.ClickException as e:
            print_error(_lower_first(e.format_message()))
            sys.exit(e.exit_code)
        except (click.Abort, KeyboardInterrupt):
            click.echo("", err=True)
            sys.exit(130)
        except BrokenPipeError:  # `cep explain x.cep | head`: the reader left, nothing to say
            sys.stderr = open(os.devnull, "w")  # noqa: SIM115 - silence the interpreter's flush at exit
            sys.exit(EXIT_FINDINGS)
        except Exception as e:  # noqa: BLE001 - the last line of defence against tracebacks
            known = user_error(e)
            if known is not None:
                print_error(*known)
                sys.exit(EXIT_USAGE)
            if os.environ.get("CEP_DEBUG"):
                traceback.print_exc()
            print_error(
                f"internal error: {type(e).__name__}: {e}", ("this is a bug in cep; run again with CEP_DEBUG=1 to see the traceback",)
            )
            sys.exit(EXIT_BUG)
        if standalone_mode:
            sys.exit(code or 0)
        return code


@click.group(cls=CepGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(package_name="cep")
def main() -> None:
    """cep — complex-event processing with checked, compiled rules."""
