"""The channels: one class per kind, each turning a rendered notification into one delivery.

All HTTP channels share one pooled, SSRF-guarded client (`ssrf.guarded_client`); the
email channel runs blocking smtplib in a worker thread (aiosmtplib is not a
dependency). A `send` either returns a `Sent` (what went out, secrets masked)
or raises; the delivery loop classifies the exception for retry.
"""

from __future__ import annotations

import asyncio
import html
import json
import smtplib
import ssl
import sys
import threading
from dataclasses import dataclass, field, fields
from email.message import EmailMessage
from email.utils import formatdate, make_msgid
from typing import IO, Any
from urllib.parse import urlencode

from cepdsl.channels import CHANNEL_KINDS
from cepdsl.plan import RulePlan
from runtime.notify.config import ResolvedChannel
from runtime.notify.errors import ChannelConfigError, DeliveryError
from runtime.notify.records import episode_key, iso_utc, json_safe
from runtime.notify.retry import check_response
from runtime.notify.secrets import MASK, is_secret_option
from runtime.notify.ssrf import DEFAULT_POLICY, DestinationPolicy, guarded_socket
from runtime.notify.templates import FIELDS_INLINE, FIELDS_LINES, LINE, Rendered

USER_AGENT = "cep-notify/0.1"

SEVERITY_COLOURS = {  # Slack attachment colours, cool to hot
    "info": "#439FE0",
    "low": "#2EB67D",
    "medium": "#ECB22E",
    "high": "#E8912D",
    "critical": "#E01E5A",
}
RESOLVED_COLOUR = "#2eb886"
PAGERDUTY_SEVERITY = {"info": "info", "low": "warning", "medium": "warning", "high": "error", "critical": "critical"}
PAGERDUTY_MAX_BYTES = 512 * 1024
PAGERDUTY_SUMMARY_MAX = 1024
SMS_MAX_CHARS = 1600  # Twilio's limit for one message body
SLACK_TEXT_MAX = 3000  # Slack's limit for a section block's text


@dataclass(frozen=True)
class Notification:
    """One match, rendered for one channel kind."""

    id: str  # idempotency key: same match → same id
    rule: str
    title: str
    severity: str
    ts: Any
    subject: str
    text: str
    record: dict[str, Any] = field(repr=False)
    group: dict[str, Any] = field(default_factory=dict)
    #: §9.3: "firing" or "resolved" for rules with `for`/`resolve`, else None
    state: str | None = None
    #: the alert episode's key (rule, group key, firing_since): shared by its firing and resolved records
    episode: str | None = None

    @property
    def resolved(self) -> bool:
        return self.state == "resolved"

    #: Why the rule's message template failed (then `text` is the default message with the reason).
    template_error: str | None = None

    @classmethod
    def for_record(cls, rule: RulePlan, notification_id: str, record: dict[str, Any], rendered: Rendered) -> Notification:
        """A match record of `rule` with its rendered message: what the notifier sends, and
        what `cep notify test` sends once."""
        return cls(
            id=notification_id,
            rule=rule.id,
            title=rule.title or rule.id,
            severity=str(record.get("severity") or rule.severity),
            ts=record.get("ts"),
            subject=rendered.subject,
            text=rendered.text,
            record=record,
            group={k: record.get(k) for k in rule.group_keys},
            template_error=rendered.template_error,
            state=record.get("state"),
            episode=episode_key(rule, record),
        )


@dataclass
class Sent:
    """What a channel sent (secrets masked), as `notify_test` returns it."""

    channel: str
    kind: str
    target: str
    request: dict[str, Any]
    status: int | None = None
    response: str | None = None

    def as_dict(self) -> dict[str, Any]:
        return {f.name: getattr(self, f.name) for f in fields(self)}


@dataclass
class SendContext:
    client: Any  # http11.GuardedHttpClient (ssrf.guarded_client); None until started
    policy: DestinationPolicy = DEFAULT_POLICY
    ssl_context: ssl.SSLContext | None = None
    console: IO[str] | None = None
    # Whether `send` reports the full request (headers, body; secrets masked) in its `Sent`:
    # `notify_test` shows it; the notifier discards it, so it does not pay for the redaction.
    detail: bool = True


