"""Where rule state lives between batches and across restarts.

The engine hands each rule's state over as opaque `bytes` with a format
version, together with the source offsets the state corresponds to; a store
keeps the latest of each and gives it back after a restart. A checkpoint of
many rules goes through `save_many`, which is atomic: after a crash either
every rule of the checkpoint is at the new state or every rule is at the old
one, so state and offsets never disagree.

Anomaly baselines (LANGUAGE.md §5.6) have their own small API because they
are appended to per group, bounded (at most 1000 values, oldest out first)
and expire (24 h by default, as in the seed design's
`cep:anomaly:baseline:<rule_id>` keys).

Offsets must be JSON-serialisable: stores keep them as JSON text.
"""

from __future__ import annotations

import json
import time
from collections import deque
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any, NamedTuple, Protocol, runtime_checkable

#: The checkpoint's source offsets travel with the rule states (one atomic `save_many`)
#: under this name, which is not an identifier, so no rule can have it; stores that
#: name keys after rules give it a key of its own (Redis: `cep:offsets`).
OFFSETS_KEY = "offsets:"

BASELINE_MAX = 1000
BASELINE_TTL_S = 24 * 3600.0


class StoredState(NamedTuple):
    version: int
    payload: bytes
    offsets: dict[str, Any]


# (rule_id, version, payload, offsets): one rule of a checkpoint.
RuleState = tuple[str, int, bytes, dict[str, Any]]


@runtime_checkable
class StateStore(Protocol):
    def save(self, rule_id: str, version: int, payload: bytes, offsets: dict[str, Any]) -> None: ...

    def save_many(self, states: Iterable[RuleState]) -> None:
        """Save several rules atomically (all or none)."""
        ...

    def load(self, rule_id: str) -> StoredState | None: ...

    def delete(self, rule_id: str) -> None: ...

    def rule_ids(self) -> list[str]: ...

    def baseline_get(self, rule_id: str, group: str) -> list[float]: ...

    def baseline_set(self, rule_id: str, group: str, values: Sequence[float], max_size: int = BASELINE_MAX) -> None: ...

    def baseline_append(self, rule_id: str, group: str, values: Sequence[float], max_size: int = BASELINE_MAX) -> None: ...

    def baseline_append_many(self, rule_id: str, values: Mapping[str, Sequence[float]], max_size: int = BASELINE_MAX) -> None:
        """Append to many groups of one rule in one round trip."""
        ...

    def baseline_delete(self, rule_id: str, group: str | None = None) -> None:
        """Forget one group's baseline, or every group of the rule."""
        ...

    def close(self) -> None: ...


def bounded(max_size: int) -> int:
    if max_size < 1:
        raise ValueError("baseline max_size must be ≥ 1")
    return min(max_size, BASELINE_MAX)


class MemoryStore:
    """State in this process only: fast, gone at exit. Also the fallback of `ResilientStore`."""

    def __init__(self, *, baseline_ttl_s: float = BASELINE_TTL_S, clock: Callable[[], float] = time.monotonic) -> None:
        self.baseline_ttl_s = baseline_ttl_s
        self._clock = clock
        self._states: dict[str, StoredState] = {}
        self._baselines: dict[tuple[str, str], tuple[deque[float], float]] = {}  # → (values, expires at)

    def save(self, rule_id: str, version: int, payload: bytes, offsets: dict[str, Any]) -> None:
        self.save_many([(rule_id, version, payload, offsets)])

    def save_many(self, states: Iterable[RuleState]) -> None:
        # Build first, then publish: a bad entry part way through leaves nothing half-saved.
        # Offsets take the JSON round trip the other stores take, so all stores give back the same thing.
        staged = {r: StoredState(int(v), bytes(p), json.loads(json.dumps(o))) for r, v, p, o in states}
        self._states.update(staged)

    def load(self, rule_id: str) -> StoredState | None:
        return self._states.get(rule_id)

    def delete(self, rule_id: str) -> None:
        self._states.pop(rule_id, None)

    def rule_ids(self) -> list[str]:
        return sorted(self._states)

    def states(self) -> dict[str, StoredState]:
        return dict(self._states)

    # -- baselines

    def _live(self, key: tuple[str, str]) -> deque[float] | None:
        entry = self._baselines.get(key)
        if entry is None:
            return None
        if entry[1] <= self._clock():
            del self._baselines[key]
            return None
        return entry[0]

    def baseline_get(self, rule_id: str, group: str) -> list[float]:
        values = self._live((rule_id, group))
        return list(values) if values is not None else []

    def baseline_set(self, rule_id: str, group: str, values: Sequence[float], max_size: int = BASELINE_MAX) -> None:
        size = bounded(max_size)
        self._baselines[(rule_id, group)] = (
            deque((float(v) for v in values), maxlen=size),
            self._clock() + self.baseline_ttl_s,
        )

    def baseline_append(self, rule_id: str, group: str, values: Sequence[float], max_size: int = BASELINE_MAX) -> None:
        key = (rule_id, group)
        size = bounded(max_size)
        old = self._live(key)
        if old is None or old.maxlen != size:
            old = deque(old or (), maxlen=size)
        old.extend(float(v) for v in values)
        self._baselines[key] = (old, self._clock() + self.baseline_ttl_s)

    def baseline_append_many(self, rule_id: str, values: Mapping[str, Sequence[float]], max_size: int = BASELINE_MAX) -> None:
        for group, vals in values.items():
            self.baseline_append(rule_id, group, vals, max_size)

    def baseline_delete(self, rule_id: str, group: str | None = None) -> None:
        if group is not None:
            self._baselines.pop((rule_id, group), None)
        else:
            for key in [k for k in self._baselines if k[0] == rule_id]:
                del self._baselines[key]

    def baseline_keys(self) -> list[tuple[str, str]]:
        return [k for k in list(self._baselines) if self._live(k) is not None]

    def close(self) -> None:
        pass
