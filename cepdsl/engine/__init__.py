"""The engine core (pure: no I/O, no wall clock).  See docs/engine.md."""

from __future__ import annotations

from cepdsl.engine.dead_letter_rows import DEAD_LETTER_SCHEMA, dead_letters, empty_dead_letters
from cepdsl.engine.frames import FrameError, conform, to_polars
from cepdsl.engine.ordering import NO_WATERMARK
from cepdsl.engine.session import ENGINE_STATE_VERSION, ReloadReport, RestoreReport, Session

__all__ = [
    "DEAD_LETTER_SCHEMA",
    "ENGINE_STATE_VERSION",
    "NO_WATERMARK",
    "FrameError",
    "ReloadReport",
    "RestoreReport",
    "Session",
    "conform",
    "dead_letters",
    "empty_dead_letters",
    "to_polars",
]
