"""What a KB version holds (chunk records, documents, indexes) and what searches read."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from typing import Any

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
