"""Which stored values each encryption key protects, and re-encrypting them all.

The stores encrypt their customer-text columns with the keyring's primary key as they
write (``core/crypto.py``). After a new primary key is added, older rows stay under
the old key until ``reencrypt`` rewrites them; only then may the old key be dropped.
``key_usage`` is how that is checked: it counts, per column, the values under each
key, the values still in clear (written before encryption existed) and any under a
key the keyring does not have.

Each batch runs in its own transaction holding the rows it rewrites (``FOR UPDATE`` on
PostgreSQL, the write lock on SQLite), so a server writing at the same time neither
loses its update nor sees a half-rotated row.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy import Column, Connection, Engine, Text, cast, func, not_, select, update

from core.crypto import PREFIX, Keyring, column_purpose, key_id_of
from core.errors import EncryptionKeyError
from retrieval import history
from server.store import conversation_tables, customers

REENCRYPT_BATCH_ROWS = 500


@dataclass(frozen=True)
class EncryptedColumn:
    column: Column[Any]
    holds_json: bool

    @property
    def name(self) -> str:
        return column_purpose(self.column)

    def stored_like(self, key_id: str | None) -> str:
        """A LIKE pattern for this column's text under ``key_id`` (any key when None)."""
        pattern = f"{PREFIX}{key_id}:%" if key_id is not None else f"{PREFIX}%"
        return f'"{pattern}' if self.holds_json else pattern  # JSON keeps a string quoted


def encrypted_columns() -> list[EncryptedColumn]:
    """Every column the stores encrypt, as each owning module declares it."""
    declared = (
        *conversation_tables.ENCRYPTED_COLUMNS,
        *customers.ENCRYPTED_COLUMNS,
        *history.ENCRYPTED_COLUMNS,
    )
    return [EncryptedColumn(column, holds_json) for column, holds_json in declared]


@dataclass
class ColumnUsage:
    """How the values of one column are stored."""

    column: str
    rows: int
    by_key: dict[str, int] = field(default_factory=dict)
    clear: int = 0
    """Written before encryption existed; ``reencrypt`` encrypts them."""

    @property
    def unknown_key(self) -> int:
        """Under a key id this keyring does not have."""
        return self.rows - self.clear - sum(self.by_key.values())


def key_usage(engine: Engine, keyring: Keyring) -> list[ColumnUsage]:
    """Per encrypted column: rows under each of the keyring's keys, in clear, and other."""
    usage = []
    with engine.connect() as conn:
        for encrypted in encrypted_columns():
            table = encrypted.column.table
            as_text = cast(encrypted.column, Text)
            rows = conn.execute(select(func.count()).select_from(table)).scalar_one()
            found = ColumnUsage(encrypted.name, int(rows))
            for key_id in keyring.key_ids:
                count = conn.execute(
                    select(func.count())
                    .select_from(table)
                    .where(as_text.like(encrypted.stored_like(key_id)))
                ).scalar_one()
                found.by_key[key_id] = int(count)
            found.clear = int(
                conn.execute(
                    select(func.count())
                    .select_from(table)
                    .where(not_(as_text.like(encrypted.stored_like(None))))
                ).scalar_one()
            )
            usage.append(found)
    return usage


def reencrypt(
    engine: Engine,
    keyring: Keyring,
    batch_rows: int = REENCRYPT_BATCH_ROWS,
    progress: Callable[[str, int], None] | None = None,
) -> dict[str, int]:
    """Rewrite every encrypted-column value not under the primary key; counts per column.

    Values in clear are encrypted too. A value that cannot be decrypted (unknown key,
    altered) stops the run with that error; the batches before it stay committed, and
    a rerun continues where it stopped.
    """
    primary = keyring.primary_id
    rewritten: dict[str, int] = {}
    for encrypted in encrypted_columns():
        done = 0
        while True:
            changed = _reencrypt_batch(engine, keyring, primary, encrypted, batch_rows)
            if not changed:
                break
            done += changed
            if progress is not None:
                progress(encrypted.name, done)
        rewritten[encrypted.name] = done
    return rewritten


def _reencrypt_batch(
    engine: Engine, keyring: Keyring, primary: str, encrypted: EncryptedColumn, batch_rows: int
) -> int:
    table = encrypted.column.table
    keys = list(table.primary_key.columns)
    pending = (
        select(*keys, encrypted.column)
        .where(not_(cast(encrypted.column, Text).like(encrypted.stored_like(primary))))
        .limit(batch_rows)
        .with_for_update()
    )
    with engine.connect() as conn:
        _hold_write_lock(conn)
        rows = conn.execute(pending).all()
        for row in rows:
            value = _rewritten(keyring, encrypted, row[-1])
            if key_id_of(value) != primary:
                raise EncryptionKeyError(
                    f"the primary key changed to {keyring.primary_id!r} during the rotation to "
                    f"{primary!r}; run the command again"
                )
            conn.execute(
                update(table)
                .where(*[key == row[i] for i, key in enumerate(keys)])
                .values({encrypted.column.name: value})
            )
        conn.commit()
    return len(rows)


def _rewritten(keyring: Keyring, encrypted: EncryptedColumn, stored: Any) -> str:
    if encrypted.holds_json:
        return keyring.encrypt_json(keyring.decrypt_json(stored, encrypted.name), encrypted.name)
    return keyring.encrypt(keyring.decrypt(str(stored), encrypted.name), encrypted.name)


def _hold_write_lock(conn: Connection) -> None:
    if conn.dialect.name == "sqlite":
        # pysqlite would open the transaction only at the first UPDATE, after the SELECT
        conn.exec_driver_sql("BEGIN IMMEDIATE")
