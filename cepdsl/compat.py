"""`cep import`: rules in the seed design's JSON shape → a `.cep` file that checks clean.

The seed (cep-blueprint-v2 §3–§5) kept rules as JSON: `trigger_type` (metric,
event, schedule, anomaly), `trigger_spec` (conditions with AND/OR/NOT, an
aggregation, a window, a cron string, anomaly settings) and `action_spec` /
`actions` (channel ids or endpoints).  docs/importing-seed-rules.md has the full
mapping table.  Everything is converted or refused with a reason: a key the
importer does not know is a problem, never silently dropped.

Problems carry the JSON path of what could not be converted
(`$.rules[2].trigger_spec.conditions[1].op`); all of them are collected and
raised together as `ImportFailed`.  Rules, streams and channels are built as syntax
trees (`cepdsl.ast`) and printed by the formatter (`cepdsl.fmt`), so the importer
decides what to write, never how; the result is checked (`check_source`), and a
rule the checker still refuses is reported at its path too, so a returned text
always checks clean.
"""

from __future__ import annotations

import datetime as dt
import math
import re
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlparse

from cepdsl import ast
from cepdsl.channels import CHANNEL_KINDS, COMMON, KINDS
from cepdsl.durations import DurationError
from cepdsl.durations import parse_duration_us as read_duration_us
from cepdsl.fmt import duration_text, format_file, format_source, quote_string
from cepdsl.functions import AGGREGATES, aggregate_by_import_name

__all__ = ["ImportFailed", "ImportProblem", "import_rules"]


class ImportProblem(Exception):
    """One thing that could not be converted, at a JSON path."""

    def __init__(self, path: str, message: str):
        super().__init__(f"{path}: {message}")
        self.path = path
        self.message = message


class ImportFailed(Exception):
    """Every problem found in a file (not only the first)."""

    def __init__(self, problems: list[ImportProblem], source: str = "rules.json"):
        self.problems = list(problems)
        self.source = source
        lines = "\n".join(f"  {p}" for p in self.problems)
        super().__init__(f"{source}: {len(self.problems)} rule problem(s) could not be imported:\n{lines}")


# --------------------------------------------------------------------------- small helpers

_IDENT = re.compile(r"[A-Za-z_][A-Za-z0-9_]*")
_SAFE_ID = re.compile(r"[A-Za-z0-9_-]+")
_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}|env:([A-Za-z_][A-Za-z0-9_]*)")
_SEVERITY = {
    "info": "info", "low": "low", "medium": "medium", "high": "high", "critical": "critical",
    "warning": "medium", "warn": "medium", "error": "high", "fatal": "critical",
}  # fmt: skip
_COMPARE = {
    ">": ">", ">=": ">=", "<": "<", "<=": "<=", "==": "==", "!=": "!=", "=": "==",
    "gt": ">", "gte": ">=", "ge": ">=", "lt": "<", "lte": "<=", "le": "<=", "eq": "==", "ne": "!=", "neq": "!=",
}  # fmt: skip
_STRING_OPS = ("contains", "starts_with", "ends_with")
_LIST_OPS = {"in": "in", "not_in": "not in", "nin": "not in"}
_ANOMALY_PARAMS = {"zscore": ("threshold",), "iqr": ("multiplier",), "ema": ("alpha", "threshold")}
_INT64 = 2**63

#: Keys of a rule that carry no behaviour: kept as comments or ignored on purpose.
_META_KEYS = {"rule_id", "id", "rule_name", "name", "title", "description", "is_active", "enabled",
              "created_at", "updated_at", "created_by", "owner", "tags", "version"}  # fmt: skip

#: Seed names of the options every channel takes (each kind's own are in its registry
#: entry, `cepdsl.channels.ChannelKind.import_options`).
_COMMON_OPTIONS = {"retries": "retries", "max_retries": "retries", "timeout": "timeout"}
_CHANNEL_KIND_ALIASES = {"log": "console", "stdout": "console", "http": "webhook", "pager_duty": "pagerduty"}

#: The integration guide's metric-trigger keys (trigger_spec of a `metric` rule).
_METRIC_TRIGGER_KEYS = {"endpoint", "value_path", "op", "threshold"}
#: The seed's EnrichmentProcessor has no documented settings: any such key is refused by
#: name, with the `.cep` way to enrich (a lookup table and `join`).
_ENRICHMENT_KEYS = {"enrichment", "enrich", "enrichments", "lookup", "lookups"}
_ENRICHMENT_REFUSAL = (
    "{key!r}: the seed's EnrichmentProcessor settings are not converted (the design documents no format for them); "
    "declare a lookup table and join it in the rule: `table hosts (...) key host from \"hosts.csv\"` and "
    "`join hosts on host` (LANGUAGE.md §9.2)"
)


# --------------------------------------------------------------------------- syntax trees
# The importer builds `cepdsl.ast` nodes; `cepdsl.fmt` decides how they are written
# (quoting names, parentheses, layout).


def _n(text: str) -> ast.Name:
    return ast.Name(text)


def _path(path: str) -> ast.Path:
    return ast.Path(tuple(_n(p) for p in path.split(".")))


def _ref(path: ast.Path) -> ast.FieldRef:
    return ast.FieldRef(path)


def _str(v: str) -> ast.Literal:
    return ast.Literal(v, "str", quote_string(v, long=False))  # one line, as written by hand


def _int(v: int) -> ast.Literal:
    return ast.Literal(v, "int", str(v))


def _dur(us: int) -> ast.Duration:
    return ast.Duration(us, duration_text(us=us))


def _call(func: str, *args: ast.Expr) -> ast.Call:
    return ast.Call(_n(func), tuple(ast.Arg(a) for a in args))


def _chain(op: str, items: list[ast.Expr]) -> ast.Expr:
    """`a op b op c`, left-associative as the parser reads it."""
    out = items[0]
    for x in items[1:]:
        out = ast.Binary(op, out, x)
    return out


def _env(var: str) -> ast.Call:
    return _call("env", _str(var))


def _decl_text(decl: ast.Decl) -> str:
    return format_file(ast.File((decl,)), "").rstrip("\n")


def _env_name(*parts: str) -> str:
    return re.sub(r"[^A-Za-z0-9]+", "_", "_".join(parts)).strip("_").upper()


def _sanitize(text: str) -> str:
    out = re.sub(r"[^A-Za-z0-9_]+", "_", text).strip("_") or "x"
    return out if not out[0].isdigit() else "_" + out


@dataclass
class _Problems:
    items: list[ImportProblem] = field(default_factory=list)

    def add(self, path: str, message: str) -> None:
        self.items.append(ImportProblem(path, message))


class _Skip(Exception):
    """Stop converting the current rule (its problems are already recorded)."""


# --------------------------------------------------------------------------- durations


