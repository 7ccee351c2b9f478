"""Table files (§9.2): CSV, Parquet and JSON lines, relative to the rule file; load errors
name the file and the key or column."""

from __future__ import annotations

import datetime as dt
import json
from pathlib import Path

import polars as pl
import pytest

import cepdsl
from cepdsl.tables import TableError

RULES = """stream m (ts: timestamp, host: str, cpu: float)
table hosts (host: str, region: str, tier: int, up: bool, since: timestamp)
  key host
  from "{path}"
rule r
  from m
  join hosts as h on host
  where h.tier >= 1
  message "{{{{ host }}}} in {{{{ h.region }}}}"
"""
ROWS = [
    {"host": "a", "region": "eu", "tier": 1, "up": True, "since": "2026-01-01T00:00:00Z"},
    {"host": "b", "region": "us", "tier": 0, "up": False, "since": "2026-01-02T00:00:00Z"},
    {"host": "c", "region": None, "tier": 2, "up": None, "since": None},
]
EVENTS = pl.DataFrame(
    {"ts": [dt.datetime(2026, 1, 1, 0, 0, i) for i in range(4)], "host": ["a", "b", "c", "d"], "cpu": [1.0, 2.0, 3.0, 4.0]}
)


def write(kind: str, folder: Path, rows: list[dict]) -> str:
    if kind == "csv":
        lines = ["host,region,tier,up,since"] + [
            ",".join(
                "" if r[k] is None else str(r[k]).lower() if isinstance(r[k], bool) else str(r[k])
                for k in ("host", "region", "tier", "up", "since")
            )
            for r in rows
        ]
        (folder / "hosts.csv").write_text("\n".join(lines) + "\n")
        return "hosts.csv"
    if kind == "jsonl":
        (folder / "hosts.jsonl").write_text("\n".join(json.dumps(r) for r in rows) + "\n")
        return "hosts.jsonl"
    frame = pl.DataFrame(rows).with_columns(pl.col("since").str.to_datetime(time_zone="UTC"))
    frame.write_parquet(folder / "hosts.parquet")
    return "hosts.parquet"


@pytest.mark.parametrize("kind", ["csv", "jsonl", "parquet"])
def test_each_file_kind_loads_relative_to_the_rule_file(tmp_path: Path, kind: str, monkeypatch: pytest.MonkeyPatch) -> None:
    data = tmp_path / "rules" / "data"
    data.mkdir(parents=True)
    name = write(kind, data, ROWS)
    rule_file = tmp_path / "rules" / "ops.cep"
    rule_file.write_text(RULES.format(path=f"data/{name}"))
    monkeypatch.chdir(tmp_path)  # not the rule file's directory: paths are relative to the file
    out = cepdsl.compile(str(rule_file.relative_to(tmp_path))).replay({"m": EVENTS})["r"]
    assert out["host"].to_list() == ["a", "c"]
    assert out["h.region"].to_list() == ["eu", None]
    assert out["h.up"].to_list() == [True, None]
    assert out["h.since"].to_list() == [dt.datetime(2026, 1, 1), None]


@pytest.mark.parametrize("kind", ["csv", "jsonl", "parquet"])
def test_a_repeated_key_is_a_load_error_naming_file_and_key(tmp_path: Path, kind: str) -> None:
    name = write(kind, tmp_path, ROWS + [dict(ROWS[1], region="again")])
    (tmp_path / "ops.cep").write_text(RULES.format(path=name))
    with pytest.raises(TableError) as e:
        cepdsl.compile(str(tmp_path / "ops.cep")).replay({"m": EVENTS})
    assert str(tmp_path / name) in str(e.value) and "key host = 'b' appears more than once" in str(e.value)


def test_missing_column_and_bad_value_name_themselves(tmp_path: Path) -> None:
    (tmp_path / "hosts.csv").write_text("host,region,tier,up\na,eu,1,true\n")
    (tmp_path / "ops.cep").write_text(RULES.format(path="hosts.csv"))
    with pytest.raises(TableError, match=r"hosts.csv: table `hosts` has no column `since`"):
        cepdsl.compile(str(tmp_path / "ops.cep")).replay({"m": EVENTS})
    (tmp_path / "hosts.csv").write_text("host,region,tier,up,since\na,eu,one,true,\n")
    with pytest.raises(TableError, match=r"column `tier` has a value that is not a int"):
        cepdsl.compile(str(tmp_path / "ops.cep")).replay({"m": EVENTS})
    (tmp_path / "hosts.csv").unlink()
    with pytest.raises(TableError, match=r"hosts.csv: no such file"):
        cepdsl.compile(str(tmp_path / "ops.cep")).replay({"m": EVENTS})


def test_null_keys_are_dropped_and_never_match(tmp_path: Path) -> None:
    (tmp_path / "hosts.csv").write_text("host,region,tier,up,since\n,eu,1,true,\nd,us,5,true,\n")
    (tmp_path / "ops.cep").write_text(RULES.format(path="hosts.csv"))
    out = cepdsl.compile(str(tmp_path / "ops.cep")).replay({"m": EVENTS.with_columns(pl.col("host").replace("a", None))})["r"]
    assert out["host"].to_list() == ["d"]


def test_cli_replay_joins_and_a_load_error_is_one_line(tmp_path: Path) -> None:
    import subprocess
    import sys

    write("csv", tmp_path, ROWS)
    (tmp_path / "ops.cep").write_text(RULES.format(path="hosts.csv"))
    EVENTS.write_parquet(tmp_path / "m.parquet")
    run = lambda: subprocess.run(  # noqa: E731
        [sys.executable, "-m", "runtime.cli", "replay", "ops.cep", "--data", "m=m.parquet", "--out", "out", "--no-progress"],
        cwd=tmp_path,
        capture_output=True,
        text=True,
        timeout=120,
    )
    ok = run()
    assert ok.returncode == 0, ok.stderr
    assert pl.read_parquet(tmp_path / "out" / "r.parquet")["h.region"].to_list() == ["eu", None]
    write("csv", tmp_path, ROWS + [ROWS[0]])
    bad = run()
    assert bad.returncode == 1
    assert bad.stderr.strip().splitlines() == [f"error: {Path('hosts.csv')}: key host = 'a' appears more than once in table `hosts`"]


@pytest.mark.parametrize("kind", ["csv", "jsonl", "parquet"])
def test_a_rewritten_table_file_is_read_again_by_the_next_replay(tmp_path: Path, kind: str) -> None:
    """File tables are read and indexed once per content (`session.prepared_file_table`):
    a file rewritten at once, same size and likely the same mtime, must still be read anew."""
    path = write(kind, tmp_path, ROWS)
    (tmp_path / "ops.cep").write_text(RULES.format(path=path))
    rules = cepdsl.compile(str(tmp_path / "ops.cep"))
    assert rules.replay({"m": EVENTS})["r"]["host"].to_list() == ["a", "c"]
    assert rules.replay({"m": EVENTS})["r"]["host"].to_list() == ["a", "c"]  # (from the cache)
    swapped = [dict(r, tier=t) for r, t in zip(ROWS, (0, 1, 2), strict=True)]  # same widths: same size
    write(kind, tmp_path, swapped)
    assert rules.replay({"m": EVENTS})["r"]["host"].to_list() == ["b", "c"]
    (tmp_path / path).unlink()
    with pytest.raises(TableError, match="no such file"):
        rules.replay({"m": EVENTS})
