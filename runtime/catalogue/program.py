"""One program from the rule files and the catalogue's entries (LANGUAGE.md §9.1).

Each text is parsed on its own (so a diagnostic names its own file and line),
then their declarations are checked together as one namespace.  A disabled
rule is left out of the program but stays listed.  Templates are Jinja text
kept under a name; they join the program as `template` declarations where
the grammar has them.
"""

from __future__ import annotations

import dataclasses
import threading
from collections import OrderedDict
from dataclasses import dataclass, field

from cepdsl import ast
from cepdsl.checker import check
from cepdsl.diagnostics import Diagnostic, sort_key
from cepdsl.parser import parse
from cepdsl.plan import Program

#: The file name a catalogue entry's diagnostics carry: `rules/ID.cep`, `channels/ID.cep`.
ENTRY_FILES = {"rule": "rules/{}.cep", "channel": "channels/{}.cep", "template": "templates/{}.cep"}


def entry_file(kind: str, id: str) -> str:
    return ENTRY_FILES[kind].format(id)


@dataclass(frozen=True)
class Declared:
    """A declaration as written: where, and its text (the lines it spans)."""

    kind: str  # "stream" | "channel" | "rule" | ...
    name: str
    file: str
    line: int
    text: str


@dataclass
class Assembly:
    program: Program | None
    diagnostics: list[Diagnostic]
    sources: dict[str, str]  # file name → text, to render diagnostics
    declared: list[Declared] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        return self.program is not None and not any(d.severity == "error" for d in self.diagnostics)


def _kind_of(decl: object) -> str:
    return type(decl).__name__.removesuffix("Decl").lower()


def _decl_text(lines: list[str], span: ast.Span) -> str:
    return "\n".join(lines[span.line - 1 : span.end_line]).rstrip() + "\n"


def _declared(tree: ast.File, text: str, filename: str) -> list[Declared]:
    lines = text.splitlines()  # once per text: per declaration it was quadratic (0.8 s at 1,000 rules)
    return [
        Declared(
            _kind_of(d),
            getattr(getattr(d, "name", None) or getattr(d, "id", None), "value", ""),
            filename,
            d.span.line,
            _decl_text(lines, d.span),
        )
        for d in tree.decls
    ]


def declarations(text: str, filename: str) -> tuple[list[tuple[object, Declared]], list[Diagnostic]]:
    """The declarations of one text, each with its own text; syntax diagnostics."""
    tree, diags = parse(text, filename)
    if tree is None:
        return [], diags
    return list(zip(tree.decls, _declared(tree, text, filename), strict=True)), diags


def template_decl_text(name: str, body: str) -> str:
    quoted = body.replace("\\", "\\\\").replace('"""', '\\"\\"\\"')
    return f'template {name} = """{quoted}"""\n'


#: Parsed texts by (file name, text): the served rule files are parsed once, not on every
#: change, toggle or simulate (a 1,000-rule file takes ~0.5 s to parse). Trees and
#: diagnostics are frozen dataclasses, so sharing them is safe.
_PARSED: OrderedDict[tuple[str, str], tuple[ast.File | None, list[Diagnostic], list[Declared]]] = OrderedDict()
_PARSED_MAX_CHARS = 2_000_000  # texts kept (their trees take more): the oldest go first
_PARSED_LOCK = threading.Lock()
_parsed_chars = 0


def parse_cached(text: str, name: str) -> tuple[ast.File | None, list[Diagnostic], list[Declared]]:
    """(tree, syntax diagnostics, its declarations as written) of one text, parsed once."""
    key = (name, text)
    with _PARSED_LOCK:
        got = _PARSED.get(key)
        if got is not None:
            _PARSED.move_to_end(key)
            return got[0], list(got[1]), got[2]
    global _parsed_chars
    tree, diags = parse(text, name)
    infos = _declared(tree, text, name) if tree is not None else []
    with _PARSED_LOCK:
        if key not in _PARSED:
            _PARSED[key] = (tree, list(diags), infos)
            _parsed_chars += len(text)
        while _parsed_chars > _PARSED_MAX_CHARS and len(_PARSED) > 1:
            (_, old), _ = _PARSED.popitem(last=False)
            _parsed_chars -= len(old)
    return tree, diags, infos


def assemble(texts: dict[str, str], disabled: frozenset[str] | set[str] = frozenset()) -> Assembly:
    """Check `texts` (file name → .cep text) as one program, leaving out disabled rules."""
    decls: list[object] = []
    declared: list[Declared] = []
    diags: list[Diagnostic] = []
    parsed_all = True
    broken: set[str] = set()
    for name, text in texts.items():
        tree, found, infos = parse_cached(text, name)
        diags.extend(found)
        if tree is None:
            parsed_all = False
            continue
        broken |= set(tree.broken)
        for d, info in zip(tree.decls, infos, strict=True):
            declared.append(info)
            if info.kind == "rule" and info.name in disabled:
                continue
            decls.append(d)
    if not parsed_all:
        return Assembly(None, sorted(diags, key=sort_key), dict(texts), declared)
    program, semantic = check(ast.File(tuple(decls), name="<program>", broken=frozenset(broken)))  # type: ignore[arg-type]
    diags = sorted(diags + semantic, key=sort_key)
    if program is not None:
        # The checker names the file it was given (one merged file): each rule gets its own back.
        where = {d.name: d.file for d in declared if d.kind == "rule"}
        program = dataclasses.replace(
            program, rules=tuple(dataclasses.replace(r, file=where.get(r.id, r.file)) for r in program.rules)
        )
    return Assembly(program if not diags else None, diags, dict(texts), declared)


def grammar_has_templates() -> bool:
    """Named templates (LANGUAGE.md §9.5) arrive with the v2 grammar; before that they are kept only."""
    return hasattr(ast, "TemplateDecl")
