"""Signature help: inside `round(` or `percentile(cpu, `, the function's signature
with the argument being typed marked; also anomaly methods and channel kinds."""

from __future__ import annotations

import re

from lsprotocol import types

from cepdsl.channels import KINDS, options_for
from runtime.lsp.completion import context_at
from runtime.lsp.vocabulary import AGGREGATE_DOCS, ANOMALY_METHODS, FUNCTIONS

_PARAMS = re.compile(r"\((.*)\)")


def signature_help(text: str, offset: int) -> types.SignatureHelp | None:
    ctx = context_at(text, offset)
    if ctx is None or ctx.decl in ("message-hole", "template-name"):
        return None
    depth, commas, name = 0, 0, None
    for i in range(len(ctx.tokens) - 1, -1, -1):
        t = ctx.tokens[i]
        if t in (")", "]", "}"):
            depth += 1
        elif t in ("(", "[", "{"):
            if depth == 0:
                name = ctx.tokens[i - 1] if t == "(" and i > 0 else None
                break
            depth -= 1
        elif t == "," and depth == 0:
            commas += 1
    if name is None:
        return None
    if name in FUNCTIONS:
        label, doc = FUNCTIONS[name]
    elif name in AGGREGATE_DOCS:
        label, doc = AGGREGATE_DOCS[name]
        label = label.split("  |  ")[-1]
    elif name in ANOMALY_METHODS:
        label, doc = ANOMALY_METHODS[name], "anomaly method (LANGUAGE.md §5.6)"
    elif name in KINDS and ctx.decl == "channel":
        opts = options_for(name)
        label = f"{name}(" + ", ".join(f"{o}{'' if x.required else '?'}" for o, x in opts.items()) + ")"
        doc = "channel options are named: option = value (? = optional)"
    else:
        return None
    inside = _PARAMS.search(label)
    params = [p.strip() for p in inside.group(1).split(",")] if inside and inside.group(1).strip() else []
    info = types.SignatureInformation(
        label=label,
        documentation=doc,
        parameters=[types.ParameterInformation(label=p) for p in params],
    )
    active = min(commas, max(len(params) - 1, 0))
    return types.SignatureHelp(signatures=[info], active_signature=0, active_parameter=active)
