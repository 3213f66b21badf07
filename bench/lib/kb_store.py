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
def scratch_store() -> Iterator[tuple[Path, DocumentStore]]:
    """A temporary folder (for the KB's index files) and an empty SQLite document store in
    it, with the server's schema; both gone afterwards."""
    with tempfile.TemporaryDirectory(prefix="concierge-bench-") as tmp:
        root = Path(tmp)
        engine = create_database_engine(f"sqlite:///{root / 'bench.sqlite3'}")
        try:
            create_schema(engine)
            yield root, DocumentStore(engine)
        finally:
            engine.dispose()
