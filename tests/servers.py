"""Start real Concierge servers as subprocesses on loopback, for tests.

Tests talk to servers over real HTTP. A server is a ``concierge serve`` process with
its own settings; its log goes to a file that is printed when start-up fails.
"""

from __future__ import annotations

import hashlib
import os
import re
import signal
import sqlite3
import sys
import time
from collections.abc import Mapping, Sequence
from pathlib import Path

import httpx
import pytest

from bench.lib.concierge import link_shared_artifacts

# The launcher is the benchmarks' (bench/lib/servers.py); tests import it from here.
from bench.lib.servers import ServerHandle, ServerProcess, StopSignals, free_port

REPO = Path(__file__).resolve().parents[1]
CONCIERGE = Path(sys.executable).parent / "concierge"
TEST_STOP: StopSignals = ((signal.SIGINT, 30.0), (signal.SIGKILL, 10.0))
"""A test server gets 30 s to shut down gracefully, then it is killed."""

SERVER_DATABASE = os.environ.get("CONCIERGE_TEST_SERVER_DATABASE", "sqlite")
"""What the test servers and CLI runs store in: ``sqlite`` (each data directory's own file,
the embedded default) or ``postgresql`` (``make test-postgres``: a database of its own per
data directory in the run's PostgreSQL, so the same single-box tests run on both paths)."""
if SERVER_DATABASE not in ("sqlite", "postgresql"):
    raise ValueError(f"CONCIERGE_TEST_SERVER_DATABASE={SERVER_DATABASE!r}: sqlite or postgresql")

_server_databases: dict[Path, str] = {}


def server_database_url(data_dir: Path) -> str:
    """The database of the test server (or CLI run) whose data directory is ``data_dir``:
    its SQLite file, or its own PostgreSQL database, created at first use and kept for the
    run, so a restarted server finds what it stored."""
    from core.db import SQLITE_FILE_NAME

    folder = data_dir.resolve()
    if SERVER_DATABASE == "sqlite":
        return f"sqlite:///{folder / SQLITE_FILE_NAME}"
    if folder not in _server_databases:
        from tests.postgres import shared_postgres

        name = "server_" + hashlib.sha256(str(folder).encode()).hexdigest()[:20]
        _server_databases[folder] = shared_postgres().create_database(name)
    return _server_databases[folder]


def with_server_database(env: Mapping[str, str]) -> dict[str, str]:
    """``env`` with the data directory's database named when the run stores in PostgreSQL
    and the caller did not choose a database itself."""
    full = dict(env)
    data_dir = full.get("CONCIERGE_DATA_DIR")
    if SERVER_DATABASE == "postgresql" and data_dir and not full.get("CONCIERGE_DATABASE_URL"):
        full["CONCIERGE_DATABASE_URL"] = server_database_url(Path(data_dir))
    return full


def start_server(
    log_dir: Path,
    env: dict[str, str],
    name: str = "server",
    port: int | None = None,
    *,
    fresh_process: bool = False,
) -> ServerProcess:
    """Launch ``concierge serve`` with ``env`` (CONCIERGE_* settings) on ``port`` or a free one.

    The server runs in pytest's session (a Ctrl-C in the terminal reaches it too) with the
    shared launcher of bench/lib: ``url``, ``process``, ``log_tail``, ``wait_alive``,
    ``wait_ready`` (which records each /readyz status in ``readiness_seen``) and ``stop``.
    A server in remote mode is forked from the session's warm launcher
    (tests/forked_processes.py: the same code, without 6 s of imports) unless
    ``fresh_process`` asks for a real ``concierge serve`` process; a server with the
    in-process vLLM engine always is one.
    """
    port = port or free_port()
    log_path = log_dir / f"{name}-{port}.log"
    full_env = with_server_database(
        {**os.environ, **env, "CONCIERGE_HOST": "127.0.0.1", "CONCIERGE_PORT": str(port)}
    )
    forked = full_env.get("CONCIERGE_ENGINE") == "openai_remote" and not fresh_process
    return ServerProcess(
        [str(CONCIERGE), "serve"],
        log_path,
        port,
        full_env,
        own_session=False,
        stop_signals=TEST_STOP,
        spawn=_fork_from_the_launcher if forked else None,
    )


def _fork_from_the_launcher(
    command: Sequence[str], log_path: Path, env: Mapping[str, str] | None
) -> ServerHandle:
    from tests.forked_processes import shared_launcher

    return shared_launcher().spawn(list(command[1:]), dict(env or os.environ), log_path)


