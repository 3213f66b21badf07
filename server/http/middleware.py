"""Pure-ASGI middleware at the edge: body size limit, request ids and HTTP metrics.

Pure ASGI (not ``BaseHTTPMiddleware``) so streaming responses pass through untouched
and client disconnects still reach the endpoint.
"""

from __future__ import annotations

import logging
import re
import time
import uuid

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from core import metrics
from server.http.errors import error_body
from server.http.logs import REQUEST_ID
from server.http.route_names import route_template

REQUEST_ID_HEADER = "x-request-id"
access_log = logging.getLogger("concierge.access")
log = logging.getLogger(__name__)


class BodySizeLimitMiddleware:
    """Refuse bodies over the limit with 413, whether or not Content-Length is sent.

    ``upload_max_bytes`` is the larger limit of paths ending in ``upload_suffix``
    (the KB bulk upload); every other path gets ``max_bytes``.
    """

    def __init__(
        self,
        app: ASGIApp,
        max_bytes: int,
        upload_max_bytes: int | None = None,
        upload_suffix: str = ":bulk",
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.upload_max_bytes = upload_max_bytes or max_bytes
        self.upload_suffix = upload_suffix

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_bytes
        if str(scope.get("path", "")).endswith(self.upload_suffix):
            limit = self.upload_max_bytes
        declared = _header(scope, b"content-length")
        if declared is not None:
            if not declared.isdigit():
                await self._refuse(send, 400, "invalid_request_error", "bad Content-Length")
                return
            if int(declared) > limit:
                await self._refuse(send, 413, "payload_too_large", _too_large_message(limit))
                return
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    metrics.HTTP_REJECTED_BODIES.labels(reason="too_large").inc()
                    raise HTTPException(413, _too_large_message(limit))
            return message

        await self.app(scope, limited_receive, send)

    async def _refuse(self, send: Send, status: int, error_type: str, message: str) -> None:
        metrics.HTTP_REJECTED_BODIES.labels(
            reason="too_large" if status == 413 else "malformed"
        ).inc()
        await _send_error(send, status, error_type, message)


class RequestContextMiddleware:
    """Give every request an id (echoed in ``X-Request-ID``) and record HTTP metrics."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        incoming = _header(scope, REQUEST_ID_HEADER.encode())
        request_id = incoming if incoming and _ACCEPTED_ID.fullmatch(incoming) else uuid.uuid4().hex
        scope.setdefault("state", {})["request_id"] = request_id
        status = 500
        response_started = False
        started = time.perf_counter()

        async def send_with_id(message: Message) -> None:
            nonlocal status, response_started
            if message["type"] == "http.response.start":
                status = message["status"]
                response_started = True
                headers = list(message.get("headers", []))
                headers.append((REQUEST_ID_HEADER.encode(), request_id.encode()))
                message = {**message, "headers": headers}
            await send(message)

        metrics.HTTP_IN_FLIGHT.inc()
        token = REQUEST_ID.set(request_id)
        try:
            await self.app(scope, receive, send_with_id)
        except Exception:
            # Answered here, not by an app-level handler: Starlette runs those outside
            # every middleware, where the request id is gone from the log line and from
            # the response. A stream that already started can only be cut off.
            log.exception("unhandled error on %s %s", scope.get("method"), route_template(scope))
            if response_started:
                raise
            status = 500
            await _send_error(send_with_id, 500, "internal_error", "internal server error")
        finally:
            metrics.HTTP_IN_FLIGHT.dec()
            route = route_template(scope)
            method = scope.get("method", "GET")
            seconds = time.perf_counter() - started
            metrics.HTTP_REQUESTS.labels(route, method, str(status)).inc()
            metrics.HTTP_REQUEST_DURATION.labels(route, method).observe(seconds)
            access_log.info("%s %s %d %.1f ms", method, route, status, seconds * 1000)
            REQUEST_ID.reset(token)


_ACCEPTED_ID = re.compile(r"[A-Za-z0-9._:-]{1,128}")
"""Ids a caller may choose; anything else (spaces, quotes, text) is replaced, not logged."""


async def _send_error(send: Send, status: int, error_type: str, message: str) -> None:
    """A complete error response in the one JSON shape, sent at the ASGI level."""
    body = error_body(error_type, message)
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"connection", b"close"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


def _too_large_message(limit: int) -> str:
    return f"the request body exceeds the limit of {limit} bytes"


def _header(scope: Scope, name: bytes) -> str | None:
    for key, value in scope.get("headers", []):
        if key.lower() == name:
            return str(value.decode("latin-1"))
    return None
