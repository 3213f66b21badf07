"""Generation on one or more OpenAI-compatible servers (``vllm serve`` replicas, say).

Each request goes to the healthy upstream with the fewest requests in flight, or, when it
carries an affinity key (a conversation's id), to that key's own upstream: the one the key
ranks first by rendezvous hashing, so a conversation's turns meet the prefix cache that
holds its earlier ones, and only a few keys move when an upstream joins or leaves. A key's
upstream that is down, or busier than the least busy by more than ``AFFINITY_SLACK``, is
passed over for the next in the key's ranking. The key also travels as the
``X-Concierge-Session`` header, for a router in front of several replicas (vLLM's
production-stack router: ``--routing-logic session --session-key x-concierge-session``).
Every request has a deadline (``request_timeout_s``) after which it is closed upstream
and answered with 504. A replica that refuses connections or answers 5xx before the first
token is marked down and the request moves to the next one, so a dead replica costs a
retry, not an error; a background loop probes every replica's ``/v1/models`` and brings recovered
ones back. Once tokens have reached the client a failure can no longer be hidden
and is raised as ``UpstreamError``. Client errors (4xx) are the caller's fault and
are passed on as 400s, never retried.
"""

from __future__ import annotations

import asyncio
import contextlib
import hashlib
import itertools
import json
import logging
import time
from collections.abc import AsyncIterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import httpx

from core import metrics
from core.errors import (
    ContextLengthExceededError,
    EngineUnavailableError,
    InvalidRequestError,
    PayloadTooLargeError,
    RateLimitedError,
    UpstreamError,
    UpstreamTimeoutError,
)
from models.engine.base import ChatMessage, GenerationChunk, ModelInfo, SamplingOptions
from models.engine.judge import JUDGE_OPTIONS, JUDGE_TOP_LOGPROBS, all_or_cancel
from models.engine.openai_wire import error_message, judged_score, read_sse, sampling_payload

log = logging.getLogger(__name__)

AFFINITY_HEADER = "X-Concierge-Session"
AFFINITY_SLACK = 8
"""How many more requests in flight than the least busy upstream a key's own upstream may
have before the key spills to its next: continuous batching makes a few more cheap, and a
prefix-cache hit saves the conversation's whole prompt; a hot conversation must not pile
up on one replica."""


@dataclass(frozen=True)
class RemoteConfig:
    """Upstreams and timeouts for the remote engine."""

    base_urls: tuple[str, ...]
    served_model_name: str | None = None
    api_key: str | None = None
    request_timeout_s: float = 120.0
    """Deadline for a whole request (checked between streamed events); also bounds each wait."""
    connect_timeout_s: float = 3.0
    health_interval_s: float = 5.0


@dataclass
class Upstream:
    """One OpenAI-compatible server and what we last learned about it."""

    base_url: str
    label: str
    healthy: bool = False
    in_flight: int = 0
    model_id: str | None = None
    max_model_len: int | None = None
    last_error: str | None = None
    checked_at: float = field(default=0.0)


def normalize_base_url(url: str) -> str:
    """Accept ``http://host:port`` or ``http://host:port/v1``; return the ``/v1`` form."""
    url = url.rstrip("/")
    return url if url.endswith("/v1") else f"{url}/v1"


