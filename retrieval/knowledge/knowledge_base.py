"""``KnowledgeBase``: the one entry point to a tenant's KB: documents, search, reindex, stats."""

from __future__ import annotations

import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from core.ids import check_tenant
from models.embedder import Embedder
from models.tenant_embedders import TenantEmbedders
from retrieval.documents import Document, DocumentStore, StoreChange
from retrieval.index import published_versions
from retrieval.knowledge.config import RetrievalConfig
from retrieval.knowledge.records import ServedIndex
from retrieval.knowledge.reindex import Reindexer
from retrieval.knowledge.search import KnowledgeSearch
from retrieval.knowledge.served import ServedVersions


class KnowledgeBase:
    """Per-tenant KB indexes over a ``DocumentStore``: search, document edits, reindex.

    ``embedder`` is the base embedder; ``tuned`` adds tenants' own tuned ones (the
    default: none), which their KBs use for documents and queries alike.
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
        searching = KnowledgeSearch(self._versions, self.embedders, self.config, search_workers)
        reindexer = Reindexer(self._versions, store, self.embedders, self.config)
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

    def tenant_root(self, tenant: str) -> Path:
        return self._versions.tenant_root(tenant)

    def tenants(self) -> list[str]:
        """Tenants with documents in the store or an index on disk."""
        on_disk = (
            {p.name for p in self.root.iterdir() if p.is_dir()} if self.root.is_dir() else set()
        )
        return sorted(on_disk | set(self.store.tenants()))

    def served(self, tenant: str) -> ServedIndex:
        """The tenant's current snapshot, loading it on first use."""
        return self._versions.served(tenant)

    def refresh(self, tenant: str) -> bool:
        """Serve a newer version published by another process (the CLI); True if swapped."""
        return self._versions.refresh(tenant)

    # ------------------------------------------------------------ writing documents

    def put_documents(self, tenant: str, documents: Sequence[Document]) -> list[StoreChange]:
        """Store documents; edited ones stop matching with their old text at once."""
        changes = self.store.upsert(check_tenant(tenant), documents)
        if any(change.action != "unchanged" for change in changes):
            self._versions.mark_stale(tenant)
        return changes

    def delete_documents(self, tenant: str, doc_ids: Sequence[str]) -> list[StoreChange]:
        """Delete documents; they stop matching at once, before any reindex."""
        changes = self.store.delete(check_tenant(tenant), doc_ids)
        if any(change.action == "deleted" for change in changes):
            self._versions.mark_stale(tenant)
        return changes

    # ------------------------------------------------------------ stats

    def stats(self, tenant: str) -> dict[str, Any]:
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
