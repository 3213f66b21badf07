"""The SQL engine's SQLite settings: what the database files on disk look like."""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

import pytest
from sqlalchemy import text

from core.db import create_database_engine, default_database_url, release_deleted_bytes


@pytest.fixture
def usual_umask() -> Iterator[None]:
    """The common 022 umask, under which files are created 0644 unless asked otherwise."""
    previous = os.umask(0o022)
    try:
        yield
    finally:
        os.umask(previous)


def mode(path: Path) -> int:
    return stat.S_IMODE(path.stat().st_mode)


def test_the_database_and_its_wal_files_are_readable_by_their_owner_only(
    tmp_path: Path, usual_umask: None
) -> None:
    engine = create_database_engine(default_database_url(tmp_path))
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE notes (body TEXT)"))
        connection.execute(text("INSERT INTO notes VALUES ('Jane Doe, 4 Elm Street')"))
    files = sorted(tmp_path.glob("concierge.sqlite3*"))
    assert {file.name for file in files} >= {
        "concierge.sqlite3",
        "concierge.sqlite3-wal",
        "concierge.sqlite3-shm",
    }
    assert {file.name: mode(file) for file in files} == {file.name: 0o600 for file in files}
    engine.dispose()


def test_a_database_left_readable_by_others_is_tightened(tmp_path: Path, usual_umask: None) -> None:
    database = tmp_path / "concierge.sqlite3"
    for name in (database.name, database.name + "-wal"):
        (tmp_path / name).touch(mode=0o644)
    create_database_engine(default_database_url(tmp_path)).dispose()
    assert mode(database) == 0o600
    assert mode(tmp_path / (database.name + "-wal")) == 0o600


def test_deleted_rows_leave_no_bytes_in_the_database_or_its_log(tmp_path: Path) -> None:
    engine = create_database_engine(default_database_url(tmp_path))
    canary = b"canary-7f3a9c Jane Quill"
    with engine.begin() as connection:
        connection.execute(text("CREATE TABLE notes (body TEXT)"))
        connection.execute(text("INSERT INTO notes VALUES (:body)"), {"body": canary.decode()})
        connection.execute(text("INSERT INTO notes VALUES ('kept')"))
    with engine.begin() as connection:
        connection.execute(text("DELETE FROM notes WHERE body != 'kept'"))
    assert release_deleted_bytes(engine)
    files = sorted(tmp_path.glob("concierge.sqlite3*"))
    assert files and not [file.name for file in files if canary in file.read_bytes()]
    with engine.connect() as connection:
        assert connection.execute(text("SELECT body FROM notes")).scalars().all() == ["kept"]
    engine.dispose()
