"""The pairs a tenant's embedder is tuned on and the held-out split that judges it."""

from __future__ import annotations

from collections.abc import Sequence

import pytest

from core.errors import InvalidRequestError
from retrieval.documents import Document, DocumentFormat, faq_from_csv
from retrieval.knowledge import RetrievalConfig
from retrieval.knowledge.tuning import Article, TuningPair, split_pairs, tenant_articles


class Store:
    """The two reads ``tenant_articles`` makes of a ``DocumentStore``."""

    def __init__(self, documents: Sequence[Document]) -> None:
        self._documents = {doc.doc_id: doc for doc in documents}

    def hashes(self, tenant: str) -> dict[str, str]:
        return {d: doc.content_hash for d, doc in self._documents.items()}

    def load(self, tenant: str, doc_ids: Sequence[str]) -> list[Document]:
        return [self._documents[d] for d in doc_ids]


def markdown(doc_id: str, questions: list[str], body: str) -> Document:
    front = "".join(f"  - {q}\n" for q in questions)
    text = f"---\nquestions:\n{front}---\n{body}" if questions else body
    return Document(doc_id, text, doc_id, DocumentFormat.MARKDOWN)


def test_pairs_come_from_front_matter_and_faq_entries_once_each() -> None:
    documents = [
        markdown(
            "returns.md", ["Can I send it back?", "Can I send it back?"], "# Returns\n\n30 days."
        ),
        markdown("warranty.md", [], "# Warranty\n\nTwo years."),
        *faq_from_csv("faq.csv", "question,answer\nDo you ship abroad?,Yes to the EU.\n"),
    ]
    articles, pairs = tenant_articles(Store(documents), "acme", RetrievalConfig())
    assert sorted(articles) == ["faq.csv:do-you-ship-abroad", "returns.md", "warranty.md"]
    assert sorted((p.question, p.doc_id) for p in pairs) == [
        ("Can I send it back?", "returns.md"),
        ("Do you ship abroad?", "faq.csv:do-you-ship-abroad"),
    ]
    # an article is ranked and trained on without its questions; a FAQ entry by its answer
    returns = articles["returns.md"]
    assert "send it back" not in returns.training_text and "30 days." in returns.training_text
    assert articles["faq.csv:do-you-ship-abroad"].training_text == "Yes to the EU."


def test_the_split_is_seeded_per_article_and_never_shares_a_question() -> None:
    pairs = [TuningPair(f"q{a}-{n}", f"doc{a}") for a in range(4) for n in range(10)]
    pairs.append(TuningPair("q0-0", "doc1"))  # one wording for two articles
    pairs.append(TuningPair("lonely", "doc9"))  # an article with a single question
    train, held_out = split_pairs(pairs, 0.2, seed=7)
    assert (train, held_out) == split_pairs(list(reversed(pairs)), 0.2, seed=7)
    assert split_pairs(pairs, 0.2, seed=8)[1] != held_out
    assert sorted(train + held_out, key=repr) == sorted(pairs, key=repr)
    assert not {p.question for p in train} & {p.question for p in held_out}
    assert TuningPair("lonely", "doc9") in train
    per_article = {doc: sum(1 for p in held_out if p.doc_id == doc) for doc in ("doc2", "doc3")}
    assert per_article == {"doc2": 2, "doc3": 2}


@pytest.mark.parametrize("holdout", [0.0, 1.0, -0.1])
def test_a_holdout_outside_zero_and_one_is_refused(holdout: float) -> None:
    with pytest.raises(InvalidRequestError, match="holdout"):
        split_pairs([TuningPair("q", "d")], holdout, seed=0)


def test_an_article_is_trained_on_by_its_title_and_lead() -> None:
    document = markdown("a.md", ["Why?"], "# Alpha\n\nFirst part.\n\n## Beta\n\nSecond part.")
    articles, _ = tenant_articles(Store([document]), "acme", RetrievalConfig())
    article: Article = articles["a.md"]
    assert article.training_text.startswith("a.md\n") and "First part." in article.training_text
