"""What a benchmark ran on: CPU, Python and package versions, stored with its figures."""

from __future__ import annotations

import os
import platform
from importlib import metadata
from pathlib import Path
from typing import Any

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
    import time

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