_ENCODER = json.JSONEncoder(separators=(",", ":"), ensure_ascii=False, allow_nan=False)  # built once


def _dumps(payload: Any) -> bytes:
    return _ENCODER.encode(payload).encode()


class Channel:
    """A channel kind's sender; `register_sender` attaches it (and its default template) to
    the kind's entry in `cepdsl.channels.CHANNEL_KINDS`."""

    kind = "?"
    #: the message when a rule has none (Jinja2 over the record, `title`, `rule`, `key_fields`)
    default_template = ""

    def __init__(self, config: ResolvedChannel, ctx: SendContext) -> None:
        self.config = config
        self.ctx = ctx
        self.validate()

    @property
    def name(self) -> str:
        return self.config.name

    def validate(self) -> None:
        """Kind-specific option checks, at start."""

    async def send(self, n: Notification) -> Sent:
        raise NotImplementedError

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self.config.name!r}, {dict(self.config.shown)!r})"

    # -- HTTP helper shared by webhook, slack, sms, pagerduty

    def _shown_headers(self, headers: dict[str, str]) -> dict[str, str]:
        return {
            k: (MASK if is_secret_option(k) or k.lower() == "authorization" else self.config.redact(v)) for k, v in headers.items()
        }

    async def _http(
        self,
        method: str,
        url: str,
        *,
        body: bytes,
        content_type: str,
        headers: dict[str, str] | None = None,
        auth: tuple[str, str] | None = None,
    ) -> Sent:
        if self.ctx.client is None:
            raise DeliveryError("no HTTP client (notifier not started)", retryable=True)
        all_headers = {"User-Agent": USER_AGENT, "Content-Type": content_type, **(headers or {})}
        # No per-request timeout here: the channel's `timeout` bounds the whole attempt (an SMS to
        # several recipients included) where `send` is awaited — the notifier and notify_test.
        response = await self.ctx.client.request(method, url, content=body, headers=all_headers, auth=auth)
        check_response(response, self.config.redactor)
        if not self.ctx.detail:
            return Sent(self.name, self.kind, MASK, {"method": method}, response.status_code)
        redact = self.config.redact
        return Sent(
            self.name,
            self.kind,
            redact(url),
            {"method": method, "headers": self._shown_headers(all_headers), "body": redact(body.decode())},
            response.status_code,
            self.config.redactor.shorten(response.text, 500),
        )


class ConsoleChannel(Channel):
    kind = "console"
    default_template = LINE + " rule={{ rule }} ts={{ ts }} " + FIELDS_INLINE

    async def send(self, n: Notification) -> Sent:
        line = f"{n.subject}: {n.text}" if n.text else n.subject
        stream = self.ctx.console or sys.stdout
        stream.write(line + "\n")
        stream.flush()
        return Sent(self.name, self.kind, "stdout", {"body": line})


def _alert_json(n: Notification, **after_id: Any) -> dict[str, Any]:
    """The alert as the file and webhook channels write it (JSON-safe values); `after_id`
    goes right after the id (the webhook's `idempotency_key`)."""
    return {
        "id": n.id,
        **after_id,
        "rule": n.rule,
        "title": n.title,
        "severity": n.severity,
        "ts": json_safe(n.ts),
        "subject": n.subject,
        "message": n.text,
        "record": json_safe(n.record),
    }


_file_locks: dict[str, threading.Lock] = {}


class FileChannel(Channel):
    """JSON lines, one per notification, appended."""

    kind = "file"
    default_template = LINE + " (" + FIELDS_INLINE + ")"

    async def send(self, n: Notification) -> Sent:
        path = str(self.config.get("path"))
        entry = _alert_json(n)
        if n.template_error:  # the message is the default one: say why, on the alert itself
            entry["template_error"] = n.template_error
        line = json.dumps(entry, ensure_ascii=False, allow_nan=False)
        lock = _file_locks.setdefault(path, threading.Lock())
        with lock, open(path, "a", encoding="utf-8") as fh:  # small local append: not worth a thread hop
            fh.write(line + "\n")
        return Sent(self.name, self.kind, path, {"body": line})


