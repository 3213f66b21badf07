"""The tables of the KB index every replica shares on PostgreSQL (migration 0008), and
what ``kb_index_state`` says: declared apart from ``sql_index.py``, which reads and
writes them, on a ``MetaData`` of their own (they exist on PostgreSQL only)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from sqlalchemy import JSON, BigInteger, Column, Float, Integer, MetaData, String, Table

from core.ids import stable_id

_METADATA = MetaData()
"""Not ``core.db.METADATA``: these tables exist on PostgreSQL only (migration 0008)."""

KB_CHUNKS = Table(
    "kb_chunks",
    _METADATA,
    Column("tenant", String(64), primary_key=True),
    Column("chunk_id", BigInteger, primary_key=True, autoincrement=False),
    Column("doc_id", String(200), nullable=False),
    Column("doc_hash", String(64), nullable=False),
    Column("record", JSON, nullable=False),
    Column("terms", Integer, nullable=False),
)
KB_TERMS = Table(
    "kb_terms",
    _METADATA,
    Column("tenant", String(64), primary_key=True),
    Column("term_hash", BigInteger, primary_key=True, autoincrement=False),
    Column("chunk_id", BigInteger, primary_key=True, autoincrement=False),
    Column("tf", Integer, nullable=False),
)
KB_INDEX_STATE = Table(
    "kb_index_state",
    _METADATA,
    Column("tenant", String(64), primary_key=True),
    Column("version", Integer, nullable=False),
    Column("embedding_model", String(200), nullable=False),
    Column("dimension", Integer, nullable=False),
    Column("settings", JSON, nullable=False),
    Column("created_at", Float, nullable=False),
    Column("documents", Integer, nullable=False),
    Column("chunks", Integer, nullable=False),
    Column("total_terms", BigInteger, nullable=False),
)


def term_hash(term: str) -> int:
    """A stable positive 63-bit id of a BM25 term."""
    return stable_id(term)


@dataclass(frozen=True)
class IndexState:
    """What ``kb_index_state`` says about a tenant's published index."""

    version: int
    embedding_model: str
    dimension: int
    settings: dict[str, Any]
    created_at: float
    documents: int
    chunks: int
    total_terms: int
