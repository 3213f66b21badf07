"""Retrieval fixtures: fresh SQLite and index folders per test (the embedder: tests/conftest.py)."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from retrieval.documents import DocumentStore
from retrieval.embedder import Embedder
from retrieval.knowledge import KnowledgeBase, RetrievalConfig
from server.store.database import create_database_engine, create_schema


@pytest.fixture
def database(tmp_path: Path) -> Iterator[Engine]:
    engine = create_database_engine(f"sqlite:///{tmp_path / 'concierge.sqlite3'}")
    create_schema(engine)
    yield engine
    engine.dispose()


KnowledgeFactory = Callable[..., KnowledgeBase]


@pytest.fixture
def make_knowledge(tmp_path: Path, database: Engine, embedder: Embedder) -> KnowledgeFactory:
    """Build a KnowledgeBase over this test's folders; call again to simulate a restart."""

    def build(config: RetrievalConfig | None = None) -> KnowledgeBase:
        return KnowledgeBase(tmp_path / "retrieval", DocumentStore(database), embedder, config)

    return build
