"""`cep state migrate`: convert pickled checkpoints to the typed format, on the operator's word.

Checkpoints written before issue 12 are pickles (engine state version 1). The engine never
reads them: a pickle runs whatever code it names, and whoever can write the state store
could have written one. This command converts them, once, with an unpickler that builds
only the types checkpoints ever held (numbers, text, bytes, tuples, lists, dicts, sets,
numpy arrays of numbers, times) and refuses anything else, naming what it refused.

    cep state migrate [--state SPEC] [--dry-run]
"""

from __future__ import annotations

import io
import pickle
from typing import Any

import click

from runtime.cli.common import fail
from runtime.cli.group import main

#: What old checkpoints were made of: (module, name) the unpickler may build. Everything
#: else (os.system, builtins.eval, subprocess.Popen, ...) is refused.
ALLOWED: frozenset[tuple[str, str]] = frozenset({
    ("builtins", "set"), ("builtins", "frozenset"), ("builtins", "bytearray"), ("builtins", "complex"),
    ("builtins", "slice"), ("builtins", "range"),
    ("collections", "OrderedDict"),
    ("datetime", "datetime"), ("datetime", "date"), ("datetime", "time"), ("datetime", "timedelta"),
    ("datetime", "timezone"),
    ("numpy", "dtype"), ("numpy", "ndarray"),
    ("numpy.core.multiarray", "_reconstruct"), ("numpy._core.multiarray", "_reconstruct"),
    ("numpy.core.multiarray", "scalar"), ("numpy._core.multiarray", "scalar"),
    ("numpy.core.numeric", "_frombuffer"), ("numpy._core.numeric", "_frombuffer"),
})  # fmt: skip
_OLD_VERSION = 1


class RefusedPickle(ValueError):
    """A pickle that names something outside `ALLOWED`."""


class AllowListUnpickler(pickle.Unpickler):
    def find_class(self, module: str, name: str) -> Any:
        if (module, name) not in ALLOWED:
            raise RefusedPickle(f"refused to load {module}.{name}: not checkpoint data")
        return super().find_class(module, name)


def safe_loads(payload: bytes) -> Any:
    return AllowListUnpickler(io.BytesIO(payload)).load()


def convert(key: str, payload: bytes) -> bytes:
    """One old checkpoint entry (a pickled dict, its executor state a nested pickle) in the new format."""
    from cepdsl.engine import ENGINE_STATE_VERSION
    from cepdsl.state_format import encode_state

    data = safe_loads(payload)
    if not isinstance(data, dict) or data.get("version") != _OLD_VERSION:
        raise ValueError(f"{key}: not a version-{_OLD_VERSION} checkpoint entry")
    data = dict(data)
    data["version"] = ENGINE_STATE_VERSION
    if isinstance(data.get("executor"), (bytes, bytearray)):  # version 1 nested a pickle; version 2 embeds
        version, state = safe_loads(bytes(data["executor"]))
        data["executor"] = (version, state)
    return encode_state(data)


@main.group()
def state() -> None:
    """Engine state (checkpoints) in the state store."""


@state.command()
@click.option(
    "--state", "spec", default=None, help="State store: sqlite:PATH, a SQLite path, or redis://... (default .cep-state.sqlite)."
)
@click.option("--dry-run", is_flag=True, help="Say what would be converted; write nothing.")
def migrate(spec: str | None, dry_run: bool) -> None:
    """Convert pickled checkpoints (engine state version 1) to the typed format (version 2).

    Run it once, after upgrading and before `cep run`: the engine itself never reads a
    pickle, and starts a rule fresh when its stored state is not in the current format."""
    from cepdsl.state_format import is_pickle
    from runtime.run import DEFAULT_STATE
    from runtime.state.spec import open_store
    from runtime.stream_loop import OFFSETS_KEY

    target = spec or DEFAULT_STATE
    if "://" not in target and not target.startswith(("sqlite:", "memory")):
        target = "sqlite:" + target
    try:
        store = open_store(target)
    except (ValueError, OSError) as e:
        fail(f"cannot open the state store {target}: {e}", 2)
    converted, kept, refused = 0, 0, []
    try:
        for key in store.rule_ids():
            st = store.load(key)
            if st is None or key == OFFSETS_KEY or not is_pickle(bytes(st.payload)):
                kept += 1
                continue
            try:
                payload = convert(key, bytes(st.payload))
            except (RefusedPickle, ValueError, pickle.UnpicklingError, EOFError, TypeError) as e:
                refused.append(f"{key}: {e}")
                continue
            if not dry_run:
                from cepdsl.engine import ENGINE_STATE_VERSION

                store.save(key, ENGINE_STATE_VERSION, payload, dict(st.offsets))
            converted += 1
    finally:
        store.close()
    verb = "would convert" if dry_run else "converted"
    click.echo(f"{verb} {converted} checkpoint entr{'y' if converted == 1 else 'ies'}, {kept} already current")
    for line in refused:
        click.echo(f"refused {line}", err=True)
    if refused:
        fail(f"{len(refused)} of them not converted (left as they are)")
