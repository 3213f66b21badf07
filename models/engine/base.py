"""The contract every generation engine meets, and the plain data that crosses it.

The HTTP layer and the reply pipeline only ever see ``EngineClient``; whether tokens
come from vLLM in this process or from ``vllm serve`` replicas over HTTP is a setting.
An engine is built cheaply, loads in ``start()``, streams ``GenerationChunk`` deltas,
and raises ``core.errors`` exceptions (never returns error objects).
"""

from __future__ import annotations

from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Literal, Protocol, runtime_checkable

Role = Literal["system", "user", "assistant"]
FinishReason = Literal["stop", "length", "abort"]


@dataclass(frozen=True)
class ChatMessage:
    """One turn of a conversation, as plain text."""

    role: Role
    content: str


@dataclass(frozen=True)
class SamplingOptions:
    """Sampling parameters shared by every engine; None means the engine's default."""

    max_tokens: int | None = None
    temperature: float = 1.0
    top_p: float = 1.0
    seed: int | None = None
    stop: tuple[str, ...] = ()
    presence_penalty: float = 0.0
    frequency_penalty: float = 0.0
    ignore_eos: bool = False
    """Keep generating past end-of-sequence (benchmarks force a fixed output length)."""


@dataclass
class GenerationChunk:
    """What arrived since the previous chunk, plus running counts.

    ``output_tokens`` is cumulative, so the last chunk carries the totals for usage.
    ``finish_reason`` is set only on the last chunk.
    """

    text: str
    prompt_tokens: int
    output_tokens: int
    finish_reason: FinishReason | None = None


@dataclass(frozen=True)
class ModelInfo:
    """What ``/v1/models`` shows and what request validation needs."""

    name: str
    max_model_len: int | None
    owned_by: str = "concierge"
    created: int = 0
    details: dict[str, str] = field(default_factory=dict)


@runtime_checkable
class EngineClient(Protocol):
    """A running generation engine.

    ``stream_chat`` and ``stream_completion`` validate eagerly: a request that can
    never succeed (prompt longer than the context, say) raises on the first
    ``__anext__`` before any text is produced, so callers can still answer 400.
    Closing the iterator early aborts the request inside the engine.
    """

    @property
    def ready(self) -> bool:
        """True once ``start()`` finished and the engine has not died since."""
        ...

    @property
    def model_info(self) -> ModelInfo:
        """The served model; only valid once ready."""
        ...

    async def start(self) -> None:
        """Load weights / connect; heavy, called once from the app lifespan."""
        ...

    def stream_chat(
        self,
        messages: Sequence[ChatMessage],
        options: SamplingOptions,
        request_id: str,
        affinity: str | None = None,
    ) -> AsyncIterator[GenerationChunk]:
        """Stream a chat completion for ``messages`` (chat template applied by the engine).

        ``affinity`` (a conversation's id) asks that requests with the same key reach the
        same replica, whose prefix cache holds their earlier turns; one engine ignores it.
        """
        ...

    def stream_completion(
        self,
        prompt: str,
        options: SamplingOptions,
        request_id: str,
        affinity: str | None = None,
    ) -> AsyncIterator[GenerationChunk]:
        """Stream a raw-text completion of ``prompt`` (``affinity`` as for chat)."""
        ...

    async def judge_yes_no(
        self, prompts: Sequence[Sequence[ChatMessage]], request_id: str
    ) -> list[float]:
        """For each chat prompt (a yes/no question), the probability of a "yes" answer.

        The model answers with one greedy token; the score is ``P(yes) / (P(yes) + P(no))``
        over its top candidates (``models.engine.judge``), 0.5 when it says neither. All
        prompts are submitted at once, so the engine batches them. Raises ``core.errors``
        exceptions like the streams; cancelling the call aborts every prompt.
        """
        ...

    async def abort(self, request_id: str) -> None:
        """Stop a running request; unknown ids are ignored."""
        ...

    async def check_health(self) -> None:
        """Return if the engine can serve; raise ``EngineUnavailableError`` otherwise."""
        ...

    async def shutdown(self) -> None:
        """Release the engine's processes, connections and memory."""
        ...
