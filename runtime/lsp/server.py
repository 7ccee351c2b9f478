"""`cep lsp`: the language server (pygls over stdio).

All analysis runs on one worker thread, in order: the incremental parsers and the
caches are not shared between threads, and the event loop stays free to read the
client's messages (so a newer change can cancel a pending check).  Diagnostics are
debounced: a change waits `debounceMs` (default 50) for the next keystroke before the
program is checked again; requests (hover, completion, ...) analyse the current text
at once.  Initialization options: `{"program": "directory" | "workspace" | "file",
"debounceMs": N}` (docs/editors.md).
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from concurrent.futures import ThreadPoolExecutor
from typing import Any, TypeVar

from lsprotocol import types
from pygls.exceptions import FeatureRequestError
from pygls.lsp.server import LanguageServer

from runtime.lsp.code_actions import quick_fixes
from runtime.lsp.completion import complete
from runtime.lsp.documents import DocumentStore, Lines, path_of, uri_of
from runtime.lsp.formatting import format_document
from runtime.lsp.hover import hover_text
from runtime.lsp.lsp_diagnostics import span_range, to_lsp
from runtime.lsp.navigation import definition, references, rename, rename_refused
from runtime.lsp.occurrences import Index
from runtime.lsp.program_analysis import ProgramAnalysis, ProgramAnalyzer
from runtime.lsp.signatures import signature_help
from runtime.lsp.symbols import document_symbols

log = logging.getLogger("cep.lsp")
T = TypeVar("T")


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("cep")
    except PackageNotFoundError:
        return "0"


class CepLanguageServer(LanguageServer):
    def __init__(self) -> None:
        super().__init__("cep", _version(), text_document_sync_kind=types.TextDocumentSyncKind.Incremental)
        self.store = DocumentStore()
        self.analyzer = ProgramAnalyzer()
        self.executor = ThreadPoolExecutor(1, thread_name_prefix="cep-analysis")
        self.debounce_s = 0.05
        self._analyses: dict[str, tuple[tuple[tuple[str, str], ...], ProgramAnalysis]] = {}
        self._indexes: dict[int, Index] = {}
        self._pending: dict[str, asyncio.Task[None]] = {}
        self._published: dict[str, list[Any]] = {}

    # ------------------------------------------------------------------ analysis (worker thread)
    def analysis(self, uri: str) -> ProgramAnalysis:
        docs = self.store.program(uri)
        signature = tuple((d.path, d.text) for d in docs)
        key = self.store.program_key(uri)
        cached = self._analyses.get(key)
        if cached is not None and cached[0] == signature:
            return cached[1]
        result = self.analyzer.analyze(docs)
        self._analyses[key] = (signature, result)
        return result

    def index(self, prog: ProgramAnalysis) -> Index:
        idx = self._indexes.get(id(prog))
        if idx is None:
            self._indexes.clear()  # one program's index at a time is enough to keep
            idx = Index({p: f.tree for p, f in prog.files.items() if f.tree is not None})
            self._indexes[id(prog)] = idx
        return idx

    def lines(self, text: str) -> Lines:
        enc = self.server_capabilities.position_encoding if self.protocol.client_capabilities else None
        return Lines(text, str(enc or "utf-16"))

    def lines_of(self, prog: ProgramAnalysis) -> Callable[[str], Lines | None]:
        def get(path: str) -> Lines | None:
            f = prog.files.get(path)
            if f is not None:
                return self.lines(f.text)
            doc = self.store.by_path(path)
            return self.lines(doc.text) if doc is not None else None

        return get

    def diagnostics_of(self, prog: ProgramAnalysis) -> dict[str, tuple[int | None, list[types.Diagnostic]]]:
        out = {}
        for path, f in prog.files.items():
            lines = self.lines(f.text)
            out[uri_of(path)] = (f.version, [to_lsp(d, lines) for d in f.diagnostics])
        return out

    async def run(self, fn: Callable[[], T]) -> T:
        return await asyncio.get_running_loop().run_in_executor(self.executor, fn)

    # ------------------------------------------------------------------ publishing
    def schedule(self, uri: str, delay: float) -> None:
        key = self.store.program_key(uri)
        old = self._pending.pop(key, None)
        if old is not None:
            old.cancel()
        self._pending[key] = asyncio.get_running_loop().create_task(self._check_later(key, uri, delay))

    async def _check_later(self, key: str, uri: str, delay: float) -> None:
        try:
            if delay:
                await asyncio.sleep(delay)
            published = await self.run(lambda: self.diagnostics_of(self.analysis(uri)))
        except asyncio.CancelledError:
            return
        except Exception:  # a bug in an analysis must not stop the server
            log.exception("analysis of %s failed", uri)
            return
        finally:
            if self._pending.get(key) is asyncio.current_task():
                del self._pending[key]
        self.publish(published, key)

    def publish(self, published: dict[str, tuple[int | None, list[types.Diagnostic]]], key: str) -> None:
        for uri, (version, diags) in published.items():
            if self._published.get(uri) == diags:
                continue
            self._published[uri] = diags
            self.text_document_publish_diagnostics(types.PublishDiagnosticsParams(uri=uri, diagnostics=diags, version=version))
        # Files that left the program (deleted, moved, or closed in "file" mode): clear them.
        for uri in [u for u in self._published if u not in published and self.store.program_key(u) == key]:
            if self._published.pop(uri):
                self.text_document_publish_diagnostics(types.PublishDiagnosticsParams(uri=uri, diagnostics=[]))


server = CepLanguageServer()


@server.feature(types.INITIALIZE)
def initialize(ls: CepLanguageServer, params: types.InitializeParams) -> None:
    folders = [f.uri for f in params.workspace_folders or []] or ([params.root_uri] if params.root_uri else [])
    ls.store.folders = [path_of(u).rstrip("/") for u in folders if u.startswith("file:")]
    opts = params.initialization_options or {}
    if isinstance(opts, dict):
        if opts.get("program") in ("directory", "workspace", "file"):
            ls.store.mode = opts["program"]
        if isinstance(opts.get("debounceMs"), (int, float)):
            ls.debounce_s = max(0.0, float(opts["debounceMs"]) / 1000)


@server.feature(types.TEXT_DOCUMENT_DID_OPEN)
def did_open(ls: CepLanguageServer, params: types.DidOpenTextDocumentParams) -> None:
    d = params.text_document
    ls.store.open(d.uri, d.text, d.version)
    ls.schedule(d.uri, 0)


@server.feature(types.TEXT_DOCUMENT_DID_CHANGE)
def did_change(ls: CepLanguageServer, params: types.DidChangeTextDocumentParams) -> None:
    uri = params.text_document.uri
    doc = ls.workspace.get_text_document(uri)  # pygls applies the incremental edits
    ls.store.change(uri, doc.source, params.text_document.version)
    ls.schedule(uri, ls.debounce_s)


@server.feature(types.TEXT_DOCUMENT_DID_SAVE)
def did_save(ls: CepLanguageServer, params: types.DidSaveTextDocumentParams) -> None:
    ls.store.forget_disk(path_of(params.text_document.uri))
    ls.schedule(params.text_document.uri, 0)


@server.feature(types.TEXT_DOCUMENT_DID_CLOSE)
def did_close(ls: CepLanguageServer, params: types.DidCloseTextDocumentParams) -> None:
    uri = params.text_document.uri
    ls.store.close(uri)
    if ls.store.program_key(uri) == uri or ls.store.get(uri) is None:
        ls._published.pop(uri, None)
        ls.text_document_publish_diagnostics(types.PublishDiagnosticsParams(uri=uri, diagnostics=[]))
    else:
        ls.schedule(uri, 0)  # the file stays in its directory's program, as on disk


@server.feature(types.WORKSPACE_DID_CHANGE_WATCHED_FILES)
def did_change_watched(ls: CepLanguageServer, params: types.DidChangeWatchedFilesParams) -> None:
    ls.store.forget_disk()
    for doc in list(ls.store.documents.values()):
        ls.schedule(doc.uri, ls.debounce_s)


@server.feature(types.TEXT_DOCUMENT_COMPLETION, types.CompletionOptions(trigger_characters=["(", ",", " "]))
async def completion(ls: CepLanguageServer, params: types.CompletionParams) -> types.CompletionList:
    uri = params.text_document.uri

    def work() -> types.CompletionList:
        doc = ls.store.get(uri)
        if doc is None:
            return types.CompletionList(is_incomplete=False, items=[])
        lines = ls.lines(doc.text)
        line, col = lines.from_client(params.position.line, params.position.character)
        items = complete(doc.text, lines.offset(line, col), ls.analysis(uri))
        return types.CompletionList(is_incomplete=False, items=items)

    return await ls.run(work)


def _at(ls: CepLanguageServer, uri: str, pos: types.Position) -> tuple[ProgramAnalysis, Index, Any, str]:
    prog = ls.analysis(uri)
    path = path_of(uri)
    f = prog.files.get(path)
    lines = ls.lines(f.text if f is not None else "")
    line, col = lines.from_client(pos.line, pos.character)
    idx = ls.index(prog)
    return prog, idx, idx.at(path, line + 1, col + 1), path


@server.feature(types.TEXT_DOCUMENT_SIGNATURE_HELP, types.SignatureHelpOptions(trigger_characters=["(", ","]))
async def signature(ls: CepLanguageServer, params: types.SignatureHelpParams) -> types.SignatureHelp | None:
    def work() -> types.SignatureHelp | None:
        doc = ls.store.get(params.text_document.uri)
        if doc is None:
            return None
        lines = ls.lines(doc.text)
        line, col = lines.from_client(params.position.line, params.position.character)
        return signature_help(doc.text, lines.offset(line, col))

    return await ls.run(work)


@server.feature(types.TEXT_DOCUMENT_HOVER)
async def hover(ls: CepLanguageServer, params: types.HoverParams) -> types.Hover | None:
    def work() -> types.Hover | None:
        prog, _, occ, path = _at(ls, params.text_document.uri, params.position)
        if occ is None:
            return None
        text = hover_text(occ, prog, path)
        if text is None:
            return None
        rng = span_range(occ.span, ls.lines(prog.files[path].text))
        return types.Hover(types.MarkupContent(types.MarkupKind.Markdown, text), rng)

    return await ls.run(work)


@server.feature(types.TEXT_DOCUMENT_DEFINITION)
async def goto_definition(ls: CepLanguageServer, params: types.DefinitionParams) -> list[types.Location]:
    def work() -> list[types.Location]:
        prog, idx, occ, _ = _at(ls, params.text_document.uri, params.position)
        return definition(idx, occ, ls.lines_of(prog))

    return await ls.run(work)


@server.feature(types.TEXT_DOCUMENT_REFERENCES)
async def find_references(ls: CepLanguageServer, params: types.ReferenceParams) -> list[types.Location]:
    def work() -> list[types.Location]:
        prog, idx, occ, _ = _at(ls, params.text_document.uri, params.position)
        return references(idx, occ, params.context.include_declaration, ls.lines_of(prog))

    return await ls.run(work)


@server.feature(types.TEXT_DOCUMENT_PREPARE_RENAME)
async def prepare_rename(ls: CepLanguageServer, params: types.PrepareRenameParams) -> types.Range | None:
    def work() -> types.Range | None:
        prog, _, occ, path = _at(ls, params.text_document.uri, params.position)
        if rename_refused(occ) is not None:
            raise FeatureRequestError(rename_refused(occ))
        return span_range(occ.span, ls.lines(prog.files[path].text))

    return await ls.run(work)


@server.feature(types.TEXT_DOCUMENT_RENAME)
async def rename_symbol(ls: CepLanguageServer, params: types.RenameParams) -> types.WorkspaceEdit | None:
    def work() -> types.WorkspaceEdit | None:
        prog, idx, occ, _ = _at(ls, params.text_document.uri, params.position)
        why = rename_refused(occ)
        if why is not None:
            raise FeatureRequestError(why)
        try:
            return rename(idx, occ, params.new_name, ls.lines_of(prog))
        except ValueError as e:
            raise FeatureRequestError(str(e)) from None

    return await ls.run(work)


@server.feature(types.TEXT_DOCUMENT_DOCUMENT_SYMBOL)
async def symbols(ls: CepLanguageServer, params: types.DocumentSymbolParams) -> list[types.DocumentSymbol]:
    def work() -> list[types.DocumentSymbol]:
        uri = params.text_document.uri
        f = ls.analysis(uri).files.get(path_of(uri))
        return document_symbols(f.tree, ls.lines(f.text)) if f is not None else []

    return await ls.run(work)


@server.feature(types.TEXT_DOCUMENT_FORMATTING)
async def formatting(ls: CepLanguageServer, params: types.DocumentFormattingParams) -> list[types.TextEdit] | None:
    def work() -> list[types.TextEdit] | None:
        doc = ls.store.get(params.text_document.uri)
        if doc is None:
            return None
        return format_document(doc.text, doc.path, ls.lines(doc.text))

    return await ls.run(work)


@server.feature(
    types.TEXT_DOCUMENT_CODE_ACTION,
    types.CodeActionOptions(code_action_kinds=[types.CodeActionKind.QuickFix]),
)
def code_action(ls: CepLanguageServer, params: types.CodeActionParams) -> list[types.CodeAction]:
    return quick_fixes(params.text_document.uri, list(params.context.diagnostics))


def serve() -> None:
    server.start_io()
