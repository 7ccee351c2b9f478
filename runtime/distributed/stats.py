"""Per-rule stats of a running flow: the latest row of every key partition, summed per rule.

Key partitions send their session's per-rule stats about once a second; the
stats sink of each process keeps them here.  `get_rule_stats` adds up the key
partitions of one rule (the design's `get_rule_stats`).  In a multi-process
flow each process holds the rows of its own workers.
"""

from __future__ import annotations

import threading
from typing import Any

#: Counters that add up over key partitions (the rest are per-partition figures).
SUMMED = ("events_in", "passed", "matches", "suppressed", "late", "batches", "disabled_suppressed", "held_rows")


class StatsBoard:
    def __init__(self) -> None:
        self._rows: dict[str, dict[str, Any]] = {}
        self._lock = threading.Lock()

    def put(self, key: str, row: dict[str, Any]) -> None:
        with self._lock:
            self._rows[key] = dict(row)

    def clear(self) -> None:
        with self._lock:
            self._rows.clear()

    def rows(self) -> dict[str, dict[str, Any]]:
        with self._lock:
            return {k: dict(v) for k, v in self._rows.items()}

    def rule_stats(self, rule_id: str) -> dict[str, Any]:
        """Summed over the rule's key partitions (every version of the rule)."""
        mine = [row for key, row in self.rows().items() if key.split("@", 1)[0] == rule_id]
        out: dict[str, Any] = {"rule": rule_id, "key_partitions": len(mine)}
        for name in SUMMED:
            out[name] = sum(int(r.get(name, 0) or 0) for r in mine)
        marks = [r["watermark_us"] for r in mine if "watermark_us" in r]
        out["watermark_us"] = min(marks) if marks else None
        return out

    def all_rules(self) -> dict[str, dict[str, Any]]:
        rules = {k.split("@", 1)[0] for k in self.rows() if not k.startswith("input:")}
        return {rid: self.rule_stats(rid) for rid in sorted(rules)}

    def inputs(self) -> dict[str, dict[str, Any]]:
        return {k[len("input:") :]: v for k, v in self.rows().items() if k.startswith("input:")}

    def key_partitions(self) -> dict[str, dict[str, Any]]:
        return {
            k: {"watermark_us": v.get("watermark_us"), "held_rows": v.get("held_rows", 0)}
            for k, v in self.rows().items()
            if not k.startswith("input:")
        }


BOARD = StatsBoard()
