"""The ``concierge`` command, run as a user would run it."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.servers import CONCIERGE, REPO


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> str:
    result = subprocess.run(
        [str(CONCIERGE), *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        check=False,
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def test_chat_against_a_running_server(base_url: str) -> None:
    answer = run_cli(
        "chat", "How do I update my billing address?", "--url", base_url, "--max-tokens", "32"
    )
    assert len(answer.split()) >= 4, answer


def test_chat_reports_an_unreachable_server() -> None:
    result = subprocess.run(
        [str(CONCIERGE), "chat", "hi", "--url", "http://127.0.0.1:9"],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )
    assert result.returncode == 1
    assert "cannot reach" in result.stderr


def test_config_show_masks_secrets() -> None:
    out = run_cli(
        "config",
        "show",
        env={
            "CONCIERGE_ENGINE": "openai_remote",
            "CONCIERGE_REMOTE_URLS": "http://up:8000",
            "CONCIERGE_REMOTE_API_KEY": "sk-do-not-print",
        },
    )
    shown = json.loads(out)
    assert shown["remote_api_key"] == "***"
    assert shown["engine"] == "openai_remote"
    assert "sk-do-not-print" not in out


def test_invalid_settings_exit_with_a_message() -> None:
    result = subprocess.run(
        [str(CONCIERGE), "config", "show"],
        capture_output=True,
        text=True,
        timeout=60,
        env={**os.environ, "CONCIERGE_PORT": "99999"},
        check=False,
    )
    assert result.returncode == 2
    assert "port" in result.stderr


def test_models_list_and_prepare(data_dir: Path) -> None:
    env = {"CONCIERGE_DATA_DIR": str(data_dir)}
    prepared = run_cli("models", "prepare", "smollm2-135m-instruct", env=env)
    assert "smollm2-135m-instruct: ready at" in prepared
    listing = run_cli("models", "list", env=env)
    row = next(line for line in listing.splitlines() if line.startswith("smollm2-135m-instruct"))
    assert row.split()[-1] == "prepared"
    assert "all-minilm-l6-v2" in listing


@pytest.mark.slow
def test_chat_in_process(data_dir: Path) -> None:
    answer = run_cli(
        "chat",
        "What are your opening hours?",
        "--in-process",
        "--max-tokens",
        "24",
        timeout=400,
        env={
            "CONCIERGE_DATA_DIR": str(data_dir),
            "CONCIERGE_ENFORCE_EAGER": "true",
            "CONCIERGE_MAX_MODEL_LEN": "1024",
            "CONCIERGE_KV_CACHE_MEMORY_GIB": "0.5",
        },
    )
    assert len(answer.split()) >= 3, answer
