"""The KB's promises, with the real embedder, real FAISS, real SQLite and real files."""

from __future__ import annotations

import os
import re
import signal
import threading
import time
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from core import metrics
from core.db import create_database_engine
from core.errors import JobCancelledError
from models.embedder import Embedder
from retrieval.documents import Document, DocumentFormat, DocumentStore
from retrieval.index import published_versions
from retrieval.knowledge import KnowledgeBase, ReindexMode, SearchMode
from server.store.schema import create_schema
from tests.forked_processes import shared_launcher
from tests.system.retrieval.conftest import KnowledgeFactory

TENANT = "acme"

ARTICLES = {
    "refunds.md": (
        "Refunds",
        "# Refunds\n\nRefunds reach your card within five business days after we receive "
        "the parcel.\n\n## Store credit\nStore credit is issued instantly as a voucher code.",
    ),
    "shipping.md": (
        "Shipping",
        "# Shipping\n\nWe ship worldwide with DHL Express. Tracking numbers start with JD01.",
    ),
    "warranty.md": (
        "Warranty",
        "# Warranty\n\nEvery kettle carries a two year warranty against defects in materials.",
    ),
    "password.md": (
        "Reset your password",
        "# Reset your password\n\nUse the Forgot password link on the sign-in page; the "
        "reset email expires after 30 minutes.",
    ),
}


def _documents(articles: dict[str, tuple[str, str]]) -> list[Document]:
    return [
        Document(doc_id, text, title, DocumentFormat.MARKDOWN)
        for doc_id, (title, text) in articles.items()
    ]


def _search(kb: KnowledgeBase, embedder: Embedder, query: str, k: int = 10) -> list[str]:
    vector = embedder.embed_sync([query])[0]
    return [hit.doc_id for hit in kb.search(TENANT, query, vector, k)]


def _texts(kb: KnowledgeBase, embedder: Embedder, query: str, mode: SearchMode) -> list[str]:
    vector = embedder.embed_sync([query])[0]
    return [hit.text for hit in kb.search(TENANT, query, vector, 20, mode)]


def skip_unless_on_disk(kb: KnowledgeBase) -> None:
    """Version folders exist on the SQLite path; on PostgreSQL a publish is a transaction."""
    if kb.shared:
        pytest.skip("versions on disk: the SQLite path (PostgreSQL publishes by transaction)")


@pytest.fixture
def kb(make_knowledge: KnowledgeFactory) -> KnowledgeBase:
    knowledge = make_knowledge()
    knowledge.put_documents(TENANT, _documents(ARTICLES))
    knowledge.reindex(TENANT)
    return knowledge


def test_search_finds_the_relevant_article_by_meaning_and_by_keyword(
    kb: KnowledgeBase, embedder: Embedder
) -> None:
    assert _search(kb, embedder, "when do I get my money back")[0] == "refunds.md"
    assert _search(kb, embedder, "JD01")[0] == "shipping.md"  # a token only BM25 can match
    hit = kb.search(TENANT, "JD01", embedder.embed_sync(["JD01"])[0], 1)[0]
    assert hit.lexical_score is not None and hit.lexical_score > 0
    assert hit.title == "Shipping" and hit.section == "Shipping" and hit.position == 0


def test_keywords_in_chinese_match_on_both_index_paths(kb: KnowledgeBase) -> None:
    """The lexical half reads Chinese by the same terms on disk (bm25s) and in SQL."""
    kb.put_documents(
        "shop-zh",
        [
            Document(
                "returns-zh.md",
                "# 退货\n\n退货政策: 三十天内可退货。",
                "退货",
                DocumentFormat.MARKDOWN,
            ),
            Document(
                "wifi-zh.md",
                "# 网络\n\n路由器 AX3000 重启后指示灯闪烁。",
                "网络",
                DocumentFormat.MARKDOWN,
            ),
        ],
    )
    kb.reindex("shop-zh")
    hits = kb.search("shop-zh", "AX3000 指示灯闪烁", None, 2, SearchMode.LEXICAL)
    assert [hit.doc_id for hit in hits] == ["wifi-zh.md"]
    assert [h.doc_id for h in kb.search("shop-zh", "退货政策", None, 2, SearchMode.LEXICAL)] == [
        "returns-zh.md"
    ]


def test_an_example_question_finds_its_article_in_the_customers_words(
    make_knowledge: KnowledgeFactory, embedder: Embedder
) -> None:
    knowledge = make_knowledge()
    articles = {
        **ARTICLES,
        "returns.md": (
            "Returns",
            "---\nquestions:\n  - Can I send back a present I was given?\n---\n# Returns\n\n"
            "Items are accepted within 30 days of delivery in their original packaging.",
        ),
    }
    knowledge.put_documents(TENANT, _documents(articles))
    report = knowledge.reindex(TENANT)
    assert report.embedded_documents == len(articles)
    query = "someone gave me a present, can I send it back?"
    hits = knowledge.search(TENANT, query, embedder.embed_sync([query])[0], 10)
    assert hits[0].doc_id == "returns.md"
    assert hits[0].text.startswith("Items are accepted within 30 days")  # the lead passage
    assert [h.passage for h in hits].count(hits[0].passage) == 1  # shown once
    assert len(hits) == len({h.passage for h in hits})


