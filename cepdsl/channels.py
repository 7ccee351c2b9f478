"""Channel kinds (LANGUAGE.md §3.2): the language's half of each, as data the checker,
`explain`, `cep import` and the editor read.

An entry names the kind's options (types, which are required, which are secret, the
values some accept) and the names the seed's JSON gives them.  The runtime half —
the sender and the default message template — registers against the same entry from
runtime/notify/channels.py (parts "sender" and "template"); tests/test_registries.py
checks both halves cover the same kinds.  docs/extending.md adds a kind end to end.
"""

from __future__ import annotations

from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field

from cepdsl.registry import Registry


@dataclass(frozen=True)
class Option:
    type: str  # str int bool duration list[str] map str|list
    required: bool = False
    secret: bool = False  # never printed by `explain`, logs or errors
    #: the values a string option accepts (empty: any)
    choices: tuple[str, ...] = ()
    #: how messages name a value of it ("HTTP method"), with `choices`
    what: str = ""
    #: compare with `choices` in upper case (HTTP methods)
    upper: bool = False


@dataclass(frozen=True)
class ChannelKind:
    name: str
    options: dict[str, Option]
    doc: str = ""
    #: seed JSON option name → option (`cep import`); None: each option by its own name
    import_options: dict[str, str] | None = field(default=None)

    def seed_names(self) -> dict[str, str]:
        return dict(self.import_options) if self.import_options is not None else {o: o for o in self.options}


COMMON = {
    "retries": Option("int"),
    "timeout": Option("duration"),
}

HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
PAGERDUTY_SEVERITIES = ("critical", "error", "warning", "info")

#: Parts the runtime attaches: the class that sends (runtime/notify/channels.py) and the
#: default message template (a Jinja2 text over the match record and `key_fields`).
CHANNEL_KINDS: Registry[ChannelKind] = Registry("channel kind", parts=("sender", "template"))

for _k in (
    ChannelKind("console", {}, "`SUBJECT: TEXT` on stdout", import_options={}),
    ChannelKind("file", {"path": Option("str", required=True)}, "one JSON line per alert",
                import_options={"path": "path"}),
    ChannelKind("webhook", {
        "url": Option("str", required=True, secret=True),
        "method": Option("str", choices=HTTP_METHODS, what="HTTP method", upper=True),
        "headers": Option("map", secret=True),
    }, "JSON POST", import_options={"url": "url", "endpoint": "url", "method": "method", "headers": "headers"}),
    ChannelKind("slack", {
        "webhook_url": Option("str", required=True, secret=True),
        "channel": Option("str"),
    }, "Slack incoming webhook", import_options={"webhook_url": "webhook_url", "url": "webhook_url", "channel": "channel"}),
    ChannelKind("email", {
        "smtp_host": Option("str", required=True),
        "smtp_port": Option("int"),
        "sender": Option("str", required=True),
        "to": Option("str|list", required=True),
        "starttls": Option("bool"),
        "username": Option("str"),
        "password": Option("str", secret=True),
    }, "SMTP mail", import_options={
        "smtp_host": "smtp_host", "host": "smtp_host", "smtp_port": "smtp_port", "port": "smtp_port",
        "from": "sender", "sender": "sender", "from_email": "sender", "to": "to", "recipients": "to",
        "starttls": "starttls", "use_tls": "starttls", "username": "username", "password": "password"}),
    ChannelKind("sms", {
        "account_sid": Option("str", required=True),
        "auth_token": Option("str", required=True, secret=True),
        "from_number": Option("str", required=True),
        "to": Option("str|list", required=True),
        # Where the Twilio API lives; tests point it at a local stand-in.
        "api_base": Option("str"),
    }, "Twilio SMS", import_options={
        "account_sid": "account_sid", "auth_token": "auth_token", "from_number": "from_number",
        "from": "from_number", "phone": "to", "to": "to", "to_number": "to"}),
    ChannelKind("pagerduty", {
        "routing_key": Option("str", required=True, secret=True),
        "severity": Option("str", choices=PAGERDUTY_SEVERITIES, what="PagerDuty severity"),
        "api_base": Option("str"),
    }, "PagerDuty Events API v2", import_options={
        "routing_key": "routing_key", "integration_key": "routing_key", "severity": "severity"}),
):  # fmt: skip
    CHANNEL_KINDS.add(_k)


class _Options(Mapping[str, dict[str, Option]]):
    """kind → its options, read live from CHANNEL_KINDS (a kind registered later shows too)."""

    def __getitem__(self, kind: str) -> dict[str, Option]:
        entry = CHANNEL_KINDS.get(kind)
        if entry is None:
            raise KeyError(kind)
        return entry.options

    def __iter__(self) -> Iterator[str]:
        return iter(CHANNEL_KINDS.names())

    def __len__(self) -> int:
        return len(CHANNEL_KINDS)


KINDS: Mapping[str, dict[str, Option]] = _Options()


def options_for(kind: str) -> dict[str, Option]:
    return {**KINDS[kind], **COMMON}


def required_options(kind: str) -> tuple[str, ...]:
    return tuple(o for o, spec in KINDS[kind].items() if spec.required)
