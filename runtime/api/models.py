"""Typed request and response bodies: what /openapi.json says about every route.

Times are RFC 3339 UTC strings (or null when there is none yet), durations in
seconds, never internal sentinels or raw microseconds.
"""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

#: Rule, channel and template IDs as paths take them: identifiers, and backquoted names made of
#: letters, digits, `_`, `.` and `-` (what `cep import` writes for the seed's ids, e.g. `cpu-high`).
ID_PATTERN = r"^[A-Za-z0-9_][A-Za-z0-9_.-]{0,127}$"
STREAM_PATTERN = ID_PATTERN
JsonObject = dict[str, Any]


# --------------------------------------------------------------------------- errors and diagnostics
class DiagnosticOut(BaseModel):
    file: str
    line: int
    col: int
    end_line: int
    end_col: int
    severity: str
    code: str
    message: str
    hints: list[str]
    rendered: str


class ErrorDetail(BaseModel):
    code: str = Field(description="stable machine-readable reason, e.g. `check-failed`, `read-only`, `not-found`")
    message: str
    diagnostics: list[DiagnosticOut] | None = None


class ErrorBody(BaseModel):
    error: ErrorDetail


class CheckResult(BaseModel):
    ok: bool
    rules: list[str]
    diagnostics: list[DiagnosticOut]


# --------------------------------------------------------------------------- rules
class ReloadOut(BaseModel):
    at: str | None
    ok: bool
    origin: str = Field(description="`start`, `file` (the rule files changed), `api`, or `catalogue` (another process sharing it)")
    error: str | None = None
    diagnostics: list[DiagnosticOut] = []
    report: dict[str, list[str]] | None = Field(None, description="kept / changed / added / removed rule IDs")
    offsets: JsonObject | None = Field(
        None, description="the sources' offsets when the change applied: it holds from the next batch on"
    )


class RuleOut(BaseModel):
    id: str
    origin: Literal["file", "catalogue"]
    file: str
    line: int
    enabled: bool
    loaded: bool = Field(description="part of the running program (enabled and checking)")
    version: int | None = Field(None, description="catalogue version; null for file rules")
    text: str
    title: str | None = None
    kind: str | None = None
    stream: str | None = None
    severity: str | None = None
    group_by: list[str] = []
    notify: list[str] = []
    fallback: str | None = None
    throttle_s: float | None = None
    output: dict[str, str] = {}
    source: str = Field(description="FILE:LINE where the rule is written")


class VersionOut(BaseModel):
    id: str
    version: int
    created_at: str | None
    deleted: bool
    applied_at: str | None = Field(None, description="when the version went live in the engine")
    applied_offsets: JsonObject | None = Field(None, description="the sources' offsets at that point")
    text: str


class RuleChange(BaseModel):
    rule: RuleOut | None
    version: VersionOut
    reload: ReloadOut


class ToggleIn(BaseModel):
    enabled: bool | None = Field(None, description="true / false; omitted: flip")


class ToggleOut(BaseModel):
    id: str
    enabled: bool
    reload: ReloadOut


class RuleMetrics(BaseModel):
    id: str
    events_in: int = 0
    passed: int = 0
    matches: int = 0
    suppressed: int = 0
    late: int = 0
    batches: int = 0
    last_execution: str | None = None
    mean_ms: float = 0.0
    max_ms: float = 0.0
    p99_ms: float = 0.0
    state_bytes: int = 0
    deliveries_sent: int = 0
    deliveries_failed: int = 0
    delivery_success_rate: float | None = None
    recent_errors: list[str] = []


# --------------------------------------------------------------------------- simulate, dry-run, trigger
class SimulateOut(BaseModel):
    ok: bool
    rules: list[str] = []
    matches: dict[str, list[JsonObject]] = Field({}, description="rule ID → match records")
    dead_letters: list[JsonObject] = []
    diagnostics: list[DiagnosticOut] = []


