"""Alembic migrations on SQLite and PostgreSQL: schema, idempotence, adoption, CLI, locking.

The migrations, not ``create_all``, build every database, so the check that matters is
that an upgraded database is exactly what the code declares: autogenerate's comparison
against ``METADATA`` must find nothing to do, on both backends.
"""

from __future__ import annotations

import subprocess
import sys
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
from alembic import command
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from sqlalchemy import Engine, column, func, inspect, select, table, text

from core.crypto import Keyring, column_purpose
from core.db import POSTGRES_ONLY_TABLES, create_database_engine
from models.embedder import Embedder
from retrieval.catalog import PRODUCTS, ProductCatalog, product_item_id
from retrieval.documents import KB_DOCUMENTS, Document, DocumentStore
from retrieval.history import HISTORY_ENTRIES, CustomerHistory, HistoryKind
from server.cli.main import main
from server.store.conversations import ConversationStore
from server.store.schema import (
    BASELINE_TABLES,
    alembic_config,
    compared_object,
    current_revision,
    declared_metadata,
    head_revision,
    upgrade_schema,
)
from tests.servers import REPO
from tests.store_rows import turn

OLD_PRODUCT_COLUMNS = (
    "tenant",
    "product_id",
    "name",
    "category",
    "description",
    "price",
    "currency",
    "tags",
    "embedding",
    "model",
    "updated_at",
)
"""The products table as revisions 0001-0008 built it (no ``item_id``)."""

RETRIEVAL_ERA_TABLES = ("kb_documents", "history_entries")
"""What ``create_all`` made before the support tables existed."""


def schema_differences(engine: Engine) -> list[object]:
    with engine.connect() as conn:
        context = MigrationContext.configure(
            conn, opts={"compare_type": True, "include_object": compared_object}
        )
        return list(compare_metadata(context, declared_metadata()))


def revision_of(engine: Engine) -> str | None:
    with engine.connect() as conn:
        return current_revision(conn)


@pytest.fixture
def engine(database_url: str) -> Engine:
    """An engine on an empty database (no schema yet), disposed by the test's end."""
    return create_database_engine(database_url)


def test_upgrading_an_empty_database_builds_exactly_the_declared_schema(engine: Engine) -> None:
    try:
        result = upgrade_schema(engine)
        assert (result.before, result.after, result.adopted) == (None, head_revision(), False)
        assert schema_differences(engine) == []
        tables = set(inspect(engine).get_table_names())
        postgres_only = POSTGRES_ONLY_TABLES if engine.dialect.name == "postgresql" else set()
        assert tables == set(declared_metadata().tables) | {"alembic_version"} | postgres_only
    finally:
        engine.dispose()


def test_upgrading_twice_changes_nothing(store_engine: Engine) -> None:
    DocumentStore(store_engine).upsert("shop", [Document("faq", "We ship in 2 days.")])
    again = upgrade_schema(store_engine)
    assert again.before == again.after == head_revision() and not again.adopted
    assert schema_differences(store_engine) == []
    assert DocumentStore(store_engine).count("shop") == 1


def test_a_database_built_by_create_all_is_stamped_and_keeps_its_rows(engine: Engine) -> None:
    try:
        # the tables of the last release before migrations: the baseline revision's, then
        # its stamp removed (today's declarations have columns later revisions add)
        with engine.begin() as conn:
            command.upgrade(alembic_config(conn), "0001")
            conn.execute(text("DROP TABLE alembic_version"))
        assert set(inspect(engine).get_table_names()) == BASELINE_TABLES
        DocumentStore(engine).upsert("shop", [Document("faq", "We ship in 2 days.")])
        result = upgrade_schema(engine)
        assert result.adopted and result.before is None and result.after == head_revision()
        assert schema_differences(engine) == []
        assert DocumentStore(engine).get("shop", "faq") is not None
    finally:
        engine.dispose()


