"""The words of the language (LANGUAGE.md §9.1), in one place.

RESERVED words can only be names when backquoted (`` `window` ``); CONTEXTUAL
words are keywords only where the grammar expects them and plain names
elsewhere (`stream events (...)`, a field `time`, a rule `match`).  The grammar
(`grammar/cep.lark`) spells the same lists; tests/parser checks they agree.
"""

from __future__ import annotations

#: Words that start a top-level declaration (§2, §9.1).
DECL_KEYWORDS: tuple[str, ...] = ("stream", "channel", "table", "template", "silence", "rule")

RESERVED: frozenset[str] = frozenset(
    """stream channel table template silence rule from where group by window having
    schedule pattern define absent anomaly severity throttle notify message join for
    resolve and or not in is null true false contains starts_with ends_with matches""".split()
)

CONTEXTUAL: frozenset[str] = frozenset(
    """tumbling sliding every session gap last events over within as baseline warmup
    fallback time lateness key refresh after until on match""".split()
)