def local_engine_env(data_dir: Path) -> dict[str, str]:
    """Settings for a small, eager in-process vLLM engine that fits beside others in CI."""
    return {
        "CONCIERGE_ENGINE": "vllm_local",
        "CONCIERGE_DATA_DIR": str(data_dir),
        "CONCIERGE_ENFORCE_EAGER": "true",
        "CONCIERGE_MAX_MODEL_LEN": "2048",
        "CONCIERGE_KV_CACHE_MEMORY_GIB": "1",
        "CONCIERGE_REPLY_MAX_TOKENS": "32",  # support replies: enough text to check, fast
    }


def remote_engine_env(*upstreams: str) -> dict[str, str]:
    """Settings for a Concierge that forwards to OpenAI-compatible upstreams (starts in seconds)."""
    return {
        "CONCIERGE_ENGINE": "openai_remote",
        "CONCIERGE_REMOTE_URLS": ",".join(upstreams),
        "CONCIERGE_REMOTE_HEALTH_INTERVAL_S": "0.5",
    }


def prometheus_value(metrics_text: str, name: str, **labels: str) -> float | None:
    """Sum of the samples of ``name`` whose labels include ``labels`` (None if none match)."""
    total, found = 0.0, False
    for line in metrics_text.splitlines():
        if not line.startswith(name) or line[len(name) : len(name) + 1] not in (" ", "{"):
            continue
        series, value = line.rsplit(" ", 1)
        present = dict(_LABEL.findall(series))
        if all(present.get(key) == wanted for key, wanted in labels.items()):
            total += float(value)
            found = True
    return total if found else None


def running_requests(base_url: str) -> float:
    """vLLM's own count of requests running in the engine behind ``base_url``."""
    text = httpx.get(f"{base_url}/metrics", timeout=10).text
    value = prometheus_value(text, "vllm:num_requests_running")
    assert value is not None, "vLLM's metrics are missing from /metrics"
    return value


def wait_for_running(base_url: str, expected: float, timeout_s: float = 20.0) -> bool:
    """Poll until the engine runs ``expected`` requests; False if it never does."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if running_requests(base_url) == expected:
            return True
        time.sleep(0.2)
    return False


_LABEL = re.compile(r'(\w+)="((?:[^"\\]|\\.)*)"')


def query_server_database(data_dir: Path, sql: str, *params: object) -> list[tuple[object, ...]]:
    """Rows of ``sql`` (``?`` placeholders) from a test server's database: its SQLite file
    opened read-only (no lock held), or its PostgreSQL database."""
    url = server_database_url(data_dir)
    if url.startswith("sqlite:///"):
        with sqlite3.connect(f"file:{url.removeprefix('sqlite:///')}?mode=ro", uri=True) as conn:
            return list(conn.execute(sql, params))
    import psycopg

    with psycopg.connect(url) as connection:
        return [tuple(row) for row in connection.execute(sql.replace("?", "%s"), params)]


def server_database_bytes(data_dir: Path) -> bytes:
    """What a test server's database holds on disk: the SQLite file with its write-ahead
    log, or its PostgreSQL database's files and the cluster's log (``database_bytes``)."""
    url = server_database_url(data_dir)
    if url.startswith("sqlite:///"):
        path = Path(url.removeprefix("sqlite:///"))
        return b"".join(p.read_bytes() for p in sorted(path.parent.glob(f"{path.name}*")))
    from tests.postgres import shared_postgres

    return shared_postgres().database_bytes(url.rsplit("/", 1)[1])


def isolated_data_dir(path: Path, shared: Path) -> Path:
    """A data directory of its own (database, indexes, tenant files) at ``path``.

    The prepared models (and a local classifier set, when ``shared`` has one; otherwise
    the shipped heads serve) are linked from ``shared`` rather than rebuilt, so a second
    server starts in seconds yet never touches the session server's database or indexes.
    """
    path.mkdir(parents=True, exist_ok=True)
    link_shared_artifacts(path, shared)
    return path


def start_variant(
    name: str,
    env: Mapping[str, str],
    base_url: str,
    data_dir: Path,
    log_dir: Path,
    tmp_path_factory: pytest.TempPathFactory,
) -> ServerProcess:
    """A Concierge with settings of its own (``env``) and a data directory of its own,
    forwarding generation to the session server at ``base_url``: a settings-only variant
    that starts in seconds. The caller waits for it and stops it."""
    own = isolated_data_dir(tmp_path_factory.mktemp(f"{name}-data"), data_dir)
    settings = {**remote_engine_env(base_url), "CONCIERGE_DATA_DIR": str(own), **env}
    return start_server(log_dir, settings, name)