def parse_duration_us(value: Any) -> int:
    """Seconds as a number, or a string like `5m`, `30s`, `500ms`, `2 hours` → µs.
    Raises ValueError with the reason."""
    if isinstance(value, bool):
        raise ValueError("expected a duration (seconds, or a string like \"5m\")")
    if isinstance(value, (int, float)):
        if not math.isfinite(value) or value <= 0:
            raise ValueError(f"a duration must be positive, got {value}")
        us = round(value * 1_000_000)
        if abs(us - value * 1_000_000) > 1e-6 * max(1.0, value * 1_000_000) or us % 1_000:
            raise ValueError(f"{value} s is not a whole number of milliseconds")
        return us
    if isinstance(value, str):
        try:
            us = read_duration_us(value, words=True)  # the one duration reader (cepdsl.durations)
        except DurationError:
            raise ValueError(f"cannot read {value!r} as a duration (use seconds, or e.g. \"5m\", \"30s\", \"1h\")") from None
        if us <= 0:
            raise ValueError(f"a duration must be positive, got {value!r}")
        if us % 1_000:
            raise ValueError(f"{value!r} is not a whole number of milliseconds")
        return us
    raise ValueError(f"expected a duration (seconds, or a string like \"5m\"), got {type(value).__name__}")


def _cron_for_interval(us: int) -> str | None:
    """`*/N * * * *`-style cron for an interval that divides the hour or the day evenly."""
    minute = 60_000_000
    if us % minute:
        return None
    minutes = us // minute
    if minutes < 60 and 60 % minutes == 0:
        return "* * * * *" if minutes == 1 else f"*/{minutes} * * * *"
    if minutes % 60 == 0:
        hours = minutes // 60
        if hours < 24 and 24 % hours == 0:
            return "0 * * * *" if hours == 1 else f"0 */{hours} * * *"
        if hours == 24:
            return "0 0 * * *"
    return None


def _cron_period_us(cron: str) -> int:
    """The gap between the first two ticks after 2024-01-01 (a Monday), UTC."""
    from croniter import croniter

    it = croniter(cron, dt.datetime(2024, 1, 1, tzinfo=dt.timezone.utc))
    a, b = it.get_next(dt.datetime), it.get_next(dt.datetime)
    return int((b - a).total_seconds()) * 1_000_000


# --------------------------------------------------------------------------- the stream's fields


class _Fields:
    """Fields used by the rules, with types inferred from the values they meet."""

    def __init__(self, problems: _Problems):
        self.types: dict[str, str] = {}
        self.problems = problems

    def use(self, name: Any, type_: str | None, path: str) -> ast.Path:
        """Record a field use; returns the field's path."""
        if not isinstance(name, str) or not name.strip():
            self.problems.add(path, "a field name must be a non-empty string")
            raise _Skip
        parts = name.split(".")
        if any(not p or "`" in p or "\n" in p for p in parts):
            self.problems.add(path, f"field {name!r} cannot be written as a .cep field name")
            raise _Skip
        if name == "ts":
            self.problems.add(path, "field `ts` is the stream's time field (a timestamp); rules cannot compare it to values")
            raise _Skip
        known = self.types.get(name) or None
        if type_ is not None and known is not None and known != type_:
            self.problems.add(path, f"field {name!r} is compared with a {type_} here but with a {known} elsewhere")
            raise _Skip
        if type_ is not None or known is None:
            self.types[name] = type_ or known or ""
        return _path(name)

    def declared(self) -> list[tuple[str, str]]:
        # A field only grouped by (never compared) is taken as a string.
        return [(n, t or "str") for n, t in self.types.items()]


def _value_type(v: Any) -> str | None:
    if isinstance(v, bool):
        return "bool"
    if isinstance(v, (int, float)):
        return "float"  # data may hold 85 or 85.5 for the same metric: float takes both
    if isinstance(v, str):
        return "str"
    return None


def _literal(v: Any, path: str, problems: _Problems) -> ast.Literal:
    if v is None:
        return ast.Literal(None, "null", "null")
    if isinstance(v, bool):
        return ast.Literal(v, "bool", "true" if v else "false")
    if isinstance(v, int):
        if abs(v) >= _INT64:
            problems.add(path, f"{v} does not fit a 64-bit integer")
            raise _Skip
        return _int(v)
    if isinstance(v, float):
        if not math.isfinite(v):
            problems.add(path, f"{v} is not a finite number")
            raise _Skip
        text = repr(v)
        return ast.Literal(v, "float", text if "e" in text or "." in text else text + ".0")
    if isinstance(v, str):
        return _str(v)
    problems.add(path, f"expected a number, string or boolean, got {type(v).__name__}")
    raise _Skip


# --------------------------------------------------------------------------- one rule


def _get(d: dict, keys: tuple[str, ...]) -> tuple[str | None, Any]:
    """The first of `keys` present in `d`, and its value."""
    for k in keys:
        if k in d:
            return k, d[k]
    return None, None


