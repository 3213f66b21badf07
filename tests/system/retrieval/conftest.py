"""Retrieval fixtures: a fresh database and index folder per test.

``database`` is ``store_engine`` from tests/conftest.py, so every test that stores
documents or history runs on SQLite and on PostgreSQL; the embedder is shared there too.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path

import pytest
from sqlalchemy import Engine

from models.embedder import Embedder
from retrieval.documents import DocumentStore
from retrieval.knowledge import KnowledgeBase, RetrievalConfig


@pytest.fixture
def database(store_engine: Engine) -> Engine:
    return store_engine


KnowledgeFactory = Callable[..., KnowledgeBase]


@pytest.fixture
def make_knowledge(tmp_path: Path, database: Engine, embedder: Embedder) -> KnowledgeFactory:
    """Build a KnowledgeBase over this test's folders; call again to simulate a restart."""

    def build(config: RetrievalConfig | None = None) -> KnowledgeBase:
        return KnowledgeBase(tmp_path / "retrieval", DocumentStore(database), embedder, config)

    return build
