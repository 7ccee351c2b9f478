"""Log lines for people (`text`) or for a log pipeline (`json`: one object per line,
the fields Loki, Elasticsearch or `jq` expect: time, level, logger, message)."""

from __future__ import annotations

import datetime as dt
import json
import logging
import os
import sys
from typing import Any

FORMATS = ("text", "json")
TEXT_FORMAT = "%(asctime)s %(levelname)s %(name)s: %(message)s"
#: LogRecord attributes that are not extra fields someone passed with `extra=`.
_STANDARD = set(vars(logging.makeLogRecord({}))) | {"message", "asctime", "taskName"}


class JsonFormatter(logging.Formatter):
    def format(self, record: logging.LogRecord) -> str:
        out: dict[str, Any] = {
            "time": dt.datetime.fromtimestamp(record.created, dt.timezone.utc)
            .isoformat(timespec="milliseconds")
            .replace("+00:00", "Z"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "message": record.getMessage(),
        }
        for key, value in vars(record).items():
            if key not in _STANDARD and not key.startswith("_"):
                out[key] = value
        if record.exc_info:
            out["exception"] = self.formatException(record.exc_info)
        return json.dumps(out, default=str, ensure_ascii=False)


def configure(fmt: str = "text", level: str | None = None) -> None:
    """Root logging to stderr in `fmt`; the level from CEP_LOG (default WARNING). Also
    takes over uvicorn's loggers so an API served alongside logs the same way."""
    handler = logging.StreamHandler(sys.stderr)
    handler.setFormatter(JsonFormatter() if fmt == "json" else logging.Formatter(TEXT_FORMAT))
    root = logging.getLogger()
    for h in list(root.handlers):
        root.removeHandler(h)
    root.addHandler(handler)
    wanted = (level or os.environ.get("CEP_LOG") or "WARNING").upper()
    known = isinstance(logging.getLevelName(wanted), int)
    root.setLevel(wanted if known else "WARNING")
    if not known:
        logging.getLogger("cep").warning("CEP_LOG=%s is not a log level (DEBUG, INFO, WARNING, ERROR): using WARNING", wanted)
    for name in ("uvicorn", "uvicorn.error", "uvicorn.access"):
        lg = logging.getLogger(name)
        lg.handlers = []
        lg.propagate = True
