"""Admin routes of the support side: the product catalog, tickets and analytics."""

from __future__ import annotations

import asyncio
from dataclasses import asdict
from typing import Annotated, Any, Literal

from fastapi import APIRouter, Path, Query, Response

from server.deps import AuditDep, SupportServiceDep, TenantDep
from server.schemas.errors import ErrorResponse
from server.schemas.support import (
    PRODUCT_ID_PATTERN,
    BulkProductsIn,
    ProductIn,
    ProductOut,
    ProductsChangedOut,
    ProductsOut,
)
from server.security.access import requires
from server.store.api_keys import Role

router = APIRouter(prefix="/admin", tags=["admin"])

_ERRORS: dict[int | str, dict[str, object]] = {
    status: {"model": ErrorResponse} for status in (400, 401, 403, 404, 413, 429)
}
ProductId = Annotated[str, Path(pattern=PRODUCT_ID_PATTERN)]


@router.get(
    "/catalog/products", **requires(Role.ADMIN), response_model=ProductsOut, responses=_ERRORS
)
async def list_products(service: SupportServiceDep, tenant: TenantDep) -> ProductsOut:
    """The tenant's catalog."""
    return await service.list_products(tenant)


@router.post(
    "/catalog/products:bulk",
    **requires(Role.ADMIN),
    response_model=ProductsChangedOut,
    responses=_ERRORS,
)
async def put_products(
    body: BulkProductsIn, service: SupportServiceDep, tenant: TenantDep, audit: AuditDep
) -> ProductsChangedOut:
    """Create or replace many products; each is embedded for recommendations."""
    changed = await service.put_products(tenant, body.products)
    await audit.record(tenant, "catalog.products.bulk", "json", {"products": len(body.products)})
    return changed


@router.put(
    "/catalog/products/{product_id}",
    **requires(Role.ADMIN),
    response_model=ProductOut,
    responses=_ERRORS,
)
async def put_product(
    product_id: ProductId,
    body: ProductIn,
    service: SupportServiceDep,
    tenant: TenantDep,
    audit: AuditDep,
) -> ProductOut:
    product = await service.put_product(tenant, product_id, body)
    await audit.record(tenant, "catalog.product.put", product_id)
    return product


@router.get(
    "/catalog/products/{product_id}",
    **requires(Role.ADMIN),
    response_model=ProductOut,
    responses=_ERRORS,
)
async def get_product(
    product_id: ProductId, service: SupportServiceDep, tenant: TenantDep
) -> ProductOut:
    return await service.get_product(tenant, product_id)


@router.delete(
    "/catalog/products/{product_id}", **requires(Role.ADMIN), status_code=204, responses=_ERRORS
)
async def delete_product(
    product_id: ProductId, service: SupportServiceDep, tenant: TenantDep, audit: AuditDep
) -> Response:
    await service.delete_product(tenant, product_id)
    await audit.record(tenant, "catalog.product.delete", product_id)
    return Response(status_code=204)


@router.get("/audit", **requires(Role.ADMIN), responses=_ERRORS)
async def audit_events(
    tenant: TenantDep,
    audit: AuditDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """The tenant's audit log, newest first: admin actions with actor and request id."""
    events = await asyncio.to_thread(audit.log.events, tenant, limit)
    return {"events": [asdict(event) for event in events]}


@router.get("/tickets", **requires(Role.ADMIN), responses=_ERRORS)
async def list_tickets(
    service: SupportServiceDep,
    tenant: TenantDep,
    status: Literal["open", "closed"] | None = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> dict[str, Any]:
    """Escalation tickets, newest first, with transcript and webhook delivery state."""
    return {"tenant": tenant, "tickets": await service.tickets(tenant, status, limit)}


@router.get("/tickets/{ticket_id}", **requires(Role.ADMIN), responses=_ERRORS)
async def get_ticket(ticket_id: str, service: SupportServiceDep, tenant: TenantDep) -> Any:
    return await service.ticket(tenant, ticket_id)


@router.get("/analytics", **requires(Role.OPS), responses=_ERRORS)
async def analytics(
    service: SupportServiceDep,
    tenant: TenantDep,
    days: Annotated[int, Query(ge=1, le=3650)] = 30,
) -> dict[str, Any]:
    """Top intents, escalation rate by reason, sentiment mix, CSAT and KB gaps."""
    return await service.analytics(tenant, days)
