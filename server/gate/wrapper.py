"""``EngineWrapper``: the base of wrappers that forward every engine call and wrap its streams.

Concierge layers behaviour around the one engine built in the lifespan (metering,
admission control). Each layer changes only what happens to a generation stream; this
base forwards everything else unchanged, so a layer is just its ``wrap_stream``.
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Callable, Sequence

from models.engine.base import (
    ChatMessage,
    EngineClient,
    GenerationChunk,
    ModelInfo,
    SamplingOptions,
)

StreamOpener = Callable[[], AsyncIterator[GenerationChunk]]
"""Opens the inner engine's stream: called by ``wrap_stream`` when it is ready to pull."""


class EngineWrapper:
    """An ``EngineClient`` around ``inner``: calls forwarded, streams through ``wrap_stream``."""

    def __init__(self, inner: EngineClient) -> None:
        self.inner = inner

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
        return self.wrap_stream(
            lambda: self.inner.stream_chat(messages, options, request_id), request_id
        )

    def stream_completion(
        self, prompt: str, options: SamplingOptions, request_id: str
    ) -> AsyncIterator[GenerationChunk]:
        return self.wrap_stream(
            lambda: self.inner.stream_completion(prompt, options, request_id), request_id
        )

    async def abort(self, request_id: str) -> None:
        await self.inner.abort(request_id)

    async def check_health(self) -> None:
        await self.inner.check_health()

    async def shutdown(self) -> None:
        await self.inner.shutdown()

    def wrap_stream(
        self, open_stream: StreamOpener, request_id: str
    ) -> AsyncIterator[GenerationChunk]:
        """The stream a caller gets; the base class hands out the inner stream itself."""
        return open_stream()
