"""What a benchmark ran on (CPU, Python and package versions, stored with its figures) and
how busy the machine was meanwhile: on a shared 2-core machine other processes distort every
figure, so the CPU they took is measured next to it."""

from __future__ import annotations

import logging
import os
import platform
import time
from collections.abc import Iterator
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path
from typing import Any, Protocol

log = logging.getLogger("bench.machine")

NOTED_CPU_FLAGS = ("avx2", "avx512f", "avx512_bf16", "avx512_vnni", "amx_bf16", "amx_int8")
"""The instruction sets that pick kernels in torch/oneDNN, vLLM's CPU backend and ggml: two
machines of this project's kind (an EPYC without AMX, a Xeon with it) differ here."""


def cpu_flags() -> set[str]:
    """The CPU's feature flags from /proc/cpuinfo (empty where there is none)."""
    cpuinfo = Path("/proc/cpuinfo")
    if not cpuinfo.exists():
        return set()
    for line in cpuinfo.read_text().splitlines():
        if line.startswith("flags"):
            return set(line.split(":", 1)[1].split())
    return set()


def describe_machine(**packages: tuple[str, ...]) -> dict[str, Any]:
    """CPU model, counts and noted flags, Python, and ``key: version`` of the first installed
    distribution of each ``key=("dist", "fallback-dist")``."""
    cpu_model = platform.processor() or "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = [ln for ln in cpuinfo.read_text().splitlines() if ln.startswith("model name")]
        cpu_model = names[0].split(":", 1)[1].strip() if names else cpu_model
    described: dict[str, Any] = {
        "cpu_model": cpu_model,
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "cpu_flags": [flag for flag in NOTED_CPU_FLAGS if flag in cpu_flags()],
        "python": platform.python_version(),
    }
    for key, distributions in packages.items():
        described[key] = _installed_version(distributions)
    return described


def _installed_version(distributions: tuple[str, ...]) -> str:
    for distribution in distributions:
        try:
            return metadata.version(distribution)
        except metadata.PackageNotFoundError:
            continue
    return "not installed"


def speed_probe(threads: int | None = None) -> dict[str, float]:
    """Memory bandwidth and matmul speed right now, measured the same way every time.

    A cloud machine's speed drifts with its neighbours (about 10 % within an hour here, see
    docs/benchmarks.md), and none of it shows as steal time. Benchmarks that
    run systems one after another take this probe before each, so a difference between rows
    that is really the machine changing shows in the report. Best of three short trials.
    """
    import torch

    previous = torch.get_num_threads()
    torch.set_num_threads(threads or len(os.sched_getaffinity(0)))
    try:
        source = torch.ones(64 * 2**20, dtype=torch.float32)  # 256 MiB: well past the caches
        target = torch.empty_like(source)
        a = torch.rand(1024, 1024)
        b = torch.rand(1024, 1024)
        copy_s, matmul_s = [], []
        for _ in range(3):
            started = time.perf_counter()
            target.copy_(source)
            copy_s.append(time.perf_counter() - started)
            started = time.perf_counter()
            for _ in range(8):
                torch.mm(a, b)
            matmul_s.append(time.perf_counter() - started)
    finally:
        torch.set_num_threads(previous)
    moved = 2 * source.numel() * source.element_size()  # read and write
    return {
        "copy_gb_s": moved / min(copy_s) / 1e9,
        "matmul_gflop_s": 8 * 2 * 1024**3 / min(matmul_s) / 1e9,
    }


# -- CPU accounting ---------------------------------------------------------------------------


def busy_cpu_seconds() -> float:
    """Machine-wide busy CPU seconds (user+nice+system+irq+softirq+steal) from /proc/stat."""
    fields = [float(v) for v in Path("/proc/stat").read_text().splitlines()[0].split()[1:9]]
    return (sum(fields) - fields[3] - fields[4]) / os.sysconf("SC_CLK_TCK")


def own_cpu_seconds() -> float:
    times = os.times()
    return times.user + times.system


def group_cpu_seconds(pgid: int) -> float:
    """CPU time of every process in group ``pgid`` (reaped children included): a server
    and the engine processes it spawned."""
    return sum(_process_cpu_seconds(pid, pgid) for pid in _pids())


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


class UsesCpu(Protocol):
    """A process whose CPU is the benchmark's own, not "others'" (a server it started)."""

    def cpu_seconds(self) -> float: ...


@dataclass(frozen=True)
class CpuSnapshot:
    """Machine-wide busy CPU seconds, this process's and its servers' at one instant."""

    wall: float
    busy: float
    own: float
    served: float = 0.0

    @classmethod
    def now(cls, *servers: UsesCpu) -> CpuSnapshot:
        served = sum(server.cpu_seconds() for server in servers)
        return cls(time.perf_counter(), busy_cpu_seconds(), own_cpu_seconds(), served)

    def others_since(self, start: CpuSnapshot) -> float:
        """Cores kept busy by other processes (and the hypervisor) since ``start``: neither
        this process nor the servers both snapshots were taken with."""
        wall = self.wall - start.wall
        if wall <= 0 or self.busy == 0.0:
            return float("nan")
        ours = (self.own - start.own) + (self.served - start.served)
        return max(0.0, (self.busy - start.busy - ours) / wall)


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


def load_average() -> float:
    """1-minute load average: above the core count, other work shared the CPU."""
    return os.getloadavg()[0]


def wait_for_quiet_machine(max_load: float, max_wait_s: float) -> float:
    """Wait (up to ``max_wait_s``) for a 1-minute load average at or below ``max_load``.

    Other engineers' test runs share these two cores; their load would show up as latency.
    Returns the load measured when the wait ended, which the report prints.
    """
    deadline = time.monotonic() + max_wait_s
    while True:
        load = load_average()
        if load <= max_load:
            return load
        if time.monotonic() >= deadline:
            log.warning("1-minute load is %.2f, above %.2f; measuring anyway", load, max_load)
            return load
        log.info("1-minute load %.2f > %.2f: waiting for the machine to calm down", load, max_load)
        time.sleep(15)
