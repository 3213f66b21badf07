"""The work behind the catalog routes: the products recommendations are drawn from."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from dataclasses import dataclass

from core.errors import NotFoundError
from retrieval.catalog import Product, ProductCatalog
from server.schemas.support import (
    BulkProductIn,
    ProductIn,
    ProductOut,
    ProductsChangedOut,
    ProductsOut,
)


@dataclass
class CatalogService:
    """Products are embedded as they are stored (worker threads keep the loop free)."""

    catalog: ProductCatalog

    async def put_products(
        self, tenant: str, products: Sequence[BulkProductIn]
    ) -> ProductsChangedOut:
        count = await asyncio.to_thread(
            self.catalog.put, tenant, [product_from(p.product_id, p) for p in products]
        )
        return ProductsChangedOut(tenant=tenant, upserted=count)

    async def put_product(self, tenant: str, product_id: str, body: ProductIn) -> ProductOut:
        await asyncio.to_thread(self.catalog.put, tenant, [product_from(product_id, body)])
        return ProductOut(product_id=product_id, **body.model_dump())

    async def delete_product(self, tenant: str, product_id: str) -> None:
        if not await asyncio.to_thread(self.catalog.delete, tenant, product_id):
            raise NotFoundError(f"product {product_id!r} not found", param="product_id")

    async def list_products(self, tenant: str) -> ProductsOut:
        products = await asyncio.to_thread(self.catalog.products, tenant)
        return ProductsOut(tenant=tenant, products=[_product_out(p) for p in products])

    async def get_product(self, tenant: str, product_id: str) -> ProductOut:
        product = await asyncio.to_thread(self.catalog.get, tenant, product_id)
        if product is None:
            raise NotFoundError(f"product {product_id!r} not found", param="product_id")
        return _product_out(product)


def product_from(product_id: str, body: ProductIn) -> Product:
    return Product(
        product_id=product_id,
        name=body.name,
        category=body.category,
        description=body.description,
        price=body.price,
        currency=body.currency,
        tags=tuple(body.tags),
    )


def _product_out(product: Product) -> ProductOut:
    return ProductOut(
        product_id=product.product_id,
        name=product.name,
        category=product.category,
        description=product.description,
        price=product.price,
        currency=product.currency,
        tags=list(product.tags),
    )
