"""Every §9 example (LANGUAGE.md) in one program with §1's: it checks, formats (fmt is
idempotent and keeps the tree), explains, and replays with a table file."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import polars as pl

import cepdsl
from cepdsl.explain import explain
from cepdsl.fmt import format_source
from cepdsl.frontend import check_source, parse_source

ROOT = Path(__file__).resolve().parents[2]
SECTION1 = (ROOT / "tests" / "cli" / "data" / "language_section1.cep").read_text()

SECTION9 = '''
table hosts (host: str, region: str, owner: str, tier: int)
  key host
  from "data/hosts.csv"          # .csv, .parquet or .jsonl, relative to the rule file
  refresh 5m                     # optional; streaming only

silence nightly_backup "Backups saturate the disks"
  match rule in ["disk_full", "io_slow"] and host starts_with "db-"
  every "0 2 * * *" for 2h       # recurring, UTC cron; or:
  # from "2026-12-24T00:00:00Z" until "2026-12-26T00:00:00Z"

template oncall = """{{ title }} on {{ host }}: {{ severity }}"""

rule disk_full "Disk almost full"
  from metrics
  join hosts on host
  where memory > 95 and hosts.tier >= 1
  message template("oncall")

rule io_slow
  from metrics
  join hosts as h on host
  where latency_ms > 500
  group by host, h.region
  window tumbling 5m
  having count() > 3
  for 3m                                               # must hold this long before firing
  resolve after 2m "{{ host }} is back to normal"      # one clause: `resolve [after D] ["TEMPLATE"]`
'''


def test_section_9_examples_check_format_and_explain() -> None:
    text = SECTION1 + SECTION9
    program, diags = check_source(text, "ops.cep")
    assert diags == [], [str(d) for d in diags]
    out = format_source(text, "ops.cep")
    assert format_source(out, "ops.cep") == out
    assert parse_source(out)[0] == parse_source(text)[0]
    assert "# recurring, UTC cron; or:" in out and '# from "2026-12-24T00:00:00Z"' in out
    plan = explain(program)
    assert "join       hosts as h on host == host:str (left hash join, before where)" in plan
    assert "for        3m" in plan and 'resolve    after 2m, message "{{ host }} is back to normal"' in plan
    assert 'silence nightly_backup "Backups saturate the disks"' in plan
    assert "template oncall" in plan


def test_section_9_program_replays_with_its_table_file(tmp_path: Path) -> None:
    (tmp_path / "data").mkdir()
    (tmp_path / "data" / "hosts.csv").write_text("host,region,owner,tier\ndb-1,eu,dba,2\nweb-1,us,web,0\n")
    rule_file = tmp_path / "ops.cep"
    rule_file.write_text(SECTION1 + SECTION9)
    rules = cepdsl.compile(rule_file)
    t0 = dt.datetime(2026, 1, 1, 2, 30)
    metrics = pl.DataFrame(
        {
            "ts": [t0, t0 + dt.timedelta(hours=3)],
            "host": ["db-1", "db-1"],
            "cpu": [10.0, 10.0],
            "memory": [99.0, 99.0],
            "status": ["ok", "ok"],
            "latency_ms": [1.0, 1.0],
            "event_type": ["metric", "metric"],
        }
    )
    out = rules.replay({"metrics": metrics})
    disk = out["disk_full"]
    assert disk["hosts.region"].to_list() == ["eu", "eu"]
    assert disk["silenced"].to_list() == ["nightly_backup", None]  # 02:30 in [02:00, 04:00); 05:30 not
    assert out["high_cpu"]["silenced"].to_list() == []
