"""A conversation's state, handing it back from a person to the model, and feedback."""

from __future__ import annotations

from fastapi import APIRouter

from server.api.responses import error_responses
from server.deps import AuditDep, ConversationServiceDep, TenantDep
from server.http.json_body import StrictJsonRoute
from server.schemas.support import ConversationOut, FeedbackIn, FeedbackOut
from server.security.access import requires
from server.store.api_keys import Role

router = APIRouter(prefix="/v1/conversations", tags=["conversations"], route_class=StrictJsonRoute)

_ERRORS = error_responses(400, 401, 403, 404, 413, 429)


@router.get(
    "/{conversation_id}",
    **requires(Role.SERVICE),
    response_model=ConversationOut,
    responses=_ERRORS,
)
async def get_conversation(
    conversation_id: str, service: ConversationServiceDep, tenant: TenantDep
) -> ConversationOut:
    """A conversation's state: who answers it (mode), turns, ticket, summary."""
    return await service.conversation(tenant, conversation_id)


@router.post(
    "/{conversation_id}/release",
    **requires(Role.ADMIN),
    response_model=ConversationOut,
    responses=_ERRORS,
)
async def release_conversation(
    conversation_id: str, service: ConversationServiceDep, tenant: TenantDep, audit: AuditDep
) -> ConversationOut:
    """Hand an escalated conversation back to the model and close its ticket."""
    released = await service.release(tenant, conversation_id)
    await audit.record(tenant, "conversation.release", conversation_id)
    return released


@router.post(
    "/{conversation_id}/feedback",
    **requires(Role.SERVICE),
    response_model=FeedbackOut,
    status_code=201,
    responses=_ERRORS,
)
async def conversation_feedback(
    conversation_id: str, body: FeedbackIn, service: ConversationServiceDep, tenant: TenantDep
) -> FeedbackOut:
    """CSAT (1-5), thumbs and a comment on a conversation or one of its turns."""
    return await service.feedback(tenant, conversation_id, body)
