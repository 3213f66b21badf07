"""Escalation tickets: what the hand-over to a person left for the help desk."""

from __future__ import annotations

from typing import Annotated, Literal

from fastapi import APIRouter, Query

from server.api.responses import error_responses
from server.deps import ConversationServiceDep, TenantDep
from server.http.json_body import StrictJsonRoute
from server.schemas.insights import TicketOut, TicketsOut
from server.security.access import requires
from server.store.api_keys import Role

router = APIRouter(prefix="/admin/tickets", tags=["tickets"], route_class=StrictJsonRoute)

_ERRORS = error_responses(400, 401, 403, 404, 413, 429)


@router.get("", **requires(Role.ADMIN), response_model=TicketsOut, responses=_ERRORS)
async def list_tickets(
    service: ConversationServiceDep,
    tenant: TenantDep,
    status: Literal["open", "closed"] | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> TicketsOut:
    """Escalation tickets, newest first, with transcript and webhook delivery state."""
    return await service.tickets(tenant, status, limit)


@router.get("/{ticket_id}", **requires(Role.ADMIN), response_model=TicketOut, responses=_ERRORS)
async def get_ticket(
    ticket_id: str, service: ConversationServiceDep, tenant: TenantDep
) -> TicketOut:
    return await service.ticket(tenant, ticket_id)