def test_a_deleted_document_is_never_returned_again_also_after_restart(
    kb: KnowledgeBase, make_knowledge: KnowledgeFactory, embedder: Embedder
) -> None:
    query = "kettle warranty defects"
    assert _search(kb, embedder, query)[0] == "warranty.md"

    kb.delete_documents(TENANT, ["warranty.md"])
    for mode in SearchMode:  # gone at once, before any reindex, in every search mode
        assert "warranty.md" not in _search_mode(kb, embedder, query, mode)

    restarted = make_knowledge()  # a new process: the old version is on disk, the doc is not
    assert "warranty.md" not in _search(restarted, embedder, query)

    report = restarted.reindex(TENANT)
    assert report.removed_documents == 1 and report.embedded_documents == 0
    again = make_knowledge()
    for mode in SearchMode:
        assert "warranty.md" not in _search_mode(again, embedder, query, mode)
    assert again.stats(TENANT)["documents_indexed"] == len(ARTICLES) - 1


def test_a_knowledge_base_whose_text_has_no_searchable_words_still_publishes(
    make_knowledge: KnowledgeFactory, embedder: Embedder
) -> None:
    # found by schemathesis: a document of only punctuation and stop words left BM25
    # an empty vocabulary, and the tenant's reindex failed every time
    knowledge = make_knowledge()
    knowledge.put_documents(TENANT, [Document("dots.md", "... ?! a the", "", DocumentFormat.TEXT)])
    report = knowledge.reindex(TENANT)
    assert report.published
    restarted = make_knowledge()  # the published version loads, without a lexical index
    for kb in (knowledge, restarted):
        assert kb.stats(TENANT)["documents_indexed"] == 1
        for mode in SearchMode:
            assert _search_mode(kb, embedder, "the dots", mode) in ([], ["dots.md"])


def _search_mode(kb: KnowledgeBase, embedder: Embedder, query: str, mode: SearchMode) -> list[str]:
    vector = embedder.embed_sync([query])[0]
    return [hit.doc_id for hit in kb.search(TENANT, query, vector, 10, mode)]


def test_an_edited_document_returns_only_its_new_text(
    kb: KnowledgeBase, make_knowledge: KnowledgeFactory, embedder: Embedder
) -> None:
    new_text = "# Shipping\n\nWe ship within Europe only, by UPS Standard, in three days."
    kb.put_documents(
        TENANT, [Document("shipping.md", new_text, "Shipping", DocumentFormat.MARKDOWN)]
    )
    for mode in SearchMode:  # the old text is out at once
        assert not any("DHL" in t for t in _texts(kb, embedder, "DHL Express JD01", mode))

    kb.reindex(TENANT)
    for knowledge in (kb, make_knowledge()):
        for mode in SearchMode:
            texts = _texts(knowledge, embedder, "DHL Express JD01 UPS Europe", mode)
            assert not any("DHL" in t for t in texts)
        assert _search(knowledge, embedder, "do you deliver with UPS")[0] == "shipping.md"


def test_incremental_reindex_embeds_only_the_changed_document(
    kb: KnowledgeBase, embedder: Embedder
) -> None:
    title, text = ARTICLES["password.md"]
    edited = Document(
        "password.md",
        text + "\n\nTwo-factor codes are sent by SMS.",
        title,
        DocumentFormat.MARKDOWN,
    )
    kb.put_documents(TENANT, [edited])
    expected_chunks = len(edited.chunks(max_chars=900, overlap_chars=150))
    before = _embedded_document_texts()

    report = kb.reindex(TENANT)

    assert report.embedded_documents == 1
    assert report.reused_documents == len(ARTICLES) - 1
    assert report.embedded_chunks == expected_chunks
    # one vector per chunk plus one for the title: nothing else went through the model
    assert _embedded_document_texts() - before == expected_chunks + 1
    assert kb.reindex(TENANT).published is False  # nothing changed: no new version


def test_full_reindex_embeds_everything(kb: KnowledgeBase) -> None:
    report = kb.reindex(TENANT, ReindexMode.FULL)
    assert report.published and report.embedded_documents == len(ARTICLES)


def _embedded_document_texts() -> float:
    return metrics.EMBEDDED_TEXTS.labels(purpose="document")._value.get()


