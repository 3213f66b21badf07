"""BM25 keyword search (``bm25s``), the lexical half of hybrid retrieval.

Dense vectors miss exact tokens that matter in support: order numbers, product codes,
error messages, rare names. BM25 finds those. Rows are the same positions as the
vector index's ``ids``, so a filter (stale chunks, one customer) is a row mask given
to ``bm25s`` while it scores, not a post-filter.
"""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any

import numpy as np
import numpy.typing as npt
import Stemmer

_WORD = re.compile(r"(?u)\b\w\w+\b")
# bm25s's English stop words (its "en" list), inlined: importing bm25s also imports
# numba and llvmlite, and a module graph holding llvmlite breaks vLLM's worker start
# (its kernel scan trips over llvmlite objects), so bm25s is imported only when used.
_STOPWORDS = frozenset(
    [
        "a",
        "an",
        "and",
        "are",
        "as",
        "at",
        "be",
        "but",
        "by",
        "for",
        "if",
        "in",
        "into",
        "is",
        "it",
        "no",
        "not",
        "of",
        "on",
        "or",
        "such",
        "that",
        "the",
        "their",
        "then",
        "there",
        "these",
        "they",
        "this",
        "to",
        "was",
        "will",
        "with",
    ]
)
_STEMMER = Stemmer.Stemmer("english")

LEXICAL_FOLDER = "lexical"


def terms(text: str) -> list[str]:
    """Lowercased, stop-word-free, stemmed words: the units BM25 counts."""
    words = [word for word in _WORD.findall(text.lower()) if word not in _STOPWORDS]
    return list(_STEMMER.stemWords(words))


class LexicalIndex:
    """BM25 over a fixed list of texts; rows are positions in that list."""

    def __init__(self, retriever: Any, size: int) -> None:
        self._retriever = retriever
        self.size = size

    @classmethod
    def build(cls, texts: list[str]) -> LexicalIndex:
        tokenized = [terms(text) for text in texts]
        if not any(tokenized):
            # No text has a word BM25 counts (empty, punctuation, stop words only), so
            # nothing can match lexically; bm25s would fail on the empty vocabulary and
            # take the whole tenant's reindex down with it.
            return cls(None, 0)
        import bm25s

        retriever = bm25s.BM25()
        retriever.index(tokenized, show_progress=False)
        return cls(retriever, len(texts))

    def search(
        self, query: str, k: int, *, row_mask: npt.NDArray[np.float32] | None = None
    ) -> tuple[npt.NDArray[np.float32], npt.NDArray[np.int64]]:
        """Top ``k`` (scores, rows) with a positive score; ``row_mask`` 0 hides a row."""
        query_terms = terms(query)
        if self._retriever is None or not query_terms or k <= 0:
            return np.zeros(0, dtype=np.float32), np.zeros(0, dtype=np.int64)
        rows, scores = self._retriever.retrieve(
            [query_terms],
            k=min(k, self.size),
            show_progress=False,
            n_threads=1,
            weight_mask=row_mask,
        )
        keep = scores[0] > 0
        return scores[0][keep].astype(np.float32), rows[0][keep].astype(np.int64)

    def known_share(self, query: str) -> float:
        """How much of ``query`` this index can read: the share of its terms' characters
        in terms the indexed texts contain (0 when nothing is indexed or nothing counts).

        Why: a question in another language than the KB's shares only stray tokens with
        it (a brand name, a number), and BM25 then ranks whichever article repeats that
        token. "如果我把朋友的号码从别的运营商转到 Lumen,有奖励吗?" shares only "lumen" with
        the English KB, 5 of the 26 characters of its words; an English question shares
        nearly all.
        """
        query_terms = terms(query)
        if self._retriever is None or not query_terms:
            return 0.0
        vocabulary = self._retriever.vocab_dict
        known = sum(len(term) for term in query_terms if term in vocabulary)
        return known / sum(len(term) for term in query_terms)

    def write(self, folder: Path) -> list[str]:
        """Save under ``folder/lexical``; return the written file names (relative)."""
        if self._retriever is None:
            return []
        target = folder / LEXICAL_FOLDER
        self._retriever.save(str(target), show_progress=False)
        return sorted(f"{LEXICAL_FOLDER}/{path.name}" for path in target.iterdir())

    @classmethod
    def read(cls, folder: Path, size: int) -> LexicalIndex:
        target = folder / LEXICAL_FOLDER
        if size == 0 or not target.is_dir():
            return cls(None, 0)
        import bm25s

        retriever = bm25s.BM25.load(str(target), show_progress=False)
        return cls(retriever, size)
