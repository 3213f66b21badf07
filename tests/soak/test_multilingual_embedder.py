"""The embedder ``auto`` picks on a GPU or a CPU that computes bfloat16 (EmbeddingGemma-300M),
on the answer suites' KBs as the reply pipeline searches them: French and Chinese questions
find their English article, and the demo shop's kettle question finds the returns policy.

The rest of the suite pins MiniLM (tests/conftest.py); these tests load EmbeddingGemma,
prepared by ``make test`` (``concierge models prepare embeddinggemma-300m``). A second,
larger model that reindexes two KBs (about 25 s of both cores) is an extra engine, so the
tests live with the soak tests (``make test``), not in ``make test-fast``.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from bench.lib.suite_retrieval import SuiteIndex, index_suite, multilingual_score
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


@pytest.fixture(scope="module")
def indexed(
    multilingual: Embedder, tmp_path_factory: pytest.TempPathFactory
) -> Callable[[str], SuiteIndex]:
    """Each suite's KB indexed once for the module (a reindex with EmbeddingGemma is the
    costly step on a CPU); the tests only search it."""
    built: dict[str, SuiteIndex] = {}

    def index(suite_name: str) -> SuiteIndex:
        if suite_name not in built:
            folder = tmp_path_factory.mktemp(f"{suite_name}-data")
            suite = load_suite(SUITES_DIR / suite_name)
            built[suite_name] = index_suite(suite, folder, embedder=multilingual)
        return built[suite_name]

    return index


@pytest.mark.parametrize("suite_name", ["demo", "telco"])
def test_french_and_chinese_questions_find_their_english_article_in_the_top_three(
    indexed: Callable[[str], SuiteIndex], suite_name: str
) -> None:
    found = multilingual_score(indexed(suite_name))
    assert found.total >= 24
    assert found.hits3 / found.total >= 0.9, found.misses


def test_the_kettle_return_question_finds_the_returns_policy_first(
    indexed: Callable[[str], SuiteIndex],
) -> None:
    assert indexed("demo").search("How long do I have to return a kettle?")[0] == "returns.md"
