"""Reindexing a tenant: full or incremental builds of a new version, cancellation, progress."""

from __future__ import annotations

import time
from collections.abc import Callable
from contextlib import AbstractContextManager
from dataclasses import dataclass, replace
from enum import StrEnum
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from core import metrics
from core.errors import JobCancelledError
from core.ids import check_tenant
from models.embedder import Embedder
from models.tenant_embedders import TenantEmbedders
from retrieval.chunking import text_hash
from retrieval.documents import Document, DocumentStore
from retrieval.knowledge.config import RetrievalConfig
from retrieval.knowledge.records import ChunkRecord, IndexedBase, chunk_id_for

EMBED_BATCH_DOCUMENTS = 16

Progress = Callable[[int, int], None]  # (documents done, documents to embed)
CancelCheck = Callable[[], bool]


def chunk_records(
    document: Document, config: RetrievalConfig, title: str | None = None
) -> list[ChunkRecord]:
    """The document's passages as the index stores them; ``title`` overrides its own (the
    tuning pairs rank an FAQ entry by its answer alone)."""
    return [
        ChunkRecord(
            chunk_id=chunk_id_for(document.doc_id, c.position, c.content_hash),
            doc_id=document.doc_id,
            title=document.title if title is None else title,
            source=document.source,
            position=c.position,
            section=c.section,
            text=c.text,
            content_hash=c.content_hash,
        )
        for c in document.chunks(
            max_chars=config.chunk_max_chars, overlap_chars=config.chunk_overlap_chars
        )
    ]


def question_rows(chunks: list[ChunkRecord], questions: list[str]) -> list[ChunkRecord]:
    """One extra row per example question of a document: searched by the question's own
    vector (and its words), it shows the document's lead chunk. A question says what a
    customer asks in the customer's words, which the article's text seldom does."""
    if not chunks or not questions:
        return []
    lead = chunks[0]
    return [
        replace(
            lead,
            chunk_id=chunk_id_for(
                lead.doc_id,
                lead.position,
                text_hash(f"question\x00{question}\x00{lead.content_hash}"),
            ),
            key=question,
        )
        for question in questions
    ]


def field_vectors(
    embedder: Embedder, chunks: list[ChunkRecord], title_weight: float
) -> npt.NDArray[np.float32]:
    """One vector per chunk scoring both fields: ``w * title + (1 - w) * chunk``.

    The inner product with a query is then exactly the weighted sum of the query's
    cosine with the document title and with the chunk text, so FAISS ranks by the
    two-field score with no second lookup. Titles say what an article is about in
    few words; on the Bitext benchmark titling each article with its topic lifts
    Recall@1 from 0.73 to 0.83 (docs/benchmarks.md). Untitled documents are unchanged.
    Tuning an embedder (``knowledge/tuning.py``) scores articles the same way.
    """
    chunk_vectors = embedder.embed_sync([c.embedding_text() for c in chunks], purpose="document")
    titles = sorted({c.title for c in chunks if c.title})
    if title_weight <= 0 or not titles:
        return chunk_vectors
    title_vectors = dict(zip(titles, embedder.embed_sync(titles, purpose="document"), strict=True))
    mixed = chunk_vectors.copy()
    for row, chunk in enumerate(chunks):
        if chunk.title and not chunk.key:  # a question row matches questions alone
            mixed[row] = (
                title_weight * title_vectors[chunk.title] + (1 - title_weight) * chunk_vectors[row]
            )
    return mixed


class ReindexMode(StrEnum):
    INCREMENTAL = "incremental"
    FULL = "full"


@dataclass
class ReindexReport:
    tenant: str
    mode: ReindexMode
    version: int | None
    documents: int = 0
    embedded_documents: int = 0
    reused_documents: int = 0
    removed_documents: int = 0
    embedded_chunks: int = 0
    chunks: int = 0
    seconds: float = 0.0
    published: bool = False

    @property
    def documents_per_second(self) -> float:
        handled = self.embedded_documents + self.removed_documents
        return handled / self.seconds if self.seconds > 0 else 0.0

    def as_dict(self) -> dict[str, Any]:
        return {
            "tenant": self.tenant,
            "mode": str(self.mode),
            "version": self.version,
            "published": self.published,
            "documents": self.documents,
            "embedded_documents": self.embedded_documents,
            "reused_documents": self.reused_documents,
            "removed_documents": self.removed_documents,
            "embedded_chunks": self.embedded_chunks,
            "chunks": self.chunks,
            "seconds": round(self.seconds, 3),
            "documents_per_second": round(self.documents_per_second, 2),
        }


class IndexStorage(Protocol):
    """Where a tenant's published KB index lives: versions on disk (``served.FileStorage``)
    or the rows every replica shares in PostgreSQL (``sql_index.SqlKbIndex``)."""

    def writer(self, tenant: str) -> AbstractContextManager[None]:
        """Held for a whole reindex: one writer per tenant across processes."""

    def base(self, tenant: str) -> IndexedBase | None:
        """The published index (read under the writer lock), or ``None`` before any."""

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
        """Publish the base less ``removed`` plus the new chunks, all at once; returns the
        new version's number and its number of rows."""