def test_searches_keep_answering_from_the_old_version_during_a_reindex_then_switch_atomically(
    kb: KnowledgeBase, embedder: Embedder
) -> None:
    old_version = kb.version_number(TENANT)
    assert old_version is not None
    new_articles = {
        f"returns-{i}.md": ("Returns", f"# Returns\n\nReturn label number RL{i:03d} is free.")
        for i in range(40)
    }
    kb.put_documents(TENANT, _documents(new_articles))
    halfway = threading.Event()
    release = threading.Event()

    def progress(done: int, total: int) -> None:
        if 0 < done < total:
            halfway.set()
            release.wait(30)

    builder = threading.Thread(target=lambda: kb.reindex(TENANT, progress=progress))
    builder.start()
    try:
        assert halfway.wait(30)
        baseline = _search(kb, embedder, "free return label RL007")
        for _ in range(5):  # mid-build: the old version answers, unchanged, without waiting
            started = time.perf_counter()
            assert _search(kb, embedder, "free return label RL007") == baseline
            assert time.perf_counter() - started < 5
        assert not any(doc.startswith("returns-") for doc in baseline)
        assert kb.version_number(TENANT) == old_version
    finally:
        release.set()
        builder.join(60)
    assert kb.version_number(TENANT) == old_version + 1
    assert _search(kb, embedder, "free return label RL007")[0] == "returns-7.md"


def test_a_cancelled_reindex_publishes_nothing(kb: KnowledgeBase) -> None:
    kb.put_documents(TENANT, _documents({"new.md": ("New", "# New\n\nSomething new.")}))
    versions = published_versions(kb.tenant_root(TENANT))
    number = kb.version_number(TENANT)
    with pytest.raises(JobCancelledError):
        kb.reindex(TENANT, cancelled=lambda: True)
    assert published_versions(kb.tenant_root(TENANT)) == versions
    assert kb.version_number(TENANT) == number
    assert kb.published(TENANT) is not None and "new.md" not in kb.published(TENANT).documents


def test_killing_the_process_mid_reindex_leaves_the_previous_version_loadable(
    tmp_path: Path, embedder: Embedder
) -> None:
    data_dir = tmp_path / "data"
    database = create_database_engine(f"sqlite:///{data_dir / 'concierge.sqlite3'}")
    create_schema(database)
    kb = KnowledgeBase(data_dir / "retrieval", DocumentStore(database), embedder)
    kb.put_documents(TENANT, _documents({"first.md": ("Hours", "# Hours\n\nOpen nine to five.")}))
    kb.reindex(TENANT)
    bulk = {
        f"bulk-{i:04d}.md": (
            f"Product {i}",
            " ".join(f"Paragraph {i} sentence {j} about product line {i % 17}." for j in range(6)),
        )
        for i in range(400)
    }
    kb.put_documents(TENANT, _documents(bulk))

    # forked from the warm launcher: the CLI's own code, a process of its own to kill
    progress = tmp_path / "reindex.log"
    process = shared_launcher().spawn(
        ["kb", "reindex", "--tenant", TENANT],
        {**os.environ, "CONCIERGE_DATA_DIR": str(data_dir)},
        progress,
    )
    seen = ""
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # wait until it is embedding, then kill it hard
        if progress.exists():  # the child opens its output file once it runs
            seen = progress.read_text(encoding="utf-8", errors="replace")
        if any(int(done) > 0 for done in re.findall(r"\|\s*(\d+)/400", seen)):
            break
        if process.poll() is not None:
            break
        time.sleep(0.02)
    assert process.poll() is None, f"reindex ended before it could be killed:\n{seen[-2000:]}"
    process.send_signal(signal.SIGKILL)
    process.wait(10)

    root = data_dir / "retrieval" / TENANT / "kb"
    assert published_versions(root) == [1]  # the half-built version was never published
    restarted = KnowledgeBase(data_dir / "retrieval", DocumentStore(database), embedder)
    assert restarted.stats(TENANT)["version"] == 1
    assert _search(restarted, embedder, "opening hours")[0] == "first.md"

    report = restarted.reindex(TENANT)  # the next writer finishes the job, sweeps any debris
    assert report.version == 2 and report.embedded_documents == 400
    assert not (root / "staging").exists() or not any((root / "staging").iterdir())
    database.dispose()


