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
from typing import Literal

LogFormat = Literal["json", "text"]

REQUEST_ID: contextvars.ContextVar[str] = contextvars.ContextVar("request_id", default="-")

_CHATTY_LOGGERS = ("httpx", "bm25s", "sentence_transformers", "alembic.runtime.migration")
"""Libraries that log one INFO line per call: noise at INFO level."""

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


def configure_logging(level: str, log_format: LogFormat) -> None:
    """Install one stderr handler on the root logger; library loggers propagate to it.

    In JSON mode vLLM is told not to install its own handler, so its lines come out
    as JSON too instead of a second, differently formatted stream.
    """
    handler = logging.StreamHandler(sys.stderr)
    handler.addFilter(RequestIdFilter())
    if log_format == "json":
        handler.setFormatter(JsonFormatter())
        os.environ.setdefault("VLLM_CONFIGURE_LOGGING", "0")
    else:
        handler.setFormatter(logging.Formatter(_TEXT_FORMAT))
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(level.upper())
    for chatty in _CHATTY_LOGGERS:
        logging.getLogger(chatty).setLevel(logging.WARNING)
