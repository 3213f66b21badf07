"""A real Prometheus server (Debian package ``prometheus``) on loopback, for tests.

The server scrapes one Concierge every second with the shipped alert rules loaded,
and answers PromQL through its HTTP API, exactly as in production, so the
dashboards' and alerts' expressions are checked against the real query engine.
"""

from __future__ import annotations

import shutil
import subprocess
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import httpx
import yaml

from tests.servers import REPO, free_port

PROMETHEUS_CONFIG = REPO / "deploy" / "prometheus" / "prometheus.yml"
ALERT_RULES = REPO / "deploy" / "prometheus" / "alerts.yml"
INSTALL_HINT = "install Debian's prometheus package: apt-get install -y prometheus"


def binary(name: str) -> str:
    """Path of ``prometheus`` or ``promtool``; a clear failure when missing."""
    found = shutil.which(name)
    if found is None:
        raise RuntimeError(f"{name} not found on PATH; {INSTALL_HINT}")
    return found


def scrape_config_for(target: str) -> dict[str, Any]:
    """The shipped config with the Concierge job pointed at ``target``, scraped every second.

    The vLLM replica job is dropped: with the in-process engine, ``vllm:*`` metrics
    are part of Concierge's own ``/metrics``.
    """
    config: dict[str, Any] = yaml.safe_load(PROMETHEUS_CONFIG.read_text(encoding="utf-8"))
    config["global"] = {"scrape_interval": "1s", "evaluation_interval": "1s"}
    config["rule_files"] = [str(ALERT_RULES)]
    jobs = [job for job in config["scrape_configs"] if job["job_name"] == "concierge"]
    del jobs[0]["dns_sd_configs"]  # no Docker DNS here: the one server under test
    jobs[0]["static_configs"] = [{"targets": [target]}]
    config["scrape_configs"] = jobs
    return config


def write_config(folder: Path, config: dict[str, Any], ops_key: str) -> Path:
    """``prometheus.yml`` in ``folder``, with the scrape key file it names beside it."""
    secrets = folder / "secrets"
    secrets.mkdir(exist_ok=True)
    (secrets / "concierge-ops.key").write_text(ops_key, encoding="utf-8")
    config_path = folder / "prometheus.yml"
    config_path.write_text(yaml.safe_dump(config), encoding="utf-8")
    return config_path


@dataclass
class PrometheusServer:
    """A running Prometheus and its query API."""

    url: str
    process: subprocess.Popen[bytes]
    log_path: Path

    @classmethod
    def start(
        cls, folder: Path, config: dict[str, Any], ops_key: str = "no-key-needed-on-loopback"
    ) -> PrometheusServer:
        """Prometheus on ``config``, scraping with ``ops_key`` as the shipped config does."""
        config_path = write_config(folder, config, ops_key)
        port = free_port()
        log_path = folder / "prometheus.log"
        with log_path.open("wb") as log:
            process = subprocess.Popen(
                [
                    binary("prometheus"),
                    f"--config.file={config_path}",
                    f"--storage.tsdb.path={folder / 'tsdb'}",
                    f"--web.listen-address=127.0.0.1:{port}",
                    "--log.level=warn",
                ],
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        server = cls(f"http://127.0.0.1:{port}", process, log_path)
        server._wait_ready(60.0)
        return server

    def _wait_ready(self, timeout_s: float) -> None:
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"prometheus exited:\n{self.log_path.read_text()}")
            try:
                if httpx.get(f"{self.url}/-/ready", timeout=2).status_code == 200:
                    return
            except httpx.HTTPError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"prometheus not ready after {timeout_s} s")

    def query(self, expression: str) -> dict[str, Any]:
        """The API's answer to an instant query (``status``, ``data`` or ``error``)."""
        response = httpx.get(f"{self.url}/api/v1/query", params={"query": expression}, timeout=30)
        answer: dict[str, Any] = response.json()
        return answer

    def rules(self) -> list[dict[str, Any]]:
        """Every loaded rule with its evaluation health."""
        groups = httpx.get(f"{self.url}/api/v1/rules", timeout=30).json()["data"]["groups"]
        return [rule for group in groups for rule in group["rules"]]

    def wait_for(self, expression: str, timeout_s: float = 30.0) -> None:
        """Wait until ``expression`` returns data (the scrape after some traffic)."""
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            answer = self.query(expression)
            if answer.get("status") == "success" and answer["data"]["result"]:
                return
            time.sleep(0.5)
        raise AssertionError(f"{expression} returned no data within {timeout_s} s")

    def stop(self) -> None:
        if self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
