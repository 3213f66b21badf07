"""The work behind the OpenAI-compatible endpoints: requests in, OpenAI objects out.

Routes stay thin; this module checks what only it can (the model name, the output
limit), opens one generation through the ``EngineGate`` (admission, first chunk before
the HTTP status, metrics, disconnects, aborts: see ``server/gate/engine_gate.py``) and
turns the engine's chunks into OpenAI response objects or streamed chunk objects.
"""

from __future__ import annotations

import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass
from typing import Any

from core.errors import (
    ContextLengthExceededError,
    InvalidRequestError,
    ModelNotFoundError,
)
from models.engine.base import ChatMessage, GenerationChunk, SamplingOptions
from server.gate.engine_gate import DisconnectCheck, EngineGate, GenerationCall
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


class GenerationService:
    """Serves chat and text completions from one ``EngineClient``."""

    def __init__(
        self,
        gate: EngineGate,
        model_aliases: tuple[str, ...] = (),
        max_output_tokens: int | None = None,
    ) -> None:
        self._gate = gate
        self._aliases = set(model_aliases)
        self._max_output_tokens = max_output_tokens

    def list_models(self) -> ModelList:
        info = self._gate.model_info
        card = ModelCard(
            id=info.name,
            created=info.created,
            owned_by=info.owned_by,
            max_model_len=info.max_model_len,
        )
        return ModelList(data=[card])

    def _check_model(self, requested: str) -> str:
        served = self._gate.model_info.name
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
        context = self._gate.model_info.max_model_len
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
    ) -> ChatCompletionResponse | AsyncIterator[dict[str, Any]]:
        """A full response, or (when ``stream``) an iterator of chunk objects."""
        self._check_output_limit(request)
        model = self._check_model(request.model)
        messages = [ChatMessage(m.engine_role(), m.text()) for m in request.messages]
        call = await self._gate.open(
            "chat", messages, _options(request), affinity=request.user or None
        )
        answer = _Answer.of(call, model)
        if request.stream:
            return _chunks(answer, request.include_usage)
        text, last = await call.collect(disconnected)
        message = ChatChoiceMessage(content=text)
        return ChatCompletionResponse(
            id=answer.response_id,
            created=answer.created,
            model=model,
            choices=[ChatChoice(message=message, finish_reason=last.finish_reason)],
            usage=_usage(last),
        )

    async def complete(
        self, request: CompletionRequest, disconnected: DisconnectCheck
    ) -> CompletionResponse | AsyncIterator[dict[str, Any]]:
        """Text completion, full or streamed."""
        self._check_output_limit(request)
        model = self._check_model(request.model)
        call = await self._gate.open(
            "completion", request.prompt_text(), _options(request), affinity=request.user or None
        )
        answer = _Answer.of(call, model)
        if request.stream:
            return _chunks(answer, request.include_usage)
        text, last = await call.collect(disconnected)
        return CompletionResponse(
            id=answer.response_id,
            created=answer.created,
            model=model,
            choices=[CompletionChoice(text=text, finish_reason=last.finish_reason)],
            usage=_usage(last),
        )


@dataclass(frozen=True)
class _Answer:
    """What every chunk of one OpenAI answer repeats: its id, time, model and object kind."""

    call: GenerationCall
    response_id: str
    created: int
    model: str

    @classmethod
    def of(cls, call: GenerationCall, model: str) -> _Answer:
        prefix = "chatcmpl" if call.endpoint == "chat" else "cmpl"
        return cls(call, f"{prefix}-{call.request_id}", int(time.time()), model)


async def _chunks(answer: _Answer, include_usage: bool) -> AsyncIterator[dict[str, Any]]:
    """OpenAI's streamed chunk objects (the API frames them as SSE and ends the stream).

    The call counts errors and aborts the engine request however the stream ends,
    a client that went away included (the server then cancels this body).
    """
    chat = answer.call.endpoint == "chat"
    encode = _chat_event if chat else _completion_event
    if chat:
        yield _chat_event(answer, {"role": "assistant", "content": ""}, None)
    last = answer.call.first
    async for chunk in answer.call.chunks():
        last = chunk
        if chunk.text or chunk.finish_reason:
            yield encode(answer, chunk.text, chunk.finish_reason)
    if include_usage:
        yield {**_envelope(answer), "choices": [], "usage": _usage(last).model_dump()}


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


def _envelope(answer: _Answer) -> dict[str, Any]:
    kind = "chat.completion.chunk" if answer.call.endpoint == "chat" else "text_completion"
    return {
        "id": answer.response_id,
        "object": kind,
        "created": answer.created,
        "model": answer.model,
    }


def _chat_event(answer: _Answer, delta: dict[str, str] | str, finish: str | None) -> dict[str, Any]:
    content = {"content": delta} if isinstance(delta, str) else delta
    if isinstance(delta, str) and not delta and finish:
        content = {}
    choice = {"index": 0, "delta": content, "logprobs": None, "finish_reason": finish}
    return {**_envelope(answer), "choices": [choice]}


def _completion_event(answer: _Answer, text: str, finish: str | None) -> dict[str, Any]:
    choice = {"index": 0, "text": text, "logprobs": None, "finish_reason": finish}
    return {**_envelope(answer), "choices": [choice]}
