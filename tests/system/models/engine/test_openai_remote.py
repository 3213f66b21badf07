"""The remote engine against real OpenAI-compatible servers on loopback.

Upstreams are real: the session's Concierge (in-process vLLM) and, where a second
replica is needed, another Concierge in remote mode in front of it. A "dead" replica
is a port nobody listens on, or a replica that is stopped mid-test. Only refusals a real
server cannot give on demand (500, 429, 404) come from ``tests/faulty_upstream.py``.
"""

from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest
from prometheus_client import REGISTRY

from core.errors import (
    ConciergeError,
    ContextLengthExceededError,
    EngineUnavailableError,
    PayloadTooLargeError,
    RateLimitedError,
    UpstreamError,
    UpstreamTimeoutError,
)
from models.engine.base import ChatMessage, GenerationChunk, SamplingOptions
from models.engine.openai_remote import (
    OpenAIRemoteEngine,
    RemoteConfig,
    Upstream,
    normalize_base_url,
)
from tests.faulty_upstream import FaultyUpstream
from tests.servers import (
    free_port,
    prometheus_value,
    remote_engine_env,
    start_server,
    wait_for_running,
)

QUESTION = [ChatMessage("user", "How can I track my parcel?")]
GREEDY = SamplingOptions(max_tokens=24, temperature=0)
LONG_STORY = {  # an HTTP request that streams for half a minute unless cut short
    "model": "smollm2-135m-instruct",
    "max_tokens": 1500,
    "ignore_eos": True,
    "stream": True,
    "messages": [{"role": "user", "content": "Tell me a story."}],
}


async def collect(stream: AsyncIterator[GenerationChunk]) -> tuple[str, GenerationChunk]:
    parts: list[str] = []
    last = None
    async for chunk in stream:
        parts.append(chunk.text)
        last = chunk
    assert last is not None
    return "".join(parts), last


def dead_url() -> str:
    return f"http://127.0.0.1:{free_port()}"


def test_base_urls_are_normalized() -> None:
    assert normalize_base_url("http://h:1") == "http://h:1/v1"
    assert normalize_base_url("http://h:1/v1/") == "http://h:1/v1"


async def test_streams_from_the_live_upstream_when_the_other_is_down(base_url: str) -> None:
    engine = OpenAIRemoteEngine(RemoteConfig((dead_url(), base_url), health_interval_s=60))
    await engine.start()
    try:
        down, up = engine.upstreams
        assert not down.healthy and down.last_error
        assert up.healthy
        assert engine.ready
        assert engine.model_info.name == "smollm2-135m-instruct"
        assert engine.model_info.max_model_len == 2048
        text, last = await collect(engine.stream_chat(QUESTION, GREEDY, uuid.uuid4().hex))
        assert len(text.split()) >= 3
        assert last.finish_reason in {"stop", "length"}
        assert last.prompt_tokens > 0 and 0 < last.output_tokens <= 24
        text2, _ = await collect(
            engine.stream_completion("Dear customer,", GREEDY, uuid.uuid4().hex)
        )
        assert text2.strip()
    finally:
        await engine.shutdown()


async def test_output_matches_the_upstream_served_directly(base_url: str) -> None:
    engine = OpenAIRemoteEngine(RemoteConfig((base_url,)))
    await engine.start()
    try:
        via_remote, _ = await collect(engine.stream_chat(QUESTION, GREEDY, uuid.uuid4().hex))
    finally:
        await engine.shutdown()
    async with httpx.AsyncClient(timeout=60) as client:
        response = await client.post(
            f"{base_url}/v1/chat/completions",
            json={
                "model": "smollm2-135m-instruct",
                "max_tokens": 24,
                "temperature": 0,
                "messages": [{"role": "user", "content": "How can I track my parcel?"}],
            },
        )
    assert via_remote == response.json()["choices"][0]["message"]["content"]