class _RuleConverter:
    def __init__(self, importer: _Importer, rule: dict, path: str):
        self.imp = importer
        self.rule = rule
        self.path = path
        self.problems = importer.problems
        self.fields = importer.fields
        self.before = len(self.problems.items)
        self.notes: list[str] = []
        self.clauses: list[str] = []

    def fail(self, path: str, message: str) -> None:
        self.problems.add(path, message)

    def bad(self) -> bool:
        return len(self.problems.items) > self.before

    # -- conditions ------------------------------------------------------------------
    def condition(self, c: Any, path: str) -> ast.Expr:
        """A leaf `{field, op, value}` or a group `{operator|logic, conditions}` → an expression."""
        if not isinstance(c, dict):
            self.fail(path, f"a condition is an object, got {type(c).__name__}")
            raise _Skip
        if "conditions" in c:
            key, logic = _get(c, ("operator", "logic", "op"))
            return self.group(c["conditions"], logic if key else "AND", f"{path}.conditions", f"{path}.{key or 'operator'}", c, path)
        unknown = set(c) - {"field", "op", "operator", "value"}
        if unknown:
            self.fail(f"{path}.{sorted(unknown)[0]}", f"unknown key {sorted(unknown)[0]!r} in a condition (expected field, op, value)")
            raise _Skip
        okey, op = _get(c, ("op", "operator"))
        if okey is None:
            self.fail(path, "a condition needs `op` (or `operator`)")
            raise _Skip
        if "field" not in c:
            self.fail(path, "a condition needs `field`")
            raise _Skip
        if "value" not in c:
            self.fail(path, "a condition needs `value`")
            raise _Skip
        value, vpath, fpath, opath = c["value"], f"{path}.value", f"{path}.field", f"{path}.{okey}"
        op_key = op.lower() if isinstance(op, str) else op
        if op_key in _COMPARE:
            cmp = _COMPARE[op_key]
            if value is None:
                if cmp not in ("==", "!="):
                    self.fail(vpath, f"`{op}` with null is never true; only == and != can test for null")
                    raise _Skip
                f = self.fields.use(c["field"], None, fpath)
                return ast.IsNull(_ref(f), negated=cmp != "==")
            vtype = _value_type(value)
            if vtype is None:
                self.fail(vpath, f"`{op}` compares with a number, string or boolean, got {type(value).__name__}")
                raise _Skip
            if vtype == "bool" and cmp not in ("==", "!="):
                self.fail(opath, f"booleans compare only with == and !=, not `{op}`")
                raise _Skip
            f = self.fields.use(c["field"], vtype, fpath)
            return ast.Binary(cmp, _ref(f), _literal(value, vpath, self.problems))
        if op_key in _STRING_OPS:
            if not isinstance(value, str):
                self.fail(vpath, f"`{op}` takes a string value, got {type(value).__name__}")
                raise _Skip
            f = self.fields.use(c["field"], "str", fpath)
            return ast.Binary(op_key, _ref(f), _literal(value, vpath, self.problems))
        if op_key in _LIST_OPS:
            if not isinstance(value, list):
                self.fail(vpath, f"`{op}` takes a list of values, got {type(value).__name__}")
                raise _Skip
            types = {_value_type(v) for v in value if v is not None}
            if None in types or len(types) > 1:
                self.fail(vpath, f"the values of `{op}` must all be numbers, all strings or all booleans")
                raise _Skip
            f = self.fields.use(c["field"], next(iter(types), None), fpath)
            items = tuple(_literal(v, f"{vpath}[{i}]", self.problems) for i, v in enumerate(value))
            return ast.InList(_ref(f), ast.ListLit(items), negated=_LIST_OPS[op_key] == "not in")
        known = ", ".join([">", ">=", "<", "<=", "==", "!=", *_STRING_OPS, "in", "not_in"])
        self.fail(opath, f"unknown operator {op!r} (the seed's operators are {known})")
        raise _Skip

    def group(self, conds: Any, logic: Any, path: str, logic_path: str, owner: dict | None = None, owner_path: str = "") -> ast.Expr:
        if owner is not None:
            unknown = set(owner) - {"operator", "logic", "op", "conditions"}
            if unknown:
                key = sorted(unknown)[0]
                self.fail(f"{owner_path}.{key}", f"unknown key {key!r} in a condition group (expected operator, conditions)")
                raise _Skip
        if isinstance(conds, dict):  # a single nested group given as an object
            return self.condition(conds, path)
        if not isinstance(conds, list) or not conds:
            self.fail(path, "`conditions` must be a non-empty list")
            raise _Skip
        logic_key = logic.upper() if isinstance(logic, str) else logic
        if logic_key not in ("AND", "OR", "NOT"):
            self.fail(logic_path, f"unknown logic {logic!r}: use AND, OR or NOT")
        parts = []
        for i, c in enumerate(conds):
            try:
                parts.append(self.condition(c, f"{path}[{i}]"))
            except _Skip:
                pass  # keep going: report every bad condition, not only the first
        if self.bad():
            raise _Skip
        if logic_key == "NOT":  # "all conditions false" (blueprint §3.2)
            return ast.Unary("not", _chain("or", parts))
        return _chain("and" if logic_key == "AND" else "or", parts)

    # -- aggregations ------------------------------------------------------------------
    def aggregation(self, a: Any, path: str, windowed: bool) -> ast.Expr | None:
        """`{type, field, op, value}` → a `having` condition (None: no condition given)."""
        if not isinstance(a, dict):
            self.fail(path, f"an aggregation is an object, got {type(a).__name__}")
            raise _Skip
        unknown = set(a) - {"type", "function", "func", "field", "op", "operator", "value", "threshold", "percentile", "q", "p"}
        if unknown:
            key = sorted(unknown)[0]
            self.fail(f"{path}.{key}", f"unknown key {key!r} in an aggregation")
            raise _Skip
        tkey, func = _get(a, ("type", "function", "func"))
        spec = aggregate_by_import_name(func) if isinstance(func, str) else None
        if spec is None:
            known = ", ".join(x.name for x in AGGREGATES if x.import_names)
            self.fail(f"{path}.{tkey or 'type'}", f"unknown aggregation {func!r}: use {known}")
            raise _Skip
        func = spec.name
        fname = a.get("field")
        if spec.counts_rows and fname is None:
            call = _call(func)
        else:
            if fname is None:
                self.fail(path, f"`{func}` needs a `field`")
                raise _Skip
            # min/max order strings too, but a seed metric is a number unless used as a string elsewhere.
            hint = "float" if spec.fields == "numeric" else None
            if spec.fields == "ordered" and not self.fields.types.get(fname):
                hint = "float"
            f = self.fields.use(fname, hint, f"{path}.field")
            if spec.param is not None:
                qkey, q = _get(a, (func, spec.param.name, "p"))
                if qkey is None:
                    self.fail(path, f"`{func}` needs the {func} (`{func}`: 95)")
                    raise _Skip
                lo, hi = spec.param.lo, spec.param.hi
                if isinstance(q, bool) or not isinstance(q, (int, float)) or not lo <= q <= hi:
                    self.fail(f"{path}.{qkey}", f"the {func} must be a number from {lo:g} to {hi:g}, got {q!r}")
                    raise _Skip
                call = _call(func, _ref(f), _literal(q, f"{path}.{qkey}", self.problems))
            else:
                call = _call(func, _ref(f))
        okey, op = _get(a, ("op", "operator"))
        vkey, value = _get(a, ("value", "threshold"))
        if okey is None and vkey is None:
            return ast.Binary(">=", call, _int(1)) if spec.counts_rows else ast.IsNull(call, negated=True)
        if okey is None or vkey is None:
            self.fail(path, "an aggregation condition needs both `op` and `value`")
            raise _Skip
        cmp = _COMPARE.get(op.lower() if isinstance(op, str) else op)
        if cmp is None:
            self.fail(f"{path}.{okey}", f"aggregations compare with > >= < <= == !=, not {op!r}")
            raise _Skip
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            self.fail(f"{path}.{vkey}", f"an aggregation compares with a number, got {value!r}")
            raise _Skip
        return ast.Binary(cmp, call, _literal(value, f"{path}.{vkey}", self.problems))

    # -- the rule ------------------------------------------------------------------------
    def convert(self) -> tuple[str, ast.RuleDecl, list[str]] | None:
        """(rule id, the rule, the comment lines above it), or None after recording problems."""
        r, p = self.rule, self.path
        if not isinstance(r, dict):
            self.fail(p, f"a rule is an object, got {type(r).__name__}")
            return None
        try:
            rid = self.rule_id()
            rule = self.body(rid)
        except _Skip:
            return None
        if self.bad():
            return None
        return rid, rule, _comment_lines(self._comments())

    def rule_id(self) -> str:
        key, rid = _get(self.rule, ("rule_id", "id"))
        if rid is None:
            rid = f"rule_{self.imp.index + 1}"
        elif isinstance(rid, bool) or not isinstance(rid, (str, int)):
            self.fail(f"{self.path}.{key}", f"a rule id is a string, got {type(rid).__name__}")
            raise _Skip
        rid = str(rid)
        if not _SAFE_ID.fullmatch(rid):
            sane = _sanitize(rid)
            self.notes.append(f"rule id {rid!r} renamed to {sane!r}")
            rid = sane
        if rid in self.imp.rule_ids:
            # Reported, and the rest of the rule still checked: every problem in one run.
            self.fail(f"{self.path}.{key or 'rule_id'}", f"rule id {rid!r} is already used by {self.imp.rule_ids[rid]}")
        else:
            self.imp.rule_ids[rid] = self.path
        return rid

    def body(self, rid: str) -> ast.RuleDecl:
        r, p = self.rule, self.path
        known = _META_KEYS | {"trigger_type", "trigger_spec", "action_spec", "actions", "severity", "group_by",
                              "throttle", "cooldown", "message", "window"}  # fmt: skip
        for k in r:
            if k in _ENRICHMENT_KEYS:
                self.fail(f"{p}.{k}", _ENRICHMENT_REFUSAL.format(key=k))
            elif k not in known:
                self.fail(f"{p}.{k}", f"unknown rule key {k!r}")
        spec = r.get("trigger_spec", {})
        if not isinstance(spec, dict):
            self.fail(f"{p}.trigger_spec", "`trigger_spec` must be an object")
            raise _Skip
        sp = f"{p}.trigger_spec"
        ttype = r.get("trigger_type")
        if ttype is None:
            ttype = (
                "anomaly"
                if "anomaly_method" in spec
                else "schedule"
                if _get(spec, ("cron", "schedule", "cron_expression", "interval"))[0]
                else "metric"
            )
        if ttype not in ("metric", "event", "schedule", "anomaly"):
            self.fail(f"{p}.trigger_type", f"unknown trigger_type {ttype!r}: use metric, event, schedule or anomaly")
            raise _Skip
        spec_keys = {"conditions", "logic", "operator", "aggregation", "aggregations", "window", "group_by", "event_type",
                     "throttle", "cooldown", "severity", "message"}  # fmt: skip
        if ttype in ("metric", "event"):
            spec_keys |= _METRIC_TRIGGER_KEYS
        if ttype == "schedule":
            spec_keys |= {"cron", "schedule", "cron_expression", "interval", "over", "lookback"}
        if ttype == "anomaly":
            spec_keys |= {
                "anomaly_method",
                "anomaly_config",
                "value_path",
                "baseline_window",
                "baseline_values",
                "warmup",
                "min_samples",
            }
        for k in spec:
            if k in _ENRICHMENT_KEYS:
                self.fail(f"{sp}.{k}", _ENRICHMENT_REFUSAL.format(key=k))
            elif k not in spec_keys:
                hint = ""
                if k in ("anomaly_method", "value_path", "anomaly_config", "baseline_window"):
                    hint = " (only with trigger_type \"anomaly\")"
                elif k in ("cron", "schedule", "cron_expression", "interval"):
                    hint = " (only with trigger_type \"schedule\")"
                self.fail(f"{sp}.{k}", f"unknown trigger_spec key {k!r}{hint}")

        wheres = []
        if "conditions" in spec:
            lkey, logic = _get(spec, ("logic", "operator"))
            try:
                wheres.append(self.group(spec["conditions"], logic if lkey else "AND", f"{sp}.conditions", f"{sp}.{lkey or 'logic'}"))
            except _Skip:
                pass
        metric_having = None
        if ttype in ("metric", "event") and _METRIC_TRIGGER_KEYS & set(spec):
            try:
                metric_where, metric_having = self.metric_trigger(spec, sp)
            except _Skip:
                metric_where = None
            if metric_where:
                wheres.append(metric_where)
        if "event_type" in spec:
            et = spec["event_type"]
            try:
                if isinstance(et, list):
                    wheres.append(self.condition({"field": "event_type", "op": "in", "value": et}, f"{sp}.event_type"))
                else:
                    wheres.append(self.condition({"field": "event_type", "op": "==", "value": et}, f"{sp}.event_type"))
            except _Skip:
                pass

        group_key, group = _get(spec, ("group_by",))
        if group_key is None:
            group_key, group = _get(r, ("group_by",))
            gpath = f"{p}.group_by"
        else:
            gpath = f"{sp}.group_by"
        keys: list[ast.Path] = []
        if group is not None:
            group = [group] if isinstance(group, str) else group
            if not isinstance(group, list) or not group:
                self.fail(gpath, "`group_by` is a field name or a list of them")
            else:
                for i, g in enumerate(group):
                    try:
                        keys.append(self.fields.use(g, None, f"{gpath}[{i}]"))
                    except _Skip:
                        pass

        window_text, window_path = self.window(spec, r, sp, p, ttype)
        shape = self.shape(ttype, spec, sp, window_text, window_path)
        having = self.havings(spec, sp, windowed=bool(window_path) or ttype == "schedule")
        if metric_having is not None:
            if not window_path:
                self.fail(
                    f"{sp}.aggregation",
                    f"`aggregation` {spec.get('aggregation')!r} of a metric trigger needs a window: "
                    "add trigger_spec.window {\"type\": \"tumbling\", \"size\": \"5m\"} (an aggregate is taken over one)",
                )
            else:
                having = ast.Binary("and", having, metric_having) if having else metric_having
        severity = self.severity(r, spec, p, sp)
        throttle = self.throttle(r, spec, p, sp)
        notify, message = self.actions(rid, r, spec, p, sp)
        if self.bad():
            raise _Skip

        key, title = _get(r, ("rule_name", "name", "title"))
        if title is not None and not isinstance(title, str):
            self.fail(f"{p}.{key}", "a rule name is a string")
            raise _Skip
        clauses: list[ast.Clause | None] = [ast.From(_n(self.imp.stream))]
        if wheres:
            clauses.append(ast.Where(_chain("and", wheres)))
        if keys:
            clauses.append(ast.GroupBy(tuple(keys)))
        clauses += [shape, ast.Having(having) if having else None, severity, throttle, notify, message]
        return ast.RuleDecl(_n(rid), _str(title) if title is not None else None, tuple(c for c in clauses if c))

    def _comments(self) -> list[str]:
        out = []
        desc = self.rule.get("description")
        if isinstance(desc, str) and desc.strip():
            out += [line.rstrip() for line in desc.strip().splitlines()]
        active = self.rule.get("is_active", self.rule.get("enabled"))
        if active is False:
            out.append("note: this rule was inactive in the seed (is_active: false)")
        out += [f"note: {n}" for n in self.notes]
        return out

    def window(self, spec: dict, r: dict, sp: str, p: str, ttype: str) -> tuple[ast.Window | ast.Duration | None, str]:
        """The rule's window (for a schedule rule: the range each tick looks back over), and its path."""
        if "window" in spec:
            w, wp = spec["window"], f"{sp}.window"
        elif "window" in r:
            w, wp = r["window"], f"{p}.window"
        else:
            return None, ""
        if isinstance(w, (str, int, float)) and not isinstance(w, bool):
            w = {"type": "tumbling", "size": w}
        if not isinstance(w, dict):
            self.fail(wp, "a window is an object {type, size, slide, gap} or a duration")
            return None, wp
        unknown = set(w) - {"type", "size", "slide", "every", "step", "hop", "gap", "timeout"}
        if unknown:
            key = sorted(unknown)[0]
            self.fail(f"{wp}.{key}", f"unknown window key {key!r}")
            return None, wp
        kind = w.get("type", "tumbling")

        def dur(keys: tuple[str, ...], what: str) -> ast.Duration | None:
            key, v = _get(w, keys)
            if key is None:
                self.fail(wp, f"a {kind} window needs `{keys[0]}` ({what})")
                return None
            try:
                return _dur(parse_duration_us(v))
            except ValueError as e:
                self.fail(f"{wp}.{key}", str(e))
                return None

        if ttype == "schedule":
            if kind not in ("tumbling", "sliding"):
                self.fail(f"{wp}.type", "a schedule rule aggregates over a range ending at each tick: give `size`")
                return None, wp
            return dur(("size",), "how far back each tick looks"), wp
        if kind == "tumbling":
            size = dur(("size",), "the window length")
            return (ast.Window("tumbling", size=size) if size else None), wp
        if kind == "sliding":
            size = dur(("size",), "the window length")
            every = dur(("slide", "every", "step", "hop"), "how often a window starts")
            if size and every:
                if every.us > size.us:
                    self.fail(
                        f"{wp}.slide",
                        f"the slide {every.text} is longer than the window {size.text}: rows between windows would be lost",
                    )
                    return None, wp
                return ast.Window("sliding", size=size, every=every), wp
            return None, wp
        if kind == "session":
            gap = dur(("gap", "timeout"), "the silence that ends a session")
            return (ast.Window("session", gap=gap) if gap else None), wp
        if kind in ("count", "last"):
            n = w.get("size")
            if isinstance(n, bool) or not isinstance(n, int) or n < 1:
                self.fail(f"{wp}.size", f"a count window needs a positive whole `size`, got {n!r}")
                return None, wp
            return ast.Window("count", count=_int(n)), wp
        self.fail(f"{wp}.type", f"unknown window type {kind!r}: use tumbling, sliding or session")
        return None, wp

    def shape(self, ttype: str, spec: dict, sp: str, window: ast.Window | ast.Duration | None, wpath: str) -> ast.Clause | None:
        if ttype in ("metric", "event"):
            return window if isinstance(window, ast.Window) else None
        if ttype == "schedule":
            key, cron = _get(spec, ("cron", "schedule", "cron_expression"))
            if key is None:
                ikey, interval = _get(spec, ("interval",))
                if ikey is None:
                    self.fail(sp, "a schedule trigger needs `cron` (e.g. \"0 9 * * *\") or `interval`")
                    return None
                try:
                    cron = _cron_for_interval(parse_duration_us(interval))
                except ValueError as e:
                    self.fail(f"{sp}.interval", str(e))
                    return None
                if cron is None:
                    self.fail(f"{sp}.interval", f"interval {interval!r} does not divide an hour or a day evenly: give a cron string")
                    return None
                key = "interval"
            if not isinstance(cron, str):
                self.fail(f"{sp}.{key}", "a cron string is a string such as \"0 9 * * *\"")
                return None
            from cepdsl.checker import cron_problem

            over = window if isinstance(window, ast.Duration) else None
            okey, ov = _get(spec, ("over", "lookback"))
            if okey is not None:
                try:
                    over = _dur(parse_duration_us(ov))
                except ValueError as e:
                    self.fail(f"{sp}.{okey}", str(e))
            problem = cron_problem(cron)
            if problem:
                reason = problem[0] if isinstance(problem, tuple) else problem
                self.fail(f"{sp}.{key}", f"invalid cron string {cron!r}: {reason} (5 fields, UTC)")
            if self.bad():
                return None
            if over is None:
                over = _dur(_cron_period_us(cron))
                self.notes.append(
                    f"schedule range defaults to the cron period (over {over.text}): each tick sees the rows since the previous one"
                )
            return ast.Schedule(_str(cron), over)
        # anomaly
        if window is not None:
            self.fail(wpath, "an anomaly rule has no window: its baseline is the last `baseline_window` values")
            return None
        method = spec.get("anomaly_method", "zscore")
        if method not in _ANOMALY_PARAMS:
            self.fail(f"{sp}.anomaly_method", f"unknown anomaly method {method!r}: use zscore, iqr or ema")
        f: ast.Path | None = None
        if "value_path" not in spec:
            self.fail(sp, "an anomaly trigger needs `value_path`: the field to watch")
        else:
            try:
                f = self.fields.use(spec["value_path"], "float", f"{sp}.value_path")
            except _Skip:
                pass
        args = [ast.Arg(_ref(f or _path("_")))]
        config = spec.get("anomaly_config", {})
        if not isinstance(config, dict):
            self.fail(f"{sp}.anomaly_config", "`anomaly_config` is an object")
            config = {}
        for k, v in config.items() if method in _ANOMALY_PARAMS else ():
            kpath = f"{sp}.anomaly_config.{k}"
            if k not in _ANOMALY_PARAMS[method]:
                self.fail(kpath, f"`{method}` has no parameter {k!r} (it takes {', '.join(_ANOMALY_PARAMS[method])})")
            elif isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v) or v <= 0 or (k == "alpha" and v > 1):
                self.fail(kpath, f"`{k}` must be a positive number{' at most 1' if k == 'alpha' else ''}, got {v!r}")
            else:
                args.append(ast.Arg(_literal(v, kpath, self.problems), _n(k)))
        baseline_lit = warmup_lit = None
        baseline = spec.get("baseline_window")
        if baseline is not None:
            if isinstance(baseline, bool) or not isinstance(baseline, int) or not 1 <= baseline <= 1000:
                self.fail(f"{sp}.baseline_window", f"`baseline_window` must be a whole number from 1 to 1000, got {baseline!r}")
            else:
                baseline_lit = _int(baseline)
        wkey, warmup = _get(spec, ("warmup", "min_samples"))
        if wkey is not None:
            if isinstance(warmup, bool) or not isinstance(warmup, int) or warmup < 1:
                self.fail(f"{sp}.{wkey}", f"`{wkey}` must be a whole number ≥ 1, got {warmup!r}")
            else:
                warmup_lit = _int(warmup)
        elif method != "ema" and baseline_lit is not None and baseline < 10:
            warmup_lit = _int(baseline)  # the default warmup (10) would exceed the baseline
        values = spec.get("baseline_values")
        if values not in (None, []):
            self.fail(f"{sp}.baseline_values", "stored baseline values cannot be imported: the baseline is rebuilt from the stream")
        return None if self.bad() else ast.Anomaly(_n(str(method)), tuple(args), baseline_lit, warmup_lit)

    def metric_trigger(self, spec: dict, sp: str) -> tuple[ast.Expr | None, ast.Expr | None]:
        """The integration guide's metric trigger: `value_path` `op` `threshold`, read from
        `endpoint`, optionally as an `aggregation` ("avg", ...) over the rule's window.
        Returns (a `where` condition, a `having` condition); each key is converted or
        refused by name."""
        if "endpoint" in spec:
            ep = spec["endpoint"]
            if not isinstance(ep, str) or not ep.strip():
                self.fail(f"{sp}.endpoint", "`endpoint` is the URL the metric is polled from, a string")
            else:
                # A rule does not read sources: the endpoint becomes the `cep run` source.
                self.notes.append(
                    f"endpoint {ep!r}: the metric is polled from there; run with `cep run FILE --source {self.imp.stream}=http://...` "
                    "(the HTTP poll source) to feed this stream"
                )
        if "value_path" not in spec:
            for k in ("op", "threshold"):
                if k in spec:
                    self.fail(f"{sp}.{k}", f"`{k}` of a metric trigger needs `value_path` (the metric it compares)")
            if isinstance(spec.get("aggregation"), str):
                self.fail(f"{sp}.aggregation", "an `aggregation` name needs `value_path` (the metric it aggregates)")
            raise _Skip
        vp = spec["value_path"]
        if not isinstance(vp, str) or not vp.strip():
            self.fail(f"{sp}.value_path", "`value_path` is the metric's field path, e.g. \"data.cpu_percent\"")
            raise _Skip
        field = self.fields.use(vp.strip().lstrip("$.").replace("/", "."), "float", f"{sp}.value_path")
        has_op, has_threshold = "op" in spec, "threshold" in spec
        if has_op != has_threshold:
            missing = "threshold" if has_op else "op"
            self.fail(
                f"{sp}.{'op' if has_op else 'threshold'}",
                f"a metric trigger compares with both `op` and `threshold`; `{missing}` is missing",
            )
            raise _Skip
        cmp = None
        threshold = ast.Literal(None, "null", "null")  # set with `op`
        if has_op:
            op = spec["op"]
            cmp = _COMPARE.get(op.lower() if isinstance(op, str) else op)
            if cmp is None:
                self.fail(f"{sp}.op", f"`op` {op!r} is not a comparison: use > >= < <= == !=")
                raise _Skip
            t = spec["threshold"]
            if isinstance(t, bool) or not isinstance(t, (int, float)) or (isinstance(t, float) and not math.isfinite(t)):
                self.fail(f"{sp}.threshold", f"`threshold` is a finite number, got {t!r}")
                raise _Skip
            threshold = _literal(t, f"{sp}.threshold", self.problems)
        agg = spec.get("aggregation")
        if isinstance(agg, str):
            # A name alone: aggregates that need a parameter (percentile's q) cannot be named so.
            a = aggregate_by_import_name(agg.lower())
            if a is None or a.param is not None:
                known = ", ".join(x.name for x in AGGREGATES if x.import_names and x.param is None)
                self.fail(f"{sp}.aggregation", f"`aggregation` {agg!r} is not one of {known}")
                raise _Skip
            call = _call(a.name) if a.counts_rows else _call(a.name, _ref(field))
            if cmp is None:
                self.notes.append(f"aggregation {agg!r} without op/threshold only annotated the alert: not converted")
                return None, None
            return None, ast.Binary(cmp, call, threshold)
        if cmp is None:
            self.notes.append(f"value_path {vp!r} without op/threshold: every event of the stream matches")
            return None, None
        return ast.Binary(cmp, _ref(field), threshold), None

    def havings(self, spec: dict, sp: str, windowed: bool) -> ast.Expr | None:
        items: list[tuple[Any, str]] = []
        if "aggregation" in spec and not isinstance(spec["aggregation"], str):  # a name: see metric_trigger
            a = spec["aggregation"]
            items += [(x, f"{sp}.aggregation[{i}]") for i, x in enumerate(a)] if isinstance(a, list) else [(a, f"{sp}.aggregation")]
        if "aggregations" in spec:
            a = spec["aggregations"]
            if not isinstance(a, list):
                self.fail(f"{sp}.aggregations", "`aggregations` is a list")
                return None
            items += [(x, f"{sp}.aggregations[{i}]") for i, x in enumerate(a)]
        conds = []
        for a, path in items:
            if not windowed:
                has_condition = isinstance(a, dict) and any(k in a for k in ("op", "operator", "value", "threshold"))
                if has_condition:
                    self.fail(
                        path,
                        "an aggregate condition needs a window: add trigger_spec.window {\"type\": \"tumbling\", \"size\": \"5m\"}",
                    )
                else:
                    what = a.get("type", "?") if isinstance(a, dict) else "?"
                    fld = a.get("field", "") if isinstance(a, dict) else ""
                    self.notes.append(
                        f"aggregation {what}({fld}) without a window or threshold was not converted: it only annotated the alert"
                    )
                continue
            try:
                text = self.aggregation(a, path, windowed)
            except _Skip:
                continue
            if text:
                conds.append(text)
        if not conds:
            return None
        return _chain("and", conds)

    def severity(self, r: dict, spec: dict, p: str, sp: str) -> ast.Severity | None:
        if "severity" in r:
            v, path = r["severity"], f"{p}.severity"
        elif "severity" in spec:
            v, path = spec["severity"], f"{sp}.severity"
        else:
            return None
        level = _SEVERITY.get(v.lower()) if isinstance(v, str) else None
        if level is None:
            self.fail(path, f"unknown severity {v!r}: use info, low, medium, high or critical")
            return None
        return ast.Severity(_n(level))

    def throttle(self, r: dict, spec: dict, p: str, sp: str) -> ast.Throttle | None:
        for d, base in ((r, p), (spec, sp)):
            key, v = _get(d, ("throttle", "cooldown"))
            if key is not None:
                try:
                    return ast.Throttle(_dur(parse_duration_us(v)))
                except ValueError as e:
                    self.fail(f"{base}.{key}", str(e))
                    return None
        return None

    def actions(self, rid: str, r: dict, spec: dict, p: str, sp: str) -> tuple[ast.Notify | None, ast.Message | None]:
        entries: list[tuple[Any, str]] = []
        message: tuple[Any, str] | None = None
        if "message" in r:
            message = (r["message"], f"{p}.message")
        if "message" in spec:
            message = (spec["message"], f"{sp}.message")
        for key in ("action_spec", "actions"):
            if key not in r:
                continue
            v = r[key]
            if isinstance(v, list):
                entries += [(x, f"{p}.{key}[{i}]") for i, x in enumerate(v)]
            elif isinstance(v, dict):
                entries.append((v, f"{p}.{key}"))
            else:
                self.fail(f"{p}.{key}", f"`{key}` is an object or a list of them")
        channels: list[str] = []
        fallback: str | None = None
        for a, path in entries:
            if isinstance(a, str):
                channels.append(self.imp.channels.reference(a, path))
                continue
            if not isinstance(a, dict):
                self.fail(path, f"an action is an object or a channel id, got {type(a).__name__}")
                continue
            a = dict(a)
            for mkey in ("message", "template", "message_template"):
                if mkey in a:
                    message = (a.pop(mkey), f"{path}.{mkey}")
            fkey, fb = _get(a, ("fallback", "fallback_channel"))
            if fkey is not None:
                a.pop(fkey)
                if isinstance(fb, str):
                    fallback = self.imp.channels.reference(fb, f"{path}.{fkey}")
                else:
                    self.fail(f"{path}.{fkey}", "a fallback is a channel id")
            ckey, ids = _get(a, ("channels", "channel_ids"))
            if ckey is not None:
                a.pop(ckey)
                ids = [ids] if isinstance(ids, str) else ids
                if not isinstance(ids, list) or not all(isinstance(i, str) for i in ids):
                    self.fail(f"{path}.{ckey}", "`channels` is a list of channel ids")
                else:
                    channels += [self.imp.channels.reference(i, f"{path}.{ckey}[{n}]") for n, i in enumerate(ids)]
            if a:
                name = self.imp.channels.inline(rid, a, path)
                if name:
                    channels.append(name)
        notify = None
        unique = list(dict.fromkeys(channels))
        if fallback in unique:
            unique.remove(fallback)
        if unique:
            notify = ast.Notify(tuple(_n(c) for c in unique), _n(fallback) if fallback else None)
        elif fallback:
            notify = ast.Notify((_n(fallback),))
        msg = None
        if message is not None:
            text, mpath = message
            if not isinstance(text, str):
                self.fail(mpath, "a message is a string")
            else:
                msg = ast.Message(_str(_template(text)))
        return notify, msg


