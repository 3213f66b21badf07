"""Catalog vectors in the ``VectorStore``: each product gets a stable 64-bit ``item_id``.

Revision ID: 0009
Revises: 0008
Created: 2026-12-07

Products are keyed by ``(tenant, product_id)`` strings; vector stores key vectors by
integers. ``item_id`` is derived from the product id (``retrieval/catalog.product_item_id``),
so a put that replaces a product replaces its vector under the same id. On PostgreSQL the
products' stored vectors are copied into ``vector_items``, where every replica searches them
(``retrieval/pgvector_store.py``); on SQLite the column is all this revision adds.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence

import numpy as np
import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

BATCH = 1000


def item_id(product_id: str) -> int:
    """Frozen here as this revision wrote it, not imported: the first 63 bits of the id's
    BLAKE2b digest (``core.ids.stable_id``, which ``retrieval/catalog.product_item_id`` uses
    and must keep returning the same numbers)."""
    digest = hashlib.blake2b(product_id.encode("utf-8"), digest_size=8).digest()
    return int.from_bytes(digest, "big") >> 1


def upgrade() -> None:
    bind = op.get_bind()
    with op.batch_alter_table("products") as batch:
        batch.add_column(sa.Column("item_id", sa.BigInteger(), nullable=True))
    products = sa.table(
        "products",
        sa.column("tenant", sa.String),
        sa.column("product_id", sa.String),
        sa.column("item_id", sa.BigInteger),
    )
    rows = bind.execute(sa.select(products.c.tenant, products.c.product_id)).all()
    for start in range(0, len(rows), BATCH):
        bind.execute(
            products.update()
            .where(
                products.c.tenant == sa.bindparam("t"),
                products.c.product_id == sa.bindparam("p"),
            )
            .values(item_id=sa.bindparam("i")),
            [
                {"t": row.tenant, "p": row.product_id, "i": item_id(row.product_id)}
                for row in rows[start : start + BATCH]
            ],
        )
    with op.batch_alter_table("products") as batch:
        batch.alter_column("item_id", existing_type=sa.BigInteger(), nullable=False)
        batch.create_index("ix_products_item", ["tenant", "item_id"], unique=True)
    if bind.dialect.name == "postgresql":
        _copy_catalog_vectors(bind)


def downgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name == "postgresql":
        op.execute("DELETE FROM vector_items WHERE collection = 'catalog'")
    with op.batch_alter_table("products") as batch:
        batch.drop_index("ix_products_item")
        batch.drop_column("item_id")


def _copy_catalog_vectors(bind: sa.Connection) -> None:
    """Products stored before this revision: their stored bytes become vectors."""
    rows = bind.execute(sa.text("SELECT tenant, item_id, model, embedding FROM products"))
    insert = sa.text(
        "INSERT INTO vector_items (collection, tenant, item_id, owner, model, dimension, "
        "embedding) VALUES ('catalog', :tenant, :item_id, NULL, :model, :dimension, "
        "CAST(:embedding AS vector))"
    )
    while batch := rows.fetchmany(BATCH):
        values = []
        for row in batch:
            vector = np.frombuffer(row.embedding, dtype=np.float32)
            values.append(
                {
                    "tenant": row.tenant,
                    "item_id": row.item_id,
                    "model": row.model,
                    "dimension": int(vector.shape[0]),
                    "embedding": "[" + ",".join(repr(float(x)) for x in vector) + "]",
                }
            )
        bind.execute(insert, values)