class OpenAIRemoteEngine:
    """``EngineClient`` over OpenAI-compatible HTTP servers with failover."""

    def __init__(self, config: RemoteConfig) -> None:
        if not config.base_urls:
            raise ValueError("at least one upstream URL is needed")
        self._config = config
        self._upstreams = [
            Upstream(normalize_base_url(url), label=httpx.URL(url).netloc.decode() or url)
            for url in config.base_urls
        ]
        self._client: httpx.AsyncClient | None = None
        self._health_task: asyncio.Task[None] | None = None
        self._open: dict[str, httpx.Response] = {}
        self._tiebreak = itertools.count()
        self._logprobs_refused = False
        """An upstream refused ``logprobs``: judgments read the greedy answer only."""

    @property
    def upstreams(self) -> list[Upstream]:
        """Current view of every upstream (for health endpoints and tests)."""
        return list(self._upstreams)

    @property
    def ready(self) -> bool:
        return self._client is not None and any(u.healthy for u in self._upstreams)

    @property
    def model_info(self) -> ModelInfo:
        source = next((u for u in self._upstreams if u.healthy and u.model_id), None)
        source = source or next((u for u in self._upstreams if u.model_id), None)
        if source is None or source.model_id is None:
            raise EngineUnavailableError("no upstream has answered yet")
        return ModelInfo(
            name=self._config.served_model_name or source.model_id,
            max_model_len=source.max_model_len,
            owned_by="concierge",
            created=int(time.time()),
            details={"engine": "openai_remote", "upstreams": str(len(self._upstreams))},
        )

    async def start(self) -> None:
        """Open the connection pool, probe every upstream, then keep probing."""
        headers = {}
        if self._config.api_key:
            headers["Authorization"] = f"Bearer {self._config.api_key}"
        self._client = httpx.AsyncClient(
            headers=headers,
            timeout=httpx.Timeout(
                self._config.request_timeout_s, connect=self._config.connect_timeout_s
            ),
            limits=httpx.Limits(max_connections=1024, max_keepalive_connections=256),
        )
        await self._probe_all()
        self._health_task = asyncio.create_task(self._health_loop(), name="upstream-health")

    async def _health_loop(self) -> None:
        while True:
            await asyncio.sleep(self._config.health_interval_s)
            await self._probe_all()

    async def _probe_all(self) -> None:
        await asyncio.gather(*(self._probe(u) for u in self._upstreams), return_exceptions=True)

    async def _probe(self, upstream: Upstream) -> None:
        assert self._client is not None
        timeout = min(self._config.request_timeout_s, 5.0)
        try:
            response = await self._client.get(f"{upstream.base_url}/models", timeout=timeout)
            if response.status_code != 200:
                raise _ProbeFailure(f"/models answered HTTP {response.status_code}")
            body = response.json()
            models = body.get("data") if isinstance(body, dict) else None
            if not models or not isinstance(models[0], dict) or "id" not in models[0]:
                raise _ProbeFailure("/models lists no model")
            upstream.model_id = str(models[0]["id"])
            upstream.max_model_len = models[0].get("max_model_len")
            self._mark(upstream, healthy=True)
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # any failure means 'down'; the loop must survive it
            self._mark(upstream, healthy=False, error=_describe(exc))
        upstream.checked_at = time.time()

    def _mark(self, upstream: Upstream, *, healthy: bool, error: str | None = None) -> None:
        if upstream.healthy != healthy:
            log.warning(
                "upstream %s is now %s%s",
                upstream.label,
                "up" if healthy else "down",
                f" ({error})" if error else "",
            )
        upstream.healthy = healthy
        upstream.last_error = error
        metrics.REMOTE_UPSTREAM_HEALTHY.labels(upstream=upstream.label).set(int(healthy))

    def pick(self, exclude: set[str], affinity: str | None = None) -> Upstream:
        """The upstream for a request: ``affinity``'s own (see the module), else the healthy
        one with the fewest requests in flight (ties rotate)."""
        return self._route(exclude, affinity)[0]

    def _route(self, exclude: set[str], affinity: str | None) -> tuple[Upstream, str]:
        candidates = [u for u in self._upstreams if u.healthy and u.base_url not in exclude]
        if not candidates:
            raise EngineUnavailableError("no healthy upstream engine is available")
        fewest = min(u.in_flight for u in candidates)
        if affinity:
            ranked = sorted(self._upstreams, key=lambda u: _rendezvous(affinity, u.base_url))
            for rank, upstream in enumerate(ranked):
                if upstream in candidates and upstream.in_flight <= fewest + AFFINITY_SLACK:
                    return upstream, "affinity" if rank == 0 else "spilled"
        tied = [u for u in candidates if u.in_flight == fewest]
        return tied[next(self._tiebreak) % len(tied)], "load"

    def stream_chat(
        self,
        messages: Sequence[ChatMessage],
        options: SamplingOptions,
        request_id: str,
        affinity: str | None = None,
    ) -> AsyncIterator[GenerationChunk]:
        body = {"messages": [{"role": m.role, "content": m.content} for m in messages]}
        return self._stream("chat/completions", body, options, request_id, affinity)

    def stream_completion(
        self,
        prompt: str,
        options: SamplingOptions,
        request_id: str,
        affinity: str | None = None,
    ) -> AsyncIterator[GenerationChunk]:
        return self._stream("completions", {"prompt": prompt}, options, request_id, affinity)

    async def _stream(
        self,
        path: str,
        body: dict[str, Any],
        options: SamplingOptions,
        request_id: str,
        affinity: str | None = None,
    ) -> AsyncIterator[GenerationChunk]:
        if self._client is None:
            raise EngineUnavailableError("the remote engine has not started")
        tried: set[str] = set()
        deadline = time.monotonic() + self._config.request_timeout_s
        while True:
            upstream, routed = self._route(tried, affinity)
            tried.add(upstream.base_url)
            metrics.REMOTE_UPSTREAM_REQUESTS.labels(upstream=upstream.label, routed=routed).inc()
            payload = {
                **body,
                **sampling_payload(options),
                "model": upstream.model_id,
                "stream": True,
                "stream_options": {"include_usage": True},
            }
            upstream.in_flight += 1
            metrics.REMOTE_UPSTREAM_IN_FLIGHT.labels(upstream=upstream.label).inc()
            try:
                response = await self._open_stream(upstream, path, payload, request_id, affinity)
                if response is None:
                    continue  # upstream failed before any token: try the next one
                self._open[request_id] = response
                async for chunk in read_sse(response, chat=path.startswith("chat")):
                    if time.monotonic() > deadline:
                        await response.aclose()  # the upstream aborts the request
                        raise UpstreamTimeoutError(
                            f"upstream {upstream.label} did not finish within "
                            f"{self._config.request_timeout_s:g} s"
                        )
                    yield chunk
                return
            finally:
                self._open.pop(request_id, None)
                upstream.in_flight -= 1
                metrics.REMOTE_UPSTREAM_IN_FLIGHT.labels(upstream=upstream.label).dec()

    async def _open_stream(
        self,
        upstream: Upstream,
        path: str,
        payload: dict[str, Any],
        request_id: str,
        affinity: str | None = None,
    ) -> httpx.Response | None:
        """Send the request; None means 'this upstream failed, fail over'."""
        assert self._client is not None
        headers = {"X-Request-Id": request_id}
        if affinity:
            headers[AFFINITY_HEADER] = affinity
        request = self._client.build_request(
            "POST", f"{upstream.base_url}/{path}", json=payload, headers=headers
        )
        try:
            response = await self._client.send(request, stream=True)
        except httpx.TransportError as exc:
            self._mark(upstream, healthy=False, error=_describe(exc))
            return None
        if response.status_code < 400:
            return response
        try:
            detail = await error_message(response)
        except httpx.HTTPError as exc:
            self._mark(upstream, healthy=False, error=_describe(exc))
            return None
        status = response.status_code
        if status >= 500:
            self._mark(upstream, healthy=False, error=f"HTTP {status}")
            return None
        if status == 429:
            raise RateLimitedError(f"upstream {upstream.label} is overloaded: {detail}")
        if status == 413:
            raise PayloadTooLargeError(detail)
        if status == 404:  # our model name is wrong for that replica: a deployment problem
            raise UpstreamError(f"upstream {upstream.label} does not serve the model: {detail}")
        if "context" in detail.lower() or "max_tokens" in detail.lower():
            raise ContextLengthExceededError(detail, param="max_tokens")
        raise InvalidRequestError(detail)

    async def judge_yes_no(
        self, prompts: Sequence[Sequence[ChatMessage]], request_id: str
    ) -> list[float]:
        """One-token chat completions with ``logprobs``/``top_logprobs``, sent concurrently
        (a vLLM upstream batches them). An upstream that refuses log-probabilities (not every
        OpenAI-compatible server has them) is asked for the greedy answer alone from then
        on, which scores 1, 0 or 0.5: coarser, but still a judgment."""
        if self._client is None:
            raise EngineUnavailableError("the remote engine has not started")
        return await all_or_cancel(
            self._judge(messages, f"{request_id}-{number}")
            for number, messages in enumerate(prompts)
        )

    async def _judge(self, messages: Sequence[ChatMessage], request_id: str) -> float:
        body: dict[str, Any] = {
            "messages": [{"role": m.role, "content": m.content} for m in messages],
            **sampling_payload(JUDGE_OPTIONS),
        }
        if not self._logprobs_refused:
            asked = {**body, "logprobs": True, "top_logprobs": JUDGE_TOP_LOGPROBS}
            try:
                return judged_score(await self._post("chat/completions", asked, request_id))
            except InvalidRequestError as exc:
                if "logprobs" not in exc.message:
                    raise
                if not self._logprobs_refused:
                    log.warning(
                        "an upstream refuses logprobs (%s); judgments read the greedy answer only",
                        exc.message,
                    )
                self._logprobs_refused = True
        return judged_score(await self._post("chat/completions", body, request_id))

    async def _post(self, path: str, body: dict[str, Any], request_id: str) -> dict[str, Any]:
        """A non-streamed request with the same failover as a stream's; the JSON answer."""
        if self._client is None:
            raise EngineUnavailableError("the remote engine has not started")
        tried: set[str] = set()
        while True:
            upstream = self.pick(tried)
            tried.add(upstream.base_url)
            payload = {**body, "model": upstream.model_id, "stream": False}
            upstream.in_flight += 1
            metrics.REMOTE_UPSTREAM_IN_FLIGHT.labels(upstream=upstream.label).inc()
            try:
                response = await self._open_stream(upstream, path, payload, request_id)
                if response is None:
                    continue  # upstream failed before answering: try the next one
                self._open[request_id] = response
                try:
                    answer = json.loads(await response.aread())
                except httpx.HTTPError as exc:
                    raise UpstreamError(f"upstream connection failed: {_describe(exc)}") from exc
                except ValueError as exc:
                    raise UpstreamError(f"upstream sent an unreadable answer: {exc}") from exc
                finally:
                    await response.aclose()
                if not isinstance(answer, dict):
                    raise UpstreamError("upstream answered with something other than an object")
                return answer
            finally:
                self._open.pop(request_id, None)
                upstream.in_flight -= 1
                metrics.REMOTE_UPSTREAM_IN_FLIGHT.labels(upstream=upstream.label).dec()

    async def abort(self, request_id: str) -> None:
        """Closing the HTTP stream makes an OpenAI-compatible server abort the request."""
        response = self._open.pop(request_id, None)
        if response is not None:
            await response.aclose()

    async def check_health(self) -> None:
        if not self.ready:
            down = "; ".join(f"{u.label}: {u.last_error}" for u in self._upstreams)
            raise EngineUnavailableError(f"no healthy upstream ({down})")

    async def shutdown(self) -> None:
        if self._health_task is not None:
            self._health_task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._health_task
        if self._client is not None:
            await self._client.aclose()
            self._client = None


def _rendezvous(key: str, base_url: str) -> int:
    """Rank of ``base_url`` for ``key``, lowest first (highest-random-weight hashing)."""
    digest = hashlib.blake2b(f"{key}\x00{base_url}".encode(), digest_size=8).digest()
    return -int.from_bytes(digest, "big")


class _ProbeFailure(Exception):
    """An upstream answered its health probe, but not with a usable model list."""


def _describe(exc: BaseException) -> str:
    """A failure's kind without its text: httpx messages embed URLs, which may hold secrets."""
    return str(exc) if isinstance(exc, _ProbeFailure) else type(exc).__name__
