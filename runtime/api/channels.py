"""/cep/channels: channel kinds with their options, channels (file ones read-only), and a test send.

Channels created over HTTP are `.cep` declarations in the catalogue, versioned like
rules.  A secret option must be a reference to an environment variable
(`env("NAME")`, or `{"env": "NAME"}` in the options form): a literal secret is
refused, so none is ever stored or echoed back.
"""

from __future__ import annotations

import json
from typing import Annotated, Any

from fastapi import Path

from cepdsl.channels import KINDS, options_for
from cepdsl.plan import ChannelPlan, EnvVar
from runtime.api.deps import Ops, topic_router
from runtime.api.models import (
    ID_PATTERN,
    ChannelIn,
    ChannelOption,
    ChannelOut,
    ChannelTestIn,
    ChannelTestOut,
    ChannelToggleOut,
    ChannelType,
    ToggleIn,
)
from runtime.control import ControlPlane, Refused

router = topic_router("channels")
Name = Annotated[str, Path(pattern=ID_PATTERN)]


@router.get("/cep/channels/types", summary="Each kind with its options")
def channel_types() -> list[ChannelType]:
    return [
        ChannelType(
            kind=k,
            options=[ChannelOption(name=n, required=o.required, secret=o.secret, type=o.type) for n, o in options_for(k).items()],
        )
        for k in KINDS
    ]


def shown_text(c: ChannelPlan) -> str:
    """The declaration with secrets masked (a file may hold a literal one)."""
    from cepdsl.explain import channel_text

    return f"channel {c.name} = {channel_text(c)}\n"


@router.get("/cep/channels", summary="Every channel: from the files and the catalogue")
def list_channels(o: Ops) -> list[ChannelOut]:
    plans = {c.name: c for c in (o.program.channels if o.program else ())}
    switches = o.channel_switches()
    out = []
    for d in o.channel_texts():
        origin = "file" if d.file in o._file_texts else "catalogue"
        plan = plans.get(d.name)
        v = o.catalogue.get("channel", d.name) if origin == "catalogue" else None
        out.append(
            ChannelOut(
                name=d.name,
                kind=plan.kind if plan else "?",
                origin=origin,
                file=d.file,
                text=shown_text(plan) if plan else "",
                version=v.version if v else None,
                enabled=switches.get(d.name, True),
            )
        )
    return out


def _literal(value: Any, path: str) -> str:
    from cepdsl.fmt import quote_string

    if isinstance(value, dict) and set(value) == {"env"} and isinstance(value["env"], str):
        return f"env({quote_string(value['env'], long=False)})"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return json.dumps(value)
    if isinstance(value, str):
        return quote_string(value, long=False)
    if isinstance(value, list):
        return "[" + ", ".join(_literal(v, path) for v in value) + "]"
    if isinstance(value, dict):
        return "{" + ", ".join(f"{quote_string(str(k), long=False)}: {_literal(v, path)}" for k, v in value.items()) + "}"
    raise Refused(422, "invalid-request", f"{path}: cannot write {type(value).__name__} as an option value")


def declaration(body: ChannelIn, name: str | None) -> str:
    if body.text is not None:
        return body.text
    name = name or body.name
    if not name or not body.kind:
        raise Refused(422, "invalid-request", "give `text` (a channel declaration) or `name`, `kind` and `options`")
    opts = ", ".join(f"{k} = {_literal(v, f'options.{k}')}" for k, v in (body.options or {}).items())
    return f"channel {name} = {body.kind}({opts})\n"


def refuse_literal_secrets(text: str) -> None:
    """Check the declaration alone and refuse a secret option that is not an env() reference."""
    from cepdsl.frontend import check_source

    program, _ = check_source(text, "channels/<new>.cep")
    for c in program.channels if program else ():
        for opt_name, value in c.options:
            opt = options_for(c.kind).get(opt_name)
            if opt is None or not opt.secret:
                continue
            values = value.values() if isinstance(value, dict) else [value]
            if not all(isinstance(v, EnvVar) for v in values):
                raise Refused(
                    422,
                    "literal-secret",
                    f"channel `{c.name}`: option `{opt_name}` is a secret; give it "
                    "as env(\"VARIABLE\") (or {\"env\": \"VARIABLE\"}) so it is never stored or echoed",
                )


def _out(o: ControlPlane, name: str) -> ChannelOut:
    for c in list_channels(o):
        if c.name == name:
            return c
    raise Refused(404, "not-found", f"no channel `{name}`")


@router.post("/cep/channels", status_code=201, summary="Create a channel (persisted, versioned)")
def create_channel(body: ChannelIn, o: Ops) -> ChannelOut:
    text = declaration(body, None)
    refuse_literal_secrets(text)
    v, _ = o.put_channel(None, text, True)
    return _out(o, v.id)


@router.patch("/cep/channels/{name}", summary="Change a catalogue channel (a new version)")
def patch_channel(name: Name, body: ChannelIn, o: Ops) -> ChannelOut:
    text = declaration(body, name)
    refuse_literal_secrets(text)
    o.put_channel(name, text, False)
    return _out(o, name)


@router.get("/cep/channels/{name}")
def get_channel(name: Name, o: Ops) -> ChannelOut:
    return _out(o, name)


@router.delete(
    "/cep/channels/{name}",
    status_code=204,
    response_model=None,
    summary="Delete a catalogue channel (refused with diagnostics while a rule uses it)",
)
def delete_channel(name: Name, o: Ops) -> None:
    o.delete_channel(name)


@router.patch(
    "/cep/channels/{name}/toggle",
    summary="Enable or disable any channel (file channels too); persisted across restarts",
)
def toggle_channel(name: Name, o: Ops, body: ToggleIn | None = None) -> ChannelToggleOut:
    enabled = o.toggle_channel(name, body.enabled if body else None)
    return ChannelToggleOut(name=name, enabled=enabled)


@router.post(
    "/cep/channels/test",
    summary="Render a rule's message (or a sample) and send it once through the channel (no outbox)",
)
def test_channel(body: ChannelTestIn, o: Ops) -> ChannelTestOut:
    from runtime.notify import ChannelConfigError, notify_test

    program = o.program
    if program is None or not any(c.name == body.channel for c in program.channels):
        raise Refused(404, "not-found", f"no channel `{body.channel}`")
    rule_id = body.rule or next(
        (r.id for r in program.rules if body.channel in r.notify), program.rules[0].id if program.rules else None
    )
    if rule_id is None or not any(r.id == rule_id for r in program.rules):
        raise Refused(404, "not-found", f"no running rule `{rule_id}` to render a message for")
    policy = getattr(o.notifier, "_policy", None)
    options: dict[str, Any] = {"send": body.send}
    if policy is not None:
        options["policy"] = policy
    try:
        got = notify_test(program, rule_id, body.channel, body.record, **options)
    except ChannelConfigError as e:
        raise Refused(422, "channel-config", str(e)) from None
    except (ValueError, TypeError, OverflowError) as e:
        raise Refused(422, "invalid-record", f"record: {e}") from None
    return ChannelTestOut(
        channel=body.channel,
        rule=rule_id,
        ok=got.get("ok"),
        error=got.get("error"),
        subject=got.get("subject", ""),
        text=got.get("text", ""),
    )
