"""A small LSP client over a real `cep lsp` subprocess's pipes (JSON-RPC with
Content-Length framing), for the tests and bench/bench_lsp.py.

A reader thread files every message: responses by id, notifications in arrival
order; requests from the server (configuration, registrations) are answered with
null so the server never waits on us.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[2]


def cep_lsp_command() -> list[str]:
    exe = Path(sys.executable).with_name("cep")
    if exe.exists():
        return [str(exe), "lsp"]
    return [sys.executable, "-m", "runtime.cli", "lsp"]


class LspClient:
    def __init__(self, command: list[str] | None = None, cwd: str | Path | None = None, env: dict[str, str] | None = None):
        self.proc = subprocess.Popen(
            command or cep_lsp_command(),
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            cwd=str(cwd or ROOT),
            env={**os.environ, **(env or {})},
        )
        self._next_id = 0
        self._responses: dict[int, Any] = {}
        self._cond = threading.Condition()
        self.notifications: list[tuple[float, dict[str, Any]]] = []
        self._stderr: list[bytes] = []
        threading.Thread(target=self._read, daemon=True).start()
        threading.Thread(target=self._drain_stderr, daemon=True).start()

    # ------------------------------------------------------------------ wire
    def _send(self, msg: dict[str, Any]) -> None:
        body = json.dumps({"jsonrpc": "2.0", **msg}).encode()
        assert self.proc.stdin is not None
        self.proc.stdin.write(b"Content-Length: %d\r\n\r\n" % len(body) + body)
        self.proc.stdin.flush()

    def _read(self) -> None:
        out = self.proc.stdout
        assert out is not None
        while True:
            length = None
            while True:
                line = out.readline()
                if not line:
                    with self._cond:
                        self._cond.notify_all()
                    return
                line = line.strip()
                if not line:
                    break
                if line.lower().startswith(b"content-length:"):
                    length = int(line.split(b":")[1])
            if length is None:
                continue
            msg = json.loads(out.read(length))
            if "id" in msg and "method" in msg:  # a request from the server
                self._send({"id": msg["id"], "result": None})
                continue
            with self._cond:
                if "id" in msg:
                    self._responses[msg["id"]] = msg
                else:
                    self.notifications.append((time.perf_counter(), msg))
                self._cond.notify_all()

    def _drain_stderr(self) -> None:
        assert self.proc.stderr is not None
        for line in self.proc.stderr:
            self._stderr.append(line)

    @property
    def stderr(self) -> str:
        return b"".join(self._stderr).decode(errors="replace")

    # ------------------------------------------------------------------ calls
    def request(self, method: str, params: Any, timeout: float = 30) -> Any:
        self._next_id += 1
        rid = self._next_id
        self._send({"id": rid, "method": method, "params": params})
        deadline = time.monotonic() + timeout
        with self._cond:
            while rid not in self._responses:
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    raise TimeoutError(f"no answer to {method} in {timeout}s; server stderr:\n{self.stderr}")
                self._cond.wait(left)
            msg = self._responses.pop(rid)
        if "error" in msg:
            raise RuntimeError(f"{method}: {msg['error']}")
        return msg.get("result")

    def notify(self, method: str, params: Any) -> None:
        self._send({"method": method, "params": params})

    def wait_for(self, method: str, pred: Any = lambda p: True, timeout: float = 30, after: int = 0) -> dict[str, Any]:
        """The first notification `method` (from index `after` on) whose params satisfy `pred`."""
        deadline = time.monotonic() + timeout
        with self._cond:
            i = after
            while True:
                while i < len(self.notifications):
                    _, msg = self.notifications[i]
                    i += 1
                    if msg.get("method") == method and pred(msg.get("params")):
                        return msg["params"]
                left = deadline - time.monotonic()
                if left <= 0 or self.proc.poll() is not None:
                    raise TimeoutError(f"no {method} in {timeout}s; server stderr:\n{self.stderr}")
                self._cond.wait(left)

    def diagnostics(self, uri: str, version: int | None = None, timeout: float = 30, after: int = 0) -> list[dict[str, Any]]:
        def pred(p: dict[str, Any]) -> bool:
            return p["uri"] == uri and (version is None or p.get("version") == version)

        return self.wait_for("textDocument/publishDiagnostics", pred, timeout, after)["diagnostics"]

    # ------------------------------------------------------------------ session
    def initialize(self, root: Path | None = None, options: dict[str, Any] | None = None) -> dict[str, Any]:
        result = self.request(
            "initialize",
            {
                "processId": os.getpid(),
                "rootUri": root.as_uri() if root else None,
                "capabilities": {"textDocument": {"publishDiagnostics": {"relatedInformation": True}}},
                "initializationOptions": options or {},
            },
        )
        self.notify("initialized", {})
        return result

    def open(self, uri: str, text: str, version: int = 1) -> None:
        self.notify("textDocument/didOpen", {"textDocument": {"uri": uri, "languageId": "cep", "version": version, "text": text}})

    def change(self, uri: str, version: int, start: tuple[int, int], end: tuple[int, int], text: str) -> None:
        rng = {"start": {"line": start[0], "character": start[1]}, "end": {"line": end[0], "character": end[1]}}
        self.notify(
            "textDocument/didChange",
            {"textDocument": {"uri": uri, "version": version}, "contentChanges": [{"range": rng, "text": text}]},
        )

    def close(self) -> None:
        try:
            self.request("shutdown", None, timeout=10)
            self.notify("exit", None)
            self.proc.wait(timeout=10)
        except Exception:
            self.proc.kill()
            self.proc.wait(timeout=10)
