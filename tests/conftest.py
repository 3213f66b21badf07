"""Session fixtures: the real model is prepared once and one real server serves all tests.

Tests are sorted by cost: ``tests/unit`` starts no process, ``tests/system`` shares the
session server (and PostgreSQL, Prometheus, extra API processes in remote mode against
the session engine), ``tests/soak`` holds kill loops, fuzzing and extra engines.
"""

from __future__ import annotations

import os
import uuid
from collections.abc import Iterator
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path
from typing import TYPE_CHECKING

import pytest

from tests.postgres import (
    INSTALL_HINT,
    PostgresServer,
    find_bindir,
    shared_postgres,
    stop_shared_postgres,
)
from tests.servers import REPO, ServerProcess, isolated_data_dir, local_engine_env, start_server

if TYPE_CHECKING:
    from sqlalchemy import Engine

    from models.embedder import Embedder

ENGINE_START_TIMEOUT_S = 420.0

# The embedder's default (``auto``) depends on the hardware; the suite's servers and CLI
# runs pin MiniLM so their retrieval expectations hold on every CI machine. The default
# on this hardware is tested on its own (tests/soak/test_multilingual_embedder.py).
os.environ["CONCIERGE_EMBEDDING_MODEL"] = "all-minilm-l6-v2"


@pytest.fixture(scope="session")
def embedder() -> Iterator[Embedder]:
    """The shipped all-MiniLM-L6-v2, loaded once (retrieval and classifier tests share it),
    on one torch thread: the unit tests run while the session engine boots on both cores,
    and two OpenMP teams on two cores wait at each other's barriers (docs/architecture.md)."""
    from models.embedder import Embedder, EmbedderConfig

    model = Embedder(EmbedderConfig("all-minilm-l6-v2", device="cpu", threads=1))
    model.warm_up()
    yield model
    model.shutdown()


@pytest.fixture(scope="session")
def prepared_dir() -> Path:
    """Where ``make test`` prepared the models (``concierge models prepare``), reused across
    runs like in production: ``CONCIERGE_DATA_DIR``, else the repository's ``var/``."""
    return Path(os.environ.get("CONCIERGE_DATA_DIR", REPO / "var")).resolve()


@pytest.fixture(scope="session")
def data_dir(prepared_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The session server's own data directory: its database, indexes and tenant files
    start empty in a temporary folder; only the prepared models are linked in, so a test
    run never writes into the repository's ``var/``."""
    return isolated_data_dir(tmp_path_factory.mktemp("session-data"), prepared_dir)


@pytest.fixture(scope="session")
def log_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("server-logs")


@pytest.fixture(scope="session")
def server_boot(data_dir: Path, log_dir: Path) -> Iterator[Future[ServerProcess]]:
    """One Concierge with the real in-process vLLM engine and SmolLM2, for the whole run:
    started here, and waited for in a thread (which records every /readyz status it sees
    during the boot, in ``readiness_seen``) until ``server`` needs it."""
    running = start_server(log_dir, local_engine_env(data_dir), name="main")
    waiter = ThreadPoolExecutor(max_workers=1, thread_name_prefix="session-server-boot")

    def wait_ready() -> ServerProcess:
        running.wait_ready(ENGINE_START_TIMEOUT_S)
        return running

    try:
        yield waiter.submit(wait_ready)
    finally:
        running.stop()
        waiter.shutdown(wait=True)


@pytest.fixture(scope="session", autouse=True)
def _start_the_session_server_early(request: pytest.FixtureRequest) -> None:
    """Start the session server at the run's first test when any test needs it: its
    engine boots (half a minute on 2 cores) while the unit tests, which run first, run."""
    needed = {"server", "base_url"}
    if any(needed & set(getattr(item, "fixturenames", ())) for item in request.session.items):
        request.getfixturevalue("server_boot")


@pytest.fixture(scope="session")
def server(server_boot: Future[ServerProcess]) -> ServerProcess:
    """The session server, ready: the real vLLM engine behind real HTTP on loopback."""
    return server_boot.result()


@pytest.fixture(scope="session")
def base_url(server: ServerProcess) -> str:
    return server.url


@pytest.fixture(scope="session")
def model_name(base_url: str) -> str:
    import httpx

    return str(httpx.get(f"{base_url}/v1/models", timeout=10).json()["data"][0]["id"])


# ---------------------------------------------------------------- SQL store on both backends


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    """A real PostgreSQL for the whole run, started from the installed server binaries.

    Missing binaries fail the tests (both backends are part of ``make test``) unless
    CONCIERGE_TEST_POSTGRES=0 says this machine runs the SQLite half only.
    """
    if os.environ.get("CONCIERGE_TEST_POSTGRES", "1") == "0":
        pytest.skip("CONCIERGE_TEST_POSTGRES=0: PostgreSQL store tests skipped")
    if find_bindir() is None:
        pytest.fail(INSTALL_HINT, pytrace=False)
    yield shared_postgres()


@pytest.fixture(params=["sqlite", "postgresql"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """A fresh, empty database for this test: a SQLite file, or a new PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'store.sqlite3'}"
        return
    running: PostgresServer = request.getfixturevalue("postgres_server")
    name = f"test_{uuid.uuid4().hex}"
    url = running.create_database(name)
    try:
        yield url
    finally:
        running.drop_database(name)


@pytest.fixture
def store_engine(database_url: str) -> Iterator[Engine]:
    """An engine on this test's database with the schema migrated to the newest revision."""
    from core.db import create_database_engine
    from server.store.schema import upgrade_schema

    engine = create_database_engine(database_url)
    upgrade_schema(engine)
    try:
        yield engine
    finally:
        engine.dispose()


# ---------------------------------------------------------------- ordering


def pytest_sessionfinish(session: pytest.Session) -> None:
    """The warm launcher of forked ``concierge`` processes and the run's PostgreSQL end with
    the session."""
    from tests.forked_processes import close_shared_launcher

    close_shared_launcher()
    stop_shared_postgres()


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Mark what lies under tests/soak as ``soak``, and run tests marked ``last`` after all
    others (they inspect what the whole run left)."""
    soak = Path(__file__).parent / "soak"
    for item in items:
        if soak in Path(str(item.fspath)).parents:
            item.add_marker(pytest.mark.soak)
    items.sort(key=lambda item: item.get_closest_marker("last") is not None)
