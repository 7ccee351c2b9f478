"""Rule state between batches and across restarts: memory, SQLite (default), Redis (+ fallback)."""

from runtime.state.spec import open_store
from runtime.state.store import BASELINE_MAX, BASELINE_TTL_S, MemoryStore, RuleState, StateStore, StoredState

__all__ = [
    "BASELINE_MAX",
    "BASELINE_TTL_S",
    "MemoryStore",
    "RuleState",
    "StateStore",
    "StoredState",
    "open_store",
]
