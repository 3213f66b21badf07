"""``AdmittedEngine``: every generation passes admission control and keeps its deadline.

Chat, completions and the support reply pipeline all stream from the one engine built in
the app's lifespan, so wrapping that engine is the one place where the bounded queue and
the per-request deadline (``server.admission``) apply to every path alike. A stream takes
its slot on the first pull (a stream that is never iterated holds nothing), gives it back
on the chunk that carries ``finish_reason`` or however the stream ends (error, client
gone, closed early), and is cut with ``DeadlineExceededError`` (or ``ShuttingDownError``
while draining) when its time limit strikes, after the engine request is aborted.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable, Sequence

from models.engine.base import (
    ChatMessage,
    EngineClient,
    GenerationChunk,
    ModelInfo,
    SamplingOptions,
)
from server.admission import AdmissionController


class AdmittedEngine:
    """Wraps an engine; streams wait for a slot and end at their deadline."""

    def __init__(self, inner: EngineClient, admission: AdmissionController) -> None:
        self.inner = inner
        self.admission = admission

    @property
    def ready(self) -> bool:
        return self.inner.ready

    @property
    def model_info(self) -> ModelInfo:
        return self.inner.model_info

    async def start(self) -> None:
        await self.inner.start()

    def stream_chat(
        self, messages: Sequence[ChatMessage], options: SamplingOptions, request_id: str
    ) -> AsyncIterator[GenerationChunk]:
        return self._admitted(
            lambda: self.inner.stream_chat(messages, options, request_id), request_id
        )

    def stream_completion(
        self, prompt: str, options: SamplingOptions, request_id: str
    ) -> AsyncIterator[GenerationChunk]:
        return self._admitted(
            lambda: self.inner.stream_completion(prompt, options, request_id), request_id
        )

    async def abort(self, request_id: str) -> None:
        await self.inner.abort(request_id)

    async def check_health(self) -> None:
        await self.inner.check_health()

    async def shutdown(self) -> None:
        await self.inner.shutdown()

    async def _admitted(
        self, open_stream: Callable[[], AsyncIterator[GenerationChunk]], request_id: str
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