class WebhookChannel(Channel):
    kind = "webhook"
    default_template = LINE + ": " + FIELDS_INLINE
    METHODS = ("POST", "PUT", "PATCH", "GET", "DELETE")  # as the checker accepts; the JSON body goes with any

    def validate(self) -> None:
        method = str(self.config.get("method", "POST")).upper()
        if method not in self.METHODS:
            raise ChannelConfigError(self.name, "method", f"must be one of {', '.join(self.METHODS)}")
        headers = self.config.get("headers") or {}
        if not isinstance(headers, dict):
            raise ChannelConfigError(self.name, "headers", "must be a dict of header names to values")

    async def send(self, n: Notification) -> Sent:
        payload = _alert_json(n, idempotency_key=n.id)
        if n.state is not None:  # Alertmanager's webhook says `status: firing | resolved`, so do we
            payload.update(
                status=n.state,
                episode_key=n.episode,
                firing_since=json_safe(n.record.get("firing_since")),
                resolved_at=json_safe(n.record.get("resolved_at")),
            )
        if n.template_error:
            payload["template_error"] = n.template_error
        headers = {str(k): str(v) for k, v in (self.config.get("headers") or {}).items()}
        headers["Idempotency-Key"] = n.id
        return await self._http(
            str(self.config.get("method", "POST")).upper(),
            str(self.config.get("url")),
            body=_dumps(payload),
            content_type="application/json",
            headers=headers,
        )


def _slack_escape(text: str) -> str:
    # Record values come from events: without escaping, "<!channel>" in a host name pings everyone.
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


class SlackChannel(Channel):
    """Incoming-webhook payload: header + section + context blocks, and a severity-coloured attachment."""

    kind = "slack"
    default_template = "{% for k, v in key_fields %}*{{ k }}*: {{ v }}\n{% endfor %}"

    def payload(self, n: Notification) -> dict[str, Any]:
        fields = [{"title": k, "value": _slack_escape(str(json_safe(v))), "short": True} for k, v in n.group.items()]
        when = iso_utc(n.ts) if hasattr(n.ts, "isoformat") and hasattr(n.ts, "hour") else str(n.ts)
        body: dict[str, Any] = {
            "text": _slack_escape(f"{n.subject}: {n.text}")[:SLACK_TEXT_MAX],
            "blocks": [
                {"type": "header", "text": {"type": "plain_text", "text": n.subject[:150]}},
                {"type": "section", "text": {"type": "mrkdwn", "text": _slack_escape(n.text or n.subject)[:SLACK_TEXT_MAX]}},
                {
                    "type": "context",
                    "elements": [{"type": "mrkdwn", "text": _slack_escape(f"rule `{n.rule}` · severity *{n.severity}* · {when}")}],
                },
            ],
            "attachments": [
                {
                    # Resolved alerts are green, as Alertmanager's Slack notifications show them.
                    "color": RESOLVED_COLOUR if n.resolved else SEVERITY_COLOURS.get(n.severity, SEVERITY_COLOURS["medium"]),
                    "fallback": _slack_escape(n.subject),
                    "fields": fields,
                    "footer": f"cep · {n.id}",
                }
            ],
        }
        channel = self.config.get("channel")
        if channel:
            body["channel"] = str(channel)
        return body

    async def send(self, n: Notification) -> Sent:
        return await self._http(
            "POST", str(self.config.get("webhook_url")), body=_dumps(self.payload(n)), content_type="application/json"
        )


class SmsChannel(Channel):
    """Twilio Messages API: one form POST per recipient, basic auth with the account SID and token."""

    kind = "sms"
    default_template = LINE + " " + FIELDS_INLINE + " @ {{ ts }}"
    DEFAULT_BASE = "https://api.twilio.com"

    def _recipients(self) -> list[str]:
        to = self.config.get("to")
        return [str(t) for t in to] if isinstance(to, (list, tuple)) else [str(to)]

    async def send(self, n: Notification) -> Sent:
        sid = str(self.config.get("account_sid"))
        base = str(self.config.get("api_base") or self.DEFAULT_BASE).rstrip("/")
        url = f"{base}/2010-04-01/Accounts/{sid}/Messages.json"
        text = f"{n.subject} {n.text}".strip() if n.text and not n.text.startswith(n.subject) else n.text or n.subject
        body_text = text[:SMS_MAX_CHARS]
        sent: Sent | None = None
        for to in self._recipients():
            form = urlencode({"To": to, "From": str(self.config.get("from_number")), "Body": body_text})
            sent = await self._http(
                "POST",
                url,
                body=form.encode(),
                content_type="application/x-www-form-urlencoded",
                auth=(sid, str(self.config.get("auth_token"))),
            )
        assert sent is not None
        return sent


