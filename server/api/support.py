"""The product endpoint, ``POST /v1/support/reply``, and the conversation routes.

Thin: the pipeline does the work. Every stage before the first token runs before the
HTTP status is sent, so bad input and unknown conversations are proper 4xx answers
for streaming requests too. The SSE stream is ``event: meta``, then ``event: token``
deltas, then ``event: final`` (the same object the JSON answer is), then
``data: [DONE]``; an error mid-stream is an ``event: error`` before ``[DONE]``.
"""

from __future__ import annotations

import json
import logging
from collections.abc import AsyncIterator
from typing import Any

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from core.errors import ConciergeError, InvalidRequestError
from server.deps import (
    AuditDep,
    ReplyPipelineDep,
    SettingsDep,
    SupportServiceDep,
    TenantDep,
)
from server.pipeline.reply import ReplyEvent, ReplyRequest
from server.schemas.errors import ErrorResponse
from server.schemas.streaming import SSE_RESPONSES
from server.schemas.support import (
    ConversationOut,
    FeedbackIn,
    FeedbackOut,
    ReplyIn,
    ReplyOut,
)
from server.security.access import requires
from server.store.api_keys import Role

log = logging.getLogger(__name__)

router = APIRouter(prefix="/v1", tags=["support"])

_ERRORS: dict[int | str, dict[str, object]] = {
    status: {"model": ErrorResponse} for status in (400, 401, 403, 404, 413, 429, 503)
}
_SSE_HEADERS = {"Cache-Control": "no-cache", "X-Accel-Buffering": "no"}


@router.post(
    "/support/reply",
    **requires(Role.SERVICE),
    response_model=ReplyOut,
    responses={**_ERRORS, **SSE_RESPONSES},
)
async def support_reply(
    body: ReplyIn,
    request: Request,
    pipeline: ReplyPipelineDep,
    tenant: TenantDep,
    settings: SettingsDep,
) -> ReplyOut | StreamingResponse:
    """Answer one customer message: personalized, grounded, in the brand's voice."""
    if len(body.message) > settings.max_message_chars:
        raise InvalidRequestError(
            f"message is {len(body.message)} characters; the limit is {settings.max_message_chars}",
            param="message",
        )
    prepared = await pipeline.prepare(
        ReplyRequest(
            tenant=tenant,
            customer_id=body.customer_id,
            conversation_id=body.conversation_id,
            message=body.message,
            channel=body.channel,
            locale=body.locale,
            include_prompt=body.include_prompt,
        )
    )
    events = pipeline.run(prepared, request.is_disconnected)
    if body.stream:
        return StreamingResponse(_sse(events), media_type="text/event-stream", headers=_SSE_HEADERS)
    final: dict[str, Any] | None = None
    async for event in events:
        if event.kind == "final":
            assert isinstance(event.data, dict)
            final = event.data
    assert final is not None
    return ReplyOut.model_validate(final)


async def _sse(events: AsyncIterator[ReplyEvent]) -> AsyncIterator[str]:
    try:
        async for event in events:
            data = {"text": event.data} if isinstance(event.data, str) else event.data
            yield _event(event.kind, data)
    except ConciergeError as exc:
        error = {"type": exc.error_type, "message": exc.message, "param": exc.param}
        yield _event("error", {"error": error})
    except Exception:
        log.exception("support reply stream failed")
        error = {"type": "internal_error", "message": "the reply failed", "param": None}
        yield _event("error", {"error": error})
    yield "data: [DONE]\n\n"


def _event(kind: str, data: dict[str, Any]) -> str:
    payload = json.dumps(data, separators=(",", ":"), ensure_ascii=False)
    return f"event: {kind}\ndata: {payload}\n\n"


@router.get(
    "/conversations/{conversation_id}",
    **requires(Role.SERVICE),
    response_model=ConversationOut,
    responses=_ERRORS,
)
async def get_conversation(
    conversation_id: str, service: SupportServiceDep, tenant: TenantDep
) -> ConversationOut:
    """A conversation's state: who answers it (mode), turns, ticket, summary."""
    return await service.conversation(tenant, conversation_id)


@router.post(
    "/conversations/{conversation_id}/release",
    **requires(Role.ADMIN),
    response_model=ConversationOut,
    responses=_ERRORS,
)
async def release_conversation(
    conversation_id: str, service: SupportServiceDep, tenant: TenantDep, audit: AuditDep
) -> ConversationOut:
    """Hand an escalated conversation back to the model and close its ticket."""
    released = await service.release(tenant, conversation_id)
    await audit.record(tenant, "conversation.release", conversation_id)
    return released


@router.post(
    "/conversations/{conversation_id}/feedback",
    **requires(Role.SERVICE),
    response_model=FeedbackOut,
    status_code=201,
    responses=_ERRORS,
)
async def conversation_feedback(
    conversation_id: str, body: FeedbackIn, service: SupportServiceDep, tenant: TenantDep
) -> FeedbackOut:
    """CSAT (1-5), thumbs and a comment on a conversation or one of its turns."""
    return await service.feedback(tenant, conversation_id, body)
