"""Issue 12 item 9: checkpoints are typed data that cannot run code; old pickles are converted
only by `cep state migrate`, with an allow-list unpickler.

Before: checkpoints were pickles read back from Redis or SQLite, so whoever could write the
state store could run code in the engine.
"""

from __future__ import annotations

import datetime as dt
import os
import pickle
import struct
from pathlib import Path

import msgpack
import numpy as np
import polars as pl
import pytest
from click.testing import CliRunner

from cepdsl.engine import ENGINE_STATE_VERSION, Session
from cepdsl.frontend import compile_source
from cepdsl.state_format import MAGIC, StateFormatError, decode_state, encode_state
from runtime.cli import main
from runtime.cli.state import RefusedPickle, safe_loads
from runtime.state.sqlite import SqliteStore
from runtime.stream_loop import StreamingEngine

pytestmark = pytest.mark.timeout(120)

RULES = """
stream m (ts: timestamp, host: str, cpu: float)
  lateness 1m
rule hot from m group by host window tumbling 1m having avg(cpu) > 1
rule seq from m group by host pattern a b define a as cpu > 1, b as cpu > 2
"""
T0 = dt.datetime(2024, 1, 1)


def frame(n: int, start: int = 0) -> pl.DataFrame:
    return pl.DataFrame(
        {
            "ts": [T0 + dt.timedelta(seconds=7 * i) for i in range(start, start + n)],
            "host": [f"h{i % 3}" for i in range(start, start + n)],
            "cpu": [float(i % 5) for i in range(start, start + n)],
        },
        schema={"ts": pl.Datetime("us"), "host": pl.String, "cpu": pl.Float64},
    )


