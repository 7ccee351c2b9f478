"""The document store: the text of every `.cep` file the server knows, and which files
form one program.

Open documents hold the editor's text (newer than the disk); the other `.cep` files of a
program are read from disk, re-read when their modification time changes.  Files given
together form one program (LANGUAGE.md §9.1); in an editor the program of a file is the
`.cep` files of its directory; with the `program` setting `"workspace"`, every `.cep`
file under its workspace folder (as `cep check FOLDER`); with `"file"`, each file alone.  Positions: the parser counts columns in characters,
LSP clients in UTF-16 units (or what was negotiated); `Lines` converts.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from pathlib import Path

from pygls import uris

#: A directory with more rule files than this is not read as one program (a corpus, not a program).
MAX_PROGRAM_FILES = 200


@dataclass
class Document:
    uri: str
    path: str  # what spans and diagnostics name: the file system path, or the URI
    text: str
    version: int | None = None  # None: read from disk
    mtime: float = 0.0
    unreadable: tuple = ()  # diagnostics of a file on disk that is not UTF-8 (as `cep check` says)


class Lines:
    """Code-point columns (the parser's) ⇄ the client's position units."""

    def __init__(self, text: str, encoding: str = "utf-16"):
        self.lines = text.split("\n")
        self.encoding = encoding

    def _units(self, s: str) -> int:
        if self.encoding == "utf-32":
            return len(s)
        if self.encoding == "utf-8":
            return len(s.encode("utf-8", "surrogatepass"))
        return len(s.encode("utf-16-le", "surrogatepass")) // 2

    def to_client(self, line0: int, col0: int) -> tuple[int, int]:
        """(0-based line, code-point column) → (line, client units)."""
        if line0 < 0:
            return 0, 0
        if line0 >= len(self.lines):
            return len(self.lines) - 1, self._units(self.lines[-1])
        text = self.lines[line0]
        return line0, self._units(text[: max(0, min(col0, len(text)))])

    def from_client(self, line0: int, units: int) -> tuple[int, int]:
        if line0 >= len(self.lines):
            return len(self.lines) - 1, len(self.lines[-1])
        text = self.lines[max(line0, 0)]
        if self.encoding == "utf-32":
            return line0, min(units, len(text))
        seen = 0
        for i, ch in enumerate(text):
            if seen >= units:
                return line0, i
            seen += self._units(ch)
        return line0, len(text)

    def offset(self, line0: int, col0: int) -> int:
        return sum(len(x) + 1 for x in self.lines[:line0]) + col0


#: Directories never searched for rule files in "workspace" mode.
_SKIP_DIRS = frozenset({".git", ".hg", ".venv", "venv", "node_modules", "__pycache__", ".tox", ".mypy_cache"})


@dataclass
class DocumentStore:
    mode: str = "directory"  # directory | workspace | file
    documents: dict[str, Document] = field(default_factory=dict)  # open, by URI
    folders: list[str] = field(default_factory=list)  # workspace folders (paths)
    _disk: dict[str, Document] = field(default_factory=dict)  # by path

    def open(self, uri: str, text: str, version: int | None) -> Document:
        doc = Document(uri, path_of(uri), text, version)
        self.documents[uri] = doc
        return doc

    def change(self, uri: str, text: str, version: int | None) -> Document:
        doc = self.documents.get(uri)
        if doc is None:
            return self.open(uri, text, version)
        doc.text, doc.version = text, version
        return doc

    def close(self, uri: str) -> None:
        self.documents.pop(uri, None)

    def forget_disk(self, path: str | None = None) -> None:
        if path is None:
            self._disk.clear()
        else:
            self._disk.pop(path, None)

    def get(self, uri: str) -> Document | None:
        doc = self.documents.get(uri)
        if doc is not None:
            return doc
        path = path_of(uri)
        return self._from_disk(path)

    def by_path(self, path: str) -> Document | None:
        for doc in self.documents.values():
            if doc.path == path:
                return doc
        return self._from_disk(path)

    def program_key(self, uri: str) -> str:
        path = path_of(uri)
        if self.mode == "file" or not uri.startswith("file:"):
            return uri
        if self.mode == "workspace":
            inside = [f for f in self.folders if path.startswith(f.rstrip(os.sep) + os.sep)]
            if inside:
                return max(inside, key=len)
        return str(Path(path).parent)

    def _names(self, key: str) -> list[str]:
        """The rule files of a program's directory: its own `.cep` files, or in
        "workspace" mode every `.cep` file under it (as `cep check FOLDER`)."""
        if self.mode != "workspace" or key not in self.folders:
            try:
                return sorted(os.path.join(key, n) for n in os.listdir(key) if n.endswith(".cep"))
            except OSError:
                return []
        out: list[str] = []
        for top, dirs, files in os.walk(key):
            dirs[:] = sorted(d for d in dirs if d not in _SKIP_DIRS and not d.startswith("."))
            out += [os.path.join(top, n) for n in files if n.endswith(".cep")]
            if len(out) > MAX_PROGRAM_FILES:
                break
        return sorted(out)

    def _member(self, key: str, path: str) -> bool:
        if self.mode == "workspace" and key in self.folders:
            return path.startswith(key.rstrip(os.sep) + os.sep)
        return str(Path(path).parent) == key

    def program(self, uri: str) -> list[Document]:
        """The documents of the program `uri` belongs to, ordered by path (as `cep check DIR`)."""
        key = self.program_key(uri)
        own = self.get(uri)
        if key == uri:
            return [own] if own is not None else []
        docs: dict[str, Document] = {}
        names = self._names(key)
        if len(names) <= MAX_PROGRAM_FILES:
            for n in names:
                d = self.by_path(n)
                if d is not None:
                    docs[d.path] = d
        for d in self.documents.values():  # open but not yet saved there
            if d.uri.startswith("file:") and self._member(key, d.path):
                docs[d.path] = d
        if own is not None:
            docs[own.path] = own
        return [docs[p] for p in sorted(docs)]

    def _from_disk(self, path: str) -> Document | None:
        try:
            mtime = os.stat(path).st_mtime
        except OSError:
            return None
        cached = self._disk.get(path)
        if cached is not None and cached.mtime == mtime:
            return cached
        from cepdsl.diagnostics import CheckError
        from cepdsl.frontend import read_rule_file

        unreadable: tuple = ()
        try:
            text = read_rule_file(path)
        except CheckError as e:  # kept for positions only; never parsed
            text, unreadable = Path(path).read_bytes().decode("utf-8", errors="replace"), e.diagnostics
        except OSError:
            return None
        doc = Document(uris.from_fs_path(path) or path, path, text, None, mtime, unreadable)
        self._disk[path] = doc
        return doc


def path_of(uri: str) -> str:
    if uri.startswith("file:"):
        return uris.to_fs_path(uri) or uri
    return uri


def uri_of(path: str) -> str:
    if path.startswith(("untitled:", "file:")) or "://" in path:
        return path
    return uris.from_fs_path(path) or path
