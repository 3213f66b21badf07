"""The KB's settings: search modes, fusion methods and the knobs of ``RetrievalConfig``."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum
from typing import Any


class SearchMode(StrEnum):
    HYBRID = "hybrid"
    DENSE = "dense"
    LEXICAL = "lexical"


class Fusion(StrEnum):
    """How dense and lexical results are merged in hybrid search."""

    WEIGHTED = "weighted"  # convex mix of per-query min-max normalized scores
    RRF = "rrf"  # reciprocal rank fusion


@dataclass(frozen=True)
class RetrievalConfig:
    """Knobs of chunking, fusion and version keeping (from ``Settings``)."""

    chunk_max_chars: int = 900
    chunk_overlap_chars: int = 150
    keep_versions: int = 2
    title_weight: float = 0.5
    candidates: int = 50
    fusion: Fusion = Fusion.WEIGHTED
    lexical_weight: float = 0.3
    rrf_k: int = 60
    default_mode: SearchMode = SearchMode.HYBRID

    def index_settings(self) -> dict[str, Any]:
        """Settings baked into the vectors: a version built with others needs a full reindex."""
        return {
            "chunk_max_chars": self.chunk_max_chars,
            "chunk_overlap_chars": self.chunk_overlap_chars,
            "title_weight": self.title_weight,
        }
