"""Rule changes while a flow runs: a control feed every reader follows.

A control feed is an ordered list of commands (`register`, `enable`, `disable`,
`delete`) that anything can append to: a JSON lines file, a Redis stream, or
an in-process `MemoryFeed` (what a rule catalogue in the same process feeds).
Every source partition of the flow reads the whole feed and folds it into a
`RuleTable` (the compiled program's rules, then each command in order), so
every worker ends up with the same rules: the feed is the broadcast.  The fold
is deterministic, so a restarted partition rebuilds it by reading the feed again.

What a command does (docs/distributed.md):
- `register` (rule text, a self-contained .cep source declaring the stream it
  reads): adds its rules, or replaces rules with the same ID; a replaced rule
  whose matching is unchanged keeps its key partitions and state.
- `disable` / `enable`: a disabled rule gets no rows and its matches are dropped;
  its state is kept and its key partitions still follow time.
- `delete`: the rule stops; its key partitions get nothing more.
"""

from __future__ import annotations

import dataclasses
import json
import re
import threading
from collections.abc import Iterable
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from cepdsl.plan import ChannelPlan, Program, RulePlan

if TYPE_CHECKING:
    from runtime.sqldb import SqlDb

OPS = ("register", "enable", "disable", "delete")


@dataclass(frozen=True)
class Command:
    op: str
    rule: str = ""  # rule ID (register: optional, the text says)
    text: str = ""  # register: .cep source

    @staticmethod
    def of(data: dict[str, Any]) -> Command:
        op = str(data.get("op", ""))
        if op not in OPS:
            raise ValueError(f"control command {data!r}: `op` must be one of {', '.join(OPS)}")
        return Command(op, str(data.get("rule", "")), str(data.get("text", "")))

    def as_dict(self) -> dict[str, str]:
        return {"op": self.op, "rule": self.rule, "text": self.text}


class ControlFeed(Protocol):
    def read(self, after: int) -> list[Command]:
        """Commands after the first `after` ones, in order."""
        ...


class MemoryFeed:
    """An in-process feed: `append` from any thread (a catalogue, a test, an HTTP handler)."""

    def __init__(self, commands: Iterable[Command] = ()) -> None:
        self._commands = list(commands)
        self._lock = threading.Lock()

    def append(self, command: Command | dict[str, Any]) -> int:
        cmd = command if isinstance(command, Command) else Command.of(command)
        with self._lock:
            self._commands.append(cmd)
            return len(self._commands)

    def read(self, after: int) -> list[Command]:
        with self._lock:
            return self._commands[after:]


class FileFeed:
    """A JSON lines file, one command per line; shared by processes on one machine."""

    def __init__(self, path: str | Path) -> None:
        self.path = Path(path)

    def append(self, command: Command | dict[str, Any]) -> None:
        cmd = command if isinstance(command, Command) else Command.of(command)
        with open(self.path, "a", encoding="utf-8") as f:
            f.write(json.dumps(cmd.as_dict()) + "\n")

    def read(self, after: int) -> list[Command]:
        try:
            lines = self.path.read_text(encoding="utf-8").splitlines()
        except FileNotFoundError:
            return []
        # Only complete lines: a writer may be half-way through the last one.
        complete = lines if self.path.read_bytes().endswith(b"\n") else lines[:-1]
        return [Command.of(json.loads(line)) for line in complete[after:] if line.strip()]


class RedisFeed:
    """A Redis stream of commands (field `data`: the command as JSON); shared by machines."""

    def __init__(self, url: str, key: str = "cep:control") -> None:
        import redis

        self.redis = redis.Redis.from_url(url)
        self.key = key

    def append(self, command: Command | dict[str, Any]) -> None:
        cmd = command if isinstance(command, Command) else Command.of(command)
        self.redis.xadd(self.key, {"data": json.dumps(cmd.as_dict())})

    def read(self, after: int) -> list[Command]:
        entries = self.redis.xrange(self.key)
        return [Command.of(json.loads(fields[b"data"])) for _, fields in entries[after:]]


