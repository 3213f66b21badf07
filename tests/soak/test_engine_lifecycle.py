"""Engine start-up and death as the server reports them: readiness, 503s, prompt shutdown."""

from __future__ import annotations

import signal
import time
from pathlib import Path

import httpx
import psutil

from tests.servers import local_engine_env, start_server


def test_readyz_turns_503_when_the_engine_dies(data_dir: Path, log_dir: Path) -> None:
    server = start_server(log_dir, local_engine_env(data_dir), name="doomed")
    try:
        server.wait_ready(420)
        children = psutil.Process(server.process.pid).children(recursive=True)
        assert children, "vLLM runs its engine core in a child process"
        for child in children:
            child.kill()
        status = 200
        for _ in range(60):
            status = httpx.get(f"{server.url}/readyz", timeout=10).status_code
            if status == 503:
                break
            time.sleep(0.5)
        assert status == 503
        readiness = httpx.get(f"{server.url}/readyz", timeout=10).json()
        assert readiness["error"]["type"] == "engine_unavailable"
        assert httpx.get(f"{server.url}/healthz", timeout=10).status_code == 200
        reply = httpx.post(
            f"{server.url}/v1/chat/completions",
            timeout=30,
            json={
                "model": "smollm2-135m-instruct",
                "messages": [{"role": "user", "content": "hi"}],
            },
        )
        assert reply.status_code == 503, reply.text
        assert reply.json()["error"]["type"] == "engine_unavailable"
    finally:
        server.stop()


def test_stopping_during_a_compiled_start_exits_promptly(data_dir: Path, log_dir: Path) -> None:
    """A compiled start takes ~100 s here and cannot be interrupted; the server must not wait."""
    env = {**local_engine_env(data_dir), "CONCIERGE_ENFORCE_EAGER": "false"}
    server = start_server(log_dir, env, name="interrupted")
    try:
        deadline = time.monotonic() + 180
        while "EngineCore pid=" not in server.log_tail(400):
            assert time.monotonic() < deadline, server.log_tail()
            assert server.process.poll() is None, server.log_tail()
            time.sleep(0.5)
        time.sleep(3)  # well inside weight loading / compilation
        children = psutil.Process(server.process.pid).children(recursive=True)
        assert httpx.get(f"{server.url}/readyz", timeout=10).status_code == 503
        server.process.send_signal(signal.SIGINT)
        server.process.wait(timeout=45)
        _, alive = psutil.wait_procs(children, timeout=15)
        assert not alive, f"engine processes outlived the server: {alive}"
    finally:
        server.stop()
