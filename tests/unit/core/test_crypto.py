"""The keyring of encryption at rest: formats, refusals, key files and their re-reading."""

from __future__ import annotations

import base64
import logging
import os
import stat
from pathlib import Path

import pytest

from core import crypto
from core.crypto import (
    PREFIX,
    EncryptionKey,
    Keyring,
    key_id_of,
    parse_keys,
    read_key_file,
    write_key_file,
)
from core.errors import DecryptionError, EncryptionKeyError
from server.config import Settings
from server.lifespan import load_keyring

CANARY = "Canary message: my card 4111 1111 1111 1111, ship to 12 Rue Exemple — ça va?"


def test_a_value_round_trips_and_each_encryption_differs() -> None:
    keyring = Keyring.generate()
    first = keyring.encrypt(CANARY, "turns.message")
    second = keyring.encrypt(CANARY, "turns.message")
    assert first != second, "a fresh nonce per value"
    for stored in (first, second):
        assert stored.startswith(f"{PREFIX}{keyring.primary_id}:")
        assert "Canary" not in stored and "4111" not in stored
        assert keyring.decrypt(stored, "turns.message") == CANARY
    assert keyring.decrypt(keyring.encrypt("", "feedback.comment"), "feedback.comment") == ""


def test_json_values_round_trip_and_old_plain_json_passes_through() -> None:
    keyring = Keyring.generate()
    payload = {"text": CANARY, "items": [{"quantity": 2}], "total": 12.5}
    stored = keyring.encrypt_json(payload, "customer_events.payload")
    assert isinstance(stored, str) and CANARY not in stored
    assert keyring.decrypt_json(stored, "customer_events.payload") == payload
    assert keyring.decrypt_json(payload, "customer_events.payload") == payload


def test_text_written_before_encryption_is_returned_as_it_is() -> None:
    assert Keyring.generate().decrypt(CANARY, "turns.message") == CANARY
    assert key_id_of(CANARY) is None


def test_an_altered_value_is_refused() -> None:
    keyring = Keyring.generate()
    stored = keyring.encrypt(CANARY, "turns.message")
    head, body = stored.rsplit(":", 1)
    flipped = body[:20] + ("A" if body[20] != "A" else "B") + body[21:]
    with pytest.raises(DecryptionError, match="fails authentication"):
        keyring.decrypt(f"{head}:{flipped}", "turns.message")
    with pytest.raises(DecryptionError):
        keyring.decrypt(f"{head}:{body[:10]}", "turns.message")
    with pytest.raises(DecryptionError, match="malformed"):
        keyring.decrypt(f"{head}:not*base64", "turns.message")


def test_a_value_moved_to_another_column_is_refused() -> None:
    keyring = Keyring.generate()
    stored = keyring.encrypt(CANARY, "turns.message")
    with pytest.raises(DecryptionError, match=r"turns\.reply"):
        keyring.decrypt(stored, "turns.reply")


def test_a_value_under_a_key_the_keyring_lacks_is_refused_not_garbled() -> None:
    stored = Keyring.generate().encrypt(CANARY, "turns.message")
    other = Keyring.generate()
    with pytest.raises(EncryptionKeyError, match="not in the keyring"):
        other.decrypt(stored, "turns.message")
    same_id = Keyring([EncryptionKey(key_id_of(stored) or "", os.urandom(32))])
    with pytest.raises(DecryptionError):  # same id, different secret
        same_id.decrypt(stored, "turns.message")


def test_the_first_key_encrypts_and_every_key_decrypts() -> None:
    old, new = EncryptionKey.generate(), EncryptionKey.generate()
    written_before = Keyring([old]).encrypt(CANARY, "turns.reply")
    rotated = Keyring([new, old])
    assert rotated.primary_id == new.key_id
    assert key_id_of(rotated.encrypt(CANARY, "turns.reply")) == new.key_id
    assert rotated.decrypt(written_before, "turns.reply") == CANARY