def _comment_lines(notes: list[str]) -> list[str]:
    import textwrap

    out = []
    for n in notes:
        out += ["# " + line for line in textwrap.wrap(n, 86, break_long_words=False, break_on_hyphens=False)] or ["#"]
    return out


_TEMPLATE_ALIASES = {"alert_title": "title", "rule_name": "title", "rule_id": "rule", "alert_severity": "severity"}


def _template(text: str) -> str:
    """The seed's template variables that have a `.cep` name (`{{ alert_title }}` → `{{ title }}`)."""

    def swap(m: re.Match[str]) -> str:
        return m.group(1) + _TEMPLATE_ALIASES[m.group(2)] + m.group(3)

    pattern = r"(\{\{-?\s*)(" + "|".join(_TEMPLATE_ALIASES) + r")(\s*(?:\||-?\}\}))"
    return re.sub(pattern, swap, text)


# --------------------------------------------------------------------------- channels


class _Channels:
    """Channel declarations: from a top-level `channels` section, from endpoints and
    inline configs in actions, and placeholders for ids with no config."""

    def __init__(self, problems: _Problems):
        self.problems = problems
        self.decls: dict[str, ast.ChannelDecl] = {}
        self.configs: dict[str, tuple[Any, str]] = {}  # id → (config, path), from `channels`
        self.by_endpoint: dict[str, str] = {}
        self.env_vars: list[str] = []
        self.placeholders: list[str] = []

    def section(self, data: Any, path: str) -> None:
        items: list[tuple[str | None, Any, str]] = []
        if isinstance(data, dict):
            items = [(k, v, f"{path}.{k}") for k, v in data.items()]
        elif isinstance(data, list):
            for i, c in enumerate(data):
                cid = c.get("channel_id", c.get("id", c.get("name"))) if isinstance(c, dict) else None
                items.append((cid, c, f"{path}[{i}]"))
        else:
            self.problems.add(path, "`channels` is a list of channel objects or an object by id")
            return
        for cid, c, cpath in items:
            if not isinstance(cid, str) or not cid:
                self.problems.add(cpath, "a channel needs an id (`channel_id`)")
                continue
            self.configs[cid] = (c, cpath)
        # Every configured channel is declared, used or not, in the order given.
        for cid in list(self.configs):
            self.reference(cid, self.configs[cid][1])

    def reference(self, cid: str, path: str) -> str:
        name = _sanitize(cid) if not _IDENT.fullmatch(cid) else cid
        if name in self.decls:
            return name
        if cid in self.configs:
            c, cpath = self.configs[cid]
            self.declare(name, c, cpath, drop=("channel_id", "id", "name"))
        else:
            self.decls[name] = ast.ChannelDecl(_n(name), _n("console"), ())
            self.placeholders.append(name)
        return name

    def inline(self, rid: str, a: dict, path: str) -> str | None:
        kind = a.get("type", a.get("channel_type"))
        if kind is None and _get(a, ("endpoint", "url"))[0] is not None:
            kind = "webhook"
        kind = _CHANNEL_KIND_ALIASES.get(kind, kind)
        if kind == "webhook":
            ekey, url = _get(a, ("endpoint", "url"))
            if not isinstance(url, str) or not url:
                self.problems.add(f"{path}.{ekey or 'endpoint'}", "a webhook action needs `endpoint` (a URL)")
                return None
            key = repr(sorted((k, repr(v)) for k, v in a.items()))
            if key in self.by_endpoint:
                return self.by_endpoint[key]
            host = urlparse(url).hostname or "webhook"
            base = _sanitize(host.removeprefix("www.").replace(".", "_"))
            name = self._unique(base)
            if self.declare(name, a, path, drop=("type", "channel_type", "channel_id", "id", "name")):
                self.by_endpoint[key] = name
                return name
            return None
        cid = a.get("channel_id", a.get("id", a.get("name")))
        if isinstance(cid, str) and cid and kind is None:
            return self.reference(cid, path)
        name = self._unique(_sanitize(cid) if isinstance(cid, str) and cid else f"{rid}_{kind}")
        return name if self.declare(name, a, path, drop=("channel_id", "id", "name")) else None

    def _unique(self, base: str) -> str:
        name, n = base, 2
        while name in self.decls:
            name, n = f"{base}_{n}", n + 1
        return name

    def declare(self, name: str, c: Any, path: str, drop: tuple[str, ...] = ()) -> bool:
        if not isinstance(c, dict):
            self.problems.add(path, "a channel is an object {type, config}")
            return False
        c = {k: v for k, v in c.items() if k not in drop}
        kind = c.pop("type", c.pop("channel_type", None))
        if kind is None and _get(c, ("endpoint", "url"))[0] is not None:
            kind = "webhook"
        kind = _CHANNEL_KIND_ALIASES.get(kind, kind)
        if kind not in KINDS:
            self.problems.add(f"{path}.type", f"unknown channel type {kind!r}: use {', '.join(KINDS)}")
            return False
        config = c.pop("config", {})
        if not isinstance(config, dict):
            self.problems.add(f"{path}.config", "a channel config is an object")
            return False
        opts = {**config, **c}
        names = {**CHANNEL_KINDS[kind].seed_names(), **_COMMON_OPTIONS}
        args: list[ast.Arg] = []
        ok = True
        for k, v in opts.items():
            opt = names.get(k)
            opath = f"{path}.config.{k}" if k in config else f"{path}.{k}"
            if opt is None:
                self.problems.add(opath, f"unknown option {k!r} for a {kind} channel (known: {', '.join(sorted(names))})")
                ok = False
                continue
            value = self.option(name, kind, opt, v, opath)
            if value is None:
                ok = False
                continue
            args.append(ast.Arg(value, _n(opt)))
        for opt, spec in KINDS[kind].items():
            if spec.required and not any(a.name is not None and a.name.value == opt for a in args):
                self.problems.add(path, f"a {kind} channel needs `{opt}`")
                ok = False
        if not ok:
            return False
        self.decls[name] = ast.ChannelDecl(_n(name), _n(kind), tuple(args))
        return True

    def option(self, channel: str, kind: str, opt: str, v: Any, path: str) -> ast.Expr | None:
        """A seed option value → the option's value, by the option's type in the kind's entry."""
        spec = {**KINDS[kind], **COMMON}[opt]
        secret = spec.secret and not (kind == "webhook" and opt == "url")
        if spec.type == "map":
            if not isinstance(v, dict) or not all(isinstance(x, str) for x in v.values()):
                self.problems.add(path, f"`{opt}` is an object of strings")
                return None
            return ast.MapLit(tuple((_str(str(k)), self.secret(channel, f"header_{k}", x)) for k, x in v.items()))
        if spec.type == "int":
            if isinstance(v, bool) or not isinstance(v, int) or v < 0:
                self.problems.add(path, f"`{opt}` is a whole number ≥ 0, got {v!r}")
                return None
            return _int(v)
        if spec.type == "duration":
            try:
                us = parse_duration_us(v)
            except ValueError as e:
                self.problems.add(path, str(e))
                return None
            return ast.Literal(us, "duration", duration_text(us=us))
        if spec.type == "bool":
            if not isinstance(v, bool):
                self.problems.add(path, f"`{opt}` is true or false, got {v!r}")
                return None
            return ast.Literal(v, "bool", "true" if v else "false")
        if spec.type == "str|list" and isinstance(v, list):
            if not v or not all(isinstance(x, str) for x in v):
                self.problems.add(path, f"`{opt}` is a string or a non-empty list of strings")
                return None
            return ast.ListLit(tuple(_str(x) for x in v))
        if not isinstance(v, str):
            self.problems.add(path, f"`{opt}` is a string, got {type(v).__name__}")
            return None
        if spec.choices:
            if (v.upper() if spec.upper else v) not in spec.choices:
                self.problems.add(path, f"unknown {spec.what or opt} {v!r}: use {', '.join(spec.choices)}")
                return None
            v = v.upper() if spec.upper else v
        return self.secret(channel, opt, v) if secret else self._maybe_env(v)

    def secret(self, channel: str, opt: str, v: str) -> ast.Expr:
        """A secret never goes into the rule file: `env("CHANNEL_OPTION")` instead."""
        ref = self._maybe_env(v)
        if isinstance(ref, ast.Call):
            return ref
        var = _env_name(channel, opt)
        if var not in self.env_vars:
            self.env_vars.append(var)
        return _env(var)

    @staticmethod
    def _maybe_env(v: str) -> ast.Expr:
        m = _ENV_REF.fullmatch(v)
        if m:
            return _env(m.group(1) or m.group(2))
        return _str(v)


