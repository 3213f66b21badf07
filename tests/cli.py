"""The ``concierge`` command, run as a user would run it: a process of its own, with its
own arguments, environment, exit status, stdout and stderr.

``invoke`` forks the process from the session's warm launcher (tests/forked_processes.py):
the console script's own code, ``server.cli.main.main(args)``, without 6 s of imports
each time. ``invoke_installed`` runs the installed console script itself, for the tests
of its entry point and of a cold start.
"""

from __future__ import annotations

import os
import subprocess
import tempfile
from pathlib import Path

from tests.servers import CONCIERGE, REPO, with_server_database


def invoke(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """``concierge *args`` in a forked process; the environment is this one plus ``env``."""
    from tests.forked_processes import shared_launcher

    with tempfile.TemporaryDirectory(prefix="concierge-cli-") as folder:
        stdout, stderr = Path(folder) / "stdout", Path(folder) / "stderr"
        child = shared_launcher().spawn(
            list(args),
            with_server_database({**os.environ, **(env or {})}),
            stdout,
            stderr,
            cwd=REPO,
        )
        try:
            code = child.wait(timeout)
        except subprocess.TimeoutExpired:
            child.kill()
            child.wait(30)
            raise
        return subprocess.CompletedProcess(
            [str(CONCIERGE), *args],
            code,
            stdout.read_text(encoding="utf-8", errors="replace"),
            stderr.read_text(encoding="utf-8", errors="replace"),
        )


def invoke_installed(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """``concierge *args`` through the installed console script, in a fresh interpreter."""
    return subprocess.run(
        [str(CONCIERGE), *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        env=with_server_database({**os.environ, **(env or {})}),
        check=False,
    )


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> str:
    """The stdout of a successful ``invoke``; a failure shows its stderr."""
    result = invoke(*args, env=env, timeout=timeout)
    assert result.returncode == 0, result.stderr
    return result.stdout
