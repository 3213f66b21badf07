"""``KnowledgeBase``: the one entry point to a tenant's KB: documents, search, reindex, stats."""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

from core.ids import check_tenant
from models.embedder import Embedder
from models.tenant_embedders import TenantEmbedders
from retrieval.documents import Document, DocumentStore, StoreChange
from retrieval.index import published_versions
from retrieval.knowledge.config import RetrievalConfig
from retrieval.knowledge.records import IndexedBase, IndexView, ServedIndex
from retrieval.knowledge.reindex import IndexStorage, Reindexer
from retrieval.knowledge.search import KnowledgeSearch
from retrieval.knowledge.served import FileStorage, ServedVersions
from retrieval.knowledge.sql_index import SqlKbIndex
from retrieval.vector_store import open_vector_store


class KnowledgeBase:
    """Per-tenant KB indexes over a ``DocumentStore``: search, document edits, reindex.

    Where the published indexes live follows the store's database: on SQLite, versions
    on disk under ``root`` (FAISS + bm25s, ``served.py``); on PostgreSQL, rows every
    replica shares (pgvector + BM25 in SQL, ``sql_index.py``), so a reindex, a delete or
    an edit through one replica is what every replica searches next. ``embedder`` is the
    base embedder; ``tuned`` adds tenants' own tuned ones (the default: none), which
    their KBs use for documents and queries alike.
    """

    def __init__(
        self,
        root: Path,
        store: DocumentStore,
        embedder: Embedder,
        config: RetrievalConfig | None = None,
        search_workers: int = 2,
        tuned: TenantEmbedders | None = None,
    ) -> None:
        self.root = root
        self.store = store
        self.embedder = embedder
        self.embedders = tuned or TenantEmbedders(embedder)
        self.config = config or RetrievalConfig()
        self._versions = ServedVersions(root, store)
        self._shared: SqlKbIndex | None = None
        storage: IndexStorage = FileStorage(self._versions, self.config.keep_versions)
        views: Callable[[str], IndexView | None] = self._versions.view
        if store.engine.dialect.name == "postgresql":
            self._shared = SqlKbIndex(store.engine, store, open_vector_store(store.engine))
            storage, views = self._shared, self._shared.view
        searching = KnowledgeSearch(views, self.embedders, self.config, search_workers)
        self._storage = storage
        reindexer = Reindexer(storage, store, self.embedders, self.config)
        # searching and reindexing are the parts' own methods (search.py, reindex.py)
        self.search = searching.search
        self.asearch = searching.asearch
        self.query_embedder = searching.query_embedder
        self.reindex = reindexer.reindex
        self._stop_searching = searching.shutdown

    def shutdown(self) -> None:
        self._stop_searching()
        self.embedders.shutdown()

    # ------------------------------------------------------------ reading

    @property
    def shared(self) -> bool:
        """Whether the indexes are the rows every replica shares (PostgreSQL)."""
        return self._shared is not None

    def tenant_root(self, tenant: str) -> Path:
        return self._versions.tenant_root(tenant)

    def tenants(self) -> list[str]:
        """Tenants with documents in the store or an index on disk."""
        on_disk = (
            {p.name for p in self.root.iterdir() if p.is_dir()} if self.root.is_dir() else set()
        )
        return sorted(on_disk | set(self.store.tenants()))

    def served(self, tenant: str) -> ServedIndex:
        """The tenant's current snapshot on disk, loading it on first use (SQLite only)."""
        if self._shared is not None:
            raise RuntimeError("a shared (PostgreSQL) KB index has no version on disk")
        return self._versions.served(tenant)

    def published(self, tenant: str) -> IndexedBase | None:
        """What the tenant's published index holds (its documents by content hash)."""
        return self._storage.base(tenant)

    def version_number(self, tenant: str) -> int | None:
        """The number of the tenant's published index, ``None`` before the first."""
        if self._shared is not None:
            state = self._shared.state(tenant)
            return None if state is None else state.version
        version = self._versions.served(tenant).version
        return None if version is None else version.number

    def refresh(self, tenant: str) -> bool:
        """Serve a newer version published by another process (the CLI); True if swapped.
        Shared indexes need no refresh: every search reads the published rows."""
        if self._shared is not None:
            return False
        return self._versions.refresh(tenant)

    # ------------------------------------------------------------ writing documents

    def put_documents(self, tenant: str, documents: Sequence[Document]) -> list[StoreChange]:
        """Store documents; edited ones stop matching with their old text at once."""
        changes = self.store.upsert(check_tenant(tenant), documents)
        if any(change.action != "unchanged" for change in changes):
            self._documents_changed(tenant)
        return changes

    def delete_documents(self, tenant: str, doc_ids: Sequence[str]) -> list[StoreChange]:
        """Delete documents; they stop matching at once, before any reindex."""
        changes = self.store.delete(check_tenant(tenant), doc_ids)
        if any(change.action == "deleted" for change in changes):
            self._documents_changed(tenant)
        return changes

    def _documents_changed(self, tenant: str) -> None:
        """Stale chunks stop matching now (on disk: this process; shared: every replica
        already, through the change stamp) and the pending-documents gauge follows."""
        if self._shared is not None:
            self._shared.export_metrics(tenant)
        else:
            self._versions.mark_stale(tenant)

    # ------------------------------------------------------------ stats

    def stats(self, tenant: str) -> dict[str, Any]:
        if self._shared is not None:
            return self._shared_stats(tenant)
        served = self.served(tenant)
        version = served.version
        return {
            "tenant": tenant,
            "documents_stored": self.store.count(tenant),
            "version": version.number if version else None,
            "documents_indexed": len(version.documents) if version else 0,
            "chunks": version.vectors.size if version else 0,
            "stale_chunks": int(served.excluded.shape[0]),
            "index_kind": version.vectors.layout.kind if version else None,
            "embedding_model": version.manifest.embedding_model if version else None,
            "created_at": version.manifest.created_at if version else None,
            "age_seconds": round(time.time() - version.manifest.created_at, 3) if version else None,
            "versions_on_disk": published_versions(self.tenant_root(tenant)),
            "load_error": served.load_error,
        }

    def _shared_stats(self, tenant: str) -> dict[str, Any]:
        assert self._shared is not None
        view = self._shared.view(tenant)
        state = None if view is None else view.state
        return {
            "tenant": tenant,
            "documents_stored": self.store.count(tenant),
            "version": state.version if state else None,
            "documents_indexed": state.documents if state else 0,
            "chunks": state.chunks if state else 0,
            "stale_chunks": len(view.excluded) if view else 0,
            "index_kind": "pgvector" if state else None,
            "embedding_model": state.embedding_model if state else None,
            "created_at": state.created_at if state else None,
            "age_seconds": round(time.time() - state.created_at, 3) if state else None,
            "versions_on_disk": [],
            "load_error": None,
        }