@dataclass(eq=False)
class Reindexer:
    """Builds and publishes new versions of a tenant's KB from its stored documents."""

    storage: IndexStorage
    store: DocumentStore
    embedders: TenantEmbedders
    config: RetrievalConfig

    def reindex(
        self,
        tenant: str,
        mode: ReindexMode = ReindexMode.INCREMENTAL,
        *,
        progress: Progress | None = None,
        cancelled: CancelCheck | None = None,
    ) -> ReindexReport:
        """Bring the tenant's index up to date with its documents; publish a new version.

        Incremental: only new and edited documents are chunked and embedded; deleted
        ones are removed; unchanged ones keep their vectors. Full: everything is
        re-embedded (after a change of embedding model or chunking settings). Holds the
        tenant's writer lock (across processes) for the whole build; readers keep
        searching the published version meanwhile. Raises ``JobCancelledError`` when
        ``cancelled()`` turns true; nothing is published then. The documents are
        embedded by the tenant's own tuned embedder where it has one.
        """
        check_tenant(tenant)
        embedder = self.embedders.for_documents(tenant)
        embedder.warm_up()  # model loading is not reindex time
        report = ReindexReport(tenant=tenant, mode=mode, version=None)
        started = time.perf_counter()
        with self.storage.writer(tenant):
            base = self.storage.base(tenant)
            if base is not None and not self._compatible(base, embedder):
                mode = report.mode = ReindexMode.FULL
            wanted = self.store.hashes(tenant)
            indexed = {} if base is None else base.documents
            if mode is ReindexMode.FULL:
                removed = set(indexed)
                todo = sorted(wanted)
            else:
                removed = {d for d, e in indexed.items() if wanted.get(d) != e["content_hash"]}
                todo = sorted(d for d in wanted if d not in indexed or d in removed)
            report.documents = len(wanted)
            report.removed_documents = len(removed - set(wanted))
            report.reused_documents = len(wanted) - len(todo)
            if progress:
                progress(0, len(todo))
            if base is not None and not todo and not removed:
                report.version = base.number
                report.chunks = base.chunks
                report.seconds = time.perf_counter() - started
                return report
            new_chunks, new_vectors, new_docs = self._embed_documents(
                embedder, tenant, todo, progress, cancelled
            )
            report.embedded_documents = len(new_docs)
            report.embedded_chunks = len(new_chunks)
            if cancelled and cancelled():
                raise JobCancelledError("reindex cancelled before publishing")
            report.version, report.chunks = self.storage.publish(
                tenant,
                removed,
                new_chunks,
                new_vectors,
                new_docs,
                embedder.model_name,
                {"tenant": tenant, **self.config.index_settings()},
            )
            report.published = True
        report.seconds = time.perf_counter() - started
        metrics.REINDEX_DOCUMENTS.labels(action="embedded").inc(report.embedded_documents)
        metrics.REINDEX_DOCUMENTS.labels(action="reused").inc(report.reused_documents)
        metrics.REINDEX_DOCUMENTS.labels(action="removed").inc(report.removed_documents)
        tenant_label = metrics.TENANT_LABELS.label(tenant)
        if tenant_label != metrics.OTHER_TENANTS:
            metrics.REINDEX_DOCUMENTS_PER_SECOND.labels(tenant=tenant_label).set(
                report.documents_per_second
            )
        return report

    def _compatible(self, base: IndexedBase, embedder: Embedder) -> bool:
        """Whether ``base``'s vectors can be reused: same model and chunking settings."""
        built_with = {k: base.settings.get(k) for k in self.config.index_settings()}
        return (
            base.embedding_model == embedder.model_name
            and built_with == self.config.index_settings()
        )

    def _embed_documents(
        self,
        embedder: Embedder,
        tenant: str,
        doc_ids: list[str],
        progress: Progress | None,
        cancelled: CancelCheck | None,
    ) -> tuple[list[ChunkRecord], npt.NDArray[np.float32], dict[str, dict[str, Any]]]:
        records: list[ChunkRecord] = []
        vectors: list[npt.NDArray[np.float32]] = []
        documents: dict[str, dict[str, Any]] = {}
        for start in range(0, len(doc_ids), EMBED_BATCH_DOCUMENTS):
            if cancelled and cancelled():
                raise JobCancelledError(f"reindex cancelled after {start} of {len(doc_ids)}")
            batch: list[ChunkRecord] = []
            for doc in self.store.load(tenant, doc_ids[start : start + EMBED_BATCH_DOCUMENTS]):
                doc_chunks = chunk_records(doc, self.config)
                doc_chunks += question_rows(doc_chunks, doc.example_questions())
                documents[doc.doc_id] = {
                    "content_hash": doc.content_hash,
                    "chunk_ids": [c.chunk_id for c in doc_chunks],
                }
                batch.extend(doc_chunks)
            if batch:
                vectors.append(field_vectors(embedder, batch, self.config.title_weight))
                records.extend(batch)
            if progress:
                progress(min(start + EMBED_BATCH_DOCUMENTS, len(doc_ids)), len(doc_ids))
        embedder.warm_up()
        stacked = (
            np.concatenate(vectors) if vectors else np.zeros((0, embedder.dimension), np.float32)
        )
        return records, stacked, documents
