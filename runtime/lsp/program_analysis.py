"""A program's analysis: every file parsed (incrementally), all declarations checked
together, each diagnostic handed back to the file it points into.

`cep check a.cep b.cep` is `cepdsl.frontend.check_sources`: parse every file, and when
all parsed, check them as one program (LANGUAGE.md §9.1: one namespace; a name
declared twice is reported at the second place, naming the first) and sort everything
by position.  The same happens here, with the files in path order, so the diagnostics
are `cep check`'s for the same files.

Besides diagnostics the analysis keeps what the editor features read: each file's
tree and the checker's typed streams, channels and rule plans (clean rules get plans
even when another rule of the program has errors).
"""

from __future__ import annotations

import gc
from dataclasses import dataclass, field

from cepdsl import ast
from cepdsl.diagnostics import Diagnostic, sort_key
from cepdsl.parser import gc_paused
from cepdsl.plan import ChannelPlan, RulePlan, StreamPlan, TablePlan, TemplatePlan
from runtime.lsp.documents import Document
from runtime.lsp.incremental import IncrementalParser
from runtime.lsp.rule_cache import RuleCache


@dataclass
class FileAnalysis:
    doc: Document
    text: str
    version: int | None
    tree: ast.File | None
    diagnostics: list[Diagnostic]


@dataclass
class ProgramAnalysis:
    files: dict[str, FileAnalysis] = field(default_factory=dict)  # by path
    streams: dict[str, StreamPlan] = field(default_factory=dict)
    channels: dict[str, ChannelPlan] = field(default_factory=dict)
    rules: dict[str, RulePlan] = field(default_factory=dict)
    tables: dict[str, TablePlan] = field(default_factory=dict)
    templates: dict[str, TemplatePlan] = field(default_factory=dict)

    def decls(self) -> list[tuple[str, ast.Decl]]:
        """(path, declaration) over the whole program, in program order."""
        return [(path, d) for path, f in self.files.items() if f.tree is not None for d in f.tree.decls]

    def declared(self, kind: type, name: str) -> list[tuple[str, ast.Decl]]:
        return [(p, d) for p, d in self.decls() if isinstance(d, kind) and decl_name(d) == name]

    def is_table(self, name: str) -> bool:
        return any(isinstance(d, ast.TableDecl) and decl_name(d) == name for _, d in self.decls())

    def fields_of(self, name: str) -> dict[str, str]:
        """A stream's or table's fields and their types, from the plan or, for a
        declaration with errors, from the declaration."""
        plan = self.streams.get(name) or self.tables.get(name)
        if plan is not None:
            return {f.name: str(f.type) for f in plan.fields}
        for _, d in self.decls():
            if isinstance(d, (ast.StreamDecl, ast.TableDecl)) and decl_name(d) == name:
                return {f.path.dotted: f.type.value for f in d.fields}  # type: ignore[union-attr]
        return {}


def decl_name(d: ast.Decl) -> str:
    if isinstance(d, ast.RuleDecl):
        return d.id.value
    return d.name.value  # type: ignore[union-attr]


class ProgramAnalyzer:
    """Keeps one incremental parser per file; `analyze` is called from one thread at a time."""

    def __init__(self) -> None:
        self._parsers: dict[str, IncrementalParser] = {}
        self._parsed: dict[str, tuple[str, ast.File | None, list[Diagnostic]]] = {}
        self._rules = RuleCache()
        self._analyses = 0

    def analyze(self, docs: list[Document]) -> ProgramAnalysis:
        out = ProgramAnalysis()
        trees: list[ast.File] = []
        with gc_paused():
            for doc in docs:
                tree, diags = (None, list(doc.unreadable)) if doc.unreadable else self._parse(doc)
                out.files[doc.path] = FileAnalysis(doc, doc.text, doc.version, tree, list(diags))
                if tree is not None:
                    trees.append(tree)
            # As `cep check a.cep b.cep` (`check_sources`): a file that did not parse at
            # all leaves its names unknown, so the program is not checked further.
            if not trees or len(trees) < len(docs):
                return out
            checker = self._rules.checker(trees)
            _, semantic = checker.run()
            self._rules.prune(checker)
            # The trees cached for the next keystroke and the plans are many and
            # long-lived: without this the cyclic collector walks everything allocated
            # here as soon as it is enabled again (~40-90 ms for a 1,000-rule file).
            # They hold no cycles, so reference counting still frees them; what cyclic
            # garbage got frozen with them (exceptions, frames) is collected now and then.
            self._analyses += 1
            if self._analyses % 500 == 0:
                gc.unfreeze()
                gc.collect()
            gc.freeze()
        for d in semantic:
            f = out.files.get(d.span.file)
            if f is not None:
                f.diagnostics.append(d)
        for f in out.files.values():
            f.diagnostics.sort(key=sort_key)
        out.streams = dict(checker.streams)
        out.channels = dict(checker.channels)
        out.rules = {r.id: r for r in checker.rules}
        out.tables = dict(checker.tables)
        out.templates = dict(checker.templates)
        return out

    def _parse(self, doc: Document) -> tuple[ast.File | None, list[Diagnostic]]:
        cached = self._parsed.get(doc.path)
        if cached is not None and cached[0] == doc.text:
            return cached[1], cached[2]
        parser = self._parsers.setdefault(doc.path, IncrementalParser())
        tree, diags = parser.parse(doc.text, doc.path)
        self._parsed[doc.path] = (doc.text, tree, diags)
        return tree, diags

    def forget(self, path: str) -> None:
        self._parsers.pop(path, None)
        self._parsed.pop(path, None)
