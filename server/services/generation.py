"""The work behind the OpenAI-compatible endpoints: requests in, engine chunks out.

Routes stay thin; this module turns a validated request into engine calls and the
engine's chunks into OpenAI response objects or SSE events. Two rules matter here:

* Validation errors must still become 400s for streaming requests, so the first
  chunk is pulled *before* the HTTP status is sent.
* A client that goes away must not leave work in the engine. Closing the stream
  under cancellation cannot await anything, so the abort is scheduled as its own task.
"""

from __future__ import annotations

import asyncio
import json
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass
from typing import Any, Literal

from core import metrics
from core.errors import (
    ClientClosedRequestError,
    ConciergeError,
    ContextLengthExceededError,
    GenerationError,
    InvalidRequestError,
    ModelNotFoundError,
)
from models.engine.base import ChatMessage, EngineClient, GenerationChunk, SamplingOptions
from server.schemas.openai import (
    ChatChoice,
    ChatChoiceMessage,
    ChatCompletionRequest,
    ChatCompletionResponse,
    CompletionChoice,
    CompletionRequest,
    CompletionResponse,
    ModelCard,
    ModelList,
    Usage,
)

log = logging.getLogger(__name__)

Endpoint = Literal["chat", "completion"]
DisconnectCheck = Callable[[], Awaitable[bool]]
_DISCONNECT_POLL_S = 0.25


@dataclass
class _Call:
    """One generation call in progress: identity, timing and the engine stream."""

    endpoint: Endpoint
    request_id: str
    response_id: str
    created: int
    model: str
    started: float
    stream: AsyncIterator[GenerationChunk]
    first_token_seen: bool = False

    def observe(self, chunk: GenerationChunk) -> None:
        if chunk.text and not self.first_token_seen:
            self.first_token_seen = True
            metrics.GENERATION_TIME_TO_FIRST_TOKEN.labels(endpoint=self.endpoint).observe(
                time.monotonic() - self.started
            )
        if chunk.finish_reason is not None:
            metrics.GENERATION_REQUESTS.labels(self.endpoint, chunk.finish_reason).inc()
            metrics.GENERATION_OUTPUT_TOKENS.labels(self.endpoint).observe(chunk.output_tokens)
            metrics.GENERATION_PROMPT_TOKENS.labels(self.endpoint).observe(chunk.prompt_tokens)


