"""Retrieval fixtures: one real embedder per run; fresh SQLite and index folders per test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from sqlalchemy import Engine

from retrieval.documents import DocumentStore
from retrieval.embedder import Embedder, EmbedderConfig
from retrieval.knowledge import KnowledgeBase, RetrievalConfig
from server.store.database import create_database_engine, create_schema


@pytest.fixture(scope="session")
def embedder() -> Iterator[Embedder]:
    """The shipped all-MiniLM-L6-v2, loaded once."""
    model = Embedder(EmbedderConfig("all-minilm-l6-v2", device="cpu"))
    model.warm_up()
    yield model
    model.shutdown()


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
