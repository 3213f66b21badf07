"""The SQL engine and the one ``MetaData`` every table is declared on.

Tables are declared next to the code that owns them (``retrieval/documents.py``,
``retrieval/history.py``) on the shared ``METADATA`` so one ``create_schema`` call
creates them all. SQLite runs in WAL mode with ``synchronous=FULL``: readers never
block the writer, and a committed write survives a crash or power loss, which is
what "acknowledged only after commit" needs.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from sqlalchemy import BigInteger, Engine, Integer, MetaData, create_engine, event

METADATA = MetaData()

ROW_ID = BigInteger().with_variant(Integer(), "sqlite")
"""An auto-increment key: 64-bit on PostgreSQL, SQLite's rowid alias (INTEGER) there."""

SQLITE_FILE_NAME = "concierge.sqlite3"


def default_database_url(data_dir: Path) -> str:
    """The embedded default: one SQLite file in the data directory."""
    return f"sqlite:///{(data_dir / SQLITE_FILE_NAME).resolve()}"


def create_database_engine(url: str) -> Engine:
    """An engine for ``url``; SQLite gets durable, concurrent-reader settings."""
    if url.startswith("sqlite"):
        database = url.split("///", 1)[-1]
        if database and database != ":memory:":
            Path(database).parent.mkdir(parents=True, exist_ok=True)
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(engine, "connect", _configure_sqlite)
        return engine
    return create_engine(url, pool_pre_ping=True)


def create_schema(engine: Engine) -> None:
    """Create missing tables (idempotent)."""
    METADATA.create_all(engine)


def _configure_sqlite(dbapi_connection: Any, _record: Any) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=FULL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()