def test_a_retrieval_era_database_gets_the_missing_baseline_tables(engine: Engine) -> None:
    try:
        metadata = declared_metadata()
        metadata.create_all(engine, tables=[metadata.tables[n] for n in RETRIEVAL_ERA_TABLES])
        DocumentStore(engine).upsert("shop", [Document("faq", "We ship in 2 days.")])
        result = upgrade_schema(engine)
        assert result.adopted and revision_of(engine) == head_revision()
        assert set(inspect(engine).get_table_names()) >= BASELINE_TABLES
        assert schema_differences(engine) == []
        with engine.connect() as conn:
            assert conn.execute(select(func.count()).select_from(KB_DOCUMENTS)).scalar_one() == 1
    finally:
        engine.dispose()


def test_every_migration_downgrades_to_nothing_and_upgrades_again(store_engine: Engine) -> None:
    with store_engine.begin() as conn:
        command.downgrade(alembic_config(conn), "base")
    assert set(inspect(store_engine).get_table_names()) <= {"alembic_version"}
    assert revision_of(store_engine) is None
    assert upgrade_schema(store_engine).after == head_revision()
    assert schema_differences(store_engine) == []


def test_history_stored_before_pgvector_is_searched_after_the_upgrade(
    store_engine: Engine, embedder: Embedder
) -> None:
    if store_engine.dialect.name != "postgresql":
        pytest.skip("migration 0007 copies history vectors into pgvector, on PostgreSQL only")
    with store_engine.begin() as conn:
        command.downgrade(alembic_config(conn), "0006")
    keyring = Keyring.generate()
    vector = embedder.embed_sync(["Order 1001: red kettle, paid"])[0]
    with store_engine.begin() as conn:
        conn.execute(
            HISTORY_ENTRIES.insert(),
            {
                "entry_id": 42,
                "tenant": "acme",
                "customer_id": "alice",
                "kind": str(HistoryKind.ORDER),
                "occurred_at": 1.0,
                "text": keyring.encrypt(
                    "Order 1001: red kettle, paid", column_purpose(HISTORY_ENTRIES.c.text)
                ),
                "embedding": vector.astype("float32").tobytes(),
                "model": embedder.model_name,
            },
        )
    assert upgrade_schema(store_engine).after == head_revision()
    query = embedder.embed_sync(["my kettle order"])[0]
    hits = CustomerHistory(store_engine, embedder, keyring).search("acme", "alice", query, 3)
    assert [(hit.entry_id, hit.text) for hit in hits] == [(42, "Order 1001: red kettle, paid")]


def test_products_stored_before_catalog_vectors_are_searched_after_the_upgrade(
    store_engine: Engine, embedder: Embedder
) -> None:
    """Migration 0009 gives each product its vector-store id (and, on PostgreSQL, copies its
    vector into pgvector), so a catalog imported earlier recommends without a re-import."""
    with store_engine.begin() as conn:
        command.downgrade(alembic_config(conn), "0008")
    texts = {"kettle": "Steel kettle (kitchen). Boils 1.7 litres", "mug": "Mug (kitchen). Tea"}
    vectors = embedder.embed_sync(list(texts.values()))
    old_products = table(
        "products", *(column(name, PRODUCTS.c[name].type) for name in OLD_PRODUCT_COLUMNS)
    )
    with store_engine.begin() as conn:
        conn.execute(
            old_products.insert(),
            [
                {
                    "tenant": "acme",
                    "product_id": product_id,
                    "name": product_id,
                    "category": "kitchen",
                    "description": text_,
                    "price": None,
                    "currency": "EUR",
                    "tags": [],
                    "embedding": vector.astype("float32").tobytes(),
                    "model": embedder.model_name,
                    "updated_at": 1.0,
                }
                for (product_id, text_), vector in zip(texts.items(), vectors, strict=True)
            ],
        )
    assert upgrade_schema(store_engine).after == head_revision()
    assert schema_differences(store_engine) == []
    with store_engine.connect() as conn:
        ids = dict(conn.execute(select(PRODUCTS.c.product_id, PRODUCTS.c.item_id)).all())
    assert ids == {p: product_item_id(p) for p in texts}
    query = embedder.embed_sync(["something to boil water"])[0]
    found = ProductCatalog(store_engine, embedder).search("acme", query, 1)
    assert [match.product.product_id for match, _, _ in found] == ["kettle"]