class SqlFeed:
    """A table of commands in PostgreSQL (shared by every process that reaches the database,
    like the rule catalogue's PostgreSQL store) or SQLite (processes on one machine).

        TABLE (id BIGSERIAL PRIMARY KEY, data TEXT, created_at)   one command per row, in id order

    Readers count commands by position (`read(after)`), so ids must become visible in id
    order: a writer takes the table's write lock for its insert, so a later id never commits
    before an earlier one (readers are not blocked by it)."""

    def __init__(self, spec: str, table: str = "cep_control") -> None:
        if not IDENTIFIER.fullmatch(table):
            raise ValueError(f"control feed table {table!r}: letters, digits and `_` (a schema may prefix it: schema.table)")
        self.spec, self.table = spec, table
        self._db: SqlDb | None = None
        self.connect()

    def connect(self) -> SqlDb:
        """The connection, opened again after one failed (the server restarted, the network blinked)."""
        from runtime.sqldb import SqlDb

        if self._db is None:
            db = SqlDb(self.spec)
            db.script(
                [f"CREATE TABLE IF NOT EXISTS {self.table} (id {db.serial}, data TEXT NOT NULL, created_at DOUBLE PRECISION NOT NULL)"]
            )
            self._db = db
        return self._db

    def _failed(self) -> None:
        db, self._db = self._db, None
        if db is not None:
            try:
                db.close()
            except Exception:  # noqa: BLE001 - already broken
                pass

    def append(self, command: Command | dict[str, Any]) -> None:
        import time

        cmd = command if isinstance(command, Command) else Command.of(command)
        db = self.connect()
        try:
            with db.transaction() as cur:
                if db.dialect == "postgresql":
                    # EXCLUSIVE: other writers wait, readers (ACCESS SHARE) do not.
                    cur.execute(f"LOCK TABLE {self.table} IN EXCLUSIVE MODE")
                cur.execute(
                    db.sql(f"INSERT INTO {self.table} (data, created_at) VALUES (?, ?)"), (json.dumps(cmd.as_dict()), time.time())
                )
        except Exception:
            self._failed()
            raise

    def read(self, after: int) -> list[Command]:
        db = self.connect()
        # SQLite needs a LIMIT before an OFFSET; -1 is none.
        limit = "" if db.dialect == "postgresql" else " LIMIT -1"
        try:
            rows = db.rows(f"SELECT data FROM {self.table} ORDER BY id{limit} OFFSET ?", (int(after),))
        except Exception:
            self._failed()
            raise
        return [Command.of(json.loads(data)) for (data,) in rows]

    def close(self) -> None:
        self._failed()


#: A table name in a control feed spec (optionally schema-qualified): it is spliced into SQL.
IDENTIFIER = re.compile(r"[A-Za-z_][A-Za-z0-9_]{0,62}(\.[A-Za-z_][A-Za-z0-9_]{0,62})?")


def open_feed(spec: str | None) -> ControlFeed | None:
    """`--control` values: a file path, redis://HOST:PORT/DB?key=KEY,
    postgresql://USER@HOST:PORT/DB?table=TABLE or sqlite:PATH?table=TABLE."""
    if not spec:
        return None
    if spec.startswith(("postgresql://", "postgres://", "sqlite:")):
        from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

        if spec.startswith("sqlite:"):
            path, _, query = spec.partition("?")
            table = dict(parse_qsl(query)).get("table", "cep_control")
            return SqlFeed(path, table)
        parts = urlsplit(spec)
        pairs = parse_qsl(parts.query)
        table = dict(pairs).get("table", "cep_control")
        # The rest of the query (sslmode=..., connect_timeout=...) is psycopg's.
        rest = urlencode([(k, v) for k, v in pairs if k != "table"])
        return SqlFeed(urlunsplit((parts.scheme, parts.netloc, parts.path, rest, "")), table)
    if spec.startswith(("redis://", "rediss://")):
        from urllib.parse import parse_qsl, urlsplit, urlunsplit

        parts = urlsplit(spec)
        key = dict(parse_qsl(parts.query)).get("key", "cep:control")
        return RedisFeed(urlunsplit((parts.scheme, parts.netloc, parts.path, "", "")), key)
    return FileFeed(spec)


