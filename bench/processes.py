"""Servers a benchmark starts, measures and always stops: one subprocess per server, in a
session of its own, so that it and every child it spawns (vLLM's engine core, a resource
tracker) can be signalled, accounted for and stopped as one process group."""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import socket
import subprocess
import time
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path

log = logging.getLogger("bench.processes")

REPO = Path(__file__).resolve().parent.parent


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        port: int = sock.getsockname()[1]
        return port


class ServerProcess:
    """``command`` started in its own session with its output in ``log_path``."""

    def __init__(
        self,
        command: Sequence[str],
        log_path: Path,
        port: int,
        env: Mapping[str, str] | None = None,
    ) -> None:
        self.port = port
        self.base_url = f"http://127.0.0.1:{port}"
        self.log_path = log_path
        self._log = log_path.open("wb")
        self.proc = subprocess.Popen(
            list(command),
            cwd=REPO,
            env=dict(env) if env is not None else None,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        log.info("started %s (pid %d), log in %s", " ".join(command), self.proc.pid, log_path)

    def log_tail(self, lines: int = 40) -> str:
        text = self.log_path.read_text(encoding="utf-8", errors="replace")
        return "\n".join(text.splitlines()[-lines:])

    def cpu_seconds(self) -> float:
        """CPU time of every process in the server's group (reaped children included)."""
        return sum(_process_cpu_seconds(pid, self.proc.pid) for pid in _pids())

    def stop(self) -> None:
        """SIGINT for a graceful shutdown (uvicorn's shuts the engine), then force."""
        pgid = self.proc.pid  # start_new_session: the group id is the server's pid
        for sig, wait_s in ((signal.SIGINT, 60.0), (signal.SIGTERM, 15.0), (signal.SIGKILL, 5.0)):
            if self.proc.poll() is not None:
                break
            self.proc.send_signal(sig)
            try:
                self.proc.wait(wait_s)
            except subprocess.TimeoutExpired:
                log.warning("server did not stop on %s", sig.name)
        # Children normally follow within seconds; anything still in the group after that
        # was orphaned by a crash.
        for leftover in (signal.SIGTERM, signal.SIGKILL):
            if wait_group_gone(pgid, 10.0):
                break
            log.warning("sending %s to leftover processes of group %d", leftover.name, pgid)
            with contextlib.suppress(ProcessLookupError):
                os.killpg(pgid, leftover)
        self._log.close()


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


def _pids() -> Iterator[int]:
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            yield int(entry.name)


def _process_cpu_seconds(pid: int, pgid: int) -> float:
    """utime+stime (+ waited-for children) of ``pid`` if it belongs to group ``pgid``."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return 0.0
    fields = stat[stat.rindex(")") + 2 :].split()  # after "pid (comm) "
    if int(fields[2]) != pgid:
        return 0.0
    return sum(int(v) for v in fields[11:15]) / os.sysconf("SC_CLK_TCK")


def busy_cpu_seconds() -> float:
    """Machine-wide busy CPU seconds (user+nice+system+irq+softirq+steal) from /proc/stat."""
    fields = [float(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


@dataclass(frozen=True)
class CpuSnapshot:
    """Machine-wide busy CPU seconds and this process's CPU seconds at one instant."""

    wall: float
    busy: float
    own: float

    @classmethod
    def now(cls) -> CpuSnapshot:
        return cls(time.perf_counter(), busy_cpu_seconds(), own_cpu_seconds())

    def others_since(self, start: CpuSnapshot) -> float:
        """Cores kept busy by other processes (and the hypervisor) since ``start``."""
        wall = self.wall - start.wall
        if wall <= 0 or self.busy == 0.0:
            return float("nan")
        return max(0.0, (self.busy - start.busy - (self.own - start.own)) / wall)


def background_cores(since: CpuSnapshot, min_window_s: float = 0.5) -> float:
    """Cores other processes used since ``since``; a short window is padded by waiting,
    as /proc/stat counts in 10 ms ticks."""
    remaining = since.wall + min_window_s - time.perf_counter()
    if remaining > 0:
        time.sleep(remaining)
    return CpuSnapshot.now().others_since(since)


def wait_for_idle(max_wait_s: float, threshold_cores: float) -> float:
    """Wait (up to ``max_wait_s``) until other processes use under ``threshold_cores``.

    Returns the last measured load of others. Timings taken while other work shares two
    cores are not comparable, so the benchmark records that load next to every figure.
    """
    deadline = time.monotonic() + max_wait_s
    while True:
        start = CpuSnapshot.now()
        time.sleep(2.0)
        others = CpuSnapshot.now().others_since(start)
        if others < threshold_cores or time.monotonic() >= deadline:
            if others >= threshold_cores and max_wait_s > 0:
                log.warning("other processes still use %.2f cores; measuring anyway", others)
            return others
        log.info("other processes use %.2f cores; waiting for the machine to be idle", others)
