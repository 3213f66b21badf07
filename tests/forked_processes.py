"""Start a ``concierge`` process in about a second: fork it from a launcher that has
already imported Concierge.

A fresh ``concierge`` process spends about 6 s of a 2-core machine importing torch and
the transformers modelling code that the embedder needs, before it does anything a test
looks at; the suite starts dozens of them (command-line runs, API processes in remote
mode with other settings, crash-test restarts). The launcher, a separate process run as
``python -m tests.forked_processes``, imports all of that once; each process is then a
forked child that runs the console script's own code, ``server.cli.main.main(argv)``,
with its own arguments, environment, working directory and output files, and exits
the way the interpreter would (non-daemon threads joined, exit handlers run). Everything
after the imports runs in full every time: settings, schema upgrades, index loading and
verification, embedder and classifier loading. A child is signalled and reaped like any
process: ``ForkedProcess`` has the part of ``subprocess.Popen`` that tests and the
shared server launcher use (``pid``, ``returncode``, ``poll``, ``wait``,
``send_signal``, ``kill``).

The console script itself (its entry point, a cold import) is still run as a real
subprocess by the tests that check it (``tests/cli.py``'s ``invoke_installed``, and
servers started with ``fresh_process=True``); servers with the in-process vLLM engine
are never forked.

The launcher is driven with JSON lines on stdin/stdout, one request at a time (test
threads share it through a lock); it is single-threaded when it forks (the imports
start no Python threads), never blocks on a child, and kills its children when its
stdin closes, so a failed test leaves no process behind.
"""

from __future__ import annotations

import atexit
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
from typing import Any, NoReturn

import httpx

from tests.servers import REPO, free_port

POLL_S = 0.05
"""How often a waiting test asks the launcher whether a child has exited."""


class ForkedProcess:
    """A forked ``concierge`` child, driven through the launcher like a ``Popen``."""

    def __init__(self, launcher: Launcher, pid: int) -> None:
        self._launcher = launcher
        self.pid = pid
        self.returncode: int | None = None

    def poll(self) -> int | None:
        """The exit code (negative: the signal that ended it), or None while it runs."""
        if self.returncode is None:
            self.returncode = self._launcher.returncode(self.pid)
        return self.returncode

    def wait(self, timeout: float | None = None) -> int:
        deadline = None if timeout is None else time.monotonic() + timeout
        while (code := self.poll()) is None:
            if deadline is not None and time.monotonic() > deadline:
                raise subprocess.TimeoutExpired(f"forked process {self.pid}", timeout or 0.0)
            time.sleep(POLL_S)
        return code

    def send_signal(self, sig: int) -> None:
        if self.poll() is None:
            self._launcher.signal(self.pid, sig)

    def kill(self) -> None:
        self.send_signal(signal.SIGKILL)


@dataclass
class ForkedServer:
    """A forked ``concierge serve`` and where to reach it (the crash test's handle)."""

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
            [sys.executable, "-m", "tests.forked_processes"],
            cwd=REPO,
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            text=True,
            bufsize=1,
        )
        launcher = cls(process)
        launcher._answer()  # {"ready": true} once the imports are done
        return launcher

    def spawn(
        self,
        argv: list[str],
        env: dict[str, str],
        stdout: Path,
        stderr: Path | None = None,
        cwd: Path = REPO,
    ) -> ForkedProcess:
        """Fork ``concierge *argv`` with exactly ``env`` as its environment; its stdout
        goes to the file ``stdout``, its stderr to ``stderr`` (or the same file)."""
        answer = self._ask(
            {
                "op": "spawn",
                "argv": argv,
                "env": env,
                "cwd": str(cwd),
                "stdout": str(stdout),
                "stderr": str(stderr or stdout),
            }
        )
        return ForkedProcess(self, int(answer["pid"]))

    def returncode(self, pid: int) -> int | None:
        code = self._ask({"op": "poll", "pid": pid})["returncode"]
        return None if code is None else int(code)

    def signal(self, pid: int, sig: int) -> None:
        self._ask({"op": "signal", "pid": pid, "signal": int(sig)})

    # ------------------------------------------------------------ the crash test's servers

    def serve(self, log_dir: Path, env: dict[str, str], name: str) -> ForkedServer:
        """Fork a server with ``env`` (CONCIERGE_* settings) on a free port."""
        port = free_port()
        log_path = log_dir / f"{name}-{port}.log"
        full_env = {
            **os.environ,
            **env,
            "CONCIERGE_HOST": "127.0.0.1",
            "CONCIERGE_PORT": str(port),
        }
        child = self.spawn(["serve"], full_env, log_path)
        return ForkedServer(f"http://127.0.0.1:{port}", child.pid, log_path)

    def alive(self, server: ForkedServer) -> bool:
        return self.returncode(server.pid) is None

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

    # ------------------------------------------------------------ the pipes

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
            raise RuntimeError(f"the process launcher exited with {code}")
        answer: dict[str, Any] = json.loads(line)
        if "error" in answer:
            raise RuntimeError(f"the process launcher failed: {answer['error']}")
        return answer


