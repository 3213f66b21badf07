"""Customer data: attributes, the event log, and the derived profile."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path

from core.ids import CUSTOMER_ID_PATTERN
from server.api.responses import error_responses
from server.deps import AuditDep, CustomerServiceDep, TenantDep
from server.http.json_body import StrictJsonRoute
from server.schemas.support import (
    CustomerIn,
    CustomerOut,
    ErasureReceipt,
    EventIn,
    EventsIn,
    EventsOut,
    ProfileOut,
)
from server.security.access import requires
from server.store.api_keys import Role
from server.store.audit import customer_reference

router = APIRouter(prefix="/v1/customers", tags=["customers"], route_class=StrictJsonRoute)

_ERRORS = error_responses(400, 401, 403, 404, 413, 429)
CustomerId = Annotated[str, Path(pattern=CUSTOMER_ID_PATTERN)]


@router.put(
    "/{customer_id}", **requires(Role.SERVICE), response_model=CustomerOut, responses=_ERRORS
)
async def put_customer(
    customer_id: CustomerId, body: CustomerIn, service: CustomerServiceDep, tenant: TenantDep
) -> CustomerOut:
    """Create or replace a customer's attributes (name, tier, locale, consent)."""
    return await service.put_customer(tenant, customer_id, body)


@router.get(
    "/{customer_id}", **requires(Role.SERVICE), response_model=CustomerOut, responses=_ERRORS
)
async def get_customer(
    customer_id: CustomerId, service: CustomerServiceDep, tenant: TenantDep
) -> CustomerOut:
    return await service.customer(tenant, customer_id)


@router.post(
    "/{customer_id}/events",
    **requires(Role.SERVICE),
    response_model=EventsOut,
    status_code=201,
    responses=_ERRORS,
)
async def add_events(
    customer_id: CustomerId,
    body: EventsIn | EventIn,
    service: CustomerServiceDep,
    tenant: TenantDep,
) -> EventsOut:
    """Record orders, returns, tickets, page views and notes (one, or ``{"events": [...]}``)."""
    events = body.events if isinstance(body, EventsIn) else [body]
    return await service.add_events(tenant, customer_id, events)


@router.get(
    "/{customer_id}/profile", **requires(Role.SERVICE), response_model=ProfileOut, responses=_ERRORS
)
async def get_profile(
    customer_id: CustomerId, service: CustomerServiceDep, tenant: TenantDep
) -> ProfileOut:
    """The derived profile: orders and spend, favourite categories, open tickets, mood."""
    return await service.profile(tenant, customer_id)


@router.delete(
    "/{customer_id}", **requires(Role.ADMIN), response_model=ErasureReceipt, responses=_ERRORS
)
async def erase_customer(
    customer_id: CustomerId, service: CustomerServiceDep, tenant: TenantDep, audit: AuditDep
) -> ErasureReceipt:
    """Erase the customer and everything stored about them; the receipt counts what went."""
    receipt = await service.erase_customer(tenant, customer_id)
    await audit.record(
        tenant, "customer.erase", customer_reference(customer_id), {"removed": receipt.removed}
    )
    return receipt