class GenerationService:
    """Serves chat and text completions from one ``EngineClient``."""

    def __init__(
        self,
        engine: EngineClient,
        model_aliases: tuple[str, ...] = (),
        max_output_tokens: int | None = None,
    ) -> None:
        self._engine = engine
        self._aliases = set(model_aliases)
        self._max_output_tokens = max_output_tokens
        self._background: set[asyncio.Task[None]] = set()

    def list_models(self) -> ModelList:
        info = self._engine.model_info
        card = ModelCard(
            id=info.name,
            created=info.created,
            owned_by=info.owned_by,
            max_model_len=info.max_model_len,
        )
        return ModelList(data=[card])

    def _check_model(self, requested: str) -> str:
        served = self._engine.model_info.name
        if requested != served and requested not in self._aliases:
            raise ModelNotFoundError(
                f"model {requested!r} is not served here; this server serves {served!r}",
                param="model",
            )
        return served

    def _check_output_limit(self, request: ChatCompletionRequest | CompletionRequest) -> None:
        """Refuse an output length no one can get, before the engine sees or sizes anything.

        An absurd ``max_tokens`` (10**18, say) is thus a cheap 400 rather than a request
        that waits for a slot and lets the engine plan for it. Past the model's context it
        is ``context_length_exceeded``; past ``max_output_tokens`` a plain invalid request.
        """
        context = self._engine.model_info.max_model_len
        cap = self._max_output_tokens
        for param in ("max_completion_tokens", "max_tokens"):  # the first is copied to the second
            requested = getattr(request, param, None)
            if requested is None:
                continue
            if context and requested > context:
                most = min(context, cap or context)
                raise ContextLengthExceededError(
                    f"{param}={requested} exceeds the model's context of {context} tokens; "
                    f"ask for at most {most}",
                    param=param,
                )
            if cap and requested > cap:
                raise InvalidRequestError(
                    f"{param}={requested} exceeds this server's limit of {cap} output tokens; "
                    f"ask for at most {cap}",
                    param=param,
                )

    async def chat(
        self, request: ChatCompletionRequest, disconnected: DisconnectCheck
    ) -> ChatCompletionResponse | AsyncIterator[str]:
        """A full response, or (when ``stream``) an iterator of SSE event strings."""
        self._check_output_limit(request)
        messages = [ChatMessage(m.engine_role(), m.text()) for m in request.messages]
        options = _options(request)
        call, first = await self._begin(
            "chat", request.model, lambda rid: self._engine.stream_chat(messages, options, rid)
        )
        if request.stream:
            return self._sse(call, first, request.include_usage)
        text, last = await self._collect(call, first, disconnected)
        message = ChatChoiceMessage(content=text)
        return ChatCompletionResponse(
            id=call.response_id,
            created=call.created,
            model=call.model,
            choices=[ChatChoice(message=message, finish_reason=last.finish_reason)],
            usage=_usage(last),
        )

    async def complete(
        self, request: CompletionRequest, disconnected: DisconnectCheck
    ) -> CompletionResponse | AsyncIterator[str]:
        """Text completion, full or streamed."""
        self._check_output_limit(request)
        prompt, options = request.prompt_text(), _options(request)
        call, first = await self._begin(
            "completion",
            request.model,
            lambda rid: self._engine.stream_completion(prompt, options, rid),
        )
        if request.stream:
            return self._sse(call, first, request.include_usage)
        text, last = await self._collect(call, first, disconnected)
        return CompletionResponse(
            id=call.response_id,
            created=call.created,
            model=call.model,
            choices=[CompletionChoice(text=text, finish_reason=last.finish_reason)],
            usage=_usage(last),
        )

    async def _begin(
        self,
        endpoint: Endpoint,
        requested_model: str,
        open_stream: Callable[[str], AsyncIterator[GenerationChunk]],
    ) -> tuple[_Call, GenerationChunk]:
        """Check the model, open the engine stream and pull its first chunk."""
        model = self._check_model(requested_model)
        request_id = uuid.uuid4().hex
        prefix = "chatcmpl" if endpoint == "chat" else "cmpl"
        call = _Call(
            endpoint=endpoint,
            request_id=request_id,
            response_id=f"{prefix}-{request_id}",
            created=int(time.time()),
            model=model,
            started=time.monotonic(),
            stream=open_stream(request_id),
        )
        return call, await self._first_chunk(call)

    async def _first_chunk(self, call: _Call) -> GenerationChunk:
        """Pull the first chunk so that validation errors surface before any response."""
        try:
            chunk = await anext(call.stream)
        except StopAsyncIteration as exc:
            raise GenerationError("the engine ended the request without output") from exc
        except ConciergeError:
            metrics.GENERATION_REQUESTS.labels(call.endpoint, "error").inc()
            raise
        call.observe(chunk)
        return chunk

    async def _collect(
        self, call: _Call, first: GenerationChunk, disconnected: DisconnectCheck
    ) -> tuple[str, GenerationChunk]:
        """Gather a whole reply, aborting it if the client disconnects meanwhile."""

        async def gather() -> tuple[str, GenerationChunk]:
            parts, last = [first.text], first
            async for chunk in call.stream:
                call.observe(chunk)
                parts.append(chunk.text)
                last = chunk
            return "".join(parts), last

        if first.finish_reason is not None:
            return first.text, first
        task = asyncio.create_task(gather())
        try:
            while True:
                done, _ = await asyncio.wait({task}, timeout=_DISCONNECT_POLL_S)
                if done:
                    try:
                        return task.result()
                    except ConciergeError:
                        metrics.GENERATION_REQUESTS.labels(call.endpoint, "error").inc()
                        raise
                if await disconnected():
                    log.info("client disconnected; aborting %s", call.request_id)
                    task.cancel()
                    metrics.GENERATION_REQUESTS.labels(call.endpoint, "abort").inc()
                    raise ClientClosedRequestError("the client closed the connection")
        finally:
            if not task.done():
                task.cancel()
                self._abort_later(call.request_id)

    async def _sse(
        self, call: _Call, first: GenerationChunk, include_usage: bool
    ) -> AsyncIterator[str]:
        """OpenAI SSE framing; always ends with ``data: [DONE]``, even after an error."""
        finished = first.finish_reason is not None
        encode = _chat_event if call.endpoint == "chat" else _completion_event
        try:
            if call.endpoint == "chat":
                yield _data(_chat_event(call, {"role": "assistant", "content": ""}, None))
            last = first
            if first.text or finished:
                yield _data(encode(call, first.text, first.finish_reason))
            if not finished:
                async for chunk in call.stream:
                    call.observe(chunk)
                    last = chunk
                    if chunk.text or chunk.finish_reason:
                        yield _data(encode(call, chunk.text, chunk.finish_reason))
                finished = True
            if include_usage:
                usage = _usage(last).model_dump()
                yield _data({**_envelope(call), "choices": [], "usage": usage})
        except ConciergeError as exc:
            finished = True
            metrics.GENERATION_REQUESTS.labels(call.endpoint, "error").inc()
            yield _data(
                {"error": {"type": exc.error_type, "message": exc.message, "param": exc.param}}
            )
        except Exception:
            finished = True
            log.exception("stream %s failed", call.request_id)
            metrics.GENERATION_REQUESTS.labels(call.endpoint, "error").inc()
            yield _data(
                {"error": {"type": "internal_error", "message": "generation failed", "param": None}}
            )
        finally:
            if not finished:  # the client went away mid-stream
                metrics.GENERATION_REQUESTS.labels(call.endpoint, "abort").inc()
                self._abort_later(call.request_id)
        yield "data: [DONE]\n\n"

    def _abort_later(self, request_id: str) -> None:
        """Abort outside the (possibly cancelled) caller, keeping a reference until done."""
        task = asyncio.get_running_loop().create_task(self._engine.abort(request_id))
        self._background.add(task)
        task.add_done_callback(self._background.discard)