@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_a_damaged_version_is_refused_at_load_and_the_previous_one_serves(
    kb: KnowledgeBase, make_knowledge: KnowledgeFactory, embedder: Embedder, damage: str
) -> None:
    skip_unless_on_disk(kb)
    kb.put_documents(TENANT, _documents({"hours.md": ("Hours", "# Hours\n\nOpen nine to five.")}))
    kb.reindex(TENANT)
    assert published_versions(kb.tenant_root(TENANT)) == [1, 2]
    newest = kb.tenant_root(TENANT) / "versions" / "v000002"
    victim = newest / ("vectors.npy" if damage == "truncate" else "chunks.jsonl")
    data = bytearray(victim.read_bytes())
    if damage == "truncate":
        victim.write_bytes(bytes(data[: len(data) // 2]))
    else:
        data[len(data) // 2] ^= 0x01
        victim.write_bytes(bytes(data))

    restarted = make_knowledge()
    stats = restarted.stats(TENANT)
    assert stats["version"] == 1  # the previous version serves
    expected = "truncated" if damage == "truncate" else "SHA-256"
    assert "v000002" in stats["load_error"] and expected in stats["load_error"]
    assert _search(restarted, embedder, "kettle warranty")[0] == "warranty.md"


def test_a_corrupt_new_version_from_another_process_is_refused_while_the_old_serves(
    kb: KnowledgeBase, make_knowledge: KnowledgeFactory, embedder: Embedder
) -> None:
    skip_unless_on_disk(kb)
    other_process = make_knowledge()
    other_process.put_documents(TENANT, _documents({"hours.md": ("Hours", "# Hours\n\nOpen 9-5.")}))
    other_process.reindex(TENANT)
    newest = kb.tenant_root(TENANT) / "versions" / "v000002"
    (newest / "ids.npy").write_bytes(b"not numpy")

    assert kb.refresh(TENANT) is False
    assert kb.served(TENANT).version.number == 1  # type: ignore[union-attr]
    assert "v000002" in (kb.stats(TENANT)["load_error"] or "")
    assert _search(kb, embedder, "kettle warranty")[0] == "warranty.md"


def test_a_delete_through_another_process_stops_matching_here_at_once(
    kb: KnowledgeBase, make_knowledge: KnowledgeFactory, embedder: Embedder
) -> None:
    assert _search(kb, embedder, "JD01")[0] == "shipping.md"
    make_knowledge().delete_documents(TENANT, ["shipping.md"])  # another replica, or the CLI
    assert "shipping.md" not in _search(kb, embedder, "JD01")  # no reindex, no refresh


def test_a_version_published_by_another_process_is_picked_up(
    kb: KnowledgeBase, make_knowledge: KnowledgeFactory, embedder: Embedder
) -> None:
    other_process = make_knowledge()
    other_process.put_documents(TENANT, _documents({"hours.md": ("Hours", "# Hours\n\nOpen 9-5.")}))
    other_process.reindex(TENANT)
    # on disk the version is picked up by a refresh; shared rows need none
    assert kb.refresh(TENANT) is not kb.shared
    assert _search(kb, embedder, "opening hours")[0] == "hours.md"


def test_old_versions_are_garbage_collected(kb: KnowledgeBase) -> None:
    skip_unless_on_disk(kb)
    for i in range(4):
        kb.put_documents(TENANT, _documents({f"n{i}.md": ("N", f"# N\n\nnote {i}")}))
        kb.reindex(TENANT)
    assert published_versions(kb.tenant_root(TENANT)) == [4, 5]


def test_tenants_have_separate_indexes(kb: KnowledgeBase, embedder: Embedder) -> None:
    kb.put_documents(
        "globex", _documents({"globex.md": ("Warranty", "# Warranty\n\nNo warranty.")})
    )
    kb.reindex("globex")
    vector = embedder.embed_sync(["warranty"])[0]
    assert {h.doc_id for h in kb.search("globex", "warranty", vector, 10)} == {"globex.md"}
    assert "globex.md" not in {h.doc_id for h in kb.search(TENANT, "warranty", vector, 10)}
    assert kb.search("initech", "warranty", vector, 10) == []  # no KB yet: empty, not an error


def test_pending_documents_count_every_change_not_yet_reindexed(
    make_knowledge: KnowledgeFactory, tmp_path: Path
) -> None:
    tenant = "pending-kb"
    metrics.TENANT_LABELS.configure((tenant,), None, ())
    try:

        def pending() -> float | None:
            labels = {"tenant": tenant, "collection": "kb"}
            return REGISTRY.get_sample_value("concierge_index_pending_documents", labels)

        knowledge = make_knowledge()
        knowledge.put_documents(tenant, _documents(ARTICLES))
        assert pending() == len(ARTICLES)  # never indexed: everything waits
        knowledge.reindex(tenant)
        assert pending() == 0
        title, text = ARTICLES["password.md"]
        knowledge.put_documents(
            tenant,
            [
                Document("password.md", text + " Edited.", title, DocumentFormat.MARKDOWN),
                Document("new.md", "A brand new article.", "New", DocumentFormat.MARKDOWN),
            ],
        )
        assert pending() == 2  # one edited, one created
        knowledge.delete_documents(tenant, ["new.md"])
        assert pending() == 1
        knowledge.reindex(tenant)
        assert pending() == 0
    finally:
        metrics.TENANT_LABELS.configure((), None, ())
