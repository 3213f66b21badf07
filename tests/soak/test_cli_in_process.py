"""``concierge chat --in-process``: the CLI starts an engine of its own (an extra engine)."""

from __future__ import annotations

from pathlib import Path

from tests.cli import invoke


def test_chat_in_process(data_dir: Path) -> None:
    result = invoke(
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
    assert result.returncode == 0, result.stderr
    assert len(result.stdout.split()) >= 3, result.stdout
    assert "INFO" not in result.stdout, "vLLM's logs belong on stderr, not in the answer"
    # the engine is released at shutdown, not again by vLLM's __del__ at interpreter exit
    assert "Exception ignored" not in result.stderr, result.stderr[-2000:]
