"""`cep check` stays light: the front end never loads the engine's heavy libraries.

Start-up is a large share of a `cep check` run (the 1,000-rule target is 1 s
for the whole process), so a module-level `import polars` creeping into the
front end (types, plan, parser, checker) or the CLI's check path fails here."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
HEAVY = ("polars", "numba", "numpy", "redis", "httpx", "pyarrow", "pandas", "duckdb", "uvicorn")

RULES = """\
stream metrics (ts: timestamp, host: str, cpu: float, data.load: float)
channel ops = slack(webhook_url = env("SLACK_WEBHOOK_URL"), channel = "#ops")

rule hot "CPU high"
  from metrics
  where cpu > 90 and host in ["web", "db"]
  group by host
  window tumbling 5m
  having avg(cpu) > 80
  message "{{ host }}: {{ avg_cpu }}"
  severity high
  notify ops

rule spike
  from metrics
  group by host
  anomaly zscore(data.load, threshold = 3.0) baseline 100 warmup 10
  severity low
  notify ops
"""

PROBE = """
import json, runpy, sys
sys.argv = ["cep", "check", sys.argv[1]]
code = 0
try:
    runpy.run_module("runtime.cli", run_name="__main__")
except SystemExit as e:
    code = e.code
print(json.dumps({"code": code, "loaded": sorted(m for m in %r if m in sys.modules)}))
"""


def test_cep_check_loads_no_engine_library(tmp_path: Path) -> None:
    path = tmp_path / "rules.cep"
    path.write_text(RULES, encoding="utf-8")
    proc = subprocess.run([sys.executable, "-c", PROBE % (HEAVY,), str(path)], cwd=ROOT, capture_output=True, text=True, timeout=60)
    result = json.loads(proc.stdout.strip().splitlines()[-1])
    assert result == {"code": 0, "loaded": []}, proc.stderr


def test_plan_types_still_give_polars_dtypes() -> None:
    # Lazy imports must not change what the dtype helpers return.
    import polars as pl

    from cepdsl.plan import FieldPlan, StreamPlan
    from cepdsl.types import Type, polars_dtype

    assert polars_dtype(Type.TIMESTAMP) == pl.Datetime("us")
    stream = StreamPlan("s", (FieldPlan("ts", Type.TIMESTAMP), FieldPlan("n", Type.INT)), "ts")
    assert stream.schema == {"ts": pl.Datetime("us"), "n": pl.Int64()}
