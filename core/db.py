"""The SQL engine and the one ``MetaData`` every table is declared on.

Tables are declared next to the code that owns them (``retrieval/documents.py``,
``retrieval/history.py``, ``retrieval/catalog.py``, ``server/store/customers.py``,
``server/store/conversations.py`` ...) on the shared ``METADATA``. This module sits in
``core`` so that every layer can declare tables on it; the schema itself is created and
changed only by the Alembic migrations (``server/store/schema.py``).

SQLite runs in WAL mode with ``synchronous=FULL``: readers never block the writer, and
a committed write survives a crash or power loss, which is what "acknowledged only
after commit" needs. PostgreSQL is reached through psycopg 3.
"""

from __future__ import annotations

import os
import sqlite3
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

from sqlalchemy import (
    BigInteger,
    Engine,
    Integer,
    MetaData,
    Table,
    create_engine,
    event,
    func,
    select,
)

METADATA = MetaData()

ROW_ID = BigInteger().with_variant(Integer(), "sqlite")
"""An auto-increment key: 64-bit on PostgreSQL, SQLite's rowid alias (INTEGER) there."""

SQLITE_FILE_NAME = "concierge.sqlite3"

POSTGRES_ONLY_TABLES = frozenset({"vector_items", "kb_chunks", "kb_terms", "kb_index_state"})
"""Tables that exist on PostgreSQL only, outside ``METADATA``: what every replica shares
and SQLite's single process keeps elsewhere (migrations 0007 and 0008: pgvector's vectors,
``retrieval/pgvector_store.py``, and the shared KB index, ``retrieval/knowledge/sql_index.py``)."""

_POSTGRES_SCHEMES = ("postgresql://", "postgres://")


def default_database_url(data_dir: Path) -> str:
    """The embedded default: one SQLite file in the data directory."""
    return f"sqlite:///{(data_dir / SQLITE_FILE_NAME).resolve()}"


def normalize_database_url(url: str) -> str:
    """Send plain PostgreSQL URLs to psycopg 3, the driver we install.

    Operators (and hosting platforms) write ``postgres://`` or ``postgresql://``;
    SQLAlchemy would pick psycopg2 for those, which is not a dependency.
    """
    for scheme in _POSTGRES_SCHEMES:
        if url.startswith(scheme):
            return "postgresql+psycopg://" + url[len(scheme) :]
    return url


def create_database_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite gets durable, concurrent-reader settings."""
    url = normalize_database_url(url)
    if url.startswith("sqlite"):
        database = url.split("///", 1)[-1]
        if database and database != ":memory:":
            _private_database_file(Path(database))
        engine = create_engine(
            url,
            connect_args={"check_same_thread": False, "timeout": 30},
            hide_parameters=True,  # error messages would otherwise quote customer data
        )
        event.listen(engine, "connect", _configure_sqlite)
        return engine
    return create_engine(url, pool_pre_ping=True, hide_parameters=True)


def _switch_to_wal(cursor: Any, attempts: int = 50) -> None:
    """``PRAGMA journal_mode=WAL``, retried: switching a new file's journal needs it to
    itself, and SQLite answers "database is locked" at once, without waiting out the busy
    timeout, while another process opening the same new file holds it (two replicas or a
    replica and the CLI starting together; seen in the concurrent start-up test)."""
    for attempt in range(attempts):
        try:
            cursor.execute("PRAGMA journal_mode=WAL")
            return
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or attempt == attempts - 1:
                raise
            time.sleep(0.05 * (attempt + 1))


def _private_database_file(path: Path) -> None:
    """Create the SQLite file readable by its owner only (0600), or tighten one that exists.

    It holds customer records and conversations; the default umask would leave it 0644,
    readable by every account on the host. SQLite gives the ``-wal`` and ``-shm`` files it
    creates the database file's mode, so they follow; ones left from an older run are
    tightened here too.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        os.fchmod(descriptor, 0o600)
    finally:
        os.close(descriptor)
    for suffix in ("-wal", "-shm", "-journal"):
        companion = path.with_name(path.name + suffix)
        if companion.exists():
            companion.chmod(0o600)


def _configure_sqlite(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    _switch_to_wal(cursor)
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    # deleted rows are overwritten with zeros, not left in free pages (erasure)
    cursor.execute("PRAGMA secure_delete=ON")
    cursor.close()


def change_stamp(engine: Engine, table: Table, tenant: str) -> tuple[int, float]:
    """``(rows, newest updated_at)`` of a tenant in ``table``: differs after any insert,
    update or delete by anyone, so a process that keeps a copy of the rows (or something
    derived from them) knows with one indexed query when to read them again. ``table``
    needs ``tenant`` and ``updated_at`` columns, and writers set ``updated_at`` to now."""
    with engine.connect() as conn:
        count, newest = conn.execute(
            select(func.count(), func.max(table.c.updated_at)).where(table.c.tenant == tenant)
        ).one()
    return int(count), float(newest or 0.0)


def release_deleted_bytes(engine: Engine, tables: Sequence[str] = ()) -> bool:
    """After an erasure, leave no copy of the deleted rows where it can be helped; False if
    one may remain for now.

    SQLite: with ``secure_delete`` deleted content is zeroed in the database file, but the
    write-ahead log still holds the pages as they were before the delete until a checkpoint
    copies the log back into the database; ``TRUNCATE`` then empties the log file. A reader
    holding an old snapshot can make the checkpoint stop short (busy): the caller logs it,
    and the next erasure or SQLite's own checkpoints finish the job.

    PostgreSQL: a delete only marks rows dead; ``VACUUM`` of the erased ``tables`` removes
    the dead tuples (and their index entries) from the pages, so no query, pageinspect
    included, can return them. The bytes of a removed tuple stay in its page's free space
    until reused, and the WAL, replicas and backups keep their own copies: docs/security.md
    says what an operator does about those.
    """
    if engine.dialect.name == "postgresql":
        known = sorted(
            {name for name in tables if name in METADATA.tables or name in POSTGRES_ONLY_TABLES}
        )
        if known:
            quote = engine.dialect.identifier_preparer.quote
            with engine.connect().execution_options(isolation_level="AUTOCOMMIT") as conn:
                conn.exec_driver_sql("VACUUM " + ", ".join(quote(name) for name in known))
        return True
    if engine.dialect.name != "sqlite":
        return True
    with engine.connect() as connection:
        busy, _, _ = connection.exec_driver_sql("PRAGMA wal_checkpoint(TRUNCATE)").one()
    return not busy
