"""Customer history: searchable only within its customer, durable, forgettable."""

from __future__ import annotations

import tempfile
import time
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from sqlalchemy import Engine

from core.crypto import Keyring
from core.db import create_database_engine
from core.errors import InvalidRequestError
from models.embedder import Embedder
from retrieval.documents import Document, DocumentStore
from retrieval.history import CustomerHistory, HistoryEntry, HistoryKind
from retrieval.knowledge import KnowledgeBase, SearchMode
from server.store.schema import create_schema

KEYRING = Keyring.generate()
"""One key for every store of this module, so a reopened store reads what it wrote."""

NOW = time.time()


def _entry(kind: HistoryKind, text: str) -> HistoryEntry:
    return HistoryEntry(kind=kind, text=text, occurred_at=NOW)


def test_history_is_searched_within_one_customer(database: Engine, embedder: Embedder) -> None:
    history = CustomerHistory(database, embedder, KEYRING)
    history.add("acme", "alice", [_entry(HistoryKind.ORDER, "Order 1001: red kettle, paid")])
    history.add(
        "acme",
        "bob",
        [
            _entry(HistoryKind.ORDER, "Order 2002: red kettle, refunded"),
            _entry(HistoryKind.TICKET, "Ticket: kettle arrived broken"),
        ],
    )
    query = embedder.embed_sync(["my red kettle order"])[0]
    alice = history.search("acme", "alice", query, top_k=10)
    assert [hit.text for hit in alice] == ["Order 1001: red kettle, paid"]
    assert {hit.customer_id for hit in history.search("acme", "bob", query, 10)} == {"bob"}
    tickets = history.search("acme", "bob", query, 10, kinds=[HistoryKind.TICKET])
    assert [hit.kind for hit in tickets] == [HistoryKind.TICKET]
    assert history.search("acme", "carol", query, 10) == []
    assert history.search("globex", "alice", query, 10) == []


def test_history_survives_a_restart_without_re_embedding(
    database: Engine, embedder: Embedder
) -> None:
    CustomerHistory(database, embedder, KEYRING).add(
        "acme", "alice", [_entry(HistoryKind.NOTE, "Prefers email over phone calls")]
    )
    restarted = CustomerHistory(database, embedder, KEYRING)
    query = embedder.embed_sync(["how to contact her"])[0]
    hits = restarted.search("acme", "alice", query, 3)
    assert [hit.text for hit in hits] == ["Prefers email over phone calls"]
    assert restarted.stats("acme") == {"entries": 1, "customers": 1}


def test_forgetting_a_customer_removes_every_entry(database: Engine, embedder: Embedder) -> None:
    history = CustomerHistory(database, embedder, KEYRING)
    history.add("acme", "alice", [_entry(HistoryKind.NOTE, f"note {i}") for i in range(3)])
    history.add("acme", "bob", [_entry(HistoryKind.NOTE, "note for bob")])
    query = embedder.embed_sync(["note"])[0]
    history.search("acme", "alice", query)  # loaded in memory before the erasure
    assert history.forget_customer("acme", "alice") == 3
    assert history.search("acme", "alice", query) == []
    assert CustomerHistory(database, embedder, KEYRING).search("acme", "alice", query) == []
    assert len(history.search("acme", "bob", query)) == 1


def test_entries_can_be_filed_under_a_vector_the_caller_already_has(
    database: Engine, embedder: Embedder
) -> None:
    history = CustomerHistory(database, embedder, KEYRING)
    question = "my blender will not start"
    vector = embedder.embed_sync([question])
    history.add(
        "acme", "alice", [_entry(HistoryKind.CONVERSATION, "Conversation about a blender")], vector
    )
    [hit] = history.search("acme", "alice", vector[0])
    assert hit.kind is HistoryKind.CONVERSATION and hit.score > 0.99
    with pytest.raises(ValueError, match="2 entries but 1 vectors"):
        history.add(
            "acme", "alice", [_entry(HistoryKind.NOTE, "a"), _entry(HistoryKind.NOTE, "b")], vector
        )


def test_bad_customer_ids_are_refused(database: Engine, embedder: Embedder) -> None:
    history = CustomerHistory(database, embedder, KEYRING)
    with pytest.raises(InvalidRequestError):
        history.add("acme", "", [_entry(HistoryKind.NOTE, "x")])
    with pytest.raises(InvalidRequestError):
        history.add("Not A Tenant", "alice", [_entry(HistoryKind.NOTE, "x")])


WORDS = ["kettle", "refund", "order", "broken", "delivery", "invoice", "red", "blue", "late"]
TENANTS = ["north", "south"]
CUSTOMERS = ["c1", "c2"]
owned_text = st.tuples(
    st.sampled_from(TENANTS),
    st.sampled_from(CUSTOMERS),
    st.lists(st.sampled_from(WORDS), min_size=1, max_size=6).map(" ".join),
)


@settings(
    max_examples=12,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow],
)
@given(
    items=st.lists(owned_text, min_size=1, max_size=12),
    queries=st.lists(
        st.lists(st.sampled_from(WORDS), min_size=1, max_size=4).map(" ".join),
        min_size=1,
        max_size=3,
    ),
)
def test_tenants_and_customers_never_see_each_others_entries(
    embedder: Embedder, items: list[tuple[str, str, str]], queries: list[str]
) -> None:
    with tempfile.TemporaryDirectory() as folder:
        database = create_database_engine(f"sqlite:///{Path(folder) / 'db.sqlite3'}")
        create_schema(database)
        kb = KnowledgeBase(Path(folder) / "retrieval", DocumentStore(database), embedder)
        history = CustomerHistory(database, embedder, KEYRING)
        kb_owner: dict[str, str] = {}
        history_owner: dict[int, tuple[str, str]] = {}
        for number, (tenant, customer, text) in enumerate(items):
            doc_id = f"doc-{number}"
            kb.put_documents(tenant, [Document(doc_id, text, title="")])
            kb_owner[doc_id] = tenant
            for entry_id in history.add(tenant, customer, [_entry(HistoryKind.NOTE, text)]):
                history_owner[entry_id] = (tenant, customer)
        for tenant in TENANTS:
            kb.reindex(tenant)
        for query in queries:
            vector = embedder.embed_sync([query])[0]
            for tenant in TENANTS:
                for mode in SearchMode:
                    for hit in kb.search(tenant, query, vector, 50, mode):
                        assert kb_owner[hit.doc_id] == tenant
                expected_docs = {d for d, owner in kb_owner.items() if owner == tenant}
                found = {h.doc_id for h in kb.search(tenant, query, vector, 50, SearchMode.DENSE)}
                assert found == expected_docs  # everything of the tenant is reachable
                for customer in CUSTOMERS:
                    hits = history.search(tenant, customer, vector, 50)
                    assert all(history_owner[h.entry_id] == (tenant, customer) for h in hits)
                    mine = {i for i, owner in history_owner.items() if owner == (tenant, customer)}
                    assert {h.entry_id for h in hits} == mine
        kb.shutdown()
        database.dispose()
