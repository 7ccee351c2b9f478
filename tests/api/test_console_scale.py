"""What the console's routes lean on at 1,000 rules and 100k alerts gives the same answers
as the slow way: the minute rollup against the SQL GROUP BYs (ends of ranges inside a
minute, rows added and deleted in between), matches today counted incrementally, the p99
by partition against numpy's quantile, the parse cache against a fresh parse."""

from __future__ import annotations

import random
from collections.abc import Iterator

import numpy as np
import pytest

from runtime.history import AlertRow, open_history
from runtime.history.rollup import MINUTE_US, MinuteRollup

NOW_S = 1_800_000_000.0
NOW_US = int(NOW_S * 1_000_000)


@pytest.fixture(params=["sqlite", "postgresql"])
def history(request, tmp_path) -> Iterator:  # noqa: ANN001
    if request.param == "sqlite":
        h = open_history(f"sqlite:{tmp_path / 'h.sqlite'}")
    else:
        h = open_history(request.getfixturevalue("postgres_url"))
        h.db.execute("DELETE FROM cep_alerts")
    yield h
    if request.param == "postgresql":
        h.db.execute("DROP TABLE cep_alerts")  # the session's database is shared: leave ids starting at 1 again
    h.close()


def rows(rng: random.Random, n: int, *, test: bool = False) -> list[AlertRow]:
    out = []
    for _ in range(n):
        ts = NOW_US - rng.randrange(0, 3 * 3600 * 1_000_000)
        out.append(AlertRow(f"r{rng.randrange(7)}", rng.choice(["low", "high", "critical"]), ts, "", "k", "{}", None, test, []))
    return out


def slow(h, since: int, until: int | None, rule: str | None = None, severity: str | None = None):  # noqa: ANN001, ANN201
    counts, _ = h.summary(since_us=since, until_us=until, rule=rule, severity=severity)
    # Within a minute the SQL order of severities is the database's (PostgreSQL's differs).
    return counts, sorted(h.minutes_by_severity(since_us=since, until_us=until, rule=rule, severity=severity))


def test_the_minute_rollup_answers_as_the_sql_scans_do(history) -> None:  # noqa: ANN001
    rng = random.Random(15)
    history.add(rows(rng, 3000), now=NOW_S - 10)
    roll = MinuteRollup(history, clock=lambda: NOW_S)
    ranges = [
        (NOW_US - 3600 * 1_000_000 + 123_457, None),
        (NOW_US - 3600 * 1_000_000, NOW_US - 600 * 1_000_000 + 17),
        (NOW_US - 95 * MINUTE_US + 5, NOW_US - 95 * MINUTE_US + 40_000_000),  # inside one minute
        (NOW_US - 7200 * 1_000_000 - 1, NOW_US),
    ]
    for since, until in ranges:
        for rule, sev in [(None, None), ("r3", None), (None, "high"), ("r1", "critical")]:
            assert roll.query(since, until, rule, sev) == slow(history, since, until, rule, sev), (since, until, rule, sev)
    # Rows added since are caught up (test alerts too, as the SQL summary counts them) ...
    history.add(rows(rng, 500) + rows(rng, 20, test=True), now=NOW_S - 5)
    since = NOW_US - 3600 * 1_000_000 + 1
    assert roll.query(since, None) == slow(history, since, None)
    # ... an event time far ahead is counted (from the table) without sizing the array by it ...
    history.add(
        [
            AlertRow("r1", "high", NOW_US + 100 * 86400 * 1_000_000, "", "k", "{}", None, False, []),
            AlertRow("r2", "low", NOW_US + 5 * MINUTE_US, "", "k", "{}", None, False, []),
        ],
        now=NOW_S - 1,
    )
    assert roll.query(since, None) == slow(history, since, None)
    assert roll.query(since, NOW_US + 200 * 86400 * 1_000_000, "r1") == slow(history, since, NOW_US + 200 * 86400 * 1_000_000, "r1")
    assert roll.counts.shape[0] < 24 * 60
    # ... a delete here makes it recount ...
    first = history.query(limit=1)[0][0]
    assert history.delete(first.id)
    assert roll.query(since, None) == slow(history, since, None)
    # ... and a range far older than the horizon goes to the SQL path.
    assert roll.query(NOW_US - 30 * 3600 * 1_000_000, None) is None
    assert roll.query(None, None) is None


