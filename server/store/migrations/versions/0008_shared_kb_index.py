"""The KB index every replica shares on PostgreSQL (``retrieval/knowledge/sql_index.py``):
chunk rows, BM25 postings and the published version; the vectors go to ``vector_items``.

Revision ID: 0008
Revises: 0007
Created: 2026-12-07

PostgreSQL only. A deployment that served its KB from versions on disk reindexes once
after this upgrade (``concierge kb reindex`` or the admin API): the index is then built
in these tables and the folders under ``<data_dir>/retrieval`` are no longer read.
"""

from __future__ import annotations

from collections.abc import Sequence

from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    op.execute(
        "CREATE TABLE kb_chunks ("
        " tenant varchar(64) NOT NULL,"
        " chunk_id bigint NOT NULL,"
        " doc_id varchar(200) NOT NULL,"
        " doc_hash varchar(64) NOT NULL,"
        " record json NOT NULL,"
        " terms integer NOT NULL,"
        " PRIMARY KEY (tenant, chunk_id))"
    )
    op.execute("CREATE INDEX ix_kb_chunks_document ON kb_chunks (tenant, doc_id)")
    op.execute(
        "CREATE TABLE kb_terms ("
        " tenant varchar(64) NOT NULL,"
        " term_hash bigint NOT NULL,"
        " chunk_id bigint NOT NULL,"
        " tf integer NOT NULL,"
        " PRIMARY KEY (tenant, term_hash, chunk_id))"
    )
    op.execute("CREATE INDEX ix_kb_terms_chunk ON kb_terms (tenant, chunk_id)")
    op.execute(
        "CREATE TABLE kb_index_state ("
        " tenant varchar(64) PRIMARY KEY,"
        " version integer NOT NULL,"
        " embedding_model varchar(200) NOT NULL,"
        " dimension integer NOT NULL,"
        " settings json NOT NULL,"
        " created_at double precision NOT NULL,"
        " documents integer NOT NULL,"
        " chunks integer NOT NULL,"
        " total_terms bigint NOT NULL)"
    )


def downgrade() -> None:
    if op.get_bind().dialect.name != "postgresql":
        return
    for table in ("kb_index_state", "kb_terms", "kb_chunks"):
        op.execute(f"DROP TABLE {table}")