def test_turns_stored_before_help_failed_read_false_and_new_ones_keep_it(
    store_engine: Engine,
) -> None:
    """Migration 0010 adds ``turns.help_failed``: older turns read ``false`` (the phrases
    still count them, from their message), newer ones keep what the reason head read."""
    store = ConversationStore(store_engine, Keyring.generate())
    conversation = store.open("acme", "alice", None, "chat", "en")

    def record(seq: int, **extra: object) -> None:
        nonlocal conversation
        conversation, _ = store.record_turn(
            conversation,
            turn(conversation.conversation_id, seq, f"message {seq}", **extra),
            negative_streak=0,
            ungrounded_streak=0,
            summary="",
            summarized_turns=0,
        )

    record(1, help_failed=True)
    with store_engine.begin() as conn:
        command.downgrade(alembic_config(conn), "0009")
    assert "help_failed" not in {c["name"] for c in inspect(store_engine).get_columns("turns")}
    assert upgrade_schema(store_engine).after == head_revision()
    assert schema_differences(store_engine) == []
    record(2, help_failed=True)
    turns = store.recent_turns(conversation.conversation_id, 5)
    assert [(t.seq, t.message, t.help_failed) for t in turns] == [
        (1, "message 1", False),
        (2, "message 2", True),
    ]


def test_concurrent_start_ups_upgrade_once_and_both_succeed(database_url: str) -> None:
    """Separate processes, as in a rolling deploy: Alembic's context is process-global."""
    script = (
        "import sys\n"
        "from core.db import POSTGRES_ONLY_TABLES, create_database_engine\n"
        "from server.store.schema import upgrade_schema\n"
        "engine = create_database_engine(sys.argv[1])\n"
        "print(upgrade_schema(engine).before)\n"
    )

    def start_up() -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [sys.executable, "-c", script, database_url],
            cwd=REPO,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    with ThreadPoolExecutor(max_workers=4) as pool:
        results = list(pool.map(lambda _: start_up(), range(4)))
    assert all(r.returncode == 0 for r in results), [r.stderr[-2000:] for r in results]
    # exactly one of them found the database empty and built it
    head = head_revision()
    assert sorted(r.stdout.strip() for r in results) == [head, head, head, "None"]
    engine = create_database_engine(database_url)
    try:
        assert schema_differences(engine) == []
    finally:
        engine.dispose()


def test_db_upgrade_and_current_commands(
    database_url: str,
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
) -> None:
    monkeypatch.setenv("CONCIERGE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("CONCIERGE_DATABASE_URL", database_url)
    password = create_database_engine(database_url).url.password

    assert main(["db", "current"]) == 0
    assert "revision: none (behind" in capsys.readouterr().out

    assert main(["db", "upgrade"]) == 0
    upgraded = capsys.readouterr().out
    assert "revision before: none" in upgraded and f"revision now: {head_revision()}" in upgraded

    assert main(["db", "upgrade"]) == 0
    assert f"revision before: {head_revision()}" in capsys.readouterr().out

    assert main(["db", "current"]) == 0
    current = capsys.readouterr().out
    assert f"revision: {head_revision()} (up to date)" in current
    if password:
        assert password not in upgraded + current and "***" in current


def test_db_current_reports_an_unreachable_database(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("CONCIERGE_DATA_DIR", str(tmp_path))
    monkeypatch.setenv("CONCIERGE_DATABASE_URL", "postgresql://app:hunter2@127.0.0.1:9/shop")
    assert main(["db", "current"]) == 1
    error = capsys.readouterr().err
    assert "error: database postgresql+psycopg://app:***@127.0.0.1:9/shop" in error
    assert "hunter2" not in error


@pytest.mark.parametrize("scheme", ["postgres", "postgresql", "postgresql+psycopg"])
def test_postgres_urls_use_psycopg_3(scheme: str) -> None:
    engine = create_database_engine(f"{scheme}://app:secret@db.internal:5432/concierge")
    assert engine.url.drivername == "postgresql+psycopg"
    assert engine.url.database == "concierge" and engine.url.password == "secret"
