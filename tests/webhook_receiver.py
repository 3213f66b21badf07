"""A real HTTP receiver on loopback for webhook tests: it records what it was sent and
answers with the statuses a test queues (200 once the queue is empty)."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar


class Receiver(BaseHTTPRequestHandler):
    statuses: ClassVar[list[int]] = []
    """Statuses to answer with, in order."""
    bodies: ClassVar[list[tuple[dict[str, str], bytes]]] = []
    """Each request's headers (lower-case names) and body, in arrival order."""

    def do_POST(self) -> None:
        body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
        Receiver.bodies.append(({k.lower(): v for k, v in self.headers.items()}, body))
        self.send_response(Receiver.statuses.pop(0) if Receiver.statuses else 200)
        self.end_headers()

    def log_message(self, *_: Any) -> None:
        return


@contextmanager
def receiving() -> Iterator[str]:
    """A fresh receiver on a free loopback port; its URL."""
    Receiver.statuses, Receiver.bodies = [], []
    server = ThreadingHTTPServer(("127.0.0.1", 0), Receiver)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/hook"
    finally:
        server.shutdown()
