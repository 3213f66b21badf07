"""What a KB version holds (chunk records, documents, indexes) and what searches read
(``IndexView``: a version on disk, or the shared rows of ``sql_index.py``)."""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

import numpy as np
import numpy.typing as npt

from retrieval.index import Manifest, VectorIndex
from retrieval.lexical import LexicalIndex

COLLECTION = "kb"


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
    key: str = field(default="", kw_only=True)
    """An example question this row is searched by; its passage is the article's lead
    chunk (``text``). Empty for an ordinary chunk."""

    def passage_text(self) -> str:
        """The chunk with its heading path ("Refunds > Card payments") for context."""
        if self.section and self.section != self.title:
            return f"{self.section}\n{self.text}"
        return self.text

    def embedding_text(self) -> str:
        """What this row's vector is made from: the example question, else the passage."""
        return self.key or self.passage_text()

    def lexical_text(self) -> str:
        text = f"{self.title}\n{self.passage_text()}" if self.title else self.passage_text()
        return f"{self.key}\n{text}" if self.key else text

    @property
    def passage(self) -> tuple[str, int]:
        """The passage a hit shows: rows of one article's lead share it."""
        return self.doc_id, self.position


def chunk_id_for(doc_id: str, position: int, content_hash: str) -> int:
    """A stable positive 63-bit id: same document, place and text -> same id in every version."""
    digest = hashlib.blake2b(
        f"{doc_id}\x00{position}\x00{content_hash}".encode(), digest_size=8
    ).digest()
    return int.from_bytes(digest, "big") >> 1


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
class IndexedBase:
    """What a tenant's published index holds, as a reindex compares it with the store."""

    number: int
    embedding_model: str
    settings: dict[str, Any]
    documents: dict[str, dict[str, Any]]  # doc_id -> {content_hash, chunk_ids}
    chunks: int


class IndexView(Protocol):
    """A tenant's published index as one search reads it, wherever it lives: a version
    on disk (``FileView``) or the shared rows in PostgreSQL (``sql_index.SqlView``).
    Stale chunks (of documents deleted or edited since) are already left out."""

    @property
    def size(self) -> int:
        """Rows in the index (chunks and example-question rows)."""

    @property
    def embedding_model(self) -> str:
        """The model the vectors were made with: queries must use the same."""

    def dense(self, query_vector: npt.NDArray[np.float32], pool: int) -> dict[int, float]:
        """The ``pool`` chunks closest to the query: ``chunk_id -> cosine``."""

    def dense_scores(
        self, query_vector: npt.NDArray[np.float32], chunk_ids: Sequence[int]
    ) -> dict[int, float]:
        """Exact cosines of the named chunks (the lexical-only candidates of a fusion)."""

    def lexical(self, query: str, pool: int) -> tuple[dict[int, float], float]:
        """BM25 ``chunk_id -> score`` of the best ``pool``, and the share of the query's
        words the index knows (``LexicalIndex.known_share``)."""

    def chunks(self, chunk_ids: Sequence[int]) -> dict[int, ChunkRecord]:
        """The records of the named chunks that exist."""


@dataclass(frozen=True)
class FileView:
    """``IndexView`` over a served version on disk (FAISS, bm25s, records in memory)."""

    served: ServedIndex
    version: KbVersion

    @property
    def size(self) -> int:
        return self.version.vectors.size

    @property
    def embedding_model(self) -> str:
        return self.version.manifest.embedding_model

    def dense(self, query_vector: npt.NDArray[np.float32], pool: int) -> dict[int, float]:
        scores, ids = self.version.vectors.search(query_vector, pool, excluded=self.served.excluded)
        return dict(zip(ids.tolist(), scores.tolist(), strict=True))

    def dense_scores(
        self, query_vector: npt.NDArray[np.float32], chunk_ids: Sequence[int]
    ) -> dict[int, float]:
        vectors = self.version.vectors
        rows = {i: vectors.row_of(i) for i in chunk_ids}
        return {
            i: float(vectors.vectors[r] @ query_vector) for i, r in rows.items() if r is not None
        }

    def lexical(self, query: str, pool: int) -> tuple[dict[int, float], float]:
        lexical = self.version.lexical
        scores, rows = lexical.search(query, pool, row_mask=self.served.row_mask)
        found = dict(zip(self.version.vectors.ids[rows].tolist(), scores.tolist(), strict=True))
        return found, lexical.known_share(query)

    def chunks(self, chunk_ids: Sequence[int]) -> dict[int, ChunkRecord]:
        rows = {i: self.version.vectors.row_of(i) for i in chunk_ids}
        return {i: self.version.chunks[r] for i, r in rows.items() if r is not None}
