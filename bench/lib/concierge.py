"""``concierge serve`` as the benchmarks start it, and the data directory it serves from:
the model, the classifiers and the demo tenant, as ``make run`` sets them up."""

from __future__ import annotations

import contextlib
import json
import logging
import os
import subprocess
import sys
import time
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from bench.lib.paths import REPO, SHARED_VAR
from bench.lib.servers import ServerProcess, free_port

log = logging.getLogger("bench.concierge")

TENANT = "demo"
CUSTOMERS_FILE = REPO / "examples" / "customers.jsonl"
# `make demo`: idempotent, so a reused data directory is brought up to date, not duplicated.
DEMO_COMMANDS = (
    ("kb", "ingest", "examples/kb", "--tenant", TENANT),
    ("tenants", "install", "examples/tenant.toml", "--tenant", TENANT),
    ("catalog", "import", "examples/catalog.jsonl", "--tenant", TENANT),
    (
        "customers",
        "import",
        "examples/customers.jsonl",
        "--events",
        "examples/events.jsonl",
        "--tenant",
        TENANT,
    ),
)
SHARED_ARTIFACTS = ("models", "classifiers")  # slow to build, identical for every data dir
"""What a data directory borrows from another. ``classifiers`` holds a local set only when
one was trained (``make classifiers``); without it the shipped heads serve."""


def concierge_command() -> list[str]:
    """The ``concierge`` script of this environment (or the module when not installed)."""
    script = Path(sys.executable).parent / "concierge"
    return [str(script)] if script.exists() else [sys.executable, "-m", "server.cli.main"]


def env_value(value: Any) -> str:
    """A setting as a ``CONCIERGE_*`` variable spells it (booleans in lower case)."""
    return str(value).lower() if isinstance(value, bool) else str(value)


class ConciergeServer(ServerProcess):
    """``concierge serve`` on loopback with ``CONCIERGE_*`` overrides (``{"max_model_len":
    2048}``), stopped as one process group with the vLLM engine-core child it spawns, so
    nothing leaks."""

    def __init__(
        self, overrides: Mapping[str, Any], log_path: Path, port: int | None = None
    ) -> None:
        env = {
            **os.environ,
            **{f"CONCIERGE_{k.upper()}": env_value(v) for k, v in overrides.items()},
        }
        port = port or free_port()
        command = [*concierge_command(), "serve", "--host", "127.0.0.1", "--port", str(port)]
        super().__init__(command, log_path, port, env)

    def wait_model(self, timeout_s: float) -> str:
        """Wait until ``/readyz`` answers 200; the served model name it reports."""
        model: str = self.wait_ready(timeout_s).json()["model"]
        return model


def shown_concierge_command(overrides: Mapping[str, Any]) -> str:
    """``concierge serve`` as ``ConciergeServer`` started it with ``overrides``."""
    env = " ".join(f"CONCIERGE_{k.upper()}={v}" for k, v in overrides.items())
    return f"{env} concierge serve"


def run_cli(data_dir: Path, *arguments: str) -> None:
    """One ``concierge`` command against ``data_dir``; its output is shown only if it fails."""
    env = {**os.environ, "CONCIERGE_DATA_DIR": str(data_dir)}
    started = time.perf_counter()
    done = subprocess.run(
        [*concierge_command(), *arguments], cwd=REPO, env=env, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise SystemExit(
            f"`concierge {' '.join(arguments)}` failed ({done.returncode}):\n"
            f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        )
    log.info("concierge %s: %.1f s", " ".join(arguments), time.perf_counter() - started)


def prepare_data_dir(data_dir: Path) -> None:
    """The model and the demo tenant, as ``make run`` sets them up; the classifier heads
    that ship with the package serve, unless the data directory has a local set.

    A data directory other than ./var borrows ./var's converted model (and its local
    classifier set, if it has one) through symlinks, so a fresh run spends seconds, not
    minutes, on them.
    """
    shared = data_dir.resolve() != SHARED_VAR.resolve()
    artifacts_home = SHARED_VAR if shared else data_dir
    run_cli(artifacts_home, "models", "prepare")
    if shared:
        link_shared_artifacts(data_dir, SHARED_VAR)
    for command in DEMO_COMMANDS:
        run_cli(data_dir, *command)


def link_shared_artifacts(data_dir: Path, shared: Path) -> None:
    """Link ``shared``'s converted models and local classifiers into ``data_dir``: a data
    directory of its own starts in seconds, yet never touches ``shared``'s database.

    Only folders ``shared`` has are linked (a link to nothing would stand where the
    server looks). Idempotent: a name ``data_dir`` already has is kept, except a link
    that leads nowhere, which is replaced (or removed when ``shared`` lacks the folder).
    """
    for name in SHARED_ARTIFACTS:
        link = data_dir / name
        if link.is_symlink() and not link.exists():
            link.unlink()
        target = (shared / name).resolve()
        if link.exists() or not target.is_dir():
            continue
        with contextlib.suppress(FileExistsError):  # another process linked it first
            link.symlink_to(target, target_is_directory=True)


def demo_customers() -> list[str]:
    """The demo tenant's customer ids, in file order (support requests rotate over them)."""
    with CUSTOMERS_FILE.open(encoding="utf-8") as fh:
        return [json.loads(line)["customer_id"] for line in fh if line.strip()]
