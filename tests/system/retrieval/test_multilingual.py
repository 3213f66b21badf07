"""The embedder ``auto`` picks on a GPU or a CPU that computes bfloat16 (EmbeddingGemma-300M),
on the answer suites' KBs as the reply pipeline searches them: French and Chinese questions
find their English article, and the demo shop's kettle question finds the returns policy.

The rest of the suite pins MiniLM (tests/conftest.py); these tests load EmbeddingGemma,
prepared by ``make test`` (``concierge models prepare embeddinggemma-300m``).
"""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.lib.suite_retrieval import POOL, articles, measure_suite, suite_knowledge
from bench.lib.suites import SUITES_DIR, load_suite
from models.embedder import Embedder, EmbedderConfig
from server.config import MULTILINGUAL_EMBEDDING_MODEL


@pytest.fixture(scope="module")
def multilingual(prepared_dir: Path) -> Iterator[Embedder]:
    model = Embedder(
        EmbedderConfig(MULTILINGUAL_EMBEDDING_MODEL, device="cpu", data_dir=prepared_dir)
    )
    model.warm_up()
    yield model
    model.shutdown()


@pytest.mark.parametrize("suite_name", ["demo", "telco"])
def test_french_and_chinese_questions_find_their_english_article_in_the_top_three(
    multilingual: Embedder, suite_name: str, tmp_path: Path
) -> None:
    result = measure_suite(load_suite(SUITES_DIR / suite_name), tmp_path, True, multilingual)
    found = result["multilingual"]
    assert found.total >= 24
    assert found.hits3 / found.total >= 0.9, found.misses


def test_the_kettle_return_question_finds_the_returns_policy_first(
    multilingual: Embedder, tmp_path: Path
) -> None:
    suite = load_suite(SUITES_DIR / "demo")
    knowledge, _ = suite_knowledge(suite, tmp_path, multilingual)
    knowledge.reindex(suite.tenant)
    question = "How long do I have to return a kettle?"
    vector = multilingual.embed_sync([question])[0]
    assert articles(knowledge.search(suite.tenant, question, vector, POOL))[0] == "returns.md"