class Boom:
    """Pickles to a call of os.system: what an attacker writes into the store."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (os.system, (f"touch {self.marker}",))


def test_round_trip_of_every_type_a_checkpoint_holds() -> None:
    value = {
        "n": None,
        "b": True,
        "i": -(2**63),
        "u": 2**64 - 1,
        "big": 2**80,
        "f": float("nan"),
        "s": "é",
        "by": b"\x00\x80",
        "l": [1, [2]],
        "t": (1, (2, "x")),
        "set": {1, 2},
        3: "int key",
        (1, "a"): "tuple key",
        "a": np.arange(6, dtype=np.int64).reshape(2, 3),
        "bools": np.array([True, False]),
        "dt64": np.array(["2024-01-01"], dtype="datetime64[us]"),
        "when": T0,
        "day": T0.date(),
        "gap": dt.timedelta(seconds=5),
        "np_scalar": np.int64(7),
    }
    got = decode_state(encode_state(value))
    assert got["t"] == (1, (2, "x")) and got[(1, "a")] == "tuple key" and got[3] == "int key"
    assert got["big"] == 2**80 and got["set"] == {1, 2} and got["np_scalar"] == 7
    assert np.array_equal(got["a"], value["a"]) and got["a"].flags.writeable
    assert got["when"] == T0 and got["gap"] == dt.timedelta(seconds=5) and np.isnan(got["f"])


@pytest.mark.parametrize("value", [object(), np.array([object()], dtype=object), lambda: 1, Path("/")])
def test_anything_else_is_refused_when_writing(value) -> None:  # type: ignore[no-untyped-def]
    with pytest.raises(StateFormatError):
        encode_state({"x": value})


def test_a_crafted_pickle_in_the_store_cannot_run_code(tmp_path: Path) -> None:
    marker = tmp_path / "owned"
    evil = pickle.dumps({"version": ENGINE_STATE_VERSION, "plan": "x", "executor": pickle.dumps(Boom(marker))})
    program = compile_source(RULES)
    with pytest.raises(StateFormatError, match="cep state migrate"):
        Session(program).restore({"hot": evil})
    # Through the store, as on a restart: the engine starts (the rule fresh) and nothing ran.
    store = SqliteStore(tmp_path / "s.sqlite")
    store.save("hot", ENGINE_STATE_VERSION, evil, {})
    store.save("seq", 1, pickle.dumps(Boom(marker)), {})
    # The engine starts: the crafted entry is reported and its rule starts fresh; the
    # version-1 entry is never decoded (started fresh, `cep state migrate` converts it).
    eng = StreamingEngine(program, {}, store=store).start()
    assert not marker.exists()
    assert eng.session.stats()["hot"]["events_in"] == 0


def test_a_well_typed_but_wrong_entry_starts_its_rule_fresh_and_the_rest_is_restored() -> None:
    program = compile_source(RULES)
    live = Session(program)
    live.push("m", frame(40))
    snap = live.snapshot()
    bad = decode_state(snap["hot"])
    bad["executor"] = (bad["executor"][0], {"cells": 5})  # decodes fine, loads wrong
    snap["hot"] = encode_state(bad)
    with pytest.raises(Exception):  # noqa: B017 - whichever error the executor's loader meets, as long as it refuses
        Session(program).restore(snap)
    again = Session(program)
    report = again.restore(snap, skip_unreadable=True)
    assert [k for k, _ in report.unreadable] == ["hot"] and "seq" in report.restored
    assert again.stats()["hot"]["events_in"] == 0
    assert again.stats()["seq"]["events_in"] == live.stats()["seq"]["events_in"] > 0
    out = again.push("m", frame(40, 40))  # the fresh rule runs
    assert set(out) == {"hot", "seq"}


def crafted(value_bytes: bytes, arrays: bytes = b"", fmt: int = 1) -> bytes:
    return struct.pack("<4sBQ", MAGIC, fmt, len(value_bytes)) + value_bytes + arrays


@pytest.mark.parametrize(
    "payload",
    [
        crafted(msgpack.packb(msgpack.ExtType(2, msgpack.packb(["|O8", [1]]))), b"\0" * 8),
        crafted(msgpack.packb(msgpack.ExtType(2, msgpack.packb(["<i8", [10**6]]))), b"\0" * 8),
        crafted(msgpack.packb(msgpack.ExtType(2, msgpack.packb(["<i8", [-1, -8]]))), b"\0" * 8),
        crafted(msgpack.packb(msgpack.ExtType(2, b"\x92"))),
        crafted(msgpack.packb(msgpack.ExtType(99, b""))),
        crafted(msgpack.packb(1), fmt=2),
        crafted(msgpack.packb(1), b"trailing"),
        crafted(b"\xc1\xc1garbage"),
        crafted(msgpack.packb(msgpack.ExtType(1, b"\xdd\xff\xff\xff\xff"))),  # array of 4G items
        crafted(msgpack.packb(msgpack.ExtType(1, b"\xc1"))),
        MAGIC + b"\x01\xff\xff\xff\xff\xff\xff\xff\x7f",  # header longer than the payload
        MAGIC,
        b"not a checkpoint",
        b"",
    ],
)
def test_crafted_typed_payloads_are_refused_not_crashed_on(payload: bytes) -> None:
    with pytest.raises(StateFormatError):
        decode_state(payload)


def test_snapshot_restore_round_trip_in_the_new_format() -> None:
    program = compile_source(RULES)
    a = Session(program)
    a.push("m", frame(40))
    snap = a.snapshot()
    assert all(p.startswith(MAGIC) for p in snap.values())
    b = Session(program)
    assert set(b.restore(snap).restored) == set(snap)
    out_a, out_b = a.push("m", frame(40, 40)), b.push("m", frame(40, 40))
    assert set(out_a) == set(out_b) and all(out_a[r].equals(out_b[r]) for r in out_a)
    assert sum(f.height for f in out_a.values()) > 0


def old_pickled_snapshot(session: Session) -> dict[str, bytes]:
    """What the engine wrote before issue 12: pickles, the executor's state a nested pickle."""
    out = {}
    for key, payload in session.snapshot().items():
        data = decode_state(payload)
        data["version"] = 1
        if "executor" in data:
            data["executor"] = pickle.dumps(tuple(data["executor"]), protocol=5)
        out[key] = pickle.dumps(data, protocol=5)
    return out


def test_cep_state_migrate_converts_old_pickles_and_refuses_crafted_ones(tmp_path: Path) -> None:
    program = compile_source(RULES)
    live = Session(program)
    live.push("m", frame(40))
    old = old_pickled_snapshot(live)
    path = tmp_path / "state.sqlite"
    store = SqliteStore(path)
    for key, payload in old.items():
        store.save(key, 1, payload, {"src": {"pos": 1}})
    marker = tmp_path / "owned"
    store.save("evil", 1, pickle.dumps({"version": 1, "x": Boom(marker)}), {})
    store.close()

    result = CliRunner().invoke(main, ["state", "migrate", "--state", f"sqlite:{path}"])
    assert result.exit_code == 1
    assert f"converted {len(old)} checkpoint entries" in result.output
    assert "refused evil: refused to load posix.system" in result.output or "refused to load os.system" in result.output
    assert not marker.exists()

    store = SqliteStore(path)
    fresh = Session(program)
    snapshot = {k: store.load(k).payload for k in old}
    assert all(store.load(k).version == ENGINE_STATE_VERSION for k in old)
    assert set(fresh.restore(snapshot).restored) == set(old)
    assert fresh.stats()["hot"]["events_in"] == live.stats()["hot"]["events_in"] > 0
    assert store.load("hot").offsets == {"src": {"pos": 1}}
    store.close()


def test_the_allow_list_unpickler_refuses_code() -> None:
    with pytest.raises(RefusedPickle):
        safe_loads(pickle.dumps(Boom(Path("/tmp/x"))))
    assert np.array_equal(safe_loads(pickle.dumps(np.arange(3))), np.arange(3))
