"""Rendering a match record into the text a person reads.

A rule's `message` template wins; without one, the channel kind's named default
template is used (title, severity, key fields, rule id, time). A template that
fails at run time (the checker already rejects unknown names, so this is a loop
that runs away or a type error) does not lose the alert: the default template
is sent instead, with a line saying why, and the error is counted.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass
from typing import Any

from cepdsl.channels import CHANNEL_KINDS
from cepdsl.plan import HEAD, RulePlan
from cepdsl.templates import DEFAULT_MAX_CHARS, DEFAULT_MAX_SECONDS, TemplateError, render

# Pieces the channel kinds' default templates are built from (each kind's template is its
# sender's `default_template`, registered with it in runtime/notify/channels.py).
LINE = "[{{ severity|upper }}] {{ title }}"
FIELDS_INLINE = "{% for k, v in key_fields %}{{ k }}={{ v }}{% if not loop.last %}, {% endif %}{% endfor %}"
FIELDS_LINES = "{% for k, v in key_fields %}{{ k }}: {{ v }}\n{% endfor %}"


class _DefaultTemplates(Mapping[str, str]):
    """`KIND.default` → that kind's default template, read from the channel-kind registry."""

    def __getitem__(self, name: str) -> str:
        kind, dot, rest = name.rpartition(".")
        if not dot or rest != "default" or not CHANNEL_KINDS.has_part("template", kind):
            raise KeyError(name)
        return CHANNEL_KINDS.part("template", kind)

    def __iter__(self) -> Iterator[str]:
        return iter([default_template_name(k) for k in CHANNEL_KINDS.names() if CHANNEL_KINDS.has_part("template", k)])

    def __len__(self) -> int:
        return len(list(iter(self)))


DEFAULT_TEMPLATES: Mapping[str, str] = _DefaultTemplates()

# Key fields shown by default templates: group keys first, then what the rule computed.
_MAX_KEY_FIELDS = 8
_HEAD = {f.name for f in HEAD}


def default_template_name(kind: str) -> str:
    return f"{kind}.default"


def key_fields(rule: RulePlan) -> list[str]:
    cols = [*rule.group_keys]
    cols += [f.name for f in rule.output if f.name not in _HEAD and f.name not in cols]
    return cols[:_MAX_KEY_FIELDS]


def record_context(rule: RulePlan, record: dict[str, Any], message: str | None = None) -> dict[str, Any]:
    """Template variables: the record's columns plus `title` and `rule` (LANGUAGE.md §7),
    and the original design's aliases (§9.5): `alert_title` = `title`, `alert_message` =
    the rendered message (given as `message`, e.g. to a resolved record's template)."""
    ctx = dict(record)
    ctx["title"] = rule.title or rule.id
    ctx["alert_title"] = ctx["title"]
    if message is not None:
        ctx["alert_message"] = message
    ctx["rule"] = rule.id
    ctx.setdefault("severity", rule.severity)
    ctx.setdefault("ts", None)
    return ctx


RESOLVED_PREFIX = "[RESOLVED] "


def _resolved(record: dict[str, Any]) -> bool:
    return record.get("state") == "resolved"


def subject_line(rule: RulePlan, record: dict[str, Any]) -> str:
    severity = str(record.get("severity") or rule.severity)
    subject = f"[{severity.upper()}] {rule.title or rule.id}"
    return RESOLVED_PREFIX + subject if _resolved(record) else subject


@dataclass(frozen=True)
class Rendered:
    subject: str
    text: str
    template_error: str | None = None


_MAX_FIELD_CHARS = 200  # one huge field value must not crowd out (or break) the default message


def _short(value: Any) -> Any:
    if isinstance(value, str) and len(value) > _MAX_FIELD_CHARS:
        return value[: _MAX_FIELD_CHARS - 1] + "…"
    return value


def render_default(rule: RulePlan, kind: str, record: dict[str, Any], **limits: Any) -> str:
    """The kind's default message; never fails (the subject line is the last resort)."""
    ctx = {k: _short(v) for k, v in record_context(rule, record).items()}
    ctx["key_fields"] = [(c, _short(record.get(c))) for c in key_fields(rule) if c in record]
    try:
        return render(DEFAULT_TEMPLATES[default_template_name(kind)], ctx, **limits).rstrip("\n")
    except TemplateError:
        return subject_line(rule, record)


def render_message(
    rule: RulePlan,
    kind: str,
    record: dict[str, Any],
    *,
    max_chars: int = DEFAULT_MAX_CHARS,
    max_seconds: float = DEFAULT_MAX_SECONDS,
    renderer: Callable[..., str] | None = None,
) -> Rendered:
    """The rule's message (through `renderer`: the notifier's worker pool, which stops a runaway
    template; `render` in-process otherwise), or the default one with why the message failed."""
    subject = subject_line(rule, record)
    limits = {"max_chars": max_chars, "max_seconds": max_seconds}
    # §9.3: a resolved record is rendered with the `resolve` clause's template, or else with
    # the firing message (the rule's `message`, or the default) prefixed `[RESOLVED] `.
    resolved = _resolved(record)
    own = rule.resolve.message if resolved and rule.resolve is not None and rule.resolve.message is not None else None
    prefix = RESOLVED_PREFIX if resolved and own is None else ""
    template = own if own is not None else rule.message
    if template is None:
        return Rendered(subject, prefix + render_default(rule, kind, record, **limits))
    try:
        return Rendered(subject, prefix + (renderer or render)(template, record_context(rule, record), **limits))
    except TemplateError as exc:
        text = render_default(rule, kind, record, **limits)
        return Rendered(subject, f"{prefix}{text}\n(message template failed: {exc})", str(exc))
