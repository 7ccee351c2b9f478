"""Property-based fuzzing of every route from /openapi.json (schemathesis) against a running
`cep serve`: no 5xx, every status declared, every body matching its declared schema.

Bounded: a few examples per operation (FUZZ_EXAMPLES, default 12), so the run stays short;
`FUZZ_EXAMPLES=200` for a long hunt by hand."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path

import pytest
import schemathesis
from hypothesis import HealthCheck, given, settings
from schemathesis import checks

from tests.api.conftest import Served, start_server

RULES = """\
stream auth (ts: timestamp, user: str, event_type: str, host: str, cpu: float)

channel out = console()

rule failed "Failed login"
  from auth
  where event_type == "login_failed"
  severity high
  notify out

rule cpu_odd "CPU anomaly"
  from auth
  group by host
  anomaly zscore(cpu, threshold = 3.0) baseline 50 warmup 5
"""


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    s = start_server(Path(tmp_path_factory.mktemp("fuzz")), RULES)
    yield s
    s.shutdown()


CHECKS = [
    checks.not_a_server_error,
    checks.status_code_conformance,
    checks.content_type_conformance,
    checks.response_schema_conformance,
]
EXAMPLES = int(os.environ.get("FUZZ_EXAMPLES", "12"))


@pytest.mark.timeout(900)
def test_api_fuzz(served: Served) -> None:
    # Driven by hand, operation by operation (schemathesis' pytest plugin does not load under pytest 9).
    schema = schemathesis.openapi.from_url(f"{served.url}/openapi.json")
    failures: list[str] = []
    operations = 0
    for result in schema.get_all_operations():
        op = result.ok()
        operations += 1

        @given(case=op.as_strategy())
        @settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None, suppress_health_check=list(HealthCheck))
        def run(case) -> None:  # noqa: ANN001
            case.call_and_validate(base_url=served.url, headers={"X-CEP-Request": "1"}, checks=CHECKS)

        try:
            run()
        except (Exception, BaseExceptionGroup) as e:  # noqa: BLE001 - collected: every operation is fuzzed, all failures reported
            failures.append(f"{op.method.upper()} {op.path}: {str(e)[:1500]}")
    assert operations >= 35
    assert not failures, "\n\n".join(failures)