async def test_fails_over_when_a_healthy_looking_replica_dies(base_url: str, log_dir: Path) -> None:
    replica = start_server(log_dir, remote_engine_env(base_url), name="replica")
    replica.wait_ready(60)
    engine = OpenAIRemoteEngine(RemoteConfig((replica.url, base_url), health_interval_s=60))
    await engine.start()
    try:
        assert all(u.healthy for u in engine.upstreams)
        replica.stop()  # the health loop will not notice for a minute
        for _ in range(3):  # round-robin ties guarantee the dead replica is tried
            text, _ = await collect(engine.stream_chat(QUESTION, GREEDY, uuid.uuid4().hex))
            assert text.strip()
        dead, live = engine.upstreams
        assert not dead.healthy
        assert live.healthy
        assert dead.in_flight == 0 and live.in_flight == 0
    finally:
        replica.stop()
        await engine.shutdown()


async def test_balances_by_requests_in_flight(base_url: str, log_dir: Path) -> None:
    replica = start_server(log_dir, remote_engine_env(base_url), name="replica")
    replica.wait_ready(60)
    engine = OpenAIRemoteEngine(RemoteConfig((replica.url, base_url), health_interval_s=60))
    await engine.start()
    long = SamplingOptions(max_tokens=64, temperature=0, ignore_eos=True)
    try:
        streams = [engine.stream_chat(QUESTION, long, uuid.uuid4().hex) for _ in range(4)]
        firsts = await asyncio.gather(*(anext(s) for s in streams))
        assert all(isinstance(chunk, GenerationChunk) for chunk in firsts)
        assert [u.in_flight for u in engine.upstreams] == [2, 2]
        results = await asyncio.gather(*(collect(s) for s in streams))
        assert all(last.output_tokens == 64 for _, last in results)
        assert [u.in_flight for u in engine.upstreams] == [0, 0]
    finally:
        replica.stop()
        await engine.shutdown()


async def test_a_recovered_replica_is_brought_back(base_url: str, log_dir: Path) -> None:
    port = free_port()
    engine = OpenAIRemoteEngine(
        RemoteConfig((f"http://127.0.0.1:{port}", base_url), health_interval_s=0.5)
    )
    await engine.start()
    replica = None
    try:
        assert not engine.upstreams[0].healthy
        replica = start_server(log_dir, remote_engine_env(base_url), name="late", port=port)
        replica.wait_ready(60)
        for _ in range(40):
            if engine.upstreams[0].healthy:
                break
            await asyncio.sleep(0.25)
        assert engine.upstreams[0].healthy
    finally:
        if replica is not None:
            replica.stop()
        await engine.shutdown()


async def test_client_errors_pass_through_without_failover(base_url: str) -> None:
    engine = OpenAIRemoteEngine(RemoteConfig((base_url,)))
    await engine.start()
    try:
        with pytest.raises(ContextLengthExceededError):
            await collect(
                engine.stream_chat(QUESTION, SamplingOptions(max_tokens=10**7), "too-long")
            )
        assert engine.upstreams[0].healthy  # the client's mistake is not the replica's
    finally:
        await engine.shutdown()


async def test_a_request_past_its_deadline_is_cut_and_aborted_upstream(base_url: str) -> None:
    engine = OpenAIRemoteEngine(RemoteConfig((base_url,), request_timeout_s=1.0))
    await engine.start()
    long = SamplingOptions(max_tokens=1500, temperature=0, ignore_eos=True)
    started = time.monotonic()
    try:
        with pytest.raises(UpstreamTimeoutError, match="within 1 s"):
            await collect(engine.stream_chat(QUESTION, long, uuid.uuid4().hex))
        assert time.monotonic() - started < 10
        assert engine.upstreams[0].healthy  # slow is not dead
    finally:
        await engine.shutdown()
    assert await asyncio.to_thread(wait_for_running, base_url, 0)


async def test_a_5xx_before_the_first_token_fails_over(base_url: str) -> None:
    with FaultyUpstream(500).running() as faulty:
        engine = OpenAIRemoteEngine(RemoteConfig((faulty.url, base_url), health_interval_s=60))
        await engine.start()
        try:
            assert all(u.healthy for u in engine.upstreams)
            for _ in range(3):  # ties rotate, so the failing replica is tried first once
                text, _ = await collect(engine.stream_chat(QUESTION, GREEDY, uuid.uuid4().hex))
                assert text.strip()
            assert faulty.generations == 1
            assert not engine.upstreams[0].healthy
            assert engine.upstreams[0].last_error == "HTTP 500"
        finally:
            await engine.shutdown()


