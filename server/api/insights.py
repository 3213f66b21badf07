"""What ops and admins read about the service: analytics and the audit log."""

from __future__ import annotations

import asyncio
from dataclasses import asdict
from typing import Annotated

from fastapi import APIRouter, Query

from server.api.responses import error_responses
from server.deps import AuditDep, ConversationServiceDep, TenantDep
from server.http.json_body import StrictJsonRoute
from server.schemas.insights import AnalyticsOut, AuditEventsOut
from server.security.access import requires
from server.store.api_keys import Role

router = APIRouter(prefix="/admin", tags=["insights"], route_class=StrictJsonRoute)

_ERRORS = error_responses(400, 401, 403, 404, 413, 429)


@router.get("/analytics", **requires(Role.OPS), response_model=AnalyticsOut, responses=_ERRORS)
async def analytics(
    service: ConversationServiceDep,
    tenant: TenantDep,
    days: Annotated[int, Query(ge=1, le=3650)] = 30,
) -> AnalyticsOut:
    """Top intents, escalation rate by reason, sentiment mix, CSAT and KB gaps."""
    return await service.analytics(tenant, days)


@router.get("/audit", **requires(Role.ADMIN), response_model=AuditEventsOut, responses=_ERRORS)
async def audit_events(
    tenant: TenantDep,
    audit: AuditDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> AuditEventsOut:
    """The tenant's audit log, newest first: admin actions with actor and request id."""
    events = await asyncio.to_thread(audit.log.events, tenant, limit)
    return AuditEventsOut.model_validate({"events": [asdict(event) for event in events]})
