"""Stage 3a, retrieve: KB passages for the tenant and history for this one customer.

Both searches reuse the message vector from the analysis. Scoping happens here, before
the model sees anything: the KB search reads only the tenant's own index, and the
history search is restricted to the customer's own entries by a FAISS id selector,
so no wording in a message or a document can pull another customer's data in.

A passage counts as grounding only if its cosine similarity to the message reaches
``min_similarity``; the fused hybrid score ranks, but it is relative to the other
candidates and says nothing about whether the best one is any good.
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


def retrieve_sync(
    knowledge: KnowledgeBase,
    history: CustomerHistory,
    *,
    tenant: str,
    customer_id: str,
    message: str,
    vector: npt.NDArray[np.float32],
    passages: int,
    min_similarity: float,
    history_hits: int,
    personalize: bool,
) -> Retrieved:
    hits = knowledge.search(tenant, message, vector, top_k=passages)
    similarities = [h.dense_score for h in hits if h.dense_score is not None]
    grounding = [h for h in hits if h.dense_score is not None and h.dense_score >= min_similarity]
    past = (
        history.search(tenant, customer_id, vector, top_k=history_hits)
        if personalize and history_hits
        else []
    )
    return Retrieved(grounding, max(similarities) if similarities else None, past)
