"""Start real Concierge servers as subprocesses on loopback, for tests.

Tests talk to servers over real HTTP. A server is a ``concierge serve`` process with
its own settings; its log goes to a file that is printed when start-up fails.
"""

from __future__ import annotations

import os
import re
import signal
import socket
import sqlite3
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parents[1]
CONCIERGE = Path(sys.executable).parent / "concierge"


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class ServerProcess:
    """A running ``concierge serve`` and where to reach it."""

    url: str
    process: subprocess.Popen[bytes]
    log_path: Path
    readiness_seen: list[int] = field(default_factory=list)

    def log_tail(self, lines: int = 60) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])

    def wait_alive(self, timeout_s: float) -> None:
        """Wait until ``/healthz`` answers: the HTTP server is up, whatever the engine does."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            try:
                if httpx.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.25)
        raise RuntimeError(f"server not alive after {timeout_s} s:\n{self.log_tail()}")

    def wait_ready(self, timeout_s: float) -> None:
        """Poll /readyz, remembering each status seen, until 200 or the deadline."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"server exited with {self.process.returncode}:\n{self.log_tail()}"
                )
            try:
                status = httpx.get(f"{self.url}/readyz", timeout=5).status_code
            except httpx.HTTPError:
                status = 0
            self.readiness_seen.append(status)
            if status == 200:
                return
            time.sleep(0.5)
        self.stop()
        raise RuntimeError(f"server not ready after {timeout_s} s:\n{self.log_tail()}")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGINT)
            try:
                self.process.wait(timeout=30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)


def start_server(
    log_dir: Path, env: dict[str, str], name: str = "server", port: int | None = None
) -> ServerProcess:
    """Launch ``concierge serve`` with ``env`` (CONCIERGE_* settings) on ``port`` or a free one."""
    port = port or free_port()
    log_path = log_dir / f"{name}-{port}.log"
    full_env = {**os.environ, **env, "CONCIERGE_HOST": "127.0.0.1", "CONCIERGE_PORT": str(port)}
    with log_path.open("wb") as log:
        process = subprocess.Popen(
            [str(CONCIERGE), "serve"],
            cwd=REPO,
            env=full_env,
            stdout=log,
            stderr=subprocess.STDOUT,
        )
    return ServerProcess(f"http://127.0.0.1:{port}", process, log_path)


def local_engine_env(data_dir: Path) -> dict[str, str]:
    """Settings for a small, eager in-process vLLM engine that fits beside others in CI."""
    return {
        "CONCIERGE_ENGINE": "vllm_local",
        "CONCIERGE_DATA_DIR": str(data_dir),
        "CONCIERGE_ENFORCE_EAGER": "true",
        "CONCIERGE_MAX_MODEL_LEN": "2048",
        "CONCIERGE_KV_CACHE_MEMORY_GIB": "1",
        "CONCIERGE_REPLY_MAX_TOKENS": "48",  # support replies: enough text to check, fast
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
    """Rows of ``sql`` from a test server's SQLite file, opened read-only (no lock held)."""
    from core.db import SQLITE_FILE_NAME

    database = f"file:{data_dir / SQLITE_FILE_NAME}?mode=ro"
    with sqlite3.connect(database, uri=True) as connection:
        return list(connection.execute(sql, params))


def isolated_data_dir(path: Path, shared: Path) -> Path:
    """A data directory of its own (database, indexes, tenant files) at ``path``.

    The prepared models and trained classifiers are linked from ``shared`` rather than
    rebuilt, so a second server starts in seconds yet never touches the session
    server's database or indexes.
    """
    path.mkdir(parents=True, exist_ok=True)
    for name in ("models", "classifiers"):
        link = path / name
        if not link.exists():
            link.symlink_to((shared / name).resolve(), target_is_directory=True)
    return path
