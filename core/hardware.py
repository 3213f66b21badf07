"""What this host can compute fast, read cheaply (no torch import, no CUDA start-up).

Settings pick defaults from it (the embedder ``auto`` chooses), and the embedder picks
its number format from it, so both agree on what "this machine" means.
"""

from __future__ import annotations

from pathlib import Path


def has_nvidia_gpu() -> bool:
    """An NVIDIA driver is loaded."""
    return Path("/proc/driver/nvidia/version").exists()


def cpu_computes_bf16() -> bool:
    """The CPU multiplies bfloat16 natively (AMX or AVX512-BF16). Elsewhere bfloat16 is
    emulated, and float32 is faster. False where ``/proc/cpuinfo`` cannot be read."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "amx_bf16" in flags or "avx512_bf16" in flags
