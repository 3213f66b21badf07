"""Schema upgrades: the Alembic migrations in ``server/store/migrations``, applied safely.

SQLite and PostgreSQL databases of any age reach the same shape the same way: only the
migrations create and change tables, under a lock, so two replicas starting at once never
both create them.
"""

from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import pgvector.sqlalchemy  # noqa: F401 - registers `vector`, so reflection reads its columns
from sqlalchemy import Connection, Engine, MetaData, inspect, text

from core.db import METADATA, POSTGRES_ONLY_TABLES

if TYPE_CHECKING:
    from alembic.config import Config

MIGRATIONS_DIR = Path(__file__).with_name("migrations")
BASELINE_TABLES = frozenset(
    {
        "kb_documents",
        "history_entries",
        "products",
        "customers",
        "customer_events",
        "conversations",
        "turns",
        "tickets",
        "feedback",
    }
)
"""The tables of the baseline; a database holding any of them without a revision predates
migrations."""

UPGRADE_LOCK_KEY = 0x636F6E6369657267  # "concierg": one advisory-lock key for schema upgrades

TABLE_MODULES = (
    "core.pending_work",
    "core.job_records",
    "server.store.rate_buckets",
    "retrieval.documents",
    "retrieval.history",
    "retrieval.catalog",
    "server.store.customers",
    "server.store.conversation_tables",
    "server.store.audit",
    "server.store.api_keys",
    "server.store.learned_questions",
)
"""The modules that declare tables on ``METADATA``."""


@dataclass(frozen=True)
class SchemaUpgrade:
    """The revision a database was at before an upgrade and the one it is at now."""

    before: str | None
    after: str | None
    adopted: bool = False
    """True when tables built by ``create_all`` (no revision yet) were stamped at the baseline."""


def create_schema(engine: Engine) -> None:
    """Bring the database to the newest schema (idempotent); what start-up calls."""
    upgrade_schema(engine)


def compared_object(
    obj: object, name: str | None, type_: str, reflected: bool, compare_to: object
) -> bool:
    """Alembic's ``include_object``: leave the PostgreSQL-only tables out of comparisons."""
    del obj, reflected, compare_to
    if type_ == "table":
        return name not in POSTGRES_ONLY_TABLES
    if type_ == "index":
        return not (name or "").startswith(tuple(f"ix_{t}_" for t in POSTGRES_ONLY_TABLES))
    return True


def declared_metadata() -> MetaData:
    """``METADATA`` with every table on it: the modules that declare them are imported here.

    They import this module, so they cannot be imported at its top; comparing the
    database with the code (tests, autogenerate) needs all of them.
    """
    for module in TABLE_MODULES:
        importlib.import_module(module)
    return METADATA


def upgrade_schema(engine: Engine) -> SchemaUpgrade:
    """Apply every pending migration in one transaction, holding the upgrade lock.

    Two processes starting at once must not both create tables: PostgreSQL serializes
    them on a transaction-level advisory lock, SQLite on its write lock (``BEGIN
    IMMEDIATE``). The second one then finds the schema current and does nothing.
    A database whose tables were made by ``create_all`` before migrations existed is
    stamped at the baseline first (missing baseline tables are created), then upgraded.
    """
    from alembic import command

    with engine.connect() as connection:
        _lock_for_upgrade(connection)
        before = current_revision(connection)
        adopted = before is None and _adopt_unversioned(connection)
        command.upgrade(alembic_config(connection), "head")
        after = current_revision(connection)
        connection.commit()
    return SchemaUpgrade(before, after, adopted)


def current_revision(connection: Connection) -> str | None:
    """The migration the database is at; ``None`` for an empty or pre-migration one."""
    from alembic.runtime.migration import MigrationContext

    return MigrationContext.configure(connection).get_current_revision()


def head_revision() -> str | None:
    """The newest migration shipped with this code."""
    from alembic.script import ScriptDirectory

    return ScriptDirectory.from_config(alembic_config(None)).get_current_head()


def alembic_config(connection: Connection | None) -> Config:
    """Alembic's configuration, built in code: no ``alembic.ini``, no URL (nor password) in it.

    ``migrations/env.py`` runs on the connection handed over in ``attributes``.
    """
    from alembic.config import Config

    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS_DIR))
    config.attributes["connection"] = connection
    return config


def _lock_for_upgrade(connection: Connection) -> None:
    if connection.dialect.name == "postgresql":
        connection.execute(text("SELECT pg_advisory_xact_lock(:key)"), {"key": UPGRADE_LOCK_KEY})
    elif connection.dialect.name == "sqlite":
        # pysqlite would only open the transaction at the first INSERT; open it now, as a writer
        connection.exec_driver_sql("BEGIN IMMEDIATE")


def _adopt_unversioned(connection: Connection) -> bool:
    """True for a database with tables of ours and no revision: built before migrations.

    Nothing is stamped here: the baseline migration creates only the tables such a
    database lacks, so running it adopts the database with the baseline's own
    declarations, not with today's ``METADATA``, which later migrations may change.
    """
    present = set(inspect(connection).get_table_names())
    return bool(present & BASELINE_TABLES)