def test_key_entries_are_parsed_and_bad_ones_refused() -> None:
    secret = os.urandom(32)
    encoded = base64.b64encode(secret).decode()
    urlsafe = base64.urlsafe_b64encode(secret).decode().rstrip("=")
    keys = parse_keys(f"# comment\nfirst:{encoded}\n\nsecond:{urlsafe}\n", "test")
    assert [k.key_id for k in keys] == ["first", "second"]
    assert keys[0].secret == keys[1].secret == secret
    bare = parse_keys(encoded, "test")
    assert bare[0].key_id == parse_keys(f" {encoded} ", "test")[0].key_id  # stable derived id
    assert [k.key_id for k in parse_keys(f"a:{encoded},b:{encoded}", "t")] == ["a", "b"]
    short = base64.b64encode(os.urandom(16)).decode()
    for bad, message in (
        (f"a:{short}", "32"),
        (f"a:{encoded}\na:{encoded}", "duplicate"),
        (f"bad id:{encoded}", "letters"),
        ("a:???", "base64"),
        ("# nothing\n", "no encryption key"),
    ):
        with pytest.raises(EncryptionKeyError, match=message):
            parse_keys(bad, "test")


def test_the_key_file_is_written_for_the_owner_only_and_read_back(tmp_path: Path) -> None:
    path = tmp_path / "secrets" / "encryption.keys"
    keys = [EncryptionKey.generate(), EncryptionKey.generate()]
    write_key_file(path, keys)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert read_key_file(path) == keys
    assert [p.name for p in path.parent.iterdir()] == ["encryption.keys"], "no temp file left"


def test_a_missing_key_file_is_created_with_one_key(tmp_path: Path) -> None:
    settings = Settings(data_dir=tmp_path)
    keyring = load_keyring(settings)
    path = tmp_path / "secrets" / "encryption.keys"
    assert settings.effective_encryption_key_file == path
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert [k.key_id for k in read_key_file(path)] == keyring.key_ids
    again = load_keyring(settings)
    assert again.decrypt(keyring.encrypt(CANARY, "x.y"), "x.y") == CANARY


def test_the_variable_overrides_the_key_file(tmp_path: Path) -> None:
    key = EncryptionKey.generate()
    settings = Settings(data_dir=tmp_path, encryption_key=key.line())
    keyring = load_keyring(settings)
    assert keyring.key_ids == [key.key_id]
    assert not (tmp_path / "secrets").exists()
    assert settings.masked()["encryption_key"] == "***"


def test_a_key_file_anyone_may_read_is_refused_in_production(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    path = tmp_path / "keys"
    write_key_file(path, [EncryptionKey.generate()])
    path.chmod(0o644)
    with pytest.raises(EncryptionKeyError, match="readable by every user"):
        load_keyring(
            Settings(data_dir=tmp_path, encryption_key_file=path, environment="production")
        )
    with caplog.at_level(logging.WARNING, logger="core.crypto"):
        load_keyring(Settings(data_dir=tmp_path, encryption_key_file=path))
    assert "readable by others" in caplog.text


def test_a_running_keyring_picks_up_a_rotated_key_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    path = tmp_path / "keys"
    old, new = EncryptionKey.generate(), EncryptionKey.generate()
    write_key_file(path, [old])
    running = Keyring(read_key_file(path), source=path)
    write_key_file(path, [new, old])
    from_rotation = Keyring([new, old]).encrypt(CANARY, "turns.message")
    # a key id it does not know makes it look at the file at once
    assert running.decrypt(from_rotation, "turns.message") == CANARY
    assert running.primary_id == new.key_id

    write_key_file(path, [EncryptionKey.generate(), new])
    monkeypatch.setattr(crypto, "KEY_FILE_CHECK_S", 0.0)
    newest = running.primary_id
    assert newest not in (old.key_id, new.key_id), "a changed file is re-read on its own"
    assert old.key_id in running.key_ids, "a dropped key stays usable in a running process"


def test_creating_the_key_file_never_replaces_one_another_process_made(tmp_path: Path) -> None:
    path = tmp_path / "keys"
    first = [EncryptionKey.generate()]
    assert write_key_file(path, first, replace=False)
    assert not write_key_file(path, [EncryptionKey.generate()], replace=False)
    assert read_key_file(path) == first
    assert [p.name for p in tmp_path.iterdir()] == ["keys"], "no temp file left"
