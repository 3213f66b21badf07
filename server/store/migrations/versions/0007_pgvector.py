"""Vectors every replica shares: ``vector_items`` with pgvector (``retrieval/pgvector_store.py``).

Revision ID: 0007
Revises: 0006
Created: 2026-12-07

PostgreSQL only: it needs the ``vector`` extension (pgvector 0.8 or newer, for iterative
index scans), creates it when the database role may, and otherwise stops with what to ask
the database's owner for. History vectors already stored as bytes are copied in, so an
existing PostgreSQL deployment keeps its customers' history. SQLite databases are left
as they are: there the vectors are searched in memory (``FaissVectorStore``).
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np
import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DIMENSIONS = (384, 768)
COPY_BATCH = 1000


class PgvectorMissingError(RuntimeError):
    """The database cannot hold vectors; the message says what to install or ask for."""


def upgrade() -> None:
    bind = op.get_bind()
    if bind.dialect.name != "postgresql":
        return
    _create_extension(bind)
    op.execute(
        "CREATE TABLE vector_items ("
        " collection varchar(16) NOT NULL,"
        " tenant varchar(64) NOT NULL,"
        " item_id bigint NOT NULL,"
        " owner varchar(128),"
        " model varchar(200) NOT NULL,"
        " dimension integer NOT NULL,"
        " embedding vector NOT NULL,"
        " PRIMARY KEY (collection, tenant, item_id))"
    )
    op.execute("CREATE INDEX ix_vector_items_owner ON vector_items (collection, tenant, owner)")
    for dim in DIMENSIONS:
        op.execute(
            f"CREATE INDEX ix_vector_items_hnsw_{dim} ON vector_items "
            f"USING hnsw ((embedding::vector({dim})) vector_ip_ops) "
            f"WITH (m = 16, ef_construction = 64) WHERE dimension = {dim}"
        )
    _copy_history_vectors(bind)


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute("DROP TABLE vector_items")


def _create_extension(bind: sa.Connection) -> None:
    installed = bind.execute(
        sa.text("SELECT extversion FROM pg_extension WHERE extname = 'vector'")
    ).scalar()
    if installed is not None:
        return
    available = bind.execute(
        sa.text("SELECT default_version FROM pg_available_extensions WHERE name = 'vector'")
    ).scalar()
    if available is None:
        raise PgvectorMissingError(
            "this PostgreSQL server has no pgvector extension, which Concierge stores its "
            "vectors in: run an image that ships it (for example pgvector/pgvector:pg16) or "
            "install the package (postgresql-16-pgvector), then start Concierge again"
        )
    try:
        with bind.begin_nested():  # a refusal rolls back to here, not the whole upgrade
            bind.execute(sa.text("CREATE EXTENSION IF NOT EXISTS vector"))
    except sa.exc.ProgrammingError as exc:  # insufficient privilege: not a superuser
        raise PgvectorMissingError(
            "pgvector is installed on the server but not enabled in this database, and "
            "this role may not enable it: ask the database owner to run "
            "`CREATE EXTENSION vector;` in it, then start Concierge again"
        ) from exc


def _copy_history_vectors(bind: sa.Connection) -> None:
    """Customer history written before this revision: its stored bytes become vectors."""
    rows = bind.execute(
        sa.text("SELECT entry_id, tenant, customer_id, model, embedding FROM history_entries")
    )
    insert = sa.text(
        "INSERT INTO vector_items (collection, tenant, item_id, owner, model, dimension, "
        "embedding) VALUES ('history', :tenant, :item_id, :owner, :model, :dimension, "
        "CAST(:embedding AS vector))"
    )
    while batch := rows.fetchmany(COPY_BATCH):
        values = []
        for row in batch:
            vector = np.frombuffer(row.embedding, dtype=np.float32)
            values.append(
                {
                    "tenant": row.tenant,
                    "item_id": row.entry_id,
                    "owner": row.customer_id,
                    "model": row.model,
                    "dimension": int(vector.shape[0]),
                    "embedding": "[" + ",".join(repr(float(x)) for x in vector) + "]",
                }
            )
        bind.execute(insert, values)