def test_matches_today_are_counted_from_the_rows_added_since(history) -> None:  # noqa: ANN001
    rng = random.Random(16)
    history.add(rows(rng, 40), now=NOW_S - 100)
    history.add(rows(rng, 5, test=True), now=NOW_S - 50)
    since = int((NOW_S - 200) * 1_000_000)
    assert history.count_since(since) == 40
    history.add(rows(rng, 7), now=NOW_S - 10)
    history.add(rows(rng, 3), now=NOW_S - 500)  # emitted before `since` (a clock step back): not counted
    assert history.count_since(since) == 47
    latest = history.query(limit=4)[0]  # newest first: the 3 emitted early, then one of the 7
    assert latest[0].emitted_us < since <= latest[3].emitted_us
    history.delete(latest[0].id)
    assert history.count_since(since) == 47
    history.delete(latest[3].id)
    assert history.count_since(since) == 46
    assert history.count_since(int((NOW_S - 60) * 1_000_000)) == 6


def test_p99_by_partition_is_numpys_quantile() -> None:
    from cepdsl.engine.rule_stats import p99

    rng = np.random.default_rng(17)
    for n in (1, 2, 3, 7, 100, 1023, 1024):
        for _ in range(20):
            values = rng.exponential(size=n)
            assert p99(values) == pytest.approx(float(np.quantile(values, 0.99)), rel=1e-12, abs=0)


def test_parse_cache_gives_what_a_fresh_parse_gives() -> None:
    from runtime.catalogue.program import assemble, parse_cached

    text = 'stream s (ts: timestamp, x: int)\n\nrule a "A"\n  from s\n  where x > 1\n\nrule b\n  from s\n  where y > 1\n'
    first = assemble({"f.cep": text})
    again = assemble({"f.cep": text})
    assert [d.message for d in first.diagnostics] == [d.message for d in again.diagnostics] != []
    assert [d.text for d in first.declared] == [d.text for d in again.declared]
    assert first.declared[1].text == 'rule a "A"\n  from s\n  where x > 1\n'
    tree, diags, infos = parse_cached(text, "f.cep")
    assert [i.name for i in infos] == ["s", "a", "b"] and tree is not None
    diags.clear()  # a caller's list is its own
    assert parse_cached(text, "f.cep")[1] == []  # no syntax errors in the first place
    assert assemble({"f.cep": text}, {"b"}).ok  # leaving out the broken rule


PERF_RULES = """\
stream auth (ts: timestamp, user: str, event_type: str, host: str)

rule failed "Failed login"
  from auth
  where event_type == "login_failed"
  severity high

rule root "Root"
  from auth
  where user == "root"
  severity critical

rule quiet "Never matches"
  from auth
  where user == "nobody-at-all"
  severity low
"""


@pytest.mark.timeout(300)
def test_performance_reads_each_source_once_and_agrees_with_each_rules_metrics(serve) -> None:  # noqa: ANN001
    import httpx

    from tests.api.conftest import HEADERS

    s = serve(PERF_RULES)
    with httpx.Client(base_url=s.url, timeout=180, headers=HEADERS) as c:
        lines = [
            f'{{"ts": "2026-01-01T00:00:0{i}Z", "user": "{u}", "event_type": "login_failed", "host": "h"}}'
            for i, u in enumerate(["root", "bob", "root"])
        ]
        r = c.post("/cep/streams/auth/events", content="\n".join(lines) + "\n", headers={"content-type": "application/x-ndjson"})
        assert r.status_code == 200 and r.json()["matches"] == 5
        perf = c.get("/cep/rules/performance", params={"sort": "-matches"}).json()
        assert [(p["id"], p["matches"]) for p in perf] == [("failed", 3), ("root", 2), ("quiet", 0)]
        for p in perf:
            one = c.get(f"/cep/rules/{p['id']}/metrics").json()
            assert {k: v for k, v in one.items() if k != "max_ms"} == {k: v for k, v in p.items() if k != "max_ms"}
            assert p["events_in"] == 3 and p["last_execution"] is not None
        assert [p["id"] for p in c.get("/cep/rules/performance", params={"sort": "id", "limit": 2}).json()] == ["failed", "quiet"]
    assert s.shutdown() == 0


def test_redis_history_gives_the_summary_route_what_sql_gives(tmp_path, redis_server, redis_client) -> None:  # noqa: ANN001
    """The summary route asks any history for counts (with a severity filter) and minutes by
    severity; the Redis history lacked both and answered 500."""
    redis_client.flushdb()
    sql = open_history(f"sqlite:{tmp_path / 'h.sqlite'}")
    red = open_history(redis_server.url + "?prefix=sum:")
    batch = rows(random.Random(18), 300)
    sql.add(batch, now=NOW_S)
    red.add(batch, now=NOW_S)
    since, until = NOW_US - 3600 * 1_000_000 + 7, NOW_US
    for sev in (None, "high"):
        assert (
            red.summary(since_us=since, until_us=until, severity=sev, series=False)[0]
            == sql.summary(since_us=since, until_us=until, severity=sev, series=False)[0]
        )
        assert sorted(red.minutes_by_severity(since_us=since, until_us=until, severity=sev)) == sorted(
            sql.minutes_by_severity(since_us=since, until_us=until, severity=sev)
        )
    sql.close()
    red.close()
