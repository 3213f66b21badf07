"""The product catalog that recommendations are drawn from."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, Path, Response

from server.api.responses import error_responses
from server.deps import AuditDep, CatalogServiceDep, TenantDep
from server.http.json_body import StrictJsonRoute
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

router = APIRouter(prefix="/admin/catalog", tags=["catalog"], route_class=StrictJsonRoute)

_ERRORS = error_responses(400, 401, 403, 404, 413, 429)

ProductId = Annotated[str, Path(pattern=PRODUCT_ID_PATTERN)]


@router.get("/products", **requires(Role.ADMIN), response_model=ProductsOut, responses=_ERRORS)
async def list_products(service: CatalogServiceDep, tenant: TenantDep) -> ProductsOut:
    """The tenant's catalog."""
    return await service.list_products(tenant)


@router.post(
    "/products:bulk",
    **requires(Role.ADMIN),
    response_model=ProductsChangedOut,
    responses=_ERRORS,
)
async def put_products(
    body: BulkProductsIn, service: CatalogServiceDep, tenant: TenantDep, audit: AuditDep
) -> ProductsChangedOut:
    """Create or replace many products; each is embedded for recommendations."""
    changed = await service.put_products(tenant, body.products)
    await audit.record(tenant, "catalog.products.bulk", "json", {"products": len(body.products)})
    return changed


@router.put(
    "/products/{product_id}",
    **requires(Role.ADMIN),
    response_model=ProductOut,
    responses=_ERRORS,
)
async def put_product(
    product_id: ProductId,
    body: ProductIn,
    service: CatalogServiceDep,
    tenant: TenantDep,
    audit: AuditDep,
) -> ProductOut:
    product = await service.put_product(tenant, product_id, body)
    await audit.record(tenant, "catalog.product.put", product_id)
    return product


@router.get(
    "/products/{product_id}",
    **requires(Role.ADMIN),
    response_model=ProductOut,
    responses=_ERRORS,
)
async def get_product(
    product_id: ProductId, service: CatalogServiceDep, tenant: TenantDep
) -> ProductOut:
    return await service.get_product(tenant, product_id)


@router.delete("/products/{product_id}", **requires(Role.ADMIN), status_code=204, responses=_ERRORS)
async def delete_product(
    product_id: ProductId, service: CatalogServiceDep, tenant: TenantDep, audit: AuditDep
) -> Response:
    await service.delete_product(tenant, product_id)
    await audit.record(tenant, "catalog.product.delete", product_id)
    return Response(status_code=204)