_shared: Launcher | None = None
_shared_lock = threading.Lock()


def shared_launcher() -> Launcher:
    """The test session's launcher, started on first use (about 6 s, once)."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = Launcher.start()
        return _shared


def close_shared_launcher() -> None:
    """End the session's launcher and whatever it still runs (pytest_sessionfinish)."""
    global _shared
    with _shared_lock:
        if _shared is not None:
            _shared.close()
            _shared = None


# ---------------------------------------------------------------- the launcher process


def _run_child(request: dict[str, Any]) -> NoReturn:
    """In the forked child: the console script's code with the request's arguments,
    environment and output files, then an exit like the interpreter's own."""
    code = 1
    try:
        stdout = os.open(request["stdout"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        stderr = (
            stdout
            if request["stderr"] == request["stdout"]
            else os.open(request["stderr"], os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o644)
        )
        nothing = os.open(os.devnull, os.O_RDONLY)
        for source, target in ((nothing, 0), (stdout, 1), (stderr, 2)):
            os.dup2(source, target)
        for descriptor in {stdout, stderr, nothing}:
            os.close(descriptor)
        os.chdir(request["cwd"])
        os.environ.clear()
        os.environ.update(request["env"])
        signal.signal(signal.SIGINT, signal.default_int_handler)
        from server.cli.main import main

        code = main(list(request["argv"]))
    except SystemExit as exc:  # argparse's usage errors, sys.exit() in a command
        code = _exit_status(exc.code)
    except BaseException:
        traceback.print_exc()
    finally:
        _exit_like_the_interpreter(code)


def _exit_status(value: object) -> int:
    if value is None:
        return 0
    if isinstance(value, int):
        return value
    sys.stderr.write(f"{value}\n")
    return 1


def _exit_like_the_interpreter(code: int) -> NoReturn:
    """What Python does at exit, then ``os._exit``: never return into the launcher's loop.

    ``threading._shutdown`` joins non-daemon threads and runs the exit hooks of
    ``concurrent.futures`` (its workers end there); then the ``atexit`` handlers run.
    """
    try:
        getattr(threading, "_shutdown")()  # noqa: B009  (private, the interpreter's own step)
        atexit._run_exitfuncs()
    finally:
        with contextlib.suppress(Exception):
            sys.stdout.flush()
            sys.stderr.flush()
        os._exit(code)


def _serve_requests() -> None:
    import server.app
    import server.cli.main  # noqa: F401
    from server.lifespan import import_model_libraries

    import_model_libraries()
    children: set[int] = set()
    exited: dict[int, int] = {}
    _reply({"ready": True})
    try:
        for line in sys.stdin:
            try:
                _reply(_handle(json.loads(line), children, exited))
            except Exception as exc:
                _reply({"error": f"{type(exc).__name__}: {exc}"})
    finally:
        for pid in children:
            _kill(pid)


def _handle(request: dict[str, Any], children: set[int], exited: dict[int, int]) -> dict[str, Any]:
    op, pid = request["op"], int(request.get("pid", 0))
    if op == "spawn":
        sys.stdout.flush()
        sys.stderr.flush()
        child = os.fork()
        if child == 0:
            _run_child(request)
        children.add(child)
        return {"pid": child}
    if op == "poll":
        if pid in children:
            reaped, status = os.waitpid(pid, os.WNOHANG)
            if reaped == 0:
                return {"returncode": None}
            children.discard(pid)  # reaped: its pid may be reused, never signal it again
            exited[pid] = os.waitstatus_to_exitcode(status)
        if pid not in exited:
            raise ValueError(f"pid {pid} is not a child of this launcher")
        return {"returncode": exited[pid]}
    if op == "signal":
        if pid in children:
            os.kill(pid, int(request["signal"]))
        return {}
    if op == "kill":
        if pid in children:
            children.discard(pid)
            exited[pid] = _kill(pid)
        return {"returncode": exited.get(pid)}
    raise ValueError(f"unknown op {op!r}")


def _kill(pid: int) -> int:
    with contextlib.suppress(ProcessLookupError):
        os.kill(pid, signal.SIGKILL)
    return os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1])


def _reply(answer: dict[str, Any]) -> None:
    sys.stdout.write(json.dumps(answer) + "\n")
    sys.stdout.flush()


if __name__ == "__main__":
    _serve_requests()
