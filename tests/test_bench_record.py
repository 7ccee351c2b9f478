"""bench/run_all.py's comparison with the last recorded run, on synthetic records (no bench
runs here), and bench/common.py's `record`, which writes them."""

from __future__ import annotations

import importlib.util
import json
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _load(name: str) -> Any:
    spec = importlib.util.spec_from_file_location(f"_bench_{name}", ROOT / "bench" / f"{name}.py")
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up there
    spec.loader.exec_module(module)
    return module


run_all = _load("run_all")


def rec(
    case: str, value: float, better: str = "higher", unit: str = "M ev/s", load: float | None = 1.0, bench: str = "bench_x"
) -> dict:
    r = {"bench": bench, "case": case, "value": value, "unit": unit, "better": better}
    return r if load is None else {**r, "load": load}


def run(*records: dict, **meta: Any) -> dict:
    return {"date": "d", "git_rev": "r", "load_avg": 1.0, **meta, "records": list(records)}


def statuses(prev: dict, now: dict, **kw: Any) -> dict[str, str]:
    return {r.case: r.status for r in run_all.compare(prev, now, **kw)}


def test_higher_is_better_flags_only_more_than_ten_percent_worse() -> None:
    prev = run(rec("a", 100), rec("b", 100), rec("c", 100), rec("d", 100))
    now = run(rec("a", 89.9), rec("b", 90.5), rec("c", 125), rec("d", 100))
    assert statuses(prev, now) == {"a": run_all.REGRESSION, "b": run_all.OK, "c": run_all.BETTER, "d": run_all.OK}


def test_lower_is_better_flags_only_more_than_ten_percent_worse() -> None:
    prev = run(rec("slow", 100, "lower", "ms"), rec("fine", 100, "lower", "ms"), rec("fast", 100, "lower", "ms"))
    now = run(rec("slow", 110.5, "lower", "ms"), rec("fine", 109, "lower", "ms"), rec("fast", 80, "lower", "ms"))
    assert statuses(prev, now) == {"slow": run_all.REGRESSION, "fine": run_all.OK, "fast": run_all.BETTER}


def test_missing_and_new_cases_are_reported_and_missing_ones_fail() -> None:
    prev = run(rec("kept", 10), rec("gone", 10))
    now = run(rec("kept", 10), rec("added", 10))
    rows = run_all.compare(prev, now)
    assert {r.case: r.status for r in rows} == {"kept": run_all.OK, "gone": run_all.MISSING, "added": run_all.NEW}
    assert [r.case for r in run_all.failing(rows)] == ["gone"]
    assert "1 missing, 1 new" in run_all.table(rows)


def test_a_run_of_some_benches_does_not_miss_the_others() -> None:
    prev = run(rec("a", 10, bench="bench_x"), rec("b", 10, bench="bench_y"))
    now = run(rec("a", 10, bench="bench_x"))
    assert statuses(prev, now, benches={"bench_x"}) == {"a": run_all.OK}
    assert statuses(prev, now) == {"a": run_all.OK, "b": run_all.MISSING}


def test_much_different_load_is_not_comparable_and_does_not_fail() -> None:
    prev = run(rec("loaded_now", 100, load=1.5), rec("loaded_before", 100, load=8.0), rec("near", 100, load=1.5))
    now = run(rec("loaded_now", 50, load=7.0), rec("loaded_before", 100, load=1.5), rec("near", 100, load=2.2))
    rows = run_all.compare(prev, now)
    assert {r.case: r.status for r in rows} == {
        "loaded_now": run_all.NOT_COMPARABLE,
        "loaded_before": run_all.NOT_COMPARABLE,  # a pass measured against a loaded baseline proves nothing either
        "near": run_all.OK,
    }
    assert run_all.failing(rows) == []
    assert "load 1.5 → 7.0" in run_all.table(rows)


def test_the_load_falls_back_to_the_bench_then_to_the_run() -> None:
    prev = run(
        rec("a", 100, load=None), rec("b", 100, load=None, bench="bench_y"), load_avg=1.0, benches={"bench_x": {"load_avg": 9.0}}
    )
    now = run(rec("a", 100, load=None), rec("b", 100, load=None, bench="bench_y"), load_avg=1.2)
    # a: bench_x started at 9.0, now the run's 1.2; b: no bench entry, the runs' 1.0 and 1.2.
    assert statuses(prev, now) == {"a": run_all.NOT_COMPARABLE, "b": run_all.OK}


def test_a_changed_unit_or_direction_is_not_compared() -> None:
    prev = run(rec("a", 100, unit="ms", better="lower"))
    now = run(rec("a", 100, unit="s", better="lower"))
    assert statuses(prev, now) == {"a": run_all.NOT_COMPARABLE}