def _routed(upstream: Upstream, routed: str) -> float:
    value = REGISTRY.get_sample_value(
        "concierge_remote_upstream_requests_total",
        {"upstream": upstream.label, "routed": routed},
    )
    return value or 0.0


async def test_a_conversation_stays_on_its_upstream(base_url: str) -> None:
    """Two replicas (the session server by two names): every request of a conversation goes
    to the replica its key ranks first, whose prefix cache holds its earlier turns."""
    other_name = base_url.replace("127.0.0.1", "localhost")
    engine = OpenAIRemoteEngine(RemoteConfig((base_url, other_name), health_interval_s=60))
    await engine.start()
    try:
        assert all(u.healthy for u in engine.upstreams)
        # the ranking hashes the upstream's URL, whose port changes per run: with 40 keys
        # both replicas get some except once in 2^39 runs (5 keys failed 1 run in 16)
        owners = {f"c-{n}": engine.pick(set(), f"c-{n}") for n in range(40)}
        assert len({owner.base_url for owner in owners.values()}) == 2  # both get some
        one_each = {owner.base_url: (key, owner) for key, owner in owners.items()}
        for key, owner in one_each.values():
            for _ in range(2):
                before = _routed(owner, "affinity")
                text, _ = await collect(
                    engine.stream_chat(QUESTION, GREEDY, uuid.uuid4().hex, affinity=key)
                )
                assert text.strip() and _routed(owner, "affinity") == before + 1
    finally:
        await engine.shutdown()


async def test_a_conversations_key_travels_and_spills_when_its_replica_fails(
    base_url: str,
) -> None:
    with FaultyUpstream(500).running() as faulty:
        engine = OpenAIRemoteEngine(RemoteConfig((faulty.url, base_url), health_interval_s=60))
        await engine.start()
        try:
            failing, live = engine.upstreams
            key = next(f"c-{n}" for n in range(100) if engine.pick(set(), f"c-{n}") is failing)
            text, _ = await collect(
                engine.stream_chat(QUESTION, GREEDY, uuid.uuid4().hex, affinity=key)
            )
            assert text.strip()
            assert faulty.sessions == [key]  # for a router in front of replicas
            assert not failing.healthy and engine.pick(set(), key) is live
        finally:
            await engine.shutdown()


@pytest.mark.parametrize(("status", "error"), [(429, RateLimitedError), (404, UpstreamError)])
async def test_upstream_refusals_keep_their_meaning(
    status: int, error: type[ConciergeError]
) -> None:
    with FaultyUpstream(status).running() as faulty:
        engine = OpenAIRemoteEngine(RemoteConfig((faulty.url,), health_interval_s=60))
        await engine.start()
        try:
            with pytest.raises(error) as raised:
                await collect(engine.stream_chat(QUESTION, GREEDY, uuid.uuid4().hex))
            assert raised.value.status_code == (429 if status == 429 else 502)
            assert engine.upstreams[0].healthy  # a refusal is not an outage: no failover
            assert faulty.generations == 1
        finally:
            await engine.shutdown()


async def test_an_upstream_body_limit_is_a_413(base_url: str, log_dir: Path) -> None:
    env = {**remote_engine_env(base_url), "CONCIERGE_MAX_REQUEST_BYTES": "2048"}
    replica = start_server(log_dir, env, name="strict")
    await asyncio.to_thread(replica.wait_ready, 60)
    engine = OpenAIRemoteEngine(RemoteConfig((replica.url,), health_interval_s=60))
    await engine.start()
    try:
        long_question = [ChatMessage("user", "where is my order? " * 300)]
        with pytest.raises(PayloadTooLargeError):
            await collect(engine.stream_chat(long_question, GREEDY, uuid.uuid4().hex))
        assert engine.upstreams[0].healthy
    finally:
        await engine.shutdown()
        replica.stop()


async def test_no_healthy_upstream_is_engine_unavailable() -> None:
    engine = OpenAIRemoteEngine(RemoteConfig((dead_url(), dead_url()), health_interval_s=60))
    await engine.start()
    try:
        assert not engine.ready
        with pytest.raises(EngineUnavailableError):
            await engine.check_health()
        with pytest.raises(EngineUnavailableError):
            await collect(engine.stream_chat(QUESTION, GREEDY, "nowhere"))
    finally:
        await engine.shutdown()


