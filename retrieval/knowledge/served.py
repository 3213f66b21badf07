"""Which version each tenant serves: loading, refreshing, refusing corrupt ones, staleness.

What a search sees is a ``ServedIndex``, an immutable snapshot (a loaded version plus
the ids of chunks that went stale since it was built). Replacing the snapshot is one
reference assignment, so searches never see a half-swapped index and never wait for a
reindex.

Staleness is what keeps deleted and edited documents out of answers at once: when a
document is deleted or changed in the store, the chunks the served version holds for
it are excluded inside every search (FAISS id selector, BM25 row mask) until the
reindex that removes or replaces them is published. The store is the same SQL database
for every replica, so each ``served`` call first compares the tenant's
``DocumentStore.change_stamp`` with the one its exclusions were computed from: a delete or
an edit through any replica (or the CLI) is effective on every replica's next search,
not only on the one that took the write. A new version published by another process is
picked up by ``refresh`` (the lifespan polls every ``index_refresh_interval_s``).
"""

from __future__ import annotations

import logging
import threading
import time
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from core import metrics
from core.errors import IndexCorruptError
from core.ids import check_tenant
from retrieval.documents import DocumentStore
from retrieval.index import VectorIndex, collect_garbage, exclusive_writer, published_versions
from retrieval.knowledge.records import (
    COLLECTION,
    ChunkRecord,
    FileView,
    IndexedBase,
    KbVersion,
    ServedIndex,
)
from retrieval.knowledge.versions import load_version, publish_version

log = logging.getLogger(__name__)


class ServedVersions:
    """Per-tenant served snapshots over the versions published under ``root``."""

    def __init__(self, root: Path, store: DocumentStore) -> None:
        self.root = root
        self.store = store
        self._served: dict[str, ServedIndex] = {}
        self._stamps: dict[str, tuple[int, float]] = {}
        """The store's change stamp each tenant's exclusions were computed from."""
        self._refused: dict[str, set[int]] = {}
        self._tenant_locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()

    def tenant_root(self, tenant: str) -> Path:
        return self.root / check_tenant(tenant) / COLLECTION

    def served(self, tenant: str) -> ServedIndex:
        """The tenant's current snapshot, loading it on first use; its exclusions follow the
        store's latest change, whoever made it."""
        stamp = self.store.change_stamp(tenant)  # read first: a later change recomputes again
        current = self._served.get(tenant)
        if current is None or self._stamps.get(tenant) != stamp:
            with self._lock_for(tenant):
                current = self._served.get(tenant)
                if current is None:
                    current = self._load_newest(tenant)
                    self._install(tenant, current)
                elif self._stamps.get(tenant) != stamp and current.version is not None:
                    current = self._with_staleness(tenant, current.version)
                    self._install(tenant, current)
                self._stamps[tenant] = stamp
        return current

    def view(self, tenant: str) -> FileView | None:
        """The served version as a search reads it; ``None`` before the first one."""
        served = self.served(tenant)
        return None if served.version is None else FileView(served, served.version)

    def refresh(self, tenant: str) -> bool:
        """Serve a newer version published by another process (the CLI); True if swapped.

        A newer version that fails verification is refused (logged once, counted in
        ``concierge_index_load_failures``) and the current one keeps serving.
        """
        current = self.served(tenant)
        newest = published_versions(self.tenant_root(tenant))
        served_number = current.version.number if current.version else 0
        refused = self._refused.setdefault(tenant, set())
        candidates = [n for n in newest if n > served_number and n not in refused]
        if not candidates:
            return False
        with self._lock_for(tenant):
            try:
                version = load_version(self.tenant_root(tenant), candidates[-1])
            except IndexCorruptError as exc:
                self._refuse(tenant, candidates[-1], exc)
                self._served[tenant] = ServedIndex(
                    current.version, current.excluded, current.row_mask, exc.message
                )
                return False
            self._install(tenant, self._with_staleness(tenant, version))
        return True

    def serve(self, tenant: str, version: KbVersion) -> None:
        """Serve ``version``, just published by this process."""
        with self._lock_for(tenant):  # a concurrent delete either precedes this or follows
            self._install(tenant, self._with_staleness(tenant, version))

    def mark_stale(self, tenant: str) -> None:
        """Exclude the chunks of documents changed or deleted in the store since the build."""
        self.served(tenant)  # load what is published first: "no version" must mean none exists
        with self._lock_for(tenant):
            current = self._served.get(tenant)
            if current is None or current.version is None:
                self._export_unindexed(tenant)
                return
            self._install(tenant, self._with_staleness(tenant, current.version))

    def _export_unindexed(self, tenant: str) -> None:
        """A KB with documents and no version yet: every document waits for a reindex."""
        tenant_label = metrics.TENANT_LABELS.label(tenant)
        if tenant_label != metrics.OTHER_TENANTS:
            metrics.INDEX_PENDING_DOCUMENTS.labels(tenant=tenant_label, collection=COLLECTION).set(
                len(self.store.hashes(tenant))
            )

    def _with_staleness(self, tenant: str, version: KbVersion) -> ServedIndex:
        wanted = self.store.hashes(tenant)
        stale: list[int] = []
        for doc_id, entry in version.documents.items():
            if wanted.get(doc_id) != entry["content_hash"]:
                stale.extend(entry["chunk_ids"])
        excluded = np.array(sorted(stale), dtype=np.int64)
        row_mask = None
        if stale:
            row_mask = (~np.isin(version.vectors.ids, excluded)).astype(np.float32)
        pending = sum(
            1
            for doc_id in wanted.keys() | version.documents.keys()
            if wanted.get(doc_id) != version.documents.get(doc_id, {}).get("content_hash")
        )
        return ServedIndex(version, excluded, row_mask, pending_documents=pending)

    def _load_newest(self, tenant: str) -> ServedIndex:
        """The newest version that verifies; older ones are tried when newer are corrupt."""
        error = None
        for number in reversed(published_versions(self.tenant_root(tenant))):
            try:
                version = load_version(self.tenant_root(tenant), number)
            except IndexCorruptError as exc:
                self._refuse(tenant, number, exc)
                error = error or exc.message
                continue
            served = self._with_staleness(tenant, version)
            return ServedIndex(
                served.version, served.excluded, served.row_mask, error, served.pending_documents
            )
        return ServedIndex(None, load_error=error)

    def _refuse(self, tenant: str, number: int, exc: IndexCorruptError) -> None:
        refused = self._refused.setdefault(tenant, set())
        if number not in refused:
            refused.add(number)
            tenant_label = metrics.TENANT_LABELS.label(tenant)
            metrics.INDEX_LOAD_FAILURES.labels(tenant=tenant_label, collection=COLLECTION).inc()
            log.error("tenant %s: refusing index version %d: %s", tenant, number, exc.message)

    def _install(self, tenant: str, served: ServedIndex) -> None:
        self._served[tenant] = served  # one reference swap: searches see old or new, whole
        version = served.version
        tenant_label = metrics.TENANT_LABELS.label(tenant)
        if tenant_label == metrics.OTHER_TENANTS:
            return
        labels = {"tenant": tenant_label, "collection": COLLECTION}
        if version is None:
            return
        metrics.INDEX_DOCUMENTS.labels(**labels).set(len(version.documents))
        metrics.INDEX_CHUNKS.labels(**labels).set(version.vectors.size)
        metrics.INDEX_VERSION.labels(**labels).set(version.number)
        metrics.INDEX_PENDING_DOCUMENTS.labels(**labels).set(served.pending_documents)
        created = version.manifest.created_at
        metrics.INDEX_AGE.labels(**labels).set_function(lambda: time.time() - created)

    def _lock_for(self, tenant: str) -> threading.Lock:
        with self._locks_guard:
            return self._tenant_locks.setdefault(tenant, threading.Lock())


