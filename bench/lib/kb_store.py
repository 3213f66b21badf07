"""A knowledge-base store of a benchmark's own: the retrieval benchmarks build their KBs
through the product's path, but never in ./var."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from core.db import create_database_engine
from retrieval.documents import DocumentStore
from server.store.schema import create_schema


@contextmanager
def scratch_store(database: str = "sqlite") -> Iterator[tuple[Path, DocumentStore]]:
    """A temporary folder (for the KB's index files) and an empty document store with the
    server's schema: a SQLite file in the folder, or (``postgresql``) a throwaway
    PostgreSQL 16 with pgvector, where the KB index is the shared rows; all gone afterwards."""
    with tempfile.TemporaryDirectory(prefix="concierge-bench-") as tmp:
        root = Path(tmp)
        server = None
        if database == "postgresql":
            from tests.postgres import INSTALL_HINT, PostgresServer, find_bindir

            bindir = find_bindir()
            if bindir is None:
                raise RuntimeError(INSTALL_HINT)
            server = PostgresServer(bindir)
            server.start(settings={"shared_buffers": "'1GB'", "jit": "off"})
            url = server.create_database("bench")
        else:
            url = f"sqlite:///{root / 'bench.sqlite3'}"
        engine = create_database_engine(url)
        try:
            create_schema(engine)
            yield root, DocumentStore(engine)
        finally:
            engine.dispose()
            if server is not None:
                server.stop()
