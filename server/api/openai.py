"""OpenAI-compatible routes. Thin: validation is in the schemas, work in GenerationService."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from server.api.responses import StreamEvent, error_responses, event_stream
from server.deps import EmbeddingServiceDep, GenerationDep
from server.http.json_body import StrictJsonRoute
from server.schemas.openai import (
    ChatCompletionRequest,
    ChatCompletionResponse,
    CompletionRequest,
    CompletionResponse,
    ModelList,
)
from server.schemas.retrieval import EmbeddingRequest, EmbeddingResponse
from server.schemas.streaming import SSE_RESPONSES
from server.security.access import requires
from server.store.api_keys import Role

router = APIRouter(prefix="/v1", tags=["openai"], route_class=StrictJsonRoute)

_ERRORS = error_responses(400, 401, 403, 404, 413, 429, 503, 504)
_STREAMING = {**_ERRORS, **SSE_RESPONSES}


def _sse(chunks: AsyncIterator[dict[str, Any]]) -> StreamingResponse:
    """OpenAI streams: unnamed events, an error as ``data: {"error": ...}``, then [DONE]."""

    async def events() -> AsyncIterator[StreamEvent]:
        async for chunk in chunks:
            yield None, chunk

    return event_stream(events())


@router.get("/models", **requires(Role.SERVICE), response_model=ModelList, responses=_ERRORS)
async def list_models(service: GenerationDep) -> ModelList:
    """The served model, with its context length."""
    return service.list_models()


@router.post(
    "/chat/completions",
    **requires(Role.SERVICE),
    response_model=ChatCompletionResponse,
    responses=_STREAMING,
)
async def chat_completions(
    body: ChatCompletionRequest, request: Request, service: GenerationDep
) -> ChatCompletionResponse | StreamingResponse:
    """Chat completion; ``stream: true`` answers with SSE ending in ``data: [DONE]``."""
    result = await service.chat(body, request.is_disconnected)
    return result if isinstance(result, ChatCompletionResponse) else _sse(result)


@router.post(
    "/completions",
    **requires(Role.SERVICE),
    response_model=CompletionResponse,
    responses=_STREAMING,
)
async def completions(
    body: CompletionRequest, request: Request, service: GenerationDep
) -> CompletionResponse | StreamingResponse:
    """Text completion of one prompt."""
    result = await service.complete(body, request.is_disconnected)
    return result if isinstance(result, CompletionResponse) else _sse(result)


@router.post(
    "/embeddings", **requires(Role.SERVICE), response_model=EmbeddingResponse, responses=_ERRORS
)
async def embeddings(body: EmbeddingRequest, service: EmbeddingServiceDep) -> EmbeddingResponse:
    """Sentence embeddings (unit length) from the model the KB is indexed with."""
    return await service.create(body)
