"""The product endpoint, ``POST /v1/support/reply``.

Thin: the pipeline does the work. Admission to the engine comes first, before any
stage of the pipeline, so a shed reply costs almost nothing. Every stage before the first
token runs before the HTTP status is sent, so bad input, unknown
conversations and overload are proper 4xx/503 answers for streaming requests too. The
SSE stream is ``event: meta``, then ``event: token`` deltas, then ``event: final`` (the
same object the JSON answer is), then ``data: [DONE]``; an error mid-stream (a deadline,
the engine failing) is an ``event: error`` before ``[DONE]``. When the streamed reply
fails its check against the evidence, an ``event: replace`` with the whole composed answer
comes before ``final``: a client shows its text instead of the tokens it received.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import AsyncIterator

from fastapi import APIRouter, Request
from fastapi.responses import StreamingResponse

from core.errors import GenerationError, InvalidRequestError
from server.api.responses import StreamEvent, error_responses, event_stream
from server.deps import ReplyPipelineDep, SettingsDep, TenantDep
from server.http.json_body import StrictJsonRoute
from server.pipeline.answer import ReplyEvent, ReplyReplace, ReplyToken
from server.pipeline.prepared import ReplyRequest
from server.schemas.streaming import SSE_RESPONSES
from server.schemas.support import ReplyIn, ReplyMeta, ReplyOut
from server.security.access import requires
from server.store.api_keys import Role

router = APIRouter(prefix="/v1", tags=["support"], route_class=StrictJsonRoute)


@router.post(
    "/support/reply",
    **requires(Role.SERVICE),
    response_model=ReplyOut,
    responses={**error_responses(400, 401, 403, 404, 413, 429, 503, 504), **SSE_RESPONSES},
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
    reply_request = ReplyRequest(
        tenant=tenant,
        customer_id=body.customer_id,
        conversation_id=body.conversation_id,
        message=body.message,
        channel=body.channel,
        locale=body.locale,
        include_prompt=body.include_prompt,
        as_of=_timestamp(body.as_of),
        seed=body.seed,
    )
    admission = await pipeline.admit()  # before any stage: a shed reply costs nothing
    try:
        prepared = await pipeline.prepare(reply_request, admission)
        if body.stream:
            events = await pipeline.start(prepared, admission=admission)
            return event_stream(_named(events), error_event="error")
        events = await pipeline.start(prepared, request.is_disconnected, admission)
        async for event in events:
            if isinstance(event, ReplyOut):
                return event
    except BaseException:
        admission.release()  # idempotent: the generation may have released it already
        raise
    raise GenerationError("the reply ended without an answer")


async def _named(events: AsyncIterator[ReplyEvent]) -> AsyncIterator[StreamEvent]:
    """The pipeline's typed events as the stream's ``meta``, ``token``, ``replace`` and
    ``final``."""
    async for event in events:
        if isinstance(event, ReplyToken):
            yield "token", {"text": event.text}
        elif isinstance(event, ReplyReplace):
            yield "replace", {"text": event.text}
        elif isinstance(event, ReplyOut):  # before ReplyMeta: a ReplyOut is one too
            yield "final", event.model_dump(mode="json")
        elif isinstance(event, ReplyMeta):
            yield "meta", event.model_dump(mode="json")


def _timestamp(moment: dt.datetime | None) -> float | None:
    """An ISO 8601 ``as_of`` as a timestamp; one without an offset is read as UTC."""
    if moment is None:
        return None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    return moment.timestamp()
