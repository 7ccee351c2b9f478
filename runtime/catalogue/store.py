"""The rule catalogue: rules, channels and templates created over HTTP, every version kept.

An entry is `.cep` text of one declaration (a rule, a channel, a template) under
its name; every PUT adds a version, a DELETE adds a tombstone version, nothing is
overwritten.  `applied_offsets` records where the sources stood when the version
went live in the engine (the first batch it saw).  Toggles (enabled/disabled)
are kept per rule ID apart from the text, because file rules can be toggled too;
a channel's switch is kept in the same place under `channel:NAME` (a `:` is in no
rule ID), so another process sharing the catalogue sees it through the same stamp.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any, Protocol

from runtime.sqldb import SqlDb

KINDS = ("rule", "channel", "template")
CHANNEL_TOGGLE = "channel:"  # prefix of a channel's switch among the toggles


@dataclass(frozen=True)
class Version:
    kind: str
    id: str
    version: int
    text: str
    created_at: float  # wall-clock seconds
    deleted: bool = False
    applied_at: float | None = None
    applied_offsets: dict[str, Any] | None = None


class Catalogue(Protocol):
    def put(self, kind: str, id: str, text: str, now: float) -> Version: ...
    def delete(self, kind: str, id: str, now: float) -> Version | None: ...
    def get(self, kind: str, id: str) -> Version | None: ...
    def latest(self, kind: str) -> list[Version]: ...
    def versions(self, kind: str, id: str) -> list[Version]: ...
    def mark_applied(self, kind: str, id: str, version: int, now: float, offsets: dict[str, Any]) -> None: ...
    def set_enabled(self, rule_id: str, enabled: bool, now: float) -> None: ...
    def toggles(self) -> dict[str, bool]: ...
    def set_channel_enabled(self, name: str, enabled: bool, now: float) -> None: ...
    def channel_toggles(self) -> dict[str, bool]: ...
    def stamp(self) -> str: ...
    def ping(self) -> None: ...
    def close(self) -> None: ...


class SqlCatalogue:
    """SQLite (embedded default, one process) or PostgreSQL (shared by several processes)."""

    def __init__(self, db: SqlDb) -> None:
        self.db = db
        db.script(
            [
                """CREATE TABLE IF NOT EXISTS cep_catalogue (
                kind TEXT NOT NULL, id TEXT NOT NULL, version INTEGER NOT NULL,
                text TEXT NOT NULL, created_at DOUBLE PRECISION NOT NULL, deleted INTEGER NOT NULL,
                applied_at DOUBLE PRECISION, applied_offsets TEXT,
                PRIMARY KEY (kind, id, version))""",
                """CREATE TABLE IF NOT EXISTS cep_toggles (
                rule_id TEXT PRIMARY KEY, enabled INTEGER NOT NULL, updated_at DOUBLE PRECISION NOT NULL)""",
            ]
        )

    _COLS = "kind, id, version, text, created_at, deleted, applied_at, applied_offsets"

    @staticmethod
    def _version(row: tuple[Any, ...]) -> Version:
        kind, id_, version, text, created, deleted, applied_at, offsets = row
        return Version(
            kind,
            id_,
            int(version),
            text,
            float(created),
            bool(deleted),
            None if applied_at is None else float(applied_at),
            json.loads(offsets) if offsets else None,
        )

    def _append(self, kind: str, id: str, text: str, now: float, deleted: bool) -> Version:
        with self.db.transaction() as cur:
            # The primary key makes two writers racing for one version number fail, not interleave.
            sql = "SELECT COALESCE(MAX(version), 0) FROM cep_catalogue WHERE kind = ? AND id = ?"
            cur.execute(self.db.sql(sql), (kind, id))
            n = int(cur.fetchone()[0]) + 1
            cur.execute(
                self.db.sql("INSERT INTO cep_catalogue (kind, id, version, text, created_at, deleted) VALUES (?, ?, ?, ?, ?, ?)"),
                (kind, id, n, text, now, int(deleted)),
            )
        return Version(kind, id, n, text, now, deleted)

    def put(self, kind: str, id: str, text: str, now: float) -> Version:
        return self._append(kind, id, text, now, False)

    def delete(self, kind: str, id: str, now: float) -> Version | None:
        last = self.get(kind, id)
        if last is None:
            return None
        return self._append(kind, id, last.text, now, True)

    def get(self, kind: str, id: str) -> Version | None:
        row = self.db.one(
            f"SELECT {self._COLS} FROM cep_catalogue WHERE kind = ? AND id = ? ORDER BY version DESC LIMIT 1", (kind, id)
        )
        if row is None:
            return None
        v = self._version(row)
        return None if v.deleted else v

    def latest(self, kind: str) -> list[Version]:
        rows = self.db.rows(
            f"SELECT {self._COLS} FROM cep_catalogue c WHERE kind = ? AND version = "
            "(SELECT MAX(version) FROM cep_catalogue d WHERE d.kind = c.kind AND d.id = c.id) ORDER BY id",
            (kind,),
        )
        return [v for v in map(self._version, rows) if not v.deleted]

    def versions(self, kind: str, id: str) -> list[Version]:
        rows = self.db.rows(f"SELECT {self._COLS} FROM cep_catalogue WHERE kind = ? AND id = ? ORDER BY version", (kind, id))
        return [self._version(r) for r in rows]

    def mark_applied(self, kind: str, id: str, version: int, now: float, offsets: dict[str, Any]) -> None:
        self.db.execute(
            "UPDATE cep_catalogue SET applied_at = ?, applied_offsets = ? WHERE kind = ? AND id = ? AND version = ?",
            (now, json.dumps(offsets, default=str), kind, id, version),
        )

    def set_enabled(self, rule_id: str, enabled: bool, now: float) -> None:
        with self.db.transaction() as cur:
            cur.execute(self.db.sql("DELETE FROM cep_toggles WHERE rule_id = ?"), (rule_id,))
            cur.execute(
                self.db.sql("INSERT INTO cep_toggles (rule_id, enabled, updated_at) VALUES (?, ?, ?)"), (rule_id, int(enabled), now)
            )

    def toggles(self) -> dict[str, bool]:
        return {
            rid: bool(on) for rid, on in self.db.rows("SELECT rule_id, enabled FROM cep_toggles") if not rid.startswith(CHANNEL_TOGGLE)
        }

    def set_channel_enabled(self, name: str, enabled: bool, now: float) -> None:
        self.set_enabled(CHANNEL_TOGGLE + name, enabled, now)

    def channel_toggles(self) -> dict[str, bool]:
        rows = self.db.rows("SELECT rule_id, enabled FROM cep_toggles WHERE rule_id LIKE ?", (CHANNEL_TOGGLE + "%",))
        return {rid[len(CHANNEL_TOGGLE) :]: bool(on) for rid, on in rows}

    def stamp(self) -> str:
        """Changes when anyone (another process too) writes the catalogue: cheap to ask often."""
        a = self.db.one("SELECT COUNT(*), COALESCE(MAX(created_at), 0) FROM cep_catalogue")
        b = self.db.one("SELECT COUNT(*), COALESCE(MAX(updated_at), 0) FROM cep_toggles")
        return f"{a}{b}"

    def ping(self) -> None:
        self.db.ping()

    def close(self) -> None:
        self.db.close()