# --------------------------------------------------------------------------- the file


class _Importer:
    def __init__(self, source: str, stream: str):
        self.source = source
        self.stream = stream
        self.problems = _Problems()
        self.fields = _Fields(self.problems)
        self.channels = _Channels(self.problems)
        self.rule_ids: dict[str, str] = {}
        self.index = 0

    def rules(self, data: Any) -> list[tuple[Any, str]]:
        if isinstance(data, list):
            return [(r, f"$[{i}]") for i, r in enumerate(data)]
        if isinstance(data, dict) and "rules" in data:
            for k in data:
                if k not in ("rules", "channels"):
                    self.problems.add(f"$.{k}", f"unknown top-level key {k!r} (expected rules, channels)")
            if "channels" in data:
                self.channels.section(data["channels"], "$.channels")
            rules = data["rules"]
            if not isinstance(rules, list):
                self.problems.add("$.rules", "`rules` is a list")
                return []
            return [(r, f"$.rules[{i}]") for i, r in enumerate(rules)]
        if isinstance(data, dict):
            return [(data, "$")]
        self.problems.add("$", f"expected a rule object, a list of rules or {{\"rules\": [...]}}, got {type(data).__name__}")
        return []

    def run(self, data: Any) -> str:
        converted: list[tuple[str, ast.RuleDecl, list[str], str]] = []  # (id, rule, comments, path)
        for i, (rule, path) in enumerate(self.rules(data)):
            self.index = i
            got = _RuleConverter(self, rule, path).convert()
            if got is not None:
                converted.append((*got, path))
        if self.problems.items:
            raise ImportFailed(self.problems.items, self.source)
        text = self.render(converted)
        self.verify(text, converted)
        return text

    def render(self, converted: list[tuple[str, ast.RuleDecl, list[str], str]]) -> str:
        notes = [f"Imported from {self.source} by `cep import`."]
        if self.channels.env_vars:
            notes.append("Secrets were moved out of the rules: set " + ", ".join(self.channels.env_vars) + ".")
        if self.channels.placeholders:
            notes.append(
                "Channels with no configuration in the input are declared as console() placeholders: "
                + ", ".join(self.channels.placeholders)
                + "."
            )
        fields = [("ts", "timestamp"), *self.fields.declared()]
        stream = ast.StreamDecl(_n(self.stream), tuple(ast.FieldDecl(_path(n), _n(t)) for n, t in fields), time=_path("ts"))
        decls: list[tuple[list[str], ast.Decl]] = [(_comment_lines(notes), stream)]
        decls += [([], d) for d in self.channels.decls.values()]
        decls += [(comments, rule) for _, rule, comments, _ in converted]
        # Each declaration printed by the formatter, its comments above it; the whole file
        # once more through `format_source`, which places comments as `cep fmt` does.
        text = "\n\n".join("\n".join([*comments, _decl_text(d)]) for comments, d in decls) + "\n"
        return format_source(text, self.source)

    def verify(self, text: str, converted: list[tuple[str, ast.RuleDecl, list[str], str]]) -> None:
        """The result must check clean; a diagnostic is reported at the rule it is in."""
        from cepdsl.frontend import check_source, parse_source

        _, diags = check_source(text, self.source)
        if not diags:
            return
        tree, _ = parse_source(text, self.source)
        paths = {rid: path for rid, _, _, path in converted}
        spans: list[tuple[int, int, str]] = []
        for d in tree.decls if tree is not None else ():
            if hasattr(d, "clauses"):
                spans.append((d.span.line, d.span.end_line, paths.get(d.id.value, "$")))
        for diag in diags:
            where = next((p for lo, hi, p in spans if lo <= diag.span.line <= hi), "$")
            self.problems.add(where, f"the converted rule does not check: {diag.message}")
        raise ImportFailed(self.problems.items, self.source)


def import_rules(data: Any, source: str = "rules.json", stream: str = "events") -> str:
    """Seed JSON rules (a rule, a list of rules, or `{"rules": [...], "channels": ...}`)
    → the text of a formatted `.cep` file that checks clean.  Raises `ImportFailed`
    (with `.problems`, each an `ImportProblem` with `.path` and `.message`)."""
    # `events` (the default) is a contextual keyword (§9.1): written bare, like any name.
    if not stream or "`" in stream or "\n" in stream:
        raise ImportFailed([ImportProblem("$", f"stream name {stream!r} cannot be written as a .cep name")], source)
    return _Importer(source, stream).run(data)
