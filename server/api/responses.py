"""What every router answers with besides its models: error declarations and SSE streams.

Errors: the one shape ``{"error": {type, message, param}}`` (``server/http/errors.py``
installs the handlers); ``error_responses`` declares it in the OpenAPI document.

Streams: ``event_stream`` frames events as Server-Sent Events and always ends with
``data: [DONE]``, also after an error. Everything that can be refused (validation,
overload, deadlines) is refused before the stream starts, with a status code; an
error that strikes mid-stream can only be an error event, because the status was sent.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi.responses import StreamingResponse

from core.errors import ConciergeError
from server.schemas.errors import ErrorResponse

log = logging.getLogger(__name__)

SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}
"""No caching, and no proxy buffering: tokens must reach the client as they come."""

StreamEvent = tuple[str | None, dict[str, Any]]
"""An SSE event: its name (``None`` for OpenAI's unnamed events) and its JSON data."""


def error_responses(*statuses: int) -> dict[int | str, dict[str, Any]]:
    """``responses=`` for a route: each status answers with the one error shape."""
    return {status: {"model": ErrorResponse} for status in statuses}


def event_stream(
    events: AsyncIterator[StreamEvent], error_event: str | None = None
) -> StreamingResponse:
    """A ``text/event-stream`` response of ``events``; errors become an event named
    ``error_event`` (unnamed for OpenAI streams), then ``[DONE]``."""
    return StreamingResponse(
        _framed(events, error_event), media_type="text/event-stream", headers=SSE_HEADERS
    )


async def _framed(
    events: AsyncIterator[StreamEvent], error_event: str | None
) -> AsyncIterator[str]:
    try:
        async for name, data in events:
            yield sse_event(name, data)
    except ConciergeError as exc:
        error = {"type": exc.error_type, "message": exc.message, "param": exc.param}
        yield sse_event(error_event, {"error": error})
    except Exception:
        log.exception("stream failed")
        error = {"type": "internal_error", "message": "the stream failed", "param": None}
        yield sse_event(error_event, {"error": error})
    yield "data: [DONE]\n\n"


def sse_event(name: str | None, data: dict[str, Any]) -> str:
    """One event, compact JSON on one ``data:`` line."""
    payload = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    return f"data: {payload}\n\n" if name is None else f"event: {name}\ndata: {payload}\n\n"
