"""Random seed-shaped JSON: `import_rules` returns a file that checks clean, or raises
ImportFailed with paths — never any other exception."""

from __future__ import annotations

from hypothesis import given
from hypothesis import strategies as st

from cepdsl.compat import ImportFailed, import_rules
from cepdsl.frontend import check_source

scalars = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(-(2**70), 2**70),
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from(["cpu", "5m", "0 9 * * *", "AND", "OR", "NOT", "zscore", "ema", "avg", "https://h.example/x", "${TOKEN}"]),
    st.text(max_size=6),
)
fields = st.sampled_from(["cpu", "memory", "host", "data.avg", "status", "ts", "window", "a b", "", "x`y"])
ops = st.sampled_from([">", ">=", "<", "<=", "==", "!=", "=", "contains", "starts_with", "ends_with", "in", "not_in", "like"])
values = st.one_of(scalars, st.lists(scalars, max_size=3))


def leaf():
    return st.fixed_dictionaries({"field": fields, "op": ops, "value": values})


conditions = st.recursive(
    leaf(),
    lambda inner: st.fixed_dictionaries(
        {"operator": st.sampled_from(["AND", "OR", "NOT", "and", "XOR"]), "conditions": st.lists(inner, min_size=0, max_size=3)}
    ),
    max_leaves=6,
)
windows = st.one_of(
    st.fixed_dictionaries(
        {"type": st.sampled_from(["tumbling", "sliding", "session", "count", "hopping"])},
        optional={
            "size": st.one_of(scalars, st.sampled_from(["5m", 60, 0.5])),
            "slide": st.sampled_from(["1m", 30, "10m"]),
            "gap": st.sampled_from(["30s", 0]),
        },
    ),
    st.sampled_from(["5m", 300]),
)
aggregations = st.fixed_dictionaries(
    {"type": st.sampled_from(["count", "sum", "avg", "min", "max", "std", "percentile", "median"])},
    optional={"field": fields, "op": ops, "value": values, "percentile": st.sampled_from([95, 99.9, 101, "p95"])},
)
specs = st.fixed_dictionaries(
    {},
    optional={
        "conditions": st.one_of(st.lists(conditions, max_size=4), conditions),
        "logic": st.sampled_from(["AND", "OR", "NOT", "maybe"]),
        "window": windows,
        "aggregation": st.one_of(aggregations, st.lists(aggregations, max_size=2)),
        "group_by": st.one_of(fields, st.lists(fields, max_size=2)),
        "cron": st.sampled_from(["0 9 * * *", "*/5 * * * *", "bad", "0 0 9 * * *"]),
        "interval": st.sampled_from(["15m", "7m", 3600]),
        "anomaly_method": st.sampled_from(["zscore", "iqr", "ema", "lof"]),
        "anomaly_config": st.dictionaries(st.sampled_from(["threshold", "multiplier", "alpha", "k"]), scalars, max_size=2),
        "value_path": fields,
        "baseline_window": st.one_of(st.integers(-5, 2000), scalars),
        "baseline_values": st.lists(st.integers(), max_size=2),
    },
)
actions = st.one_of(
    st.sampled_from(["ops", "pager"]),
    st.fixed_dictionaries(
        {},
        optional={
            "endpoint": st.sampled_from(["https://a.example/x", "", 5]),
            "method": st.sampled_from(["POST", "get", "FETCH"]),
            "channel_id": st.sampled_from(["ops", "pager", "x y"]),
            "type": st.sampled_from(["slack", "email", "webhook", "pigeon"]),
            "message": st.sampled_from(["{{ alert_title }}", "{{ host }}", "{{ nope }}", "{% for %}"]),
            "webhook_url": st.just("https://hooks.slack.com/x"),
        },
    ),
)
rules = st.fixed_dictionaries(
    {},
    optional={
        "rule_id": st.one_of(st.sampled_from(["r1", "r-2", "r/3", "r1"]), st.integers(0, 3), st.none()),
        "rule_name": st.one_of(st.text(max_size=8), st.integers()),
        "trigger_type": st.sampled_from(["metric", "event", "schedule", "anomaly", "magic"]),
        "trigger_spec": st.one_of(specs, scalars),
        "action_spec": st.one_of(actions, st.lists(actions, max_size=2)),
        "severity": st.sampled_from(["high", "warning", "urgent"]),
        "throttle": st.sampled_from(["10m", 0, "soon"]),
    },
)


@given(st.one_of(rules, st.lists(rules, max_size=3), st.fixed_dictionaries({"rules": st.lists(rules, max_size=3)}), scalars))
def test_import_converts_or_explains(data: object) -> None:
    try:
        text = import_rules(data)
    except ImportFailed as e:
        assert e.problems and all(p.path.startswith("$") and p.message for p in e.problems)
        return
    assert check_source(text)[1] == []