class PagerDutyChannel(Channel):
    """Events API v2 trigger with `dedup_key` = our idempotency key, so PagerDuty itself dedupes."""

    kind = "pagerduty"
    default_template = "{{ title }}: " + FIELDS_INLINE
    DEFAULT_BASE = "https://events.pagerduty.com"

    def validate(self) -> None:
        sev = self.config.get("severity")
        if sev is not None and sev not in PAGERDUTY_SEVERITY.values() and sev not in PAGERDUTY_SEVERITY:
            raise ChannelConfigError(self.name, "severity", "must be a cep severity or critical/error/warning/info")

    def payload(self, n: Notification) -> dict[str, Any]:
        if n.episode is not None and n.resolved:
            # Events API v2: a resolve needs only the dedup_key of the incident it closes.
            return {
                "routing_key": str(self.config.get("routing_key")),
                "event_action": "resolve",
                "dedup_key": n.episode,
                "client": "cep",
            }
        sev = self.config.get("severity") or n.severity
        sev = PAGERDUTY_SEVERITY.get(sev, sev)
        source = ", ".join(f"{k}={json_safe(v)}" for k, v in n.group.items()) or f"cep:{n.rule}"
        summary = f"{n.subject}: {n.text}" if n.text else n.subject
        body: dict[str, Any] = {
            "routing_key": str(self.config.get("routing_key")),
            "event_action": "trigger",
            # An episode's trigger and resolve share the key (§9.3); other matches dedupe per match.
            "dedup_key": n.episode or n.id,
            "client": "cep",
            "payload": {
                "summary": summary[:PAGERDUTY_SUMMARY_MAX],
                "source": source[:255],
                "severity": sev,
                "timestamp": json_safe(n.ts) if n.ts is not None else None,
                "component": n.rule,
                "custom_details": json_safe(n.record),
            },
        }
        if len(_dumps(body)) > PAGERDUTY_MAX_BYTES:
            # PagerDuty rejects events over 512 KB; the details are what can give.
            details = json.dumps(body["payload"]["custom_details"], ensure_ascii=False)
            room = PAGERDUTY_MAX_BYTES - len(_dumps({**body, "payload": {**body["payload"], "custom_details": {}}})) - 200
            body["payload"]["custom_details"] = {"truncated": True, "record_json": details[: max(room // 4, 0)]}
        return body

    async def send(self, n: Notification) -> Sent:
        base = str(self.config.get("api_base") or self.DEFAULT_BASE).rstrip("/")
        return await self._http("POST", f"{base}/v2/enqueue", body=_dumps(self.payload(n)), content_type="application/json")


class _GuardedSMTP(smtplib.SMTP):
    """smtplib that connects only to addresses the SSRF policy allows (and does implicit TLS on 465)."""

    def __init__(self, policy: DestinationPolicy, tls: ssl.SSLContext | None, timeout: float) -> None:
        self._policy = policy
        self._implicit_tls = tls
        super().__init__(timeout=timeout)

    def _get_socket(self, host: str, port: int, timeout: float) -> Any:
        sock = guarded_socket(self._policy, host, port, timeout)
        if self._implicit_tls is not None:
            sock = self._implicit_tls.wrap_socket(sock, server_hostname=host)
        return sock


class EmailChannel(Channel):
    kind = "email"
    default_template = "{{ title }}\n\nRule: {{ rule }}\nSeverity: {{ severity }}\nTime: {{ ts }} UTC\n\n" + FIELDS_LINES

    def validate(self) -> None:
        port = self.config.get("smtp_port", 25)
        if not isinstance(port, int) or not 0 < port < 65536:
            raise ChannelConfigError(self.name, "smtp_port", "must be a port number")

    def recipients(self) -> list[str]:
        to = self.config.get("to")
        return [str(t) for t in to] if isinstance(to, (list, tuple)) else [t.strip() for t in str(to).split(",")]

    def message(self, n: Notification) -> EmailMessage:
        msg = EmailMessage()
        msg["Subject"] = n.subject
        msg["From"] = str(self.config.get("sender"))
        msg["To"] = ", ".join(self.recipients())
        msg["Date"] = formatdate(usegmt=True)
        if n.episode is not None and not n.resolved:
            msg["Message-ID"] = f"<{n.episode}@cep.local>"  # the resolved mail answers it: one thread
        else:
            msg["Message-ID"] = make_msgid(idstring=n.id, domain="cep.local")
        if n.episode is not None and n.resolved:
            msg["In-Reply-To"] = f"<{n.episode}@cep.local>"
            msg["References"] = f"<{n.episode}@cep.local>"
        if n.state is not None:
            msg["X-CEP-State"] = n.state
        msg["X-CEP-Idempotency-Key"] = n.id
        msg["X-CEP-Rule"] = n.rule
        msg["X-CEP-Severity"] = n.severity
        msg.set_content(n.text or n.subject)
        rows = "".join(
            f"<tr><th align='left'>{html.escape(str(k))}</th><td>{html.escape(str(json_safe(v)))}</td></tr>"
            for k, v in n.record.items()
        )
        colour = RESOLVED_COLOUR if n.resolved else SEVERITY_COLOURS.get(n.severity, SEVERITY_COLOURS["medium"])
        msg.add_alternative(
            f"<html><body><h2 style='border-left:6px solid {colour};padding-left:8px'>{html.escape(n.subject)}</h2>"
            f"<pre>{html.escape(n.text)}</pre><table>{rows}</table>"
            f"<p style='color:#888'>rule {html.escape(n.rule)} · {html.escape(n.id)}</p></body></html>",
            subtype="html",
        )
        return msg

    def _send_blocking(self, msg: EmailMessage) -> str:
        c = self.config
        host, port = str(c.get("smtp_host")), int(c.get("smtp_port", 25))
        tls = self.ctx.ssl_context or ssl.create_default_context()
        starttls = bool(c.get("starttls", port == 587))
        smtp = _GuardedSMTP(self.ctx.policy, tls if port == 465 else None, c.timeout_s)
        smtp._host = host  # smtplib takes the TLS server name from here, and only sets it in __init__
        try:
            smtp.connect(host, port)
            smtp.ehlo()
            if starttls and port != 465:
                smtp.starttls(context=tls)
                smtp.ehlo()
            if c.get("username"):
                smtp.login(str(c.get("username")), str(c.get("password") or ""))
            refused = smtp.send_message(msg)
            if refused:
                raise DeliveryError(f"SMTP refused recipients: {', '.join(refused)}", retryable=False)
            return f"{host}:{port}"
        finally:
            try:
                smtp.quit()
            except (smtplib.SMTPException, OSError):
                smtp.close()

    async def send(self, n: Notification) -> Sent:
        msg = self.message(n)
        target = await asyncio.to_thread(self._send_blocking, msg)
        return Sent(
            self.name,
            self.kind,
            f"smtp://{target}",
            {
                "from": msg["From"],
                "to": self.recipients(),
                "subject": msg["Subject"],
                "body": self.config.redact(n.text),
                "message_id": msg["Message-ID"],
            },
            250,
        )


def register_sender(cls: type[Channel]) -> type[Channel]:
    """Attach a sender class (and its `default_template`) to its kind's registry entry: the
    runtime half of a channel kind (the language half is in cepdsl/channels.py)."""
    CHANNEL_KINDS.set_part("sender", cls.kind, cls)
    CHANNEL_KINDS.set_part("template", cls.kind, cls.default_template)
    return cls


for _cls in (ConsoleChannel, FileChannel, WebhookChannel, SlackChannel, SmsChannel, PagerDutyChannel, EmailChannel):
    register_sender(_cls)


def build_channel(config: ResolvedChannel, ctx: SendContext) -> Channel:
    return CHANNEL_KINDS.part("sender", config.kind)(config, ctx)
