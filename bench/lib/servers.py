"""Server subprocesses a benchmark or a test starts, waits for and always stops.

A benchmark starts each server in a session of its own, so that it and every child it
spawns (vLLM's engine core, a resource tracker) can be signalled, accounted for and stopped
as one process group. Tests (tests/servers.py) start theirs in pytest's session, so that a
Ctrl-C in the terminal reaches them as well, and stop them sooner.
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import time
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import Protocol

import httpx

from bench.lib.machine import group_cpu_seconds
from bench.lib.paths import REPO

log = logging.getLogger("bench.servers")

StopSignals = Sequence[tuple[signal.Signals, float]]
"""Signals sent in turn to stop a server, each with how long it may take to exit after it."""
GRACEFUL_STOP: StopSignals = ((signal.SIGINT, 60.0), (signal.SIGTERM, 15.0), (signal.SIGKILL, 5.0))
"""SIGINT first: uvicorn's graceful shutdown also shuts the vLLM engine down."""


class ServerHandle(Protocol):
    """What the launcher needs of a started process: the part of ``subprocess.Popen``
    that tests also use (``tests/forked_processes.py`` forks servers that have it)."""

    pid: int
    returncode: int | None

    def poll(self) -> int | None: ...

    def wait(self, timeout: float | None = None) -> int: ...

    def send_signal(self, sig: int) -> None: ...


Spawn = Callable[[Sequence[str], Path, Mapping[str, str] | None], ServerHandle]
"""Starts ``command`` with ``env`` and its output in the log file; the default is Popen."""


def free_port() -> int:
    """A TCP port nobody listens on right now."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


class ServerProcess:
    """``command`` started in the repository with its output in ``log_path``, to be reached
    at ``url`` (loopback, ``port``).

    ``own_session``: in a session (process group) of its own, whose CPU ``cpu_seconds``
    accounts and whose leftovers ``stop`` ends; else in this process's session.
    ``stop_signals``: what ``stop`` sends, in turn, while the server still runs.
    ``spawn``: how the process starts, if not as a ``subprocess.Popen`` (tests fork
    servers from an already-imported launcher); such a server is in this session.
    """

    def __init__(
        self,
        command: Sequence[str],
        log_path: Path,
        port: int,
        env: Mapping[str, str] | None = None,
        *,
        own_session: bool = True,
        stop_signals: StopSignals = GRACEFUL_STOP,
        spawn: Spawn | None = None,
    ) -> None:
        self.port = port
        self.url = f"http://127.0.0.1:{port}"
        self.log_path = log_path
        self.own_session = own_session
        self.stop_signals = tuple(stop_signals)
        self.readiness_seen: list[int] = []
        """Every status ``wait_ready`` saw, in order (0: no answer)."""
        self.process: ServerHandle
        if spawn is not None:
            if own_session:
                raise ValueError("a spawned server runs in this session: own_session=False")
            self.process = spawn(command, log_path, env)
        else:
            with log_path.open("wb") as log_file:  # the child keeps its own descriptor
                self.process = subprocess.Popen(
                    list(command),
                    cwd=REPO,
                    env=dict(env) if env is not None else None,
                    stdout=log_file,
                    stderr=subprocess.STDOUT,
                    start_new_session=own_session,
                )
        log.info("started %s (pid %d), log in %s", " ".join(command), self.process.pid, log_path)

    def log_tail(self, lines: int = 60) -> str:
        if not self.log_path.exists():
            return ""
        text = self.log_path.read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def cpu_seconds(self) -> float:
        """CPU time of every process in the server's group (reaped children included)."""
        if not self.own_session:
            raise RuntimeError("CPU is accounted by process group: start with own_session=True")
        return group_cpu_seconds(self.process.pid)  # a session leader's pid is its group's id

    def wait_alive(self, timeout_s: float) -> None:
        """Wait until ``/healthz`` answers: the HTTP server is up, whatever the engine does."""
        if self._poll("/healthz", timeout_s, poll_s=0.25, record=False) is None:
            raise RuntimeError(f"server not alive after {timeout_s} s:\n{self.log_tail()}")

    def wait_ready(self, timeout_s: float, path: str = "/readyz") -> httpx.Response:
        """Poll ``path`` until it answers 200 and return that answer; remember each status
        seen. Fails at once when the server exits; stops it when the deadline passes."""
        response = self._poll(path, timeout_s, poll_s=0.5, record=True)
        if response is None:
            self.stop()
            raise RuntimeError(f"server not ready after {timeout_s} s:\n{self.log_tail()}")
        return response

    def _poll(
        self, path: str, timeout_s: float, poll_s: float, record: bool
    ) -> httpx.Response | None:
        """The first 200 answer of ``path`` within ``timeout_s``; None if none came."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(
                    f"server pid {self.process.pid} exited with {self.process.returncode}:\n"
                    f"{self.log_tail()}"
                )
            try:
                response: httpx.Response | None = httpx.get(f"{self.url}{path}", timeout=5)
            except httpx.HTTPError:
                response = None
            if record:
                self.readiness_seen.append(response.status_code if response is not None else 0)
            if response is not None and response.status_code == 200:
                return response
            time.sleep(poll_s)
        return None

    def stop(self) -> None:
        """Send ``stop_signals`` in turn until the server exits; in its own session, then end
        whatever is left of its group (orphaned by a crash)."""
        for sig, wait_s in self.stop_signals:
            if self.process.poll() is not None:
                break
            self.process.send_signal(sig)
            try:
                self.process.wait(wait_s)
            except subprocess.TimeoutExpired:
                log.warning("server pid %d did not stop on %s", self.process.pid, sig.name)
        if not self.own_session:
            return
        pgid = self.process.pid
        for leftover in (signal.SIGTERM, signal.SIGKILL):
            if wait_group_gone(pgid, 10.0):  # children normally follow within seconds
                break
            log.warning("sending %s to leftover processes of group %d", leftover.name, pgid)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, leftover)


def wait_group_gone(pgid: int, timeout_s: float) -> bool:
    """Poll until no process is left in the group (signal 0 only checks existence)."""
    deadline = time.monotonic() + timeout_s
    while True:
        try:
            os.killpg(pgid, 0)
        except ProcessLookupError:
            return True
        if time.monotonic() > deadline:
            return False
        time.sleep(0.2)
