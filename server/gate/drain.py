"""Serve with uvicorn and shut down gracefully: drain generations within a bounded time.

On SIGTERM or SIGINT uvicorn stops accepting connections, then waits up to
``timeout_graceful_shutdown`` for requests in progress and cancels what is left. A
cancelled stream just stops: the client sees a truncated body, not an ending. So the
drain starts first (``AdmissionController.drain``): new and queued generations get 503
``shutting_down``, and running ones are cut ``STREAM_END_MARGIN_S`` before uvicorn's
limit, which lets each stream send an error event and ``data: [DONE]`` and abort its
engine request itself. Uvicorn's cancellation then finds nothing left to cancel, and the
process exits within the grace period plus the engine's own shutdown.
"""

from __future__ import annotations

import contextlib
import socket

import uvicorn
from fastapi import FastAPI

from server.gate.admission import AdmissionController

STREAM_END_MARGIN_S = 1.0
"""How long before uvicorn's deadline running streams are cut, to end them cleanly."""

STARTUP_FAILURE = 3
"""Exit status when the app never started (what ``uvicorn.run`` exits with)."""


def stream_cut_after(grace_s: float) -> float:
    """Seconds running generations get once draining starts, within ``grace_s``."""
    return max(0.0, grace_s - min(STREAM_END_MARGIN_S, grace_s / 4))


class DrainingServer(uvicorn.Server):
    """uvicorn's server that starts admission control's drain when it starts shutting down."""

    def __init__(self, config: uvicorn.Config, admission: AdmissionController) -> None:
        super().__init__(config)
        self._admission = admission

    async def shutdown(self, sockets: list[socket.socket] | None = None) -> None:
        grace_s = self.config.timeout_graceful_shutdown or 0.0
        self._admission.drain(stream_cut_after(grace_s))
        await super().shutdown(sockets)


def serve(app: FastAPI, config: uvicorn.Config) -> int:
    """Run ``app`` until a signal stops it; 0 after a clean stop, 3 if it never started."""
    server = DrainingServer(config, app.state.admission)
    with contextlib.suppress(KeyboardInterrupt):  # a second Ctrl-C during the drain
        server.run()
    return 0 if server.started else STARTUP_FAILURE
