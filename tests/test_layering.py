"""The architecture's import rules are contracts, checked on every run."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def test_import_contracts_hold() -> None:
    lint = Path(sys.executable).with_name("lint-imports")
    result = subprocess.run([str(lint), "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "broken" not in result.stdout.lower().replace("0 broken", "")


def test_cepdsl_never_imports_runtime_at_import_time() -> None:
    code = "import sys, cepdsl, cepdsl.frontend, cepdsl.engine; print(sorted(m for m in sys.modules if m.startswith('runtime')))"
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=60, check=True)
    assert out.stdout.strip() == "[]"


def test_executor_contracts_are_declared() -> None:
    """The layering of executors is in pyproject, so lint-imports above checks it; this
    fails if a contract is dropped or loosened."""
    import tomllib

    contracts = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]["contracts"]
    by_type: dict[str, list[dict]] = {}
    for c in contracts:
        by_type.setdefault(c["type"], []).append(c)
    layers = [c["layers"] for c in by_type["layers"]]
    assert ["cepdsl.engine", "cepdsl.backends.polars | cepdsl.backends.numba", "cepdsl.kernels", "cepdsl.executor"] in layers
    independent = [sorted(c["modules"]) for c in by_type["independence"]]
    assert ["cepdsl.backends.numba", "cepdsl.backends.polars"] in independent
    assert ["cepdsl.backends", "cepdsl.interpret"] in independent
    forbidden = {m for c in by_type["forbidden"] if c["source_modules"] == ["cepdsl.interpret"] for m in c["forbidden_modules"]}
    assert {"cepdsl.executor", "cepdsl.kernels", "cepdsl.engine"} <= forbidden


def test_the_interpreter_runs_without_executor_code() -> None:
    # Run, not just imported: a lazy import inside the oracle would show here.
    code = (
        "import sys, polars as pl\n"
        "from cepdsl.frontend import compile_source\n"
        "from cepdsl import interpret\n"
        "p = compile_source('stream m (ts: timestamp, h: str, x: float)\\n"
        "rule r from m group by h window tumbling 1m having count() > 0')\n"
        "frame = pl.DataFrame({'ts': [0, 70_000_000], 'h': ['a', 'a'], 'x': [1.0, 2.0]})"
        ".with_columns(pl.col('ts').cast(pl.Datetime('us', 'UTC')))\n"
        "out = interpret.run(p, {'m': frame})\n"
        "assert out['r'].height == 2, out\n"
        "print(sorted(m for m in sys.modules if m.startswith(('cepdsl.executor', 'cepdsl.backends', 'cepdsl.kernels', 'cepdsl.engine'))))"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert out.returncode == 0, out.stderr
    assert out.stdout.strip() == "[]"