class FileStorage:
    """``IndexStorage`` on disk: a reindex writes a new version folder and serves it.

    The writer lock is an ``flock`` on the tenant's folder; other processes sharing the
    folder pick the version up through ``ServedVersions.refresh``.
    """

    def __init__(self, versions: ServedVersions, keep_versions: int) -> None:
        self.versions = versions
        self.keep_versions = keep_versions

    def writer(self, tenant: str) -> AbstractContextManager[None]:
        return exclusive_writer(self.versions.tenant_root(tenant))

    def base(self, tenant: str) -> IndexedBase | None:
        self.versions.refresh(tenant)  # another process may have published meanwhile
        version = self.versions.served(tenant).version
        if version is None:
            return None
        return IndexedBase(
            version.number,
            version.manifest.embedding_model,
            dict(version.manifest.extra),
            version.documents,
            version.vectors.size,
        )

    def publish(
        self,
        tenant: str,
        removed: set[str],
        chunks: list[ChunkRecord],
        vectors: npt.NDArray[np.float32],
        documents: dict[str, dict[str, Any]],
        embedding_model: str,
        settings: dict[str, Any],
    ) -> tuple[int, int]:
        """The served version less the ``removed`` documents plus the new ones, published
        as a new folder, loaded and served; old folders beyond ``keep_versions`` go."""
        root = self.versions.tenant_root(tenant)
        base = self.versions.served(tenant).version
        new_ids = np.array([c.chunk_id for c in chunks], dtype=np.int64)
        if base is None:
            kept_chunks: list[ChunkRecord] = []
            all_documents: dict[str, dict[str, Any]] = {}
            index = VectorIndex.build(new_ids, vectors)
        else:
            kept_chunks = [c for c in base.chunks if c.doc_id not in removed]
            all_documents = {d: e for d, e in base.documents.items() if d not in removed}
            gone = np.array(
                [i for d in removed for i in base.documents[d]["chunk_ids"]], dtype=np.int64
            )
            index = base.vectors.with_changes(gone, new_ids, vectors)
        all_documents.update(documents)
        number = publish_version(
            root,
            index,
            kept_chunks + list(chunks),
            all_documents,
            embedding_model=embedding_model,
            extra=settings,
        )
        version = load_version(root, number)
        self.versions.serve(tenant, version)
        collect_garbage(root, self.keep_versions, {version.number})
        return version.number, version.vectors.size