def test_a_quick_run_is_never_compared_with_a_full_one(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_all.report(run(rec("a", 100), quick=False), run(rec("a", 1), quick=True), Path("last_run.json")) == []
    assert "not the same kind" in capsys.readouterr().out
    assert run_all.RECORDED[True] != run_all.RECORDED[False]


def test_no_previous_run(capsys: pytest.CaptureFixture[str]) -> None:
    assert run_all.report(None, run(rec("a", 1)), Path("last_run.json")) == []
    assert "no previous run recorded" in capsys.readouterr().out


def test_merging_keeps_the_benches_not_run(tmp_path: Path) -> None:
    prev = run(rec("a", 1, bench="bench_x"), rec("b", 2, bench="bench_y"), benches={"bench_x": {}, "bench_y": {"date": "old"}})
    now = run(rec("a", 3, bench="bench_x"), benches={"bench_x": {"date": "new"}})
    out = run_all.merged(prev, now)
    assert {(r["bench"], r["value"]) for r in out["records"]} == {("bench_x", 3), ("bench_y", 2)}
    assert out["benches"] == {"bench_x": {"date": "new"}, "bench_y": {"date": "old"}}


def test_a_saved_run_is_json_with_one_record_per_line(tmp_path: Path) -> None:
    full = run(rec("a", 1), rec("b", 2.5, "lower", "µs"), quick=False, benches={"bench_x": {"date": "d"}})
    for r in (full, run()):
        text = run_all.dump_run(r)
        assert json.loads(text) == r
    assert len(run_all.dump_run(full).splitlines()) == 4


def test_runs_and_bare_records_load_from_disk(tmp_path: Path) -> None:
    (tmp_path / "run.json").write_text(json.dumps(run(rec("a", 1))))
    (tmp_path / "recs.jsonl").write_text(json.dumps(rec("a", 1)) + "\n" + json.dumps(rec("b", 2)) + "\n")
    (tmp_path / "one.jsonl").write_text(json.dumps(rec("a", 1)) + "\n")
    assert run_all.load_run(tmp_path / "run.json")["git_rev"] == "r"
    assert [r["case"] for r in run_all.load_run(tmp_path / "recs.jsonl")["records"]] == ["a", "b"]
    assert [r["case"] for r in run_all.load_run(tmp_path / "one.jsonl")["records"]] == ["a"]
    assert run_all.load_run(tmp_path / "absent.json") is None


def test_record_appends_a_line_only_when_asked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    common = _load("common")
    path = tmp_path / "records.jsonl"
    monkeypatch.delenv("BENCH_RECORD", raising=False)
    common.record("bench_x", "a", 1.0, "ms", better="lower")
    assert not path.exists()
    monkeypatch.setenv("BENCH_RECORD", str(path))
    common.record("bench_x", "a", 1.5, "ms", better="lower")
    common.record("bench_x", "b", float("nan"), "ms")  # a figure not taken: left out, shows as missing
    common.record("bench_x", "c", 2, "x")
    lines = [json.loads(line) for line in path.read_text().splitlines()]
    assert [(r["case"], r["value"], r["better"]) for r in lines] == [("a", 1.5, "lower"), ("c", 2.0, "higher")]
    assert all(isinstance(r["load"], float) for r in lines)
    with pytest.raises(ValueError):
        common.record("bench_x", "d", 1.0, "ms", better="faster")


def test_compare_only_runs_nothing_and_says_so_in_its_exit_status(tmp_path: Path) -> None:
    prev, now = tmp_path / "prev.json", tmp_path / "now.json"
    prev.write_text(json.dumps(run(rec("a", 100), rec("b", 100, "lower", "ms"))))
    now.write_text(json.dumps(run(rec("a", 80), rec("b", 100, "lower", "ms"))))
    cmd = [sys.executable, str(ROOT / "bench" / "run_all.py"), "--compare-only", str(now), "--against", str(prev)]
    plain = subprocess.run(cmd, capture_output=True, text=True, timeout=60)
    strict = subprocess.run([*cmd, "--fail-on-regression"], capture_output=True, text=True, timeout=60)
    assert plain.returncode == 0 and strict.returncode == 2, plain.stderr + strict.stderr
    assert "REGRESSION" in plain.stdout and "-20.0%" in plain.stdout
    prev.write_text(json.dumps(run(rec("a", 80), rec("b", 100, "lower", "ms"))))
    assert subprocess.run([*cmd, "--fail-on-regression"], capture_output=True, timeout=60).returncode == 0
