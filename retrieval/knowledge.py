"""The knowledge base: documents -> chunks -> published index versions -> hybrid search.

Each tenant has its own index under ``<data_dir>/retrieval/<tenant>/kb``: tenants are
separated by construction, not by a filter. What a search sees is a ``ServedIndex``,
an immutable snapshot (a loaded version plus the ids of chunks that went stale since
it was built). Replacing the snapshot is one reference assignment, so searches never
see a half-swapped index and never wait for a reindex.

Staleness is what keeps deleted and edited documents out of answers at once: when a
document is deleted or changed in the store, the chunks the served version holds for
it are excluded inside every search (FAISS id selector, BM25 row mask) until the
reindex that removes or replaces them is published.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import logging
import threading
import time
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt

from core import metrics
from core.errors import IndexCorruptError, JobCancelledError
from core.ids import check_tenant
from models.embedder import Embedder
from retrieval.documents import Document, DocumentStore, StoreChange
from retrieval.index import (
    IndexVersionWriter,
    Manifest,
    VectorIndex,
    collect_garbage,
    exclusive_writer,
    published_versions,
    read_manifest,
    version_name,
)
from retrieval.lexical import LexicalIndex

log = logging.getLogger(__name__)

COLLECTION = "kb"
CHUNKS_FILE = "chunks.jsonl"
DOCUMENTS_FILE = "documents.json"
EMBED_BATCH_DOCUMENTS = 16

Progress = Callable[[int, int], None]  # (documents done, documents to embed)
CancelCheck = Callable[[], bool]


class SearchMode(StrEnum):
    HYBRID = "hybrid"
    DENSE = "dense"
    LEXICAL = "lexical"


class Fusion(StrEnum):
    """How dense and lexical results are merged in hybrid search."""

    WEIGHTED = "weighted"  # convex mix of per-query min-max normalized scores
    RRF = "rrf"  # reciprocal rank fusion


class ReindexMode(StrEnum):
    INCREMENTAL = "incremental"
    FULL = "full"


@dataclass(frozen=True)
class RetrievalConfig:
    """Knobs of chunking, fusion and version keeping (from ``Settings``)."""

    chunk_max_chars: int = 900
    chunk_overlap_chars: int = 150
    keep_versions: int = 2
    title_weight: float = 0.5
    candidates: int = 50
    fusion: Fusion = Fusion.WEIGHTED
    lexical_weight: float = 0.1
    rrf_k: int = 60
    default_mode: SearchMode = SearchMode.HYBRID

    def index_settings(self) -> dict[str, Any]:
        """Settings baked into the vectors: a version built with others needs a full reindex."""
        return {
            "chunk_max_chars": self.chunk_max_chars,
            "chunk_overlap_chars": self.chunk_overlap_chars,
            "title_weight": self.title_weight,
        }


@dataclass(frozen=True)
class ChunkRecord:
    """A chunk as stored in a version (``chunks.jsonl``), row-aligned with its vector."""

    chunk_id: int
    doc_id: str
    title: str
    source: str
    position: int
    section: str
    text: str
    content_hash: str

    def embedding_text(self) -> str:
        """The chunk with its heading path ("Refunds > Card payments") for context."""
        if self.section and self.section != self.title:
            return f"{self.section}\n{self.text}"
        return self.text

    def lexical_text(self) -> str:
        return f"{self.title}\n{self.embedding_text()}" if self.title else self.embedding_text()


@dataclass(frozen=True)
class KbVersion:
    """One published version, loaded and verified."""

    number: int
    manifest: Manifest
    vectors: VectorIndex
    lexical: LexicalIndex
    chunks: list[ChunkRecord]
    documents: dict[str, dict[str, Any]]  # doc_id -> {content_hash, chunk_ids}


@dataclass(frozen=True)
class ServedIndex:
    """What searches read: a version and the chunk ids excluded because they went stale."""

    version: KbVersion | None
    excluded: npt.NDArray[np.int64] = field(default_factory=lambda: np.zeros(0, np.int64))
    row_mask: npt.NDArray[np.float32] | None = None
    load_error: str | None = None
    pending_documents: int = 0
    """Documents added, changed or deleted in the store since this version was built."""


@dataclass(frozen=True)
class SearchHit(ChunkRecord):
    """A retrieved chunk with its fused score and the score of each method that found it."""

    score: float
    dense_score: float | None
    lexical_score: float | None


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


def _weighted_fusion(
    dense: dict[int, float], lexical: dict[int, float], lexical_weight: float
) -> dict[int, float]:
    """``(1 - w) * minmax(dense) + w * minmax(lexical)`` over the candidate pool.

    Min-max per query puts cosine and BM25 on one scale; a chunk BM25 did not return
    scores 0 there (it matched fewer terms than the worst returned one).
    """
    dense_norm = _min_max(dense)
    lexical_norm = _min_max(lexical)
    return {
        i: (1 - lexical_weight) * dense_norm.get(i, 0.0) + lexical_weight * lexical_norm.get(i, 0.0)
        for i in dense.keys() | lexical.keys()
    }


def _reciprocal_rank_fusion(
    dense: dict[int, float], lexical: dict[int, float], lexical_weight: float, k: int
) -> dict[int, float]:
    """``sum w / (k + rank)``: needs no score scales, ignores how far apart scores are."""
    fused: dict[int, float] = {}
    for weight, ranked in ((1.0, dense), (lexical_weight, lexical)):
        order = sorted(ranked, key=lambda i: -ranked[i])
        for rank, i in enumerate(order):
            fused[i] = fused.get(i, 0.0) + weight / (k + rank + 1)
    return fused


def _min_max(scores: dict[int, float]) -> dict[int, float]:
    if not scores:
        return {}
    low, high = min(scores.values()), max(scores.values())
    if high - low < 1e-12:
        return dict.fromkeys(scores, 1.0)
    return {i: (s - low) / (high - low) for i, s in scores.items()}


def chunk_id_for(doc_id: str, position: int, content_hash: str) -> int:
    """A stable positive 63-bit id: same document, place and text -> same id in every version."""
    digest = hashlib.blake2b(
        f"{doc_id}\x00{position}\x00{content_hash}".encode(), digest_size=8
    ).digest()
    return int.from_bytes(digest, "big") >> 1


class KnowledgeBase:
    """Per-tenant KB indexes over a ``DocumentStore``: search, document edits, reindex."""

    def __init__(
        self,
        root: Path,
        store: DocumentStore,
        embedder: Embedder,
        config: RetrievalConfig | None = None,
        search_workers: int = 2,
    ) -> None:
        self.root = root
        self.store = store
        self.embedder = embedder
        self.config = config or RetrievalConfig()
        self._served: dict[str, ServedIndex] = {}
        self._refused: dict[str, set[int]] = {}
        self._tenant_locks: dict[str, threading.Lock] = {}
        self._locks_guard = threading.Lock()
        self._executor = ThreadPoolExecutor(search_workers, thread_name_prefix="concierge-search")

    # ------------------------------------------------------------ reading

    def tenant_root(self, tenant: str) -> Path:
        return self.root / check_tenant(tenant) / COLLECTION

    def tenants(self) -> list[str]:
        """Tenants with documents in the store or an index on disk."""
        on_disk = (
            {p.name for p in self.root.iterdir() if p.is_dir()} if self.root.is_dir() else set()
        )
        return sorted(on_disk | set(self.store.tenants()))

    def served(self, tenant: str) -> ServedIndex:
        """The tenant's current snapshot, loading it on first use."""
        current = self._served.get(tenant)
        if current is None:
            with self._lock_for(tenant):
                current = self._served.get(tenant)
                if current is None:
                    current = self._load_newest(tenant)
                    self._install(tenant, current)
        return current

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
                version = self._load_version(tenant, candidates[-1])
            except IndexCorruptError as exc:
                self._refuse(tenant, candidates[-1], exc)
                self._served[tenant] = ServedIndex(
                    current.version, current.excluded, current.row_mask, exc.message
                )
                return False
            self._install(tenant, self._with_staleness(tenant, version))
        return True

    def search(
        self,
        tenant: str,
        query: str,
        query_vector: npt.NDArray[np.float32] | None,
        top_k: int = 5,
        mode: SearchMode | None = None,
    ) -> list[SearchHit]:
        """Top ``top_k`` chunks of the tenant's KB for ``query`` (synchronous)."""
        mode = mode or self.config.default_mode
        started = time.perf_counter()
        served = self.served(tenant)
        version = served.version
        hits: list[SearchHit] = []
        if version is not None and version.vectors.size:
            hits = self._search_version(served, version, query, query_vector, top_k, mode)
        metrics.SEARCH_DURATION.labels(collection=COLLECTION, mode=str(mode)).observe(
            time.perf_counter() - started
        )
        if not hits:
            metrics.SEARCH_EMPTY_RESULTS.labels(collection=COLLECTION).inc()
        return hits

    async def asearch(
        self, tenant: str, query: str, top_k: int = 5, mode: SearchMode | None = None
    ) -> list[SearchHit]:
        """Embed the query and search, off the event loop."""
        mode = mode or self.config.default_mode
        vector = None
        if mode is not SearchMode.LEXICAL:
            vector = (await self.embedder.embed([query], purpose="query"))[0]
        loop = asyncio.get_running_loop()
        return await loop.run_in_executor(
            self._executor, lambda: self.search(tenant, query, vector, top_k, mode)
        )

    def _search_version(
        self,
        served: ServedIndex,
        version: KbVersion,
        query: str,
        query_vector: npt.NDArray[np.float32] | None,
        top_k: int,
        mode: SearchMode,
    ) -> list[SearchHit]:
        pool = max(top_k, self.config.candidates) if mode is SearchMode.HYBRID else top_k
        dense: dict[int, float] = {}
        lexical: dict[int, float] = {}
        if mode is not SearchMode.LEXICAL and query_vector is not None:
            scores, ids = version.vectors.search(query_vector, pool, excluded=served.excluded)
            dense = dict(zip(ids.tolist(), scores.tolist(), strict=True))
        if mode is not SearchMode.DENSE:
            scores, rows = version.lexical.search(query, pool, row_mask=served.row_mask)
            lexical = dict(zip(version.vectors.ids[rows].tolist(), scores.tolist(), strict=True))
        if mode is SearchMode.DENSE:
            fused = dense
        elif mode is SearchMode.LEXICAL:
            fused = lexical
        elif self.config.fusion is Fusion.RRF:
            fused = _reciprocal_rank_fusion(
                dense, lexical, self.config.lexical_weight, self.config.rrf_k
            )
        else:
            if query_vector is not None:  # exact dense scores for lexical-only candidates
                for chunk_id in lexical.keys() - dense.keys():
                    row = version.vectors.row_of(chunk_id)
                    if row is not None:
                        dense[chunk_id] = float(version.vectors.vectors[row] @ query_vector)
            fused = _weighted_fusion(dense, lexical, self.config.lexical_weight)
        best = sorted(fused.items(), key=lambda item: (-item[1], item[0]))[:top_k]
        hits = []
        for chunk_id, score in best:
            row = version.vectors.row_of(chunk_id)
            if row is None:  # pragma: no cover - ids and chunks are written together
                continue
            hits.append(
                SearchHit(
                    **vars(version.chunks[row]),
                    score=score,
                    dense_score=dense.get(chunk_id),
                    lexical_score=lexical.get(chunk_id),
                )
            )
        return hits

    # ------------------------------------------------------------ writing documents

    def put_documents(self, tenant: str, documents: Sequence[Document]) -> list[StoreChange]:
        """Store documents; edited ones stop matching with their old text at once."""
        changes = self.store.upsert(check_tenant(tenant), documents)
        if any(change.action != "unchanged" for change in changes):
            self._mark_stale(tenant)
        return changes

    def delete_documents(self, tenant: str, doc_ids: Sequence[str]) -> list[StoreChange]:
        """Delete documents; they stop matching at once, before any reindex."""
        changes = self.store.delete(check_tenant(tenant), doc_ids)
        if any(change.action == "deleted" for change in changes):
            self._mark_stale(tenant)
        return changes

    def _mark_stale(self, tenant: str) -> None:
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

    # ------------------------------------------------------------ reindex

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
        searching the served version meanwhile. Raises ``JobCancelledError`` when
        ``cancelled()`` turns true; nothing is published then.
        """
        check_tenant(tenant)
        self.embedder.warm_up()  # model loading is not reindex time
        report = ReindexReport(tenant=tenant, mode=mode, version=None)
        started = time.perf_counter()
        root = self.tenant_root(tenant)
        with exclusive_writer(root):
            self.refresh(tenant)
            base = self.served(tenant).version
            if base is not None and not self._compatible(base):
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
                report.chunks = base.vectors.size
                report.seconds = time.perf_counter() - started
                return report
            new_chunks, new_vectors, new_docs = self._embed_documents(
                tenant, todo, progress, cancelled
            )
            report.embedded_documents = len(new_docs)
            report.embedded_chunks = len(new_chunks)
            if cancelled and cancelled():
                raise JobCancelledError("reindex cancelled before publishing")
            version = self._build_version(tenant, base, removed, new_chunks, new_vectors, new_docs)
            report.version = version.number
            report.chunks = version.vectors.size
            report.published = True
            with self._lock_for(tenant):  # a concurrent delete either precedes this or follows
                self._install(tenant, self._with_staleness(tenant, version))
            collect_garbage(root, self.config.keep_versions, {version.number})
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

    def _compatible(self, version: KbVersion) -> bool:
        """Whether ``version``'s vectors can be reused: same model and chunking settings."""
        built_with = {k: version.manifest.extra.get(k) for k in self.config.index_settings()}
        return (
            version.manifest.embedding_model == self.embedder.model_name
            and built_with == self.config.index_settings()
        )

    def _embed_documents(
        self,
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
                pieces = doc.chunks(
                    max_chars=self.config.chunk_max_chars,
                    overlap_chars=self.config.chunk_overlap_chars,
                )
                doc_chunks = [
                    ChunkRecord(
                        chunk_id=chunk_id_for(doc.doc_id, c.position, c.content_hash),
                        doc_id=doc.doc_id,
                        title=doc.title,
                        source=doc.source,
                        position=c.position,
                        section=c.section,
                        text=c.text,
                        content_hash=c.content_hash,
                    )
                    for c in pieces
                ]
                documents[doc.doc_id] = {
                    "content_hash": doc.content_hash,
                    "chunk_ids": [c.chunk_id for c in doc_chunks],
                }
                batch.extend(doc_chunks)
            if batch:
                vectors.append(self._field_vectors(batch))
                records.extend(batch)
            if progress:
                progress(min(start + EMBED_BATCH_DOCUMENTS, len(doc_ids)), len(doc_ids))
        self.embedder.warm_up()
        stacked = (
            np.concatenate(vectors)
            if vectors
            else np.zeros((0, self.embedder.dimension), dtype=np.float32)
        )
        return records, stacked, documents

    def _field_vectors(self, chunks: list[ChunkRecord]) -> npt.NDArray[np.float32]:
        """One vector per chunk scoring both fields: ``w * title + (1 - w) * chunk``.

        The inner product with a query is then exactly the weighted sum of the query's
        cosine with the document title and with the chunk text, so FAISS ranks by the
        two-field score with no second lookup. Titles say what an article is about in
        few words; on the Bitext benchmark titling each article with its topic lifts
        Recall@1 from 0.73 to 0.83 (docs/benchmarks.md). Untitled documents are unchanged.
        """
        chunk_vectors = self.embedder.embed_sync(
            [c.embedding_text() for c in chunks], purpose="document"
        )
        weight = self.config.title_weight
        titles = sorted({c.title for c in chunks if c.title})
        if weight <= 0 or not titles:
            return chunk_vectors
        title_vectors = dict(
            zip(titles, self.embedder.embed_sync(titles, purpose="document"), strict=True)
        )
        mixed = chunk_vectors.copy()
        for row, chunk in enumerate(chunks):
            if chunk.title:
                mixed[row] = weight * title_vectors[chunk.title] + (1 - weight) * chunk_vectors[row]
        return mixed

    def _build_version(
        self,
        tenant: str,
        base: KbVersion | None,
        removed: set[str],
        new_chunks: list[ChunkRecord],
        new_vectors: npt.NDArray[np.float32],
        new_docs: dict[str, dict[str, Any]],
    ) -> KbVersion:
        root = self.tenant_root(tenant)
        if base is None:
            kept_chunks: list[ChunkRecord] = []
            documents: dict[str, dict[str, Any]] = {}
            vectors = VectorIndex.build(
                np.array([c.chunk_id for c in new_chunks], dtype=np.int64), new_vectors
            )
        else:
            kept_chunks = [c for c in base.chunks if c.doc_id not in removed]
            documents = {d: e for d, e in base.documents.items() if d not in removed}
            gone = np.array(
                [i for d in removed for i in base.documents[d]["chunk_ids"]], dtype=np.int64
            )
            vectors = base.vectors.with_changes(
                gone, np.array([c.chunk_id for c in new_chunks], dtype=np.int64), new_vectors
            )
        chunks = kept_chunks + new_chunks
        documents.update(new_docs)
        lexical = LexicalIndex.build([c.lexical_text() for c in chunks])
        with IndexVersionWriter(root) as writer:
            files = vectors.write(writer.folder) + lexical.write(writer.folder)
            with (writer.folder / CHUNKS_FILE).open("w", encoding="utf-8") as handle:
                for chunk in chunks:
                    handle.write(json.dumps(chunk.__dict__, ensure_ascii=False) + "\n")
            (writer.folder / DOCUMENTS_FILE).write_text(json.dumps(documents))
            number = writer.publish(
                files=[*files, CHUNKS_FILE, DOCUMENTS_FILE],
                embedding_model=self.embedder.model_name,
                dimension=vectors.dimension,
                counts={"documents": len(documents), "chunks": len(chunks)},
                layout=vectors.layout,
                trained_on=vectors.trained_on,
                extra={"tenant": tenant, **self.config.index_settings()},
            )
        return self._load_version(tenant, number)

    # ------------------------------------------------------------ loading

    def _load_newest(self, tenant: str) -> ServedIndex:
        """The newest version that verifies; older ones are tried when newer are corrupt."""
        error = None
        for number in reversed(published_versions(self.tenant_root(tenant))):
            try:
                version = self._load_version(tenant, number)
            except IndexCorruptError as exc:
                self._refuse(tenant, number, exc)
                error = error or exc.message
                continue
            served = self._with_staleness(tenant, version)
            return ServedIndex(
                served.version, served.excluded, served.row_mask, error, served.pending_documents
            )
        return ServedIndex(None, load_error=error)

    def _load_version(self, tenant: str, number: int) -> KbVersion:
        folder = self.tenant_root(tenant) / "versions" / version_name(number)
        manifest = read_manifest(folder)
        try:
            vectors = VectorIndex.read(folder, manifest.layout, manifest.trained_on)
            chunks = [
                ChunkRecord(**json.loads(line))
                for line in (folder / CHUNKS_FILE).read_text(encoding="utf-8").splitlines()
            ]
            documents = json.loads((folder / DOCUMENTS_FILE).read_text())
            lexical = LexicalIndex.read(folder, len(chunks))
        except IndexCorruptError:
            raise
        except Exception as exc:  # verified files that still do not parse: refuse them
            raise IndexCorruptError(f"{folder.name}: cannot load: {exc!r}") from exc
        if len(chunks) != vectors.size or manifest.counts.get("chunks") != len(chunks):
            raise IndexCorruptError(f"{folder.name}: chunk and vector counts disagree")
        return KbVersion(number, manifest, vectors, lexical, chunks, documents)

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

    def shutdown(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
