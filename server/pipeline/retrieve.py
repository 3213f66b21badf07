"""Stage 3a, retrieve: KB passages for the tenant and history for this one customer.

Both searches reuse the message vectors from the analysis: the KB search the one by the
model the tenant's KB is built with (its tuned embedder, if it has one), the history
search the base one. Scoping happens here, before the model sees anything: the KB search
reads only the tenant's own index, and the history search is restricted to the customer's
own entries by a FAISS id selector, so no wording in a message or a document can pull
another customer's data in.

A passage counts as grounding only if its cosine similarity to the message reaches
``min_similarity``; the fused hybrid score ranks, but it is relative to the other
candidates and says nothing about whether the best one is any good.

A follow-up turn ("And if he keeps it for the whole week?") says little on its own, so
it is searched twice: alone, and together with the customer's previous message
(``follow_up_query``). The two hit lists merge by cosine similarity, which, unlike the
fused score, compares across queries; a new topic still wins on its own words.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

from retrieval.history import CustomerHistory, HistoryHit
from retrieval.knowledge import KnowledgeBase, SearchHit


@dataclass(frozen=True)
class Retrieved:
    passages: list[SearchHit]
    best_similarity: float | None
    history: list[HistoryHit]

    @property
    def grounded(self) -> bool:
        return bool(self.passages)


FOLLOW_UP_CONTEXT_CHARS = 300


def follow_up_query(previous: str | None, message: str) -> str | None:
    """The query a follow-up is also searched with: the previous message, then this one."""
    if not previous:
        return None
    return f"{previous[:FOLLOW_UP_CONTEXT_CHARS]}\n{message}"


def merge_hits(*lists: list[SearchHit], top_k: int) -> list[SearchHit]:
    """The best ``top_k`` chunks of several searches, by cosine similarity, each once."""
    best: dict[int, SearchHit] = {}
    for hits in lists:
        for hit in hits:
            kept = best.get(hit.chunk_id)
            if kept is None or (hit.dense_score or -1.0) > (kept.dense_score or -1.0):
                best[hit.chunk_id] = hit
    ranked = sorted(best.values(), key=lambda h: h.dense_score or -1.0, reverse=True)
    return ranked[:top_k]


def retrieve_sync(
    knowledge: KnowledgeBase,
    history: CustomerHistory,
    *,
    tenant: str,
    customer_id: str,
    message: str,
    vector: npt.NDArray[np.float32],
    passages: int,
    kb_vector: npt.NDArray[np.float32] | None = None,
    min_similarity: float,
    history_hits: int,
    personalize: bool,
    context_query: str | None = None,
    context_vector: npt.NDArray[np.float32] | None = None,
) -> Retrieved:
    hits = knowledge.search(
        tenant, message, vector if kb_vector is None else kb_vector, top_k=passages
    )
    if context_query is not None and context_vector is not None:
        in_context = knowledge.search(tenant, context_query, context_vector, top_k=passages)
        hits = merge_hits(hits, in_context, top_k=passages)
    similarities = [h.dense_score for h in hits if h.dense_score is not None]
    grounding = [h for h in hits if h.dense_score is not None and h.dense_score >= min_similarity]
    past = (
        history.search(tenant, customer_id, vector, top_k=history_hits)
        if personalize and history_hits
        else []
    )
    return Retrieved(grounding, max(similarities) if similarities else None, past)
