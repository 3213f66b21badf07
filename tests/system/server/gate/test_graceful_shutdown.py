"""SIGTERM drains: short streams finish, long ones end cleanly, and the process exits in time.

A Concierge of its own (forwarding to the session server's real vLLM engine) is stopped
while it streams two answers: one short enough to finish within the grace period, one
that would run far longer. The short one must end normally, the long one with an error
event and ``data: [DONE]``, nothing may keep generating in the engine, nobody new gets in,
and the process must be gone within the grace period plus a few seconds.
"""

from __future__ import annotations

import json
import signal
import threading
import time
from pathlib import Path

import httpx
import pytest

from tests.servers import isolated_data_dir, remote_engine_env, start_server, wait_for_running

MODEL = "smollm2-135m-instruct"
GRACE_S = 8
EXIT_MARGIN_S = 8


class StreamReader(threading.Thread):
    """Reads one chat stream to its end, noting its SSE data lines and its first token."""

    def __init__(self, url: str, max_tokens: int) -> None:
        super().__init__(daemon=True)
        self.url = url
        self.max_tokens = max_tokens
        self.events: list[str] = []
        self.status = 0
        self.first_token = threading.Event()
        self.failure: BaseException | None = None

    def run(self) -> None:
        body = {
            "model": MODEL,
            "messages": [{"role": "user", "content": "Tell me about your returns."}],
            "max_tokens": self.max_tokens,
            "ignore_eos": True,
            "temperature": 0,
            "stream": True,
        }
        try:
            with httpx.stream(
                "POST", f"{self.url}/v1/chat/completions", json=body, timeout=60
            ) as response:
                self.status = response.status_code
                for line in response.iter_lines():
                    if line.startswith("data: "):
                        self.events.append(line[6:])
                        if '"content":"' in line and '"content":""' not in line:
                            self.first_token.set()
        except BaseException as exc:  # reported by the test
            self.failure = exc
        finally:
            self.first_token.set()

    def ending(self) -> tuple[str | None, dict[str, str] | None]:
        """The finish_reason of the last choice event, and the error event, if any."""
        finish, error = None, None
        for event in self.events:
            if event == "[DONE]":
                continue
            payload = json.loads(event)
            if "error" in payload:
                error = payload["error"]
            for choice in payload.get("choices", []):
                finish = choice.get("finish_reason") or finish
        return finish, error


def test_sigterm_finishes_short_streams_cuts_long_ones_and_exits_in_time(
    base_url: str, data_dir: Path, log_dir: Path, tmp_path_factory: pytest.TempPathFactory
) -> None:
    own = isolated_data_dir(tmp_path_factory.mktemp("draining-data"), data_dir)
    env = {
        **remote_engine_env(base_url),
        "CONCIERGE_DATA_DIR": str(own),
        "CONCIERGE_SHUTDOWN_GRACE_S": str(GRACE_S),
    }
    server = start_server(log_dir, env, name="draining")
    try:
        server.wait_ready(120)
        assert wait_for_running(base_url, 0)
        short, long = StreamReader(server.url, 24), StreamReader(server.url, 1500)
        short.start()
        long.start()
        assert short.first_token.wait(30) and long.first_token.wait(30)
        assert short.failure is None and long.failure is None

        signalled = time.monotonic()
        server.process.send_signal(signal.SIGTERM)
        time.sleep(0.5)
        try:  # a newcomer is refused: the listener is closed, or admission says 503
            late = httpx.post(
                f"{server.url}/v1/chat/completions",
                json={"model": MODEL, "messages": [{"role": "user", "content": "Hi"}]},
                timeout=10,
            )
            assert late.status_code == 503, late.text
            assert late.json()["error"]["type"] == "shutting_down"
            assert int(late.headers["retry-after"]) >= 1
        except httpx.TransportError:
            pass

        short.join(timeout=GRACE_S + EXIT_MARGIN_S)
        long.join(timeout=GRACE_S + EXIT_MARGIN_S)
        ended = time.monotonic() - signalled
        server.process.wait(timeout=GRACE_S + EXIT_MARGIN_S)
        exited = time.monotonic() - signalled
        print(f"streams ended {ended:.1f} s and the process exited {exited:.1f} s after SIGTERM")
    finally:
        server.stop()

    assert short.failure is None and long.failure is None, (short.failure, long.failure)
    assert short.status == long.status == 200
    assert short.events[-1] == "[DONE]" and long.events[-1] == "[DONE]"
    assert short.ending() == ("length", None), short.events[-3:]
    _, error = long.ending()
    assert error is not None and error["type"] == "shutting_down", long.events[-3:]
    assert ended < GRACE_S, "streams must end before uvicorn's own deadline cancels them"
    assert exited < GRACE_S + EXIT_MARGIN_S
    # uvicorn re-raises the signal it caught once shutdown is complete, as a process
    # killed by SIGTERM is expected to end; anything else means it did not shut down cleanly
    assert server.process.returncode in (0, -signal.SIGTERM), server.log_tail()
    assert "Application shutdown complete" in server.log_tail()
    assert wait_for_running(base_url, 0, timeout_s=10), "the engine kept generating"
