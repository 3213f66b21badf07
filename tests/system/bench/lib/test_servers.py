"""``ServerProcess`` accounts and stops a server with every process it spawned: here a tiny
Python parent and two short CPU burners it spawns (or a ``sleep``), no server."""

from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

import pytest

from bench.lib import servers
from bench.lib.servers import ServerProcess

FAST_STOP = ((signal.SIGTERM, 5.0),)

# The "server": one child that burns CPU and is reaped, one that burns CPU and stays,
# then a marker file, then it waits to be stopped.
PARENT = """
import subprocess, sys, time
burn = "import sys, time\\nwhile time.process_time() < 0.3: pass\\n"
subprocess.run([sys.executable, "-c", burn], check=True)
stays = subprocess.Popen([sys.executable, "-c", burn + "open(sys.argv[1], 'w').close()\\n"
                          "time.sleep(60)", sys.argv[2]])
for _ in range(600):
    try:
        open(sys.argv[2]).close()
        break
    except FileNotFoundError:
        time.sleep(0.05)
open(sys.argv[1], "w").write(str(stays.pid))
time.sleep(60)
"""


def start(tmp_path: Path) -> tuple[ServerProcess, int]:
    """The parent in a session of its own, once both children burned; the staying child."""
    ready, burned = tmp_path / "ready", tmp_path / "burned"
    command = [sys.executable, "-c", PARENT, str(ready), str(burned)]
    server = ServerProcess(command, tmp_path / "log", 0, stop_signals=FAST_STOP)
    deadline = time.monotonic() + 30
    while not (ready.exists() and ready.read_text()):
        assert time.monotonic() < deadline, server.log_tail()
        assert server.process.poll() is None, server.log_tail()
        time.sleep(0.05)
    return server, int(ready.read_text())


def running(pid: int) -> bool:
    """Whether ``pid`` still runs (a zombie nobody reaped yet does not)."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rindex(")") + 2] != "Z"


@pytest.fixture(autouse=True)
def quick_leftover_wait(monkeypatch: pytest.MonkeyPatch) -> None:
    """``stop`` waits 10 s for leftovers before signalling them; 1 s is enough here."""
    wait = servers.wait_group_gone
    monkeypatch.setattr(servers, "wait_group_gone", lambda pgid, _timeout: wait(pgid, 1.0))


def test_cpu_seconds_count_the_whole_group(tmp_path: Path) -> None:
    server, _ = start(tmp_path)
    try:
        # 0.3 s in the reaped child, 0.3 s in the live one, the parent's own start-up
        assert server.cpu_seconds() >= 0.55
    finally:
        server.stop()


def test_stop_ends_the_children_the_server_left(tmp_path: Path) -> None:
    server, child = start(tmp_path)
    server.stop()
    assert server.process.returncode is not None
    deadline = time.monotonic() + 5
    while running(child) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert not running(child)


def test_cpu_is_accounted_only_for_a_group_of_its_own(tmp_path: Path) -> None:
    # SIGTERM: a run started in the background (``make test &``) ignores SIGINT, and so
    # does its ``sleep``, which would then hold the test for its whole 30 s
    server = ServerProcess(
        ["sleep", "30"], tmp_path / "log", 0, own_session=False, stop_signals=FAST_STOP
    )
    try:
        with pytest.raises(RuntimeError, match="own_session"):
            server.cpu_seconds()
    finally:
        server.stop()
    assert server.process.returncode is not None
