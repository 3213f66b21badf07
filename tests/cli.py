"""The ``concierge`` command, run as a user would run it."""

from __future__ import annotations

import os
import subprocess

from tests.servers import CONCIERGE, REPO


def invoke(
    *args: str, env: dict[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [str(CONCIERGE), *args],
        cwd=REPO,
        capture_output=True,
        text=True,
        timeout=timeout,
        env={**os.environ, **(env or {})},
        check=False,
    )


def run_cli(*args: str, env: dict[str, str] | None = None, timeout: float = 120) -> str:
    result = invoke(*args, env=env, timeout=timeout)
    assert result.returncode == 0, result.stderr
    return result.stdout
