"""SQLite durability settings, read back from every connection of the app's own engine.

"Acknowledged only after commit" means nothing if a commit can be lost: every
connection must run in WAL mode with ``synchronous=FULL`` (fsync at each commit), not
only the first one the pool happened to open. The crash test
(``tests/soak/test_crash_safety.py``) checks the outcome; this checks the settings.
"""

from __future__ import annotations

from contextlib import ExitStack
from pathlib import Path

from sqlalchemy import Connection, Engine

from server.config import Settings
from server.lifespan import build_retrieval

SYNCHRONOUS_FULL = 2


def _pragmas(connection: Connection) -> tuple[str, int, int, int]:
    def read(name: str) -> object:
        return connection.exec_driver_sql(f"PRAGMA {name}").scalar()

    return (
        str(read("journal_mode")),
        int(str(read("synchronous"))),
        int(str(read("foreign_keys"))),
        int(str(read("busy_timeout"))),
    )


def test_every_connection_of_the_apps_engine_is_durable(tmp_path: Path) -> None:
    retrieval = build_retrieval(Settings(data_dir=tmp_path))  # what the lifespan builds
    engine: Engine = retrieval.database
    try:
        assert engine.url.get_backend_name() == "sqlite"
        with ExitStack() as stack:  # held together: the pool opens a new connection for each
            connections = [stack.enter_context(engine.connect()) for _ in range(4)]
            ids = {id(c.connection.dbapi_connection) for c in connections}
            assert len(ids) == 4
            for connection in connections:
                assert _pragmas(connection) == ("wal", SYNCHRONOUS_FULL, 1, 30000)
        engine.dispose()  # connections opened after a reset get the settings too
        with engine.begin() as connection:
            assert _pragmas(connection) == ("wal", SYNCHRONOUS_FULL, 1, 30000)
    finally:
        retrieval.embedder.shutdown()
        engine.dispose()
