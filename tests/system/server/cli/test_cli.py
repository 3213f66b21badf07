"""The ``concierge`` command, run as a user would run it."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

from tests.cli import invoke, invoke_installed, run_cli


def test_chat_against_a_running_server(base_url: str) -> None:
    result = invoke(
        "chat", "How do I update my billing address?", "--url", base_url, "--max-tokens", "32"
    )
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.split()) >= 4, result.stdout
    assert "HTTP Request" not in result.stderr  # httpx's per-request log lines stay quiet


def test_chat_reports_an_unreachable_server() -> None:
    result = invoke_installed("chat", "hi", "--url", "http://127.0.0.1:9", timeout=60)
    assert result.returncode == 1
    assert "cannot reach" in result.stderr


def test_serve_refuses_an_unknown_model_before_binding() -> None:
    result = invoke_installed("serve", "--model", "no-such-model", "--port", "9", timeout=60)
    assert result.returncode == 2
    assert "unknown model 'no-such-model'" in result.stderr


def test_a_missing_config_file_is_a_clear_error() -> None:
    result = invoke("config", "show", env={"CONCIERGE_CONFIG_FILE": "/no/such.toml"}, timeout=60)
    assert result.returncode == 2
    assert "is not a file" in result.stderr
    assert "Traceback" not in result.stderr


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
    result = invoke("config", "show", env={"CONCIERGE_PORT": "99999"}, timeout=60)
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


def test_the_cli_module_graph_stays_light() -> None:
    """vLLM's engine processes re-import the CLI module when they spawn: FAISS there (a
    second OpenMP runtime) keeps them from exiting on SIGTERM, and llvmlite (via bm25s's
    numba) breaks their kernel scan. Neither may be imported by the CLI module itself."""
    check = (
        "import sys, server.cli.main;"
        "assert not {'faiss', 'numba', 'llvmlite', 'bm25s'} & set(sys.modules),"
        " sorted(sys.modules)"
    )
    result = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]
    check = "import sys, server.app, retrieval.knowledge; assert 'bm25s' not in sys.modules"
    result = subprocess.run([sys.executable, "-c", check], capture_output=True, text=True)
    assert result.returncode == 0, result.stderr[-2000:]


def test_the_search_modes_offered_are_the_real_ones() -> None:
    from retrieval.knowledge import SearchMode
    from server.cli.kb import SEARCH_MODES

    assert set(SEARCH_MODES) == {mode.value for mode in SearchMode}
