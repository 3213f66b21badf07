"""Parsing uploaded files into documents, and the SQL document store."""

from __future__ import annotations

from sqlalchemy import Engine

from retrieval.documents import (
    Document,
    DocumentFormat,
    DocumentStore,
)


def test_the_store_reports_what_each_write_did(database: Engine) -> None:
    store = DocumentStore(database)
    doc = Document("a.md", "# A\n\ntext", "A", DocumentFormat.MARKDOWN)
    assert [c.action for c in store.upsert("acme", [doc])] == ["created"]
    assert [c.action for c in store.upsert("acme", [doc])] == ["unchanged"]
    edited = Document("a.md", "# A\n\nnew text", "A", DocumentFormat.MARKDOWN)
    assert [c.action for c in store.upsert("acme", [edited])] == ["updated"]
    assert store.get("acme", "a.md") == edited
    assert store.get("globex", "a.md") is None
    assert store.hashes("acme") == {"a.md": edited.content_hash}
    assert [c.action for c in store.delete("acme", ["a.md", "b.md"])] == ["deleted", "missing"]
    assert store.count("acme") == 0
