"""``concierge crypto status|rotate|reencrypt|prune``: the keys of encryption at rest.

``rotate`` puts a new primary key first in the key file (old keys kept), waits until
running servers have re-read the file, then re-encrypts every stored value under the
new key; ``--drop-old`` then removes the old keys, which ``prune`` also does later.
A key is removed only when ``status`` counts no row under it, so no stored value can
be orphaned. Keys given in ``CONCIERGE_ENCRYPTION_KEY`` are the operator's to change:
put the new key first there, restart the servers, run ``reencrypt``, then remove the
old key from the variable once ``status`` shows it unused.

Secrets are never printed; only key ids.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING, Any

from server.config import Settings

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from core.crypto import Keyring

Handler = Callable[[argparse.Namespace, Settings], int]


def add_crypto_commands(commands: Any) -> None:
    """Register the ``crypto`` command group."""
    crypto = commands.add_parser(
        "crypto", help="encryption keys of stored customer text (CONCIERGE_ENCRYPTION_KEY_FILE)"
    )
    crypto_commands = crypto.add_subparsers(title="crypto commands")
    status = crypto_commands.add_parser("status", help="keys and how many stored values use each")
    status.set_defaults(handler=_status)
    rotate = crypto_commands.add_parser(
        "rotate", help="add a new primary key and re-encrypt every stored value with it"
    )
    rotate.add_argument(
        "--drop-old", action="store_true", help="then remove the old keys from the key file"
    )
    rotate.set_defaults(handler=_rotate)
    again = crypto_commands.add_parser(
        "reencrypt", help="re-encrypt every value not under the primary key (and any in clear)"
    )
    again.set_defaults(handler=_reencrypt)
    prune = crypto_commands.add_parser(
        "prune", help="remove keys other than the primary once no stored value uses them"
    )
    prune.set_defaults(handler=_prune)


def _status(_: argparse.Namespace, settings: Settings) -> int:
    from server.store.key_rotation import key_usage

    with _opened(settings) as (engine, keyring):
        usage = key_usage(engine, keyring)
        sys.stdout.write(f"keys: {_source(settings)}\n")
        for number, key_id in enumerate(keyring.key_ids):
            role = "primary" if number == 0 else "decrypt only"
            total = sum(column.by_key.get(key_id, 0) for column in usage)
            sys.stdout.write(f"  {key_id}  {role}  {total} values\n")
        sys.stdout.write("column  rows  " + "  ".join(keyring.key_ids) + "  clear  unknown_key\n")
        for column in usage:
            counts = [str(column.by_key[key_id]) for key_id in keyring.key_ids]
            cells = [column.column, str(column.rows), *counts]
            cells += [str(column.clear), str(column.unknown_key)]
            sys.stdout.write("  ".join(cells) + "\n")
        unknown = sum(column.unknown_key for column in usage)
    if unknown:
        sys.stderr.write(f"error: {unknown} values are under keys this keyring lacks\n")
        return 1
    return 0


def _rotate(args: argparse.Namespace, settings: Settings) -> int:
    from core.crypto import KEY_FILE_CHECK_S, EncryptionKey, Keyring, write_key_file

    if _from_variable(settings):
        sys.stderr.write(
            "error: the keys come from CONCIERGE_ENCRYPTION_KEY; put a new key first there "
            "(`<id>:<base64 of 32 random bytes>`), restart the servers, then run "
            "`concierge crypto reencrypt`\n"
        )
        return 2
    with _opened(settings) as (engine, keyring):
        path = settings.effective_encryption_key_file
        new, old = EncryptionKey.generate(), keyring.keys
        write_key_file(path, [new, *old])
        sys.stdout.write(f"new primary key {new.key_id} written to {path}\n")
        sys.stdout.flush()
        # running servers look at the file every KEY_FILE_CHECK_S: once they have seen
        # it, nothing new is written under the old keys
        time.sleep(KEY_FILE_CHECK_S + 1.0)
        rotated = Keyring([new, *old], source=path)
        code = _reencrypt_all(engine, rotated)
        if code == 0 and args.drop_old:
            code = _drop_unused(engine, rotated, settings)
    return code


def _reencrypt(_: argparse.Namespace, settings: Settings) -> int:
    with _opened(settings) as (engine, keyring):
        return _reencrypt_all(engine, keyring)


def _prune(_: argparse.Namespace, settings: Settings) -> int:
    if _from_variable(settings):
        sys.stderr.write(
            "error: the keys come from CONCIERGE_ENCRYPTION_KEY; remove unused keys there "
            "(`concierge crypto status` shows which hold no values)\n"
        )
        return 2
    with _opened(settings) as (engine, keyring):
        return _drop_unused(engine, keyring, settings)


def _reencrypt_all(engine: Engine, keyring: Keyring) -> int:
    from server.store.key_rotation import reencrypt

    sys.stdout.write(f"re-encrypting under key {keyring.primary_id}\n")
    rewritten = reencrypt(engine, keyring)
    for column, count in rewritten.items():
        sys.stdout.write(f"  {column}: {count} values re-encrypted\n")
    sys.stdout.write(f"re-encrypted {sum(rewritten.values())} values\n")
    return 0


def _drop_unused(engine: Engine, keyring: Keyring, settings: Settings) -> int:
    from core.crypto import write_key_file
    from server.store.key_rotation import key_usage

    usage = key_usage(engine, keyring)
    primary, *old = keyring.keys
    still_used = {
        key.key_id: sum(column.by_key[key.key_id] for column in usage)
        for key in old
        if any(column.by_key[key.key_id] for column in usage)
    }
    if still_used:
        sys.stderr.write(
            f"error: old keys still protect stored values {still_used}; run "
            "`concierge crypto reencrypt` first\n"
        )
        return 1
    if not old:
        sys.stdout.write(f"only the primary key {primary.key_id} is left; nothing to remove\n")
        return 0
    write_key_file(settings.effective_encryption_key_file, [primary])
    dropped = ", ".join(key.key_id for key in old)
    sys.stdout.write(f"removed unused keys {dropped}; {primary.key_id} remains\n")
    return 0


@contextlib.contextmanager
def _opened(settings: Settings) -> Iterator[tuple[Engine, Keyring]]:
    """The database (schema current) and the keyring; the engine is closed on exit."""
    from core.db import create_database_engine
    from server.lifespan import load_keyring
    from server.store.schema import create_schema

    keyring = load_keyring(settings)
    engine = create_database_engine(settings.effective_database_url)
    try:
        create_schema(engine)
        yield engine, keyring
    finally:
        engine.dispose()


def _from_variable(settings: Settings) -> bool:
    key = settings.encryption_key
    return key is not None and bool(key.get_secret_value())


def _source(settings: Settings) -> str:
    if _from_variable(settings):
        return "CONCIERGE_ENCRYPTION_KEY"
    return str(settings.effective_encryption_key_file)
