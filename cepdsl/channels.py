"""What each channel kind accepts (LANGUAGE.md §3.2), as data the checker reads."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class Option:
    type: str  # str int bool duration list[str] map str|list
    required: bool = False
    secret: bool = False  # never printed by `explain`, logs or errors


COMMON = {
    "retries": Option("int"),
    "timeout": Option("duration"),
}

KINDS: dict[str, dict[str, Option]] = {
    "console": {},
    "file": {"path": Option("str", required=True)},
    "webhook": {
        "url": Option("str", required=True, secret=True),
        "method": Option("str"),
        "headers": Option("map", secret=True),
    },
    "slack": {
        "webhook_url": Option("str", required=True, secret=True),
        "channel": Option("str"),
    },
    "email": {
        "smtp_host": Option("str", required=True),
        "smtp_port": Option("int"),
        "sender": Option("str", required=True),
        "to": Option("str|list", required=True),
        "starttls": Option("bool"),
        "username": Option("str"),
        "password": Option("str", secret=True),
    },
    "sms": {
        "account_sid": Option("str", required=True),
        "auth_token": Option("str", required=True, secret=True),
        "from_number": Option("str", required=True),
        "to": Option("str|list", required=True),
        # Where the Twilio API lives; tests point it at a local stand-in.
        "api_base": Option("str"),
    },
    "pagerduty": {
        "routing_key": Option("str", required=True, secret=True),
        "severity": Option("str"),
        "api_base": Option("str"),
    },
}

HTTP_METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
PAGERDUTY_SEVERITIES = ("critical", "error", "warning", "info")


def options_for(kind: str) -> dict[str, Option]:
    return {**KINDS[kind], **COMMON}
