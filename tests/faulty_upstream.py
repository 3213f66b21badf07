"""An OpenAI-protocol server that fails on purpose, for faults a real engine cannot produce.

A real vLLM server does not answer 429 or 500 on demand. This one speaks the same
protocol as the replicas the remote engine talks to (``GET /v1/models`` lists a model,
``POST /v1/chat/completions`` answers in the OpenAI error shape) and fails every
generation with the status it was given, counting how many it received.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager

import uvicorn
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse
from starlette.routing import Route

from tests.servers import free_port


class FaultyUpstream:
    """Serves a model list, then fails each chat completion with ``status``."""

    def __init__(self, status: int, model: str = "smollm2-135m-instruct") -> None:
        self.status = status
        self.model = model
        self.generations = 0
        self.sessions: list[str | None] = []
        """The ``X-Concierge-Session`` header of each generation asked (None: absent)."""
        self.url = ""

    async def _models(self, _: Request) -> JSONResponse:
        card = {"id": self.model, "object": "model", "owned_by": "test", "max_model_len": 2048}
        return JSONResponse({"object": "list", "data": [card]})

    async def _chat(self, request: Request) -> JSONResponse:
        self.generations += 1
        self.sessions.append(request.headers.get("x-concierge-session"))
        error = {"type": "injected_fault", "message": f"injected HTTP {self.status}", "param": None}
        return JSONResponse({"error": error}, status_code=self.status)

    @contextmanager
    def running(self) -> Iterator[FaultyUpstream]:
        """Serve on a free loopback port in a background thread."""
        app = Starlette(
            routes=[
                Route("/v1/models", self._models),
                Route("/v1/chat/completions", self._chat, methods=["POST"]),
            ]
        )
        port = free_port()
        server = uvicorn.Server(
            uvicorn.Config(app, host="127.0.0.1", port=port, log_level="warning")
        )
        thread = threading.Thread(target=server.run, daemon=True)
        thread.start()
        deadline = time.monotonic() + 10
        while not server.started and time.monotonic() < deadline:
            time.sleep(0.05)
        self.url = f"http://127.0.0.1:{port}"
        try:
            yield self
        finally:
            server.should_exit = True
            thread.join(timeout=10)
