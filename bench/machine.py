"""What a benchmark ran on: CPU, Python and package versions, stored with its figures."""

from __future__ import annotations

import os
import platform
from importlib import metadata
from pathlib import Path
from typing import Any


def describe_machine(**packages: tuple[str, ...]) -> dict[str, Any]:
    """CPU model and counts, Python, and ``key: version`` of the first installed distribution
    of each ``key=("dist", "fallback-dist")``."""
    cpu_model = platform.processor() or "unknown"
    cpuinfo = Path("/proc/cpuinfo")
    if cpuinfo.exists():
        names = [ln for ln in cpuinfo.read_text().splitlines() if ln.startswith("model name")]
        cpu_model = names[0].split(":", 1)[1].strip() if names else cpu_model
    described: dict[str, Any] = {
        "cpu_model": cpu_model,
        "cpu_count": os.cpu_count(),
        "cpus_usable": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
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
