"""Logging for the ``concierge`` process: JSON lines in production, readable text in development.

Every record carries the id of the HTTP request it was written for (``-`` outside a
request), the same id the client sees in ``X-Request-ID``, so one grep joins a
client's complaint to the server's lines. The id travels in a context variable set
by ``RequestContextMiddleware``; asyncio copies it into tasks the request starts.
Message text and customer data are never put into log records by Concierge code;
records only name ids of Concierge's own making (request, job, conversation).
"""

from __future__ import annotations

import contextvars
import json
import logging
import os
import sys
from datetime import UTC, datetime
from typing import Literal, TextIO

LogFormat = Literal["json", "text"]

REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")

_CHATTY_LOGGERS = ("httpx", "httpx2", "bm25s", "sentence_transformers", "alembic", "faiss.loader")
"""Libraries whose INFO lines (one per call, or start-up chatter) are noise at INFO level."""

_TEXT_FORMAT = "%(asctime)s %(levelname)s [%(request_id)s] %(name)s: %(message)s"


class RequestIdFilter(logging.Filter):
    """Stamp the current request id on every record that passes through a handler."""

    def filter(self, record: logging.LogRecord) -> bool:
        record.request_id = REQUEST_ID.get()
        return True


class JsonFormatter(logging.Formatter):
    """One JSON object per line: time, level, logger, request id, message, exception."""

    def format(self, record: logging.LogRecord) -> str:
        entry: dict[str, object] = {
            "time": datetime.fromtimestamp(record.created, UTC).isoformat(timespec="milliseconds"),
            "level": record.levelname.lower(),
            "logger": record.name,
            "request_id": getattr(record, "request_id", REQUEST_ID.get()),
            "message": record.getMessage(),
        }
        if record.exc_info:
            entry["exception"] = self.formatException(record.exc_info)
        return json.dumps(entry, ensure_ascii=False)


class _StderrHandler(logging.StreamHandler):
    """Writes to whatever ``sys.stderr`` is at the time of each record.

    Test runners and embedding programs swap ``sys.stderr``; a handler bound to the
    object of the moment it was made would later write into a closed stream.
    """

    def __init__(self) -> None:
        super().__init__(sys.stderr)

    @property
    def stream(self) -> TextIO:
        return sys.stderr

    @stream.setter
    def stream(self, _value: TextIO) -> None:
        return


def configure_logging(level: str, log_format: LogFormat) -> None:
    """Install Concierge's stderr handler on the root logger; library loggers propagate to it.

    Calling it again replaces the handler it installed before and leaves handlers that
    others added alone. In JSON mode vLLM is told not to install its own handler, so
    its lines in this process come out as JSON too (its engine-core subprocess keeps
    vLLM's own format).
    """
    handler = _StderrHandler()
    handler.addFilter(RequestIdFilter())
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
        os.environ.setdefault("VLLM_CONFIGURE_LOGGING", "0")
    else:
        handler.setFormatter(logging.Formatter(_TEXT_FORMAT))
    root = logging.getLogger()
    for existing in list(root.handlers):
        if isinstance(existing, _StderrHandler):
            root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for chatty in _CHATTY_LOGGERS:
        logging.getLogger(chatty).setLevel(logging.WARNING)
