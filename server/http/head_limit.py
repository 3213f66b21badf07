"""Size and time limits on the request line and headers, enforced where they are parsed.

Headers never reach the app as a stream: uvicorn's httptools protocol buffers a header's
name and value until it is complete, so no middleware can bound them. A trust probe sent
a 16 MB header and got 200; four connections sending 64 MB of unfinished headers grew the
process by 200 MiB, without a key. So the protocol itself counts the bytes of each
request's head and, past ``max_header_bytes``, answers 431 in the usual JSON error shape
and closes the connection before buffering more.

With the body limit (``max_request_bytes``, enforced by ``BodySizeLimitMiddleware``) this
bounds what one request can make the server hold: head plus body.

A head must also arrive whole within ``header_timeout_s`` of its first byte: a client that
drips a header a byte at a time would otherwise hold its connection for as long as it
likes (uvicorn's keep-alive timer stops at the first byte). It gets 408.
"""

from __future__ import annotations

import asyncio
import logging
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from core import metrics
from server.http.errors import error_body

log = logging.getLogger(__name__)

_TOO_LARGE = "request_header_fields_too_large"
_TOO_SLOW = "request_timeout"
LINGER_S = 1.0
"""How long a refused connection is drained before it is closed."""


def head_limited_protocol(
    max_header_bytes: int, header_timeout_s: float
) -> type[HttpToolsProtocol]:
    """uvicorn's httptools protocol with the head of each request limited to
    ``max_header_bytes`` (request line, header names and values, and their separators)
    and to ``header_timeout_s`` from its first byte to its end."""

    class HeadLimitedProtocol(HttpToolsProtocol):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            self._head_bytes = 0
            self._in_head = True
            self._refused = False
            self._head_timer: asyncio.TimerHandle | None = None

        def data_received(self, data: bytes) -> None:
            if self._refused:
                return  # draining what the client still sends after the 431: dropped
            # While a head is being read, feed the parser no more than the room left in
            # the budget: what follows the head in the same chunk (the body, the next
            # request) is fed once the parser has said the head is complete.
            while data and self._in_head:
                room = max_header_bytes - self._head_bytes
                if room <= 0:
                    self._refuse_head(431)
                    return
                if self._head_timer is None:
                    self._head_timer = asyncio.get_running_loop().call_later(
                        header_timeout_s, self._refuse_head, 408
                    )
                piece, data = data[:room], data[room:]
                self._head_bytes += len(piece)
                super().data_received(piece)
                if self.transport.is_closing():
                    return
            if data:
                super().data_received(data)

        def on_headers_complete(self) -> None:
            self._in_head = False
            self._stop_head_timer()
            super().on_headers_complete()

        def connection_lost(self, exc: Exception | None) -> None:
            self._stop_head_timer()
            super().connection_lost(exc)

        def _stop_head_timer(self) -> None:
            if self._head_timer is not None:
                self._head_timer.cancel()
                self._head_timer = None

        def on_message_complete(self) -> None:
            super().on_message_complete()
            self._in_head, self._head_bytes = True, 0

        def _refuse_head(self, status: int) -> None:
            if self._refused or self.transport.is_closing():
                return
            self._stop_head_timer()
            if status == 431:
                reason, error_type = b"Request Header Fields Too Large", _TOO_LARGE
                message = f"the request line and headers exceed {max_header_bytes} bytes"
            else:
                reason, error_type = b"Request Timeout", _TOO_SLOW
                message = f"the request line and headers took over {header_timeout_s:g} s"
            metrics.HTTP_REJECTED_BODIES.labels(reason=error_type).inc()
            log.warning("request head refused (%d): %s", status, message)
            body = error_body(error_type, message)
            self.transport.write(
                b"HTTP/1.1 %d %s\r\n" % (status, reason)
                + b"content-type: application/json\r\n"
                + b"content-length: %d\r\n" % len(body)
                + b"connection: close\r\n\r\n"
                + body
            )
            # Half-close and drop what still arrives for a moment before closing: closing
            # with unread bytes makes the kernel reset the connection, and a client still
            # sending would lose the 431 it was sent.
            self._refused = True
            if self.transport.can_write_eof():
                self.transport.write_eof()
            asyncio.get_running_loop().call_later(LINGER_S, self.transport.close)

    return HeadLimitedProtocol
