"""``AdmittedEngine``: every generation passes admission control and keeps its deadline.

Chat, completions and the support reply pipeline all stream from the one engine built in
the app's lifespan, so wrapping that engine is the one place where the bounded queue and
the per-request deadline (``server.gate.admission``) apply to every path alike. A stream takes
its slot on the first pull (a stream that is never iterated holds nothing), gives it back
on the chunk that carries ``finish_reason`` or however the stream ends (error, client
gone, closed early), and is cut with ``DeadlineExceededError`` (or ``ShuttingDownError``
while draining) when its time limit strikes, after the engine request is aborted.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from models.engine.base import EngineClient, GenerationChunk
from server.gate.admission import AdmissionController
from server.gate.wrapper import EngineWrapper, StreamOpener


class AdmittedEngine(EngineWrapper):
    """Wraps an engine; streams wait for a slot and end at their deadline."""

    def __init__(self, inner: EngineClient, admission: AdmissionController) -> None:
        super().__init__(inner)
        self.admission = admission

    def wrap_stream(
        self, open_stream: StreamOpener, request_id: str
    ) -> AsyncIterator[GenerationChunk]:
        return self._admitted(open_stream, request_id)

    async def _admitted(
        self, open_stream: StreamOpener, request_id: str
    ) -> AsyncIterator[GenerationChunk]:
        slot = await self.admission.admit()
        stream = open_stream()
        try:
            while True:
                try:
                    async with asyncio.timeout_at(slot.time_limit) as guard:
                        slot.guarding(guard)
                        try:
                            chunk = await anext(stream)
                        finally:
                            slot.guarding(None)
                except StopAsyncIteration:
                    return
                except TimeoutError:
                    if not guard.expired():
                        raise  # a timeout of the engine's own, not ours
                    # The cancelled pull already made the engine drop the request; abort
                    # by id as well, in case an engine only stops when told explicitly.
                    await self.inner.abort(request_id)
                    raise slot.expired_error() from None
                if chunk.finish_reason is not None:
                    slot.release()
                yield chunk
        finally:
            slot.release()
            closer = getattr(stream, "aclose", None)
            if closer is not None:
                await closer()
