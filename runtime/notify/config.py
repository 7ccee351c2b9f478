"""Channel plans → resolved channel settings, checked once at start.

`env("NAME")` is resolved here, from the environment given (os.environ by
default), so a missing variable stops the engine at start with a message that
names channel, option and variable, instead of failing on the first alert at
3 a.m. The resolved values live only in memory; `repr` and `describe()` mask them.
"""

from __future__ import annotations

import os
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from cepdsl.channels import CHANNEL_KINDS, required_options
from cepdsl.channels import KINDS as OPTION_SPECS
from cepdsl.plan import ChannelPlan, EnvVar, Program
from runtime.notify.errors import ChannelConfigError, DestinationRefused
from runtime.notify.secrets import MASK, Redactor, is_secret_option
from runtime.notify.ssrf import DestinationPolicy

# Options whose value is a URL we will connect to (checked against the SSRF policy at start).
URL_OPTIONS = ("url", "webhook_url", "api_base")

_COMMON = ("retries", "timeout")


@dataclass(frozen=True)
class ResolvedChannel:
    """A channel ready to use: options resolved, secrets known (for redaction), never printed."""

    name: str
    kind: str
    options: Mapping[str, Any] = field(repr=False)
    retries: int = 3
    timeout_s: float = 10.0
    redactor: Redactor = field(default_factory=Redactor, repr=False, compare=False)
    shown: Mapping[str, Any] = field(default_factory=dict)  # options as safe to display

    def get(self, name: str, default: Any = None) -> Any:
        return self.options.get(name, default)

    def redact(self, text: object) -> str:
        return self.redactor.redact(text)

    def describe(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "kind": self.kind,
            "retries": self.retries,
            "timeout_s": self.timeout_s,
            "options": dict(self.shown),
        }


def _secret(kind: str, option: str) -> bool:
    spec = OPTION_SPECS.get(kind, {}).get(option)
    return is_secret_option(option) or (spec is not None and spec.secret)


def _resolve_value(channel: str, option: str, value: Any, env: Mapping[str, str], secrets: list[str]) -> tuple[Any, Any]:
    """(resolved value, display value); collects secret strings on the way."""
    if isinstance(value, EnvVar):
        if value.name not in env:
            raise ChannelConfigError(channel, option, f"environment variable {value.name!r} is not set", variable=value.name)
        resolved = env[value.name]
        secrets.append(resolved)
        return resolved, f"env({value.name})"
    if isinstance(value, dict):
        pairs = {k: _resolve_value(channel, f"{option}.{k}", v, env, secrets) for k, v in value.items()}
        shown = {}
        for k, (r, s) in pairs.items():
            if is_secret_option(k) and isinstance(r, str) and not isinstance(value[k], EnvVar):
                secrets.append(r)
                s = MASK
            shown[k] = s
        return {k: r for k, (r, _) in pairs.items()}, shown
    if isinstance(value, (list, tuple)):
        pairs_l = [_resolve_value(channel, option, v, env, secrets) for v in value]
        return [r for r, _ in pairs_l], [s for _, s in pairs_l]
    return value, value


def resolve_channel(
    plan: ChannelPlan, env: Mapping[str, str] | None = None, policy: DestinationPolicy | None = None
) -> ResolvedChannel:
    env = os.environ if env is None else env
    if plan.kind not in CHANNEL_KINDS:
        raise ChannelConfigError(plan.name, None, f"unknown channel kind {plan.kind!r}")
    secrets: list[str] = []
    options: dict[str, Any] = {}
    shown: dict[str, Any] = {}
    for name, value in plan.options:
        resolved, display = _resolve_value(plan.name, name, value, env, secrets)
        if _secret(plan.kind, name) and not isinstance(value, EnvVar):
            # A secret map (webhook headers): every value is secret, names stay visible.
            if isinstance(resolved, dict):
                secrets.extend(str(v) for v in resolved.values())
                display = {k: MASK for k in resolved}
            elif isinstance(resolved, str):
                secrets.append(resolved)
                display = MASK
        options[name] = resolved
        shown[name] = display
    for req in required_options(plan.kind):
        if options.get(req) in (None, ""):
            raise ChannelConfigError(plan.name, req, "required option is missing")
    redactor = Redactor(secrets)
    if policy is not None:
        for opt in URL_OPTIONS:
            url = options.get(opt)
            if url is None:
                continue
            try:
                policy.check_url(str(url))
            except DestinationRefused as exc:
                raise ChannelConfigError(plan.name, opt, redactor.redact(exc)) from None
    # The plan's own fields are authoritative (the compiler normalises `timeout` to seconds there);
    # copies left in the options must not be read as a second, differently-typed source.
    for c in _COMMON:
        options.pop(c, None)
    retries, timeout_s = int(plan.retries), float(plan.timeout_s)
    if retries < 0:
        raise ChannelConfigError(plan.name, "retries", "must not be negative")
    if timeout_s <= 0:
        raise ChannelConfigError(plan.name, "timeout", "must be positive")
    for c in _COMMON:
        shown.pop(c, None)
    return ResolvedChannel(plan.name, plan.kind, options, retries, timeout_s, redactor, shown)


def resolve_channels(
    channels: Program | Iterable[ChannelPlan],
    env: Mapping[str, str] | None = None,
    policy: DestinationPolicy | None = None,
) -> dict[str, ResolvedChannel]:
    """Every channel of a program resolved; raises `ChannelConfigError` on the first bad one.

    With `policy`, URLs written literally are checked now (IP literals, scheme);
    names are checked again at connect time.
    """
    plans = channels.channels if isinstance(channels, Program) else tuple(channels)
    return {p.name: resolve_channel(p, env, policy) for p in plans}
