"""Every extension point's registry is complete: each entry has every part the layers
need (a half-added aggregate or channel fails here, not in a delivery retry loop), the
language's and the runtime's halves of the channel kinds cover the same kinds, and the
docs tables are the registries'."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

import cepdsl.backends.numba.window_kernels  # noqa: F401  (registers the kernel parts)
import cepdsl.backends.polars.aggregates  # noqa: F401  (registers the Polars parts)
import cepdsl.interpret  # noqa: F401  (registers the interpreter parts)
import cepdsl.kernels.polars_expressions  # noqa: F401
import runtime.notify.channels  # noqa: F401  (registers the senders and default templates)
from cepdsl.channels import CHANNEL_KINDS, KINDS, required_options
from cepdsl.functions import AGGREGATES, FUNCTIONS, aggregates_table, functions_table, regenerate
from cepdsl.plan import HEAD, FieldPlan, RuleKind, RulePlan, StreamPlan
from cepdsl.registry import Registry, RegistryError
from cepdsl.types import Type
from runtime.notify.templates import DEFAULT_TEMPLATES, render_default
from runtime.sources.spec import SOURCE_KINDS

ROOT = Path(__file__).resolve().parents[1]
REGISTRIES = [AGGREGATES, FUNCTIONS, CHANNEL_KINDS, SOURCE_KINDS]


@pytest.mark.parametrize("registry", REGISTRIES, ids=lambda r: r.what)
def test_every_entry_has_every_part(registry: Registry) -> None:
    assert len(registry) > 0
    assert registry.missing() == []


def test_a_missing_part_is_reported_by_name() -> None:
    r: Registry = Registry("gadget", parts=("polars", "interpret"))
    from cepdsl.functions import Aggregate

    r.add(Aggregate("toy", "toy(f) -> int", "a toy"))
    r.set_part("polars", "toy", object())
    r.set_part("interpret", "ghost", object())
    assert r.missing() == ["gadget `toy` has no interpret part", "interpret part given for unknown gadget `ghost`"]
    with pytest.raises(RegistryError, match="gadget `toy` has no interpret part"):
        r.part("interpret", "toy")
    with pytest.raises(RegistryError, match="already registered"):
        r.add(Aggregate("toy", "", ""))


def test_both_halves_of_the_channel_kinds_cover_the_same_kinds() -> None:
    senders = {k for k in CHANNEL_KINDS.names() if CHANNEL_KINDS.has_part("sender", k)}
    assert senders == set(CHANNEL_KINDS.names()) == set(KINDS)
    for kind in CHANNEL_KINDS.names():
        assert CHANNEL_KINDS.part("sender", kind).kind == kind
        assert DEFAULT_TEMPLATES[f"{kind}.default"].strip(), kind


def test_every_default_template_renders_a_record() -> None:
    stream = StreamPlan("m", (FieldPlan("ts", Type.TIMESTAMP), FieldPlan("host", Type.STR)), "ts")
    rule = RulePlan(
        id="r", title="Hot", severity="high", kind=RuleKind.FILTER, stream=stream, output=(*HEAD, FieldPlan("host", Type.STR))
    )
    for kind in CHANNEL_KINDS.names():
        text = render_default(rule, kind, {"rule": "r", "ts": "2024-01-01T00:00:00Z", "severity": "high", "host": "a1"})
        assert "host" in text and "a1" in text, (kind, text)


def test_every_aggregate_and_function_is_typed_and_documented() -> None:
    for a in AGGREGATES:
        assert a.signature.startswith(f"{a.name}(") and a.doc, a.name
        assert a.fields in ("any", "numeric", "ordered"), a.name
        assert isinstance(a.result(Type.FLOAT), Type), a.name
    for f in FUNCTIONS:
        assert f.signature.startswith(f"{f.name}(") and f.doc, f.name
        lo, hi = f.arity
        assert 0 <= lo <= hi, f.name


def test_the_docs_tables_are_generated_from_the_registries() -> None:
    page = (ROOT / "docs" / "functions.md").read_text(encoding="utf-8")
    assert aggregates_table() in page and functions_table() in page
    assert regenerate(page) == page, "run: python -m cepdsl.functions docs/functions.md"


def test_the_notifications_table_lists_every_channel_kind_and_its_options() -> None:
    page = (ROOT / "docs" / "notifications.md").read_text(encoding="utf-8")
    rows = {m.group(1): m.group(2) for m in re.finditer(r"^\| `(\w+)` \| ([^|]*) \|", page, re.M)}
    for kind, options in KINDS.items():
        assert kind in rows, f"docs/notifications.md has no row for channel kind `{kind}`"
        for opt in options:
            written = f"**`{opt}`**" if opt in required_options(kind) else f"`{opt}`"
            assert written in rows[kind], f"docs/notifications.md: `{kind}` row lacks {written}"
