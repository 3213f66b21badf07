"""``MeteredEngine``: engine-level saturation and pacing metrics for any ``EngineClient``.

Every generation (chat, completion, support reply) passes through the engine, so the
engine boundary is the one place where "how many requests does the engine hold now"
and "how fast do tokens come out" can be measured the same way for the in-process
vLLM engine and for remote ``vllm serve`` replicas. The wrapper adds no behaviour:
it forwards every call and only observes the stream.
"""

from __future__ import annotations

import time
from collections.abc import AsyncIterator

from core import metrics
from models.engine.base import GenerationChunk
from server.gate.wrapper import EngineWrapper, StreamOpener


class MeteredEngine(EngineWrapper):
    """Wraps an engine; counts in-flight generations and inter-token latency."""

    def wrap_stream(
        self, open_stream: StreamOpener, request_id: str
    ) -> AsyncIterator[GenerationChunk]:
        return _metered(open_stream())


async def _metered(stream: AsyncIterator[GenerationChunk]) -> AsyncIterator[GenerationChunk]:
    """Yield ``stream`` unchanged; in flight from the first pull until it finishes or closes.

    The count drops on the chunk that carries ``finish_reason``, not when the consumer
    closes the iterator: a caller that stops reading after the last chunk (and leaves
    the generator to the garbage collector) must not hold the gauge up, because the
    autoscaler reads it. ``finally`` covers aborts and errors.

    Inter-token latency is the gap between chunks that carry text, divided by the
    tokens the later chunk added, so a remote engine that batches several tokens into
    one SSE event is measured per token like the in-process engine.
    """
    metrics.GENERATION_IN_FLIGHT.inc()
    counted = True
    last_text_at: float | None = None
    last_tokens = 0
    try:
        async for chunk in stream:
            if chunk.text:
                now = time.perf_counter()
                added = max(chunk.output_tokens - last_tokens, 1)
                if last_text_at is not None:
                    gap = (now - last_text_at) / added
                    for _ in range(added):
                        metrics.GENERATION_INTER_TOKEN_LATENCY.observe(gap)
                last_text_at = now
                last_tokens = chunk.output_tokens
            if chunk.finish_reason is not None and counted:
                counted = False
                metrics.GENERATION_IN_FLIGHT.dec()
            yield chunk
    finally:
        if counted:
            metrics.GENERATION_IN_FLIGHT.dec()
        closer = getattr(stream, "aclose", None)
        if closer is not None:
            await closer()
