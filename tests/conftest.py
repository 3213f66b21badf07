"""Session fixtures: the real model is prepared once and one real server serves all tests."""

from __future__ import annotations

import os
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.servers import REPO, ServerProcess, local_engine_env, start_server

if TYPE_CHECKING:
    from retrieval.embedder import Embedder

ENGINE_START_TIMEOUT_S = 420.0


@pytest.fixture(scope="session")
def embedder() -> Iterator[Embedder]:
    """The shipped all-MiniLM-L6-v2, loaded once (retrieval and classifier tests share it)."""
    from retrieval.embedder import Embedder, EmbedderConfig

    model = Embedder(EmbedderConfig("all-minilm-l6-v2", device="cpu"))
    model.warm_up()
    yield model
    model.shutdown()


@pytest.fixture(scope="session")
def data_dir() -> Path:
    """The data directory holding prepared models (reused across runs, like in production)."""
    return Path(os.environ.get("CONCIERGE_DATA_DIR", REPO / "var")).resolve()


@pytest.fixture(scope="session")
def log_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("server-logs")


@pytest.fixture(scope="session")
def server(data_dir: Path, log_dir: Path) -> Iterator[ServerProcess]:
    """One Concierge with the real in-process vLLM engine and SmolLM2, for the whole run."""
    running = start_server(log_dir, local_engine_env(data_dir), name="main")
    try:
        running.wait_ready(ENGINE_START_TIMEOUT_S)
        yield running
    finally:
        running.stop()


@pytest.fixture(scope="session")
def base_url(server: ServerProcess) -> str:
    return server.url


@pytest.fixture(scope="session")
def model_name(base_url: str) -> str:
    import httpx

    return str(httpx.get(f"{base_url}/v1/models", timeout=10).json()["data"][0]["id"])