def _options(request: ChatCompletionRequest | CompletionRequest) -> SamplingOptions:
    return SamplingOptions(
        max_tokens=request.max_tokens,
        temperature=request.temperature,
        top_p=request.top_p,
        seed=request.seed,
        stop=request.stop_sequences(),
        presence_penalty=request.presence_penalty,
        frequency_penalty=request.frequency_penalty,
        ignore_eos=request.ignore_eos,
    )


def _usage(chunk: GenerationChunk) -> Usage:
    return Usage(
        prompt_tokens=chunk.prompt_tokens,
        completion_tokens=chunk.output_tokens,
        total_tokens=chunk.prompt_tokens + chunk.output_tokens,
    )


def _envelope(call: _Call) -> dict[str, Any]:
    kind = "chat.completion.chunk" if call.endpoint == "chat" else "text_completion"
    return {"id": call.response_id, "object": kind, "created": call.created, "model": call.model}


def _chat_event(call: _Call, delta: dict[str, str] | str, finish: str | None) -> dict[str, Any]:
    content = {"content": delta} if isinstance(delta, str) else delta
    if isinstance(delta, str) and not delta and finish:
        content = {}
    choice = {"index": 0, "delta": content, "logprobs": None, "finish_reason": finish}
    return {**_envelope(call), "choices": [choice]}


def _completion_event(call: _Call, text: str, finish: str | None) -> dict[str, Any]:
    choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": finish}
    return {**_envelope(call), "choices": [choice]}


def _data(payload: dict[str, Any]) -> str:
    return f"data: {json.dumps(payload, separators=(',', ':'), ensure_ascii=False)}\n\n"