class SimulateIn(BaseModel):
    text: str = Field(max_length=1_000_000, description="`.cep` text: rules (and streams/channels) not yet saved")
    events: dict[str, list[JsonObject]] | list[JsonObject] = Field(description="events per stream, or a list for the only stream")
    include_files: bool = Field(True, description="check the text together with the served rule files")


class DryRunIn(BaseModel):
    record: JsonObject | None = Field(None, description="match record fields; missing ones get sample values")


class RenderedOut(BaseModel):
    channel: str
    kind: str
    subject: str
    text: str
    template_error: str | None = None


class DryRunOut(BaseModel):
    rule: str
    record: JsonObject
    messages: list[RenderedOut]


class TriggerOut(BaseModel):
    rule: str
    enqueued: int
    idempotency_key: str
    channels: list[str]
    test: bool = True


# --------------------------------------------------------------------------- alert history
class AlertOut(BaseModel):
    id: int
    rule: str
    severity: str
    ts: str | None
    emitted_at: str | None
    group: str
    record: JsonObject
    silenced: str | None = None
    test: bool = False
    channels: list[str] = []


class AlertPage(BaseModel):
    items: list[AlertOut]
    next_cursor: str | None = Field(None, description="pass as `cursor` for the next (older) page")


class DeliveryOut(BaseModel):
    channel: str
    status: str | None = Field(
        None,
        description="pending / in_flight / sent / failed / skipped (the channel was "
        "disabled: not sent, and not sent later); null when never enqueued",
    )
    attempts: int | None = None
    last_error: str | None = None
    updated_at: str | None = None


class AlertDetail(AlertOut):
    messages: list[RenderedOut] = []
    deliveries: list[DeliveryOut] = []


class CountOut(BaseModel):
    rule: str
    severity: str
    count: int


class MinuteOut(BaseModel):
    minute: str
    count: int
    by_severity: dict[str, int] = Field({}, description="the minute's count split by severity")


class SummaryOut(BaseModel):
    since: str | None
    until: str | None
    total: int
    counts: list[CountOut]
    by_rule: dict[str, int]
    by_severity: dict[str, int]
    per_minute: list[MinuteOut]


# --------------------------------------------------------------------------- numbers
class StatsSummary(BaseModel):
    day: str = Field(description="the UTC day the *_today figures count")
    running: bool
    uptime_s: float
    active_rules: int
    disabled_rules: int
    events_today: int
    matches_today: int
    alerts_sent_today: int
    alerts_failed_today: int
    dead_letters: int
    mean_eval_ms: float
    p99_eval_ms: float


class StreamOut(BaseModel):
    name: str
    events_in: int
    events_per_s: float
    watermark: str | None
    max_event_time: str | None
    lag_s: float | None = Field(None, description="wall clock minus the watermark")
    late_rows: int
    dead_letters: int
    idle_s: float | None = None


class RecentOut(BaseModel):
    stream: str
    events: list[JsonObject]


class IngestOut(BaseModel):
    stream: str
    accepted: int
    dead_letters: int
    matches: int


class LegacyStats(BaseModel):
    running: bool
    engine: JsonObject = {}
    streams: dict[str, JsonObject] = {}
    rules: dict[str, JsonObject] = {}


# --------------------------------------------------------------------------- health
class HealthOut(BaseModel):
    status: Literal["ok", "degraded"]
    degraded: bool = False
    reasons: list[str] = []
    timestamp: str
    uptime_s: float
    rules: int
    files: list[str] = []
    last_reload: ReloadOut | None = None
    state_store: JsonObject = Field({}, description="the engine state store: kind, degraded, last_error, failures")
    components: JsonObject = {}


class ProbeOut(BaseModel):
    status: Literal["ok", "fail"]
    reason: str | None = None


class RedisHealth(BaseModel):
    configured: bool
    status: Literal["up", "down", "not-configured"]
    latency_ms: float | None = None
    degraded_since: str | None = None
    last_error: str | None = None


class BreakerOut(BaseModel):
    state: str
    failures: int
    opens_at: str | None = None
    retry_at: str | None = None


