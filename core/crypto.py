"""Encryption at rest of stored customer text: a keyring of AES-256-GCM keys.

What a customer wrote (messages, replies, summaries, tickets, feedback, event payloads,
history entries) is stored as ``enc1:<key_id>:<base64url(nonce || ciphertext)>``, a
plain string that fits the existing TEXT and JSON columns, so no schema change was
needed and a database file or backup read without the key shows no customer text.

The first key of the keyring encrypts; every key decrypts, so a rotation can add a
new primary key and re-encrypt rows at its own pace (``concierge crypto rotate``).
Each value is bound to its column by the associated data (``table.column``): a
ciphertext copied into another column fails authentication instead of being shown
there. A value that is not in the ``enc1:`` format was written before encryption
existed; it is returned as it is, and the next rotation encrypts it.

Keys come from ``CONCIERGE_ENCRYPTION_KEY`` (for a secret store that injects
variables) or from the key file, ``<key_id>:<base64 key>`` per line, primary first.
A keyring read from a file re-reads it when it changes (checked at most every
``KEY_FILE_CHECK_S`` seconds) and when it meets a key id it does not know, so a
rotation run while servers are up reaches them without a restart.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import json
import logging
import os
import re
import secrets
import stat
import tempfile
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from core.errors import DecryptionError, EncryptionKeyError

log = logging.getLogger(__name__)

PREFIX = "enc1:"
"""Marks an encrypted value and its format version."""

KEY_BYTES = 32
NONCE_BYTES = 12
KEY_ID = re.compile(r"[A-Za-z0-9-]{1,32}")
"""Key ids are plain enough to appear unescaped in a SQL LIKE pattern (``crypto status``)."""

KEY_FILE_CHECK_S = 2.0
"""How often a running keyring looks whether its key file changed."""

_ASSOCIATED_DATA = "concierge:{purpose}"


@dataclass(frozen=True)
class EncryptionKey:
    key_id: str
    secret: bytes

    def __post_init__(self) -> None:
        if not KEY_ID.fullmatch(self.key_id):
            raise EncryptionKeyError(
                f"encryption key id {self.key_id!r}: use 1-32 letters, digits or '-'"
            )
        if len(self.secret) != KEY_BYTES:
            raise EncryptionKeyError(
                f"encryption key {self.key_id!r} has {len(self.secret)} bytes; AES-256 needs 32"
            )

    @classmethod
    def generate(cls) -> EncryptionKey:
        return cls(secrets.token_hex(4), AESGCM.generate_key(bit_length=256))

    def line(self) -> str:
        """This key as a key-file line (or one entry of ``CONCIERGE_ENCRYPTION_KEY``)."""
        return f"{self.key_id}:{base64.b64encode(self.secret).decode('ascii')}"


def key_id_of(stored: str) -> str | None:
    """The key id an encrypted value names; None for a value stored in clear."""
    if not stored.startswith(PREFIX):
        return None
    key_id, sep, _ = stored[len(PREFIX) :].partition(":")
    return key_id if sep else None


class Keyring:
    """Encrypts with the primary (first) key, decrypts with any; thread-safe."""

    def __init__(self, keys: Sequence[EncryptionKey], source: Path | None = None) -> None:
        _check_keys(keys)
        self._keys = list(keys)
        self._ciphers = {key.key_id: AESGCM(key.secret) for key in keys}
        self._source = source
        self._source_stamp = _stamp(source) if source is not None else None
        self._checked_at = time.monotonic()
        self._lock = threading.Lock()

    @classmethod
    def generate(cls) -> Keyring:
        """A keyring of one fresh key, kept only in memory (tests, throw-away databases)."""
        return cls([EncryptionKey.generate()])

    @property
    def keys(self) -> list[EncryptionKey]:
        self._refresh_if_changed()
        return list(self._keys)

    @property
    def primary_id(self) -> str:
        return self.keys[0].key_id

    @property
    def key_ids(self) -> list[str]:
        return [key.key_id for key in self.keys]

    def encrypt(self, plaintext: str, purpose: str) -> str:
        """``plaintext`` under the primary key, bound to ``purpose`` (``table.column``)."""
        primary = self.keys[0]
        nonce = os.urandom(NONCE_BYTES)
        sealed = self._ciphers[primary.key_id].encrypt(
            nonce, plaintext.encode("utf-8"), _associated(purpose)
        )
        body = base64.urlsafe_b64encode(nonce + sealed).rstrip(b"=").decode("ascii")
        return f"{PREFIX}{primary.key_id}:{body}"

    def decrypt(self, stored: str, purpose: str) -> str:
        """The text behind ``stored``; a value without the ``enc1:`` mark is returned as is."""
        if not stored.startswith(PREFIX):
            return stored
        key_id, sep, body = stored[len(PREFIX) :].partition(":")
        if not sep:
            raise DecryptionError(f"{purpose}: malformed encrypted value")
        cipher = self._cipher(key_id, purpose)
        try:
            raw = base64.urlsafe_b64decode(body + "=" * (-len(body) % 4))
        except (binascii.Error, ValueError) as exc:
            raise DecryptionError(f"{purpose}: malformed encrypted value") from exc
        if len(raw) <= NONCE_BYTES:
            raise DecryptionError(f"{purpose}: malformed encrypted value")
        try:
            plain = cipher.decrypt(raw[:NONCE_BYTES], raw[NONCE_BYTES:], _associated(purpose))
        except InvalidTag as exc:
            raise DecryptionError(
                f"{purpose}: an encrypted value fails authentication (altered, or moved from "
                f"another column)"
            ) from exc
        return plain.decode("utf-8")

    def encrypt_json(self, value: Any, purpose: str) -> str:
        """A JSON-able value as one encrypted string (stored as a JSON string)."""
        return self.encrypt(json.dumps(value, ensure_ascii=False, separators=(",", ":")), purpose)

    def decrypt_json(self, stored: Any, purpose: str) -> Any:
        """The value behind ``encrypt_json``; a value stored before encryption is returned as is."""
        if isinstance(stored, str) and stored.startswith(PREFIX):
            return json.loads(self.decrypt(stored, purpose))
        return stored

    def _cipher(self, key_id: str, purpose: str) -> AESGCM:
        cipher = self._ciphers.get(key_id)
        if cipher is None and self._source is not None:
            self._reload()  # a rotation elsewhere may have added the key
            cipher = self._ciphers.get(key_id)
        if cipher is None:
            raise EncryptionKeyError(
                f"{purpose}: stored value was encrypted with key {key_id!r}, which is not in "
                f"the keyring ({', '.join(self._ciphers)}); restore that key to the key file "
                f"or CONCIERGE_ENCRYPTION_KEY"
            )
        return cipher

    def _refresh_if_changed(self) -> None:
        if self._source is None or time.monotonic() - self._checked_at < KEY_FILE_CHECK_S:
            return
        self._checked_at = time.monotonic()
        if _stamp(self._source) != self._source_stamp:
            self._reload()

    def _reload(self) -> None:
        assert self._source is not None
        with self._lock:
            stamp = _stamp(self._source)
            try:
                keys = read_key_file(self._source)
            except (OSError, EncryptionKeyError):
                log.exception("re-reading the key file %s failed; keeping the keys", self._source)
                return
            # keys are only ever added here: a key dropped from the file stays usable in
            # this process, so a value it wrote a moment ago can still be read
            merged = keys + [k for k in self._keys if k.key_id not in {n.key_id for n in keys}]
            self._ciphers = {key.key_id: AESGCM(key.secret) for key in merged}
            self._keys = merged
            self._source_stamp = stamp
            log.info("encryption keys re-read from %s: primary %s", self._source, keys[0].key_id)


def open_keyring(secret: str | None, key_file: Path, *, production: bool) -> Keyring:
    """The process's keyring: ``secret`` (keys given in a variable) if set, else the key file.

    A missing key file is created with one fresh key (mode 0600), so a new installation
    works at once; in production that is said loudly, because a key stored next to the
    data it protects protects little.
    """
    if secret:
        return Keyring(parse_keys(secret, "the variable"))
    path = key_file
    if not path.exists() and write_key_file(path, [EncryptionKey.generate()], replace=False):
        log.log(
            logging.WARNING if production else logging.INFO,
            "created the encryption key file %s with a new key; production should mount it "
            "from a secret store (or set CONCIERGE_ENCRYPTION_KEY) and keep a backup: "
            "stored conversations cannot be read without it",
            path,
        )
    check_key_file_mode(path, refuse=production)
    return Keyring(read_key_file(path), source=path)


def parse_keys(text: str, where: str) -> list[EncryptionKey]:
    """Keys from ``<key_id>:<base64>`` entries, one per line or comma-separated.

    A bare base64 key (no id) is accepted too; its id is derived from the key, so
    every process that has the same key gives it the same id.
    """
    keys = []
    for entry in re.split(r"[,\n]", text):
        entry = entry.strip()
        if not entry or entry.startswith("#"):
            continue
        key_id, sep, encoded = entry.rpartition(":")
        secret = _decode_key(encoded, where)
        if not sep:
            key_id = "k" + hashlib.sha256(secret).hexdigest()[:8]
        keys.append(EncryptionKey(key_id, secret))
    if not keys:
        raise EncryptionKeyError(f"no encryption key in {where}")
    _check_keys(keys)
    return keys


def read_key_file(path: Path) -> list[EncryptionKey]:
    return parse_keys(path.read_text(encoding="utf-8"), str(path))


def write_key_file(path: Path, keys: Sequence[EncryptionKey], *, replace: bool = True) -> bool:
    """Write the key file atomically (temp file, fsync, rename), readable by the owner only.

    With ``replace=False`` an existing file wins and False is returned: two replicas
    starting at once on one data directory must end up with the same key, not each
    with its own.
    """
    _check_keys(keys)
    path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
    header = "# Concierge encryption keys: <key_id>:<base64 key>; the first one encrypts.\n"
    content = header + "".join(f"{key.line()}\n" for key in keys)
    descriptor, temporary = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.")
    try:
        os.fchmod(descriptor, 0o600)
        with os.fdopen(descriptor, "w", encoding="utf-8") as handle:
            handle.write(content)
            handle.flush()
            os.fsync(handle.fileno())
        if replace:
            os.replace(temporary, path)
        else:
            try:
                os.link(temporary, path)  # atomic, and fails if another process got there first
            except FileExistsError:
                return False
            finally:
                Path(temporary).unlink(missing_ok=True)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
    directory = os.open(path.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)
    return True


def check_key_file_mode(path: Path, *, refuse: bool) -> None:
    """A key file anyone on the machine can read is refused in production, warned about
    elsewhere; readable by the group (a mounted secret with ``fsGroup``) only warned about."""
    mode = stat.S_IMODE(path.stat().st_mode)
    if mode & stat.S_IROTH and refuse:
        raise EncryptionKeyError(
            f"the encryption key file {path} is readable by every user (mode {mode:o}); "
            f"chmod 600 it (or mount the secret with mode 0400)"
        )
    if mode & (stat.S_IRGRP | stat.S_IROTH):
        log.warning("the encryption key file %s is readable by others (mode %o)", path, mode)


def _check_keys(keys: Sequence[EncryptionKey]) -> None:
    if not keys:
        raise EncryptionKeyError("the keyring is empty")
    ids = [key.key_id for key in keys]
    if len(set(ids)) != len(ids):
        raise EncryptionKeyError(f"duplicate encryption key ids in {ids}")


def _decode_key(encoded: str, where: str) -> bytes:
    normalized = encoded.strip().replace("-", "+").replace("_", "/")
    try:
        return base64.b64decode(normalized + "=" * (-len(normalized) % 4), validate=True)
    except (binascii.Error, ValueError) as exc:
        raise EncryptionKeyError(f"an encryption key in {where} is not valid base64") from exc


def _associated(purpose: str) -> bytes:
    return _ASSOCIATED_DATA.format(purpose=purpose).encode("utf-8")


def _stamp(path: Path) -> tuple[int, int] | None:
    try:
        info = path.stat()
    except OSError:
        return None
    return info.st_mtime_ns, info.st_size


def column_purpose(column: Any) -> str:
    """The associated data of a SQL column's values: ``table.column``."""
    return f"{column.table.name}.{column.name}"