def test_remote_mode_server_over_http(base_url: str, log_dir: Path) -> None:
    """A Concierge in remote mode behind HTTP: readiness, chat, streaming, metrics, abort.
    A real ``concierge serve`` process, as an operator starts one (the others are forked)."""
    front = start_server(
        log_dir, remote_engine_env(dead_url(), base_url), name="front", fresh_process=True
    )
    try:
        front.wait_ready(60)
        ready = httpx.get(f"{front.url}/readyz", timeout=10).json()
        assert ready["engine"] == "openai_remote"
        body = {
            "model": "smollm2-135m-instruct",
            "max_tokens": 16,
            "temperature": 0,
            "messages": [{"role": "user", "content": "Do you ship abroad?"}],
        }
        reply = httpx.post(f"{front.url}/v1/chat/completions", json=body, timeout=60)
        assert reply.status_code == 200, reply.text
        assert reply.json()["choices"][0]["message"]["content"].strip()
        assert reply.json()["usage"]["prompt_tokens"] > 0
        streamed = httpx.post(
            f"{front.url}/v1/chat/completions", timeout=60, json={**body, "stream": True}
        )
        assert streamed.text.rstrip().endswith("data: [DONE]")
        metrics_text = httpx.get(f"{front.url}/metrics", timeout=10).text
        assert prometheus_value(metrics_text, "concierge_remote_upstream_healthy") == 1
        too_long = httpx.post(
            f"{front.url}/v1/chat/completions", timeout=60, json={**body, "max_tokens": 10**7}
        )
        assert too_long.status_code == 400
        assert too_long.json()["error"]["type"] == "context_length_exceeded"
    finally:
        front.stop()


def test_remote_mode_server_without_upstreams_is_not_ready(log_dir: Path) -> None:
    front = start_server(log_dir, remote_engine_env(dead_url()), name="orphan")
    try:
        front.wait_alive(60)
        readiness = httpx.get(f"{front.url}/readyz", timeout=10)
        assert readiness.status_code == 503
        assert readiness.json()["error"]["type"] == "engine_unavailable"
        chat = httpx.post(
            f"{front.url}/v1/chat/completions",
            timeout=10,
            json={
                "model": "smollm2-135m-instruct",
                "messages": [{"role": "user", "content": "hi"}],
            },
        )
        assert chat.status_code == 503
    finally:
        front.stop()


def test_disconnect_through_a_remote_front_aborts_upstream(base_url: str, log_dir: Path) -> None:
    """Closing the client's stream closes the upstream stream, which aborts in vLLM."""
    front = start_server(log_dir, remote_engine_env(base_url), name="front")
    try:
        front.wait_ready(60)
        assert wait_for_running(base_url, 0)
        with httpx.stream(
            "POST", f"{front.url}/v1/chat/completions", json=LONG_STORY, timeout=60
        ) as response:
            lines = response.iter_lines()
            for _ in range(10):
                next(lines)
            assert wait_for_running(base_url, 1, timeout_s=5)
        assert wait_for_running(base_url, 0), "upstream kept generating for a gone client"
    finally:
        front.stop()


def test_an_error_mid_stream_is_an_sse_error_event_then_done(base_url: str, log_dir: Path) -> None:
    """A deadline passing mid-stream: the client gets an error event, then ``[DONE]``."""
    env = {**remote_engine_env(base_url), "CONCIERGE_REMOTE_TIMEOUT_S": "1"}
    front = start_server(log_dir, env, name="impatient")
    try:
        front.wait_ready(60)
        response = httpx.post(f"{front.url}/v1/chat/completions", json=LONG_STORY, timeout=60)
        assert response.status_code == 200
        events = [line[6:] for line in response.text.splitlines() if line.startswith("data: ")]
        assert events[-1] == "[DONE]"
        error = json.loads(events[-2])["error"]
        assert error["type"] == "upstream_timeout"
        assert any('"content"' in event for event in events[:-2]), "tokens came before the error"
        unary = httpx.post(
            f"{front.url}/v1/chat/completions", json={**LONG_STORY, "stream": False}, timeout=60
        )
        assert unary.status_code == 504
        assert unary.json()["error"]["type"] == "upstream_timeout"
        assert wait_for_running(base_url, 0)
    finally:
        front.stop()