class BreakersOut(BaseModel):
    channels: dict[str, BreakerOut]
    rules: dict[str, dict[str, BreakerOut]]


class SourceHealth(BaseModel):
    name: str
    stream: str
    spec: str
    ok: bool
    error: str | None = None
    errors: int = 0
    finished: bool = False
    lag_s: float | None = None


# --------------------------------------------------------------------------- channels, templates, form
class ChannelOption(BaseModel):
    name: str
    required: bool
    secret: bool
    type: str


class ChannelType(BaseModel):
    kind: str
    options: list[ChannelOption]


class ChannelOut(BaseModel):
    name: str
    kind: str
    origin: Literal["file", "catalogue"]
    file: str
    text: str = Field(description="the declaration; secrets are `env(\"NAME\")` references, never values")
    version: int | None = None
    enabled: bool = Field(
        True, description="false: switched off (PATCH .../toggle); its deliveries are recorded as `skipped`, not sent"
    )


class ChannelToggleOut(BaseModel):
    name: str
    enabled: bool


class ChannelIn(BaseModel):
    text: str | None = Field(None, max_length=100_000, description="a `channel NAME = KIND(...)` declaration")
    name: str | None = Field(None, pattern=ID_PATTERN)
    kind: str | None = Field(None, pattern=ID_PATTERN)
    options: JsonObject | None = Field(None, description="option → value; a secret as {\"env\": \"VAR\"}")


class ChannelTestIn(BaseModel):
    channel: str = Field(pattern=ID_PATTERN)
    rule: str | None = Field(None, pattern=ID_PATTERN)
    record: JsonObject | None = None
    send: bool = True


class ChannelTestOut(BaseModel):
    channel: str
    rule: str
    ok: bool | None
    error: str | None = None
    subject: str
    text: str


class TemplateOut(BaseModel):
    name: str
    body: str
    origin: Literal["builtin", "file", "catalogue"]
    in_program: bool = Field(False, description="usable as message template(\"NAME\") by rules (needs the v2 grammar)")
    version: int | None = None


class TemplateIn(BaseModel):
    name: str = Field(pattern=ID_PATTERN)
    body: str = Field(max_length=100_000)


class FormCondition(BaseModel):
    field: str = Field(min_length=1, max_length=200)
    op: str = Field(min_length=1, max_length=20)
    value: Any = None


class FormIn(BaseModel):
    """The original design's rule form fields (cep-blueprint-v2 §3.1), or `text` to go the other way."""

    text: str | None = Field(None, max_length=1_000_000, description="rule text → form fields")
    rule_id: str | None = Field(None, max_length=200)
    rule_name: str | None = Field(None, max_length=500)
    trigger_type: str | None = Field(None, max_length=50)
    trigger_spec: JsonObject | None = None
    action_spec: JsonObject | None = None
    actions: list[Any] | None = None
    severity: str | None = Field(None, max_length=50)
    stream: str | None = Field(None, max_length=128)


class FormOut(BaseModel):
    ok: bool
    text: str | None = None
    form: JsonObject | None = None
    problems: list[str] = []
    diagnostics: list[DiagnosticOut] = []


# --------------------------------------------------------------------------- anomaly
class AnomalyGroup(BaseModel):
    group: str
    n: int
    mean: float | None = None
    std: float | None = None
    q1: float | None = None
    q3: float | None = None
    last_score: float | None = None
    values: list[float] | None = None


class AnomalyStatus(BaseModel):
    rule: str
    method: str
    field: str
    baseline: int
    warmup: int
    groups: list[AnomalyGroup]


class AnomalyResetIn(BaseModel):
    group: str | None = Field(None, max_length=1000, description="one group key; omitted: all groups")


class AnomalyResetOut(BaseModel):
    rule: str
    reset: int


class BaselineIn(BaseModel):
    baselines: dict[str, list[float]] = Field(description="group key → values (oldest first, at most 1000)")
