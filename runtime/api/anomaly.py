"""/cep/rules/{id}/anomaly-status and anomaly-reset: the baselines an anomaly rule keeps per group.

Read and changed on the engine thread (between batches), through the anomaly
executor's accessors (`baseline_values`, `ema_baseline`, `reset_baseline`,
`seed_baseline`): the slot layout stays in cepdsl.  Pre-seeded values go through the
rule's own kernel, so the state is exactly what seeing those values in the stream
would have left (sums, run counters and sorted copies included).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import polars as pl

from runtime.api.deps import Ops, RuleId, topic_router
from runtime.api.models import AnomalyGroup, AnomalyResetIn, AnomalyResetOut, AnomalyStatus, BaselineIn
from runtime.control import ControlPlane, Refused

router = topic_router("anomaly")


def executor_of(o: ControlPlane, rule_id: str) -> Any:
    o.rule_view(rule_id)  # 404 when unknown
    session = getattr(o.engine, "session", None)
    run = getattr(session, "_rules", {}).get(rule_id) if session is not None else None
    if run is None:
        raise Refused(409, "not-loaded", f"rule `{rule_id}` is not running")
    if run.plan.anomaly is None:
        raise Refused(409, "not-anomaly", f"rule `{rule_id}` is not an anomaly rule")
    # A rule with `for`/`resolve` runs its anomaly executor inside the lifecycle's.
    return getattr(run.executor, "inner", run.executor)


def group_keys(ex: Any) -> list[str]:
    table = ex.groups.table
    if not ex.groups.keys:
        return [""]
    return ["|".join("" if v is None else str(v) for v in row) for row in table.iter_rows()]


def status(o: ControlPlane, rule_id: str) -> AnomalyStatus:
    ex = executor_of(o, rule_id)
    spec = ex.spec
    groups = []
    last_scores = _last_scores(o, rule_id)
    for slot, key in enumerate(group_keys(ex)):
        g = AnomalyGroup(group=key, n=0, last_score=last_scores.get(key))
        ema, vals = ex.ema_baseline(slot), ex.baseline_values(slot)
        if ema is not None:
            g.n, g.mean, g.std = ema
        elif vals is not None:
            g.n = len(vals)
            if vals:
                a = np.asarray(vals)
                if spec.method == "zscore":
                    g.mean, g.std = float(a.mean()), float(a.std())
                else:
                    g.q1, g.q3 = float(np.quantile(a, 0.25)), float(np.quantile(a, 0.75))
            g.values = vals
        if g.n == 0 and g.mean is None:
            g.mean = None
        groups.append(g)
    return AnomalyStatus(rule=rule_id, method=spec.method, field=spec.field, baseline=ex.n_max, warmup=int(spec.warmup), groups=groups)


def _last_scores(o: ControlPlane, rule_id: str) -> dict[str, float]:
    out: dict[str, float] = {}
    if o.history is None:
        return out
    rows, _ = o.history.query(rule=rule_id, limit=200)
    for a in rows:  # newest first: the first seen per group is its last score
        score = a.record.get("score")
        if a.group not in out and isinstance(score, (int, float)):
            out[a.group] = float(score)
    return out


def reset(o: ControlPlane, rule_id: str, group: str | None) -> int:
    ex = executor_of(o, rule_id)
    keys = group_keys(ex)
    targets = range(len(keys)) if group is None else [i for i, k in enumerate(keys) if k == group]
    if group is not None and not targets:
        raise Refused(404, "not-found", f"rule `{rule_id}` has no group `{group}`")
    for slot in targets:
        ex.reset_baseline(slot)
    return len(targets)


def seed(o: ControlPlane, rule_id: str, baselines: dict[str, list[float]]) -> None:
    """Reset each named group and feed it `values` through the rule's kernel (what they score
    is dropped)."""
    ex = executor_of(o, rule_id)
    schema = ex.groups.schema
    for group, values in baselines.items():
        if len(values) > 1000:
            raise Refused(422, "invalid-request", f"group `{group}`: at most 1000 values")
        if not all(np.isfinite(v) for v in values):
            raise Refused(422, "invalid-request", f"group `{group}`: values must be finite numbers")
        parts = group.split("|") if schema else []
        if len(parts) != len(schema):
            raise Refused(422, "invalid-request", f"group `{group}`: expected {len(schema)} key value(s) joined by `|`")
        try:
            frame = pl.DataFrame({name: [p] for name, p in zip(schema, parts, strict=True)}).cast(schema)  # type: ignore[arg-type]
        except Exception:  # noqa: BLE001 - a key value that is not of the key's type
            raise Refused(422, "invalid-request", f"group `{group}`: key values do not fit {dict(schema)}") from None
        ex.seed_baseline(int(ex.groups.slots(frame)[0]) if schema else 0, values)
    export_baselines(o, rule_id)


def export_baselines(o: ControlPlane, rule_id: str) -> None:
    """With a Redis state, also write the baselines under the design's `cep:anomaly:baseline:<rule>:<group>`."""
    store = getattr(o.engine, "store", None)
    setter = getattr(getattr(store, "inner", store), "baseline_set", None)
    if setter is None or not hasattr(getattr(store, "inner", store), "redis"):
        return
    ex = executor_of(o, rule_id)
    for slot, key in enumerate(group_keys(ex)):
        vals = ex.baseline_values(slot)
        if vals:
            setter(rule_id, key, vals)


@router.get(
    "/cep/rules/{rule_id}/anomaly-status",
    summary="Per group: baseline size, mean/std (zscore, ema) or q1/q3 (iqr), last reported score",
)
def anomaly_status(rule_id: RuleId, o: Ops) -> AnomalyStatus:
    return o.call(lambda: status(o, rule_id))


@router.put(
    "/cep/rules/{rule_id}/anomaly-status",
    summary="Pre-seed baselines: group → values (oldest first), as if seen in the stream",
)
def seed_baselines(rule_id: RuleId, body: BaselineIn, o: Ops) -> AnomalyStatus:
    def run() -> AnomalyStatus:
        seed(o, rule_id, body.baselines)
        return status(o, rule_id)

    return o.call(run)


@router.post("/cep/rules/{rule_id}/anomaly-reset", summary="Forget the baseline of every group, or of one")
def anomaly_reset(rule_id: RuleId, o: Ops, body: AnomalyResetIn | None = None) -> AnomalyResetOut:
    n = o.call(lambda: reset(o, rule_id, body.group if body else None))
    return AnomalyResetOut(rule=rule_id, reset=n)
