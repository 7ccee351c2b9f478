"""Hot reload waits for a rule file to settle: an editor (or `write_text`) truncates and
then writes, and a reload in between ran the empty file, which checks clean and removed
every rule (the hot-reload process test failed that way under load)."""

from __future__ import annotations

import os
from pathlib import Path

from runtime.run import FileWatch


class Clock:
    def __init__(self) -> None:
        self.t = 100.0

    def __call__(self) -> float:
        return self.t


def touch(path: Path, text: str, mtime: float) -> None:
    path.write_text(text)
    os.utime(path, (mtime, mtime))


def test_a_change_counts_once_the_file_has_settled(tmp_path: Path) -> None:
    rules = tmp_path / "rules.cep"
    touch(rules, "stream s (ts: timestamp)\n", 1_000)
    clock = Clock()
    watch = FileWatch(str(rules), clock=clock)
    assert not watch.changed()
    touch(rules, "", 1_001)  # truncated: the editor has not written yet
    assert not watch.changed()
    clock.t += 0.1
    touch(rules, "stream s (ts: timestamp)\nrule r from s\n", 1_002)  # written
    assert not watch.changed()  # a new stamp restarts the wait
    clock.t += FileWatch.SETTLE_S / 2
    assert not watch.changed()
    clock.t += FileWatch.SETTLE_S
    assert watch.changed()  # the final content, once
    assert not watch.changed()


def test_a_file_put_back_as_it_was_is_no_change(tmp_path: Path) -> None:
    rules = tmp_path / "rules.cep"
    touch(rules, "stream s (ts: timestamp)\n", 1_000)
    clock = Clock()
    watch = FileWatch(str(rules), clock=clock)
    touch(rules, "", 1_001)
    assert not watch.changed()
    touch(rules, "stream s (ts: timestamp)\n", 1_000)
    clock.t += 10
    assert not watch.changed()
