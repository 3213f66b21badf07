"""``concierge crypto status|rotate|prune``: rotating the key of a data directory's database."""

from __future__ import annotations

import uuid
from pathlib import Path

from sqlalchemy import Text, cast, select

from core.crypto import read_key_file
from core.db import create_database_engine
from server.config import Settings
from server.lifespan import load_keyring
from server.store.conversation_tables import TURNS
from server.store.conversations import ConversationStore
from server.store.schema import create_schema
from tests.cli import invoke, run_cli
from tests.servers import server_database_url
from tests.store_rows import turn


def test_rotate_reencrypts_the_database_and_drops_the_old_key(tmp_path: Path) -> None:
    env = {"CONCIERGE_DATA_DIR": str(tmp_path)}
    settings = Settings(data_dir=tmp_path, database_url=server_database_url(tmp_path))
    first = load_keyring(settings)  # what the first server start does: creates the key file
    first_id = first.primary_id  # (``first`` itself follows the file once it changes)
    engine = create_database_engine(settings.effective_database_url)
    create_schema(engine)
    word = f"canary-{uuid.uuid4().hex}"
    store = ConversationStore(engine, first)
    conversation = store.open("shop", "ana", None, "chat", "en")
    for seq in (1, 2, 3):
        conversation, _ = store.record_turn(
            conversation,
            turn(conversation.conversation_id, seq, f"{word} {seq}"),
            negative_streak=0,
            ungrounded_streak=0,
            summary=f"summary {word}",
            summarized_turns=seq,
        )
    engine.dispose()

    status = run_cli("crypto", "status", env=env)
    assert f"{first_id}  primary  7 values" in status  # 3 turns x 2 + 1 summary
    assert "secrets/encryption.keys" in status

    refused = invoke("crypto", "prune", env=env)
    assert refused.returncode == 0 and "nothing to remove" in refused.stdout

    rotated = run_cli("crypto", "rotate", env=env)
    (new_id, old_id) = [key.key_id for key in read_key_file(settings.effective_encryption_key_file)]
    assert old_id == first_id and f"new primary key {new_id}" in rotated
    assert "turns.message: 3 values re-encrypted" in rotated
    assert "re-encrypted 7 values" in rotated
    status = run_cli("crypto", "status", env=env)
    assert f"{new_id}  primary  7 values" in status
    assert f"{old_id}  decrypt only  0 values" in status

    pruned = run_cli("crypto", "prune", env=env)
    assert f"removed unused keys {old_id}" in pruned
    assert [k.key_id for k in read_key_file(settings.effective_encryption_key_file)] == [new_id]

    again = run_cli("crypto", "rotate", "--drop-old", env=env)
    assert "re-encrypted 7 values" in again and f"removed unused keys {new_id}" in again
    (newest,) = read_key_file(settings.effective_encryption_key_file)

    reopened = load_keyring(settings)
    engine = create_database_engine(settings.effective_database_url)
    try:
        turns = ConversationStore(engine, reopened).recent_turns(conversation.conversation_id, 5)
        assert [t.message for t in turns] == [f"{word} {seq}" for seq in (1, 2, 3)]
        with engine.connect() as conn:
            raw = conn.execute(select(cast(TURNS.c.message, Text))).scalars().all()
        assert all(value.startswith(f"enc1:{newest.key_id}:") for value in raw)
    finally:
        engine.dispose()


def test_keys_from_the_variable_are_not_rotated_by_the_command(tmp_path: Path) -> None:
    import base64
    import os

    key = f"ops1:{base64.b64encode(os.urandom(32)).decode()}"
    env = {"CONCIERGE_DATA_DIR": str(tmp_path), "CONCIERGE_ENCRYPTION_KEY": key}
    refused = invoke("crypto", "rotate", env=env)
    assert refused.returncode == 2 and "CONCIERGE_ENCRYPTION_KEY" in refused.stderr
    assert key.split(":")[1] not in refused.stdout + refused.stderr
    assert "ops1  primary  0 values" in run_cli("crypto", "status", env=env)
    assert "re-encrypted 0 values" in run_cli("crypto", "reencrypt", env=env)
    assert not (tmp_path / "secrets").exists()


def test_a_broken_key_file_is_one_line_of_error(tmp_path: Path) -> None:
    keys = tmp_path / "keys"
    keys.write_text("a:not-a-key\n")
    keys.chmod(0o600)
    env = {"CONCIERGE_DATA_DIR": str(tmp_path), "CONCIERGE_ENCRYPTION_KEY_FILE": str(keys)}
    result = invoke("crypto", "status", env=env)
    assert result.returncode == 1
    assert result.stderr.strip().startswith("error:") and "Traceback" not in result.stderr
