"""llama.cpp's ``llama-server``, the CPU peer of the serving benchmarks, built from source.

There is no llama.cpp package with a server binary on the registries this project uses, but
the ``llama-cpp-python`` source archive on PyPI carries llama.cpp's sources in
``vendor/llama.cpp``. ``ensure_llama_server`` downloads that archive with pip (no install, no
binary), extracts it under ``bench/out/llama.cpp/`` and builds the ``llama-server`` target
with CMake: Release, CPU only, no libcurl, static libraries, tuned for this CPU
(``GGML_NATIVE``). When the binary is already there it does nothing (about 6 minutes on 2
cores otherwise).
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import tarfile
import time
from collections.abc import Sequence
from pathlib import Path

from bench.lib.paths import OUT_DIR

log = logging.getLogger("bench.llama_server")

LLAMA_CPP_PYTHON_VERSION = "0.3.36"
BUILD_ROOT = OUT_DIR / "llama.cpp"
BINARY = BUILD_ROOT / "build" / "bin" / "llama-server"
CMAKE_OPTIONS = (
    "-DCMAKE_BUILD_TYPE=Release",
    "-DBUILD_SHARED_LIBS=OFF",
    "-DGGML_NATIVE=ON",
    "-DGGML_CUDA=OFF",
    "-DLLAMA_CURL=OFF",
    "-DLLAMA_BUILD_TESTS=OFF",
    "-DLLAMA_BUILD_EXAMPLES=OFF",
    "-DLLAMA_BUILD_SERVER=ON",
)


def _run(command: Sequence[str], cwd: Path | None = None) -> None:
    log.info("$ %s", " ".join(command))
    subprocess.run(command, cwd=cwd, check=True)


def download_sdist(version: str, into: Path) -> Path:
    """The ``llama-cpp-python`` source archive from the package index (pip, no install)."""
    into.mkdir(parents=True, exist_ok=True)
    name = f"llama_cpp_python-{version}.tar.gz"
    archive = into / name
    if not archive.exists():
        # --no-binary for this package only: its build dependencies may come as wheels.
        _run(
            [
                sys.executable,
                "-m",
                "pip",
                "--disable-pip-version-check",
                "download",
                "--no-deps",
                "--no-binary",
                "llama-cpp-python",
                f"llama-cpp-python=={version}",
                "--dest",
                str(into),
            ]
        )
    if not archive.exists():
        raise SystemExit(f"pip did not leave {name} in {into}")
    return archive


def extract_llama_cpp(archive: Path, into: Path) -> Path:
    """Unpack the archive and return its ``vendor/llama.cpp`` folder."""
    top = archive.name.removesuffix(".tar.gz")
    source = into / top / "vendor" / "llama.cpp"
    if not (source / "CMakeLists.txt").exists():
        shutil.rmtree(into / top, ignore_errors=True)
        with tarfile.open(archive) as tar:
            tar.extractall(into, filter="data")
    if not (source / "CMakeLists.txt").exists():
        raise SystemExit(f"{archive} has no vendor/llama.cpp/CMakeLists.txt")
    return source


def check_tools() -> tuple[str, list[str]]:
    """cmake (the system's, else the venv's pip package) and a generator; fail clearly."""
    cmake = shutil.which("cmake") or shutil.which("cmake", path=str(Path(sys.executable).parent))
    if cmake is None:
        raise SystemExit(
            "cmake not found: install it (apt-get install cmake, or .venv/bin/pip install cmake)"
        )
    if shutil.which("c++") is None and shutil.which("g++") is None:
        raise SystemExit("no C++ compiler found: install one (apt-get install g++)")
    generator = ["-G", "Ninja"] if shutil.which("ninja") else []
    return cmake, generator


def build(source: Path, build_dir: Path, jobs: int) -> Path:
    cmake, generator = check_tools()
    _run([cmake, "-S", str(source), "-B", str(build_dir), *generator, *CMAKE_OPTIONS])
    _run([cmake, "--build", str(build_dir), "--target", "llama-server", "--parallel", str(jobs)])
    binary = build_dir / "bin" / "llama-server"
    if not binary.exists():
        raise SystemExit(f"the build finished without {binary}")
    return binary


def ensure_llama_server(rebuild: bool = False, jobs: int | None = None) -> Path:
    """The path of a built ``llama-server``, building it first when missing."""
    if BINARY.exists() and not rebuild:
        log.info("llama-server already built: %s", BINARY)
        return BINARY
    if rebuild:
        shutil.rmtree(BUILD_ROOT, ignore_errors=True)
    started = time.monotonic()
    archive = download_sdist(LLAMA_CPP_PYTHON_VERSION, BUILD_ROOT / "download")
    source = extract_llama_cpp(archive, BUILD_ROOT / "src")
    binary = build(source, BUILD_ROOT / "build", jobs or os.cpu_count() or 1)
    log.info("built %s in %.0f s", binary, time.monotonic() - started)
    return binary
