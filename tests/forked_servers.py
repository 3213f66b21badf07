"""Restart a Concierge in seconds: fork it from a launcher that has already imported it.

A crash test restarts its server dozens of times. A fresh ``concierge serve`` spends
most of its start-up (about 10 s on a 2-core machine) importing torch and the
transformers modelling code that the embedder needs, none of which touches the data
a crash test cares about. The launcher, a separate process run as
``python -m tests.forked_servers``, imports all of that once; each server is then a
forked child running ``concierge serve``'s own code (``server.cli.main.main(["serve"])``)
with its own settings and log. Everything a start-up does after the imports runs in
full every time: schema upgrade of the crashed database, index loading and
verification, embedder and classifier loading. A child is SIGKILLed like any process.

The launcher is driven with JSON lines on stdin/stdout, one request at a time (test
threads share it through a lock); it is single-threaded when it forks (the imports
start no Python threads), and it kills its children when its stdin closes, so a
failed test leaves no server behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import threading
import time
import traceback
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx

from tests.servers import REPO, free_port


@dataclass
class ForkedServer:
    """A forked ``concierge serve`` and where to reach it."""

    url: str
    pid: int
    log_path: Path

    def log_tail(self, lines: int = 60) -> str:
        text = self.log_path.read_text(errors="replace") if self.log_path.exists() else ""
        return "\n".join(text.splitlines()[-lines:])


class Launcher:
    """The test's handle on the launcher process."""

    def __init__(self, process: subprocess.Popen[str]) -> None:
        self._process = process
        self._lock = threading.Lock()  # one request and its answer at a time on the pipes

    @classmethod
    def start(cls) -> Launcher:
        process = subprocess.Popen(
            [sys.executable, "-m", "tests.forked_servers"],
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        launcher = cls(process)
        launcher._answer()  # {"ready": true} once the imports are done
        return launcher

    def serve(self, log_dir: Path, env: dict[str, str], name: str) -> ForkedServer:
        """Fork a server with ``env`` (CONCIERGE_* settings) on a free port."""
        port = free_port()
        log_path = log_dir / f"{name}-{port}.log"
        full_env = {**env, "CONCIERGE_HOST": "127.0.0.1", "CONCIERGE_PORT": str(port)}
        answer = self._ask({"op": "serve", "env": full_env, "log": str(log_path)})
        return ForkedServer(f"http://127.0.0.1:{port}", int(answer["pid"]), log_path)

    def alive(self, server: ForkedServer) -> bool:
        return bool(self._ask({"op": "alive", "pid": server.pid})["alive"])

    def kill(self, server: ForkedServer) -> None:
        """SIGKILL the server and wait until it is gone (its port and files are free)."""
        self._ask({"op": "kill", "pid": server.pid})

    def wait_ready(self, server: ForkedServer, timeout_s: float) -> None:
        """Poll /readyz until 200; fail at once if the server exited."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if not self.alive(server):
                raise RuntimeError(f"server exited during start-up:\n{server.log_tail()}")
            try:
                if httpx.get(f"{server.url}/readyz", timeout=5).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.1)
        raise RuntimeError(f"server not ready after {timeout_s} s:\n{server.log_tail()}")

    def close(self) -> None:
        """Closing stdin makes the launcher kill its children and exit."""
        if self._process.stdin is not None:
            self._process.stdin.close()
        try:
            self._process.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self._process.kill()
            self._process.wait(timeout=10)

    def _ask(self, request: dict[str, Any]) -> dict[str, Any]:
        assert self._process.stdin is not None
        with self._lock:
            self._process.stdin.write(json.dumps(request) + "\n")
            self._process.stdin.flush()
            return self._answer()

    def _answer(self) -> dict[str, Any]:
        """The next answer; the launcher answers every request (or exits)."""
        assert self._process.stdout is not None
        line = self._process.stdout.readline()
        if not line:
            code = self._process.wait(timeout=30)
            raise RuntimeError(f"the server launcher exited with {code}")
        answer: dict[str, Any] = json.loads(line)
        if "error" in answer:
            raise RuntimeError(f"the server launcher failed: {answer['error']}")
        return answer


# ---------------------------------------------------------------- the launcher process


def _run_server(env: dict[str, str], log_path: str) -> int:
    """In the forked child: stdout/stderr to the log, then ``concierge serve``."""
    log_fd = os.open(log_path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
    null_fd = os.open(os.devnull, os.O_RDONLY)
    os.dup2(null_fd, 0)
    os.dup2(log_fd, 1)
    os.dup2(log_fd, 2)
    os.close(log_fd)
    os.close(null_fd)
    os.environ.update(env)
    signal.signal(signal.SIGINT, signal.default_int_handler)
    from server.cli.main import main

    return main(["serve"])


def _serve_requests() -> None:
    from server.cli.main import main  # noqa: F401  (imported before any fork, like the rest)
    from server.lifespan import import_model_libraries

    import_model_libraries()
    children: set[int] = set()
    _reply({"ready": True})
    try:
        for line in sys.stdin:
            try:
                _reply(_handle(json.loads(line), children))
            except Exception as exc:
                _reply({"error": f"{type(exc).__name__}: {exc}"})
    finally:
        for pid in children:
            _kill(pid)


def _handle(request: dict[str, Any], children: set[int]) -> dict[str, Any]:
    op, pid = request["op"], int(request.get("pid", 0))
    if op == "serve":
        sys.stdout.flush()
        sys.stderr.flush()
        child = os.fork()
        if child == 0:
            code = 1
            try:
                code = _run_server(request["env"], request["log"])
            except BaseException:
                traceback.print_exc()
            finally:
                sys.stdout.flush()
                sys.stderr.flush()
                os._exit(code)
        children.add(child)
        return {"pid": child}
    if op == "alive":
        if pid in children and os.waitpid(pid, os.WNOHANG) == (0, 0):
            return {"alive": True}
        children.discard(pid)  # reaped: its pid may be reused, never signal it again
        return {"alive": False}
    if op == "kill":
        if pid not in children:
            return {"status": None}
        children.discard(pid)
        return {"status": _kill(pid)}
    raise ValueError(f"unknown op {op!r}")


def _kill(pid: int) -> int:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    return os.waitpid(pid, 0)[1]


def _reply(answer: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(answer) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    _serve_requests()