@dataclass
class RuleTable:
    """The rules in force: the program's, then every command applied in order."""

    program: Program
    rules: dict[str, RulePlan] = field(default_factory=dict)
    enabled: dict[str, bool] = field(default_factory=dict)
    applied: int = 0
    errors: list[str] = field(default_factory=list)
    #: Channels and templates as the latest `register` text declared them (the notifier needs
    #: a registered rule's channels; a changed channel comes with its rules registered again).
    channels: dict[str, ChannelPlan] = field(default_factory=dict)
    templates: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.rules:
            self.rules = {r.id: r for r in self.program.rules}
            self.enabled = {r.id: True for r in self.program.rules}
        self.channels = self.channels or {c.name: c for c in self.program.channels}
        self.templates = self.templates or {t.name: t for t in self.program.templates}

    def as_program(self, enabled_only: bool = False) -> Program:
        """The rules in force as a program (the notifier's, the API's view of a running flow)."""
        rules = tuple(r for rid, r in self.rules.items() if not enabled_only or self.enabled.get(rid, True))
        return dataclasses.replace(
            self.program, channels=tuple(self.channels.values()), rules=rules, templates=tuple(self.templates.values())
        )

    def apply(self, commands: Iterable[Command]) -> bool:
        """Apply commands; True when the rule set or a flag changed."""
        changed = False
        for cmd in commands:
            self.applied += 1
            try:
                changed |= self._apply(cmd)
            except Exception as e:  # noqa: BLE001 - a bad command is reported, the flow keeps running
                self.errors.append(f"control command {self.applied} ({cmd.op} {cmd.rule}): {e}")
        return changed

    def _apply(self, cmd: Command) -> bool:
        if cmd.op == "register":
            from cepdsl.frontend import compile_source

            new = compile_source(cmd.text, f"<control {self.applied}>")
            streams = {s.name: s for s in self.program.streams}
            taken = [r for r in new.rules if not cmd.rule or r.id == cmd.rule]
            if not taken:
                raise KeyError(f"the text declares no rule {cmd.rule!r}" if cmd.rule else "the text declares no rule")
            for rule in taken:
                known = streams.get(rule.stream.name)
                if known is None or known != rule.stream:
                    raise ValueError(f"rule {rule.id} reads stream {rule.stream.name}, not declared so by the running flow")
            for rule in taken:
                self.rules[rule.id] = rule
                self.enabled.setdefault(rule.id, True)
            self.channels.update({c.name: c for c in new.channels})
            self.templates.update({t.name: t for t in new.templates})
            return True
        if cmd.rule not in self.rules:
            raise KeyError(f"no rule {cmd.rule!r}")
        if cmd.op == "delete":
            del self.rules[cmd.rule]
            self.enabled.pop(cmd.rule, None)
            return True
        want = cmd.op == "enable"
        if self.enabled.get(cmd.rule) == want:
            return False
        self.enabled[cmd.rule] = want
        return True

    def listing(self) -> list[dict[str, Any]]:
        """`list_registered_rules`: every rule in force, its stream, kind and flag."""
        return [
            {"rule": rid, "stream": r.stream.name, "kind": r.kind.value, "enabled": self.enabled.get(rid, True)}
            for rid, r in self.rules.items()
        ]


def replay_table(program: Program, feed: ControlFeed | None, upto: int | None = None) -> RuleTable:
    """The table as a reader that applied `upto` commands (None: all) has it."""
    table = RuleTable(program)
    if feed is not None:
        commands = feed.read(0)
        table.apply(commands if upto is None else commands[:upto])
    return table


# ----------------------------------------------------------------------------- catalogue → feed


@dataclass(frozen=True)
class Reconciled:
    """What one catalogue change asked of a running flow (the API's reload report)."""

    commands: tuple[Command, ...]
    kept: tuple[str, ...] = ()
    changed: tuple[str, ...] = ()
    added: tuple[str, ...] = ()
    removed: tuple[str, ...] = ()


def _presented(rule: RulePlan, channels: dict[str, ChannelPlan]) -> tuple[Any, ...]:
    """A rule as the flow and its notifier use it: where it was written does not count, the
    channels it notifies do (a changed channel re-registers its rules; their state is kept)."""
    names = (*rule.notify, *([rule.fallback] if rule.fallback else []))
    return dataclasses.replace(rule, file="", line=0), tuple(channels.get(n) for n in names)


def rule_text(declared: Iterable[Any], rule_id: str) -> str:
    """A self-contained .cep text for one rule of an assembled program: every declaration that
    is not a rule (streams, channels, templates, ...) and the rule itself."""
    parts = [d.text for d in declared if d.kind != "rule"]
    parts += [d.text for d in declared if d.kind == "rule" and d.name == rule_id]
    return "\n".join(p.rstrip() + "\n" for p in parts)


def reconcile(table: RuleTable, program: Program, declared: Iterable[Any], disabled: set[str] | frozenset[str]) -> Reconciled:
    """The commands that take a flow whose rules are `table` to `program` (an assembled
    program: disabled rules are left out of it, and `disabled` names them): a rule left out
    and disabled is disabled (its state kept), one left out and not disabled is deleted, a new
    or changed one is registered, one that comes back is enabled.  Rules whose plan, text
    position aside, is the same get no command: they keep their key partitions and state.
    Idempotent: on a table that already has the changes it gives nothing."""
    declared = list(declared)
    new_channels = {c.name: c for c in program.channels}
    cmds: list[Command] = []
    kept: list[str] = []
    changed: list[str] = []
    added: list[str] = []
    removed: list[str] = []
    for rule in program.rules:
        current = table.rules.get(rule.id)
        if current is None or _presented(current, table.channels) != _presented(rule, new_channels):
            cmds.append(Command("register", rule.id, rule_text(declared, rule.id)))
            (added if current is None else changed).append(rule.id)
        else:
            kept.append(rule.id)
        if current is not None and not table.enabled.get(rule.id, True):
            cmds.append(Command("enable", rule.id))
    wanted = {r.id for r in program.rules}
    for rid in table.rules:
        if rid in wanted:
            continue
        if rid in disabled:
            if table.enabled.get(rid, True):
                cmds.append(Command("disable", rid))
                removed.append(rid)
        else:
            cmds.append(Command("delete", rid))
            removed.append(rid)
    return Reconciled(tuple(cmds), tuple(kept), tuple(changed), tuple(added), tuple(removed))
