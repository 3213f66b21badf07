"""``EngineGate``: the one way every generation reaches the engine.

Chat, completions and the support reply all generate through this gate, so each of them
gets the same treatment, written once:

1. **Admission** is a step of its own (``admit``): a bounded queue in front of the engine
   (``server.gate.admission``) that answers 503 + ``Retry-After`` when it is full. A caller
   may take it before expensive work, so a request that will be shed is shed before it
   costs anything.
2. **Opening** (``open``) starts the engine stream and pulls its first chunk *before* the
   HTTP response starts: validation errors, overload and deadlines are then a proper
   status code for streaming requests too, never a 200 with an error event in the body.
3. **The call** (``GenerationCall``) keeps the request's deadline on every pull, records
   the generation metrics per endpoint (time to first token, inter-token latency, finish
   reasons, token counts, requests in flight), watches for a client that goes away, and
   aborts the engine request whenever it ends without finishing.

The in-flight gauge counts a generation from the moment it asks for a slot until it
finishes, so the autoscaling signal sees the admission queue too.
"""

from __future__ import annotations

import asyncio
import logging
import time
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable, Sequence
from typing import Literal

from core import metrics
from core.errors import ClientClosedRequestError, ConciergeError, GenerationError
from models.engine.base import (
    ChatMessage,
    EngineClient,
    GenerationChunk,
    ModelInfo,
    SamplingOptions,
)
from server.gate.admission import AdmissionController, GenerationSlot

log = logging.getLogger(__name__)

Endpoint = Literal["chat", "completion", "support"]
"""The ``endpoint`` label of the generation metrics."""

Outcome = Literal["done", "error", "abort"]
"""How a call ended, for the ``GENERATION_REQUESTS`` count of calls without a finish reason."""

DisconnectCheck = Callable[[], Awaitable[bool]]
"""``Request.is_disconnected``: polled while a whole (non-streamed) answer is gathered."""

DISCONNECT_POLL_S = 0.25


class Admission:
    """A slot in the engine, held from ``EngineGate.admit`` until the generation ends."""

    def __init__(self, slot: GenerationSlot) -> None:
        self.slot = slot
        self._released = False

    def release(self) -> None:
        """Give the slot back and leave the in-flight count (idempotent)."""
        if not self._released:
            self._released = True
            self.slot.release()
            metrics.GENERATION_IN_FLIGHT.dec()


class EngineGate:
    """Admission, then one ``GenerationCall`` per generation, over one engine."""

    def __init__(self, engine: EngineClient, admission: AdmissionController) -> None:
        self.engine = engine
        self.admission = admission
        self._background: set[asyncio.Task[None]] = set()

    @property
    def model_info(self) -> ModelInfo:
        return self.engine.model_info

    async def admit(self, endpoint: Endpoint | None = None) -> Admission:
        """Wait for a slot; raises 503 (queue full, draining) or 504 (deadline) instead.

        With ``endpoint``, a refusal counts as that endpoint's failed generation: a caller
        that admits before its own work is shed there, and never reaches ``open``.
        """
        metrics.GENERATION_IN_FLIGHT.inc()
        try:
            slot = await self.admission.admit()
        except BaseException as exc:
            metrics.GENERATION_IN_FLIGHT.dec()
            if endpoint is not None and isinstance(exc, ConciergeError):
                metrics.GENERATION_REQUESTS.labels(endpoint, "error").inc()
            raise
        return Admission(slot)

    async def open(
        self,
        endpoint: Endpoint,
        prompt: Sequence[ChatMessage] | str,
        options: SamplingOptions,
        *,
        admission: Admission | None = None,
        started: float | None = None,
        request_id: str | None = None,
        affinity: str | None = None,
    ) -> GenerationCall:
        """Admit (unless ``admission`` was taken already) and start a generation: a chat
        for messages, a text completion for a plain ``str`` prompt. ``started`` is when the
        caller's clock for time-to-first-token began (default: now); ``affinity`` keeps a
        conversation on one replica (``EngineClient.stream_chat``)."""
        rid = request_id or uuid.uuid4().hex
        engine = self.engine

        def open_stream() -> AsyncIterator[GenerationChunk]:
            if isinstance(prompt, str):
                return engine.stream_completion(prompt, options, rid, affinity)
            return engine.stream_chat(prompt, options, rid, affinity)

        started = time.perf_counter() if started is None else started
        admission = admission or await self.admit(endpoint)
        call = GenerationCall(self, endpoint, rid, admission, open_stream(), started)
        await call.pull_first()
        return call

    def abort_later(self, request_id: str) -> None:
        """Abort outside the (possibly cancelled) caller, keeping a reference until done."""
        task = asyncio.get_running_loop().create_task(self.engine.abort(request_id))
        self._background.add(task)
        task.add_done_callback(self._background.discard)


class GenerationCall:
    """One generation in progress: its deadline, its metrics, and its abort on exit."""

    def __init__(
        self,
        gate: EngineGate,
        endpoint: Endpoint,
        request_id: str,
        admission: Admission,
        stream: AsyncIterator[GenerationChunk],
        started: float,
    ) -> None:
        self.endpoint: Endpoint = endpoint
        self.request_id = request_id
        self.started = started
        self._gate = gate
        self._admission = admission
        self._stream = stream
        self._first: GenerationChunk | None = None
        self._finished = False
        self._engine_done = False
        """Nothing left to abort in the engine: finished, or aborted by the deadline."""
        self._closed = False
        self._first_text_seen = False
        self._last_text_at: float | None = None
        self._last_tokens = 0

    @property
    def first(self) -> GenerationChunk:
        """The first chunk, pulled when the call was opened."""
        assert self._first is not None, "pull_first() has not run"
        return self._first

    @property
    def finished(self) -> bool:
        return self._finished

    async def pull_first(self) -> None:
        """Pull the first chunk, so that errors surface before any response starts."""
        try:
            self._first = await self._pull()
        except StopAsyncIteration:
            await self._close("error")
            raise GenerationError("the engine ended the request without output") from None
        except ConciergeError:
            await self._close("error")
            raise
        except BaseException:
            await self._close("abort")
            raise

    async def chunks(
        self, disconnected: DisconnectCheck | None = None
    ) -> AsyncIterator[GenerationChunk]:
        """Every chunk, the first included; ends with the one that carries ``finish_reason``.

        With ``disconnected``, a client that goes away ends the call with
        ``ClientClosedRequestError`` within ``DISCONNECT_POLL_S``; a streaming response
        needs none, because the server cancels its body when the client leaves. However
        the iteration ends, an unfinished engine request is aborted.
        """
        outcome: Outcome = "abort"
        try:
            yield self.first
            if self.first.finish_reason is None:
                rest = self._rest() if disconnected is None else self._watched(disconnected)
                async for chunk in rest:
                    yield chunk
            outcome = "done"
        except ConciergeError as exc:
            outcome = "abort" if isinstance(exc, ClientClosedRequestError) else "error"
            raise
        except Exception:  # logged once, by whoever answers the client (handler or stream)
            outcome = "error"
            raise
        finally:
            await self._close(outcome)

    async def collect(self, disconnected: DisconnectCheck | None) -> tuple[str, GenerationChunk]:
        """The whole text and the last chunk (which carries usage and the finish reason)."""
        parts, last = [], self.first
        async for chunk in self.chunks(disconnected):
            parts.append(chunk.text)
            last = chunk
        return "".join(parts), last

    async def _rest(self) -> AsyncIterator[GenerationChunk]:
        while True:
            try:
                chunk = await self._pull()
            except StopAsyncIteration:
                return
            yield chunk
            if chunk.finish_reason is not None:
                return

    async def _watched(self, disconnected: DisconnectCheck) -> AsyncIterator[GenerationChunk]:
        """``_rest``, pumped by a task so that the client can be polled between chunks."""
        queue: asyncio.Queue[GenerationChunk | BaseException | None] = asyncio.Queue()

        async def pump() -> None:
            try:
                async for chunk in self._rest():
                    await queue.put(chunk)
                await queue.put(None)
            except BaseException as exc:  # handed to the consumer, which re-raises
                await queue.put(exc)

        task = asyncio.create_task(pump())
        loop = asyncio.get_running_loop()
        next_poll = loop.time() + DISCONNECT_POLL_S
        try:
            while True:
                # polled on a clock, not only when the engine is quiet: tokens can come
                # faster than the poll interval for the whole of a long answer
                if loop.time() >= next_poll:
                    next_poll = loop.time() + DISCONNECT_POLL_S
                    if await disconnected():
                        log.info("client disconnected; aborting %s", self.request_id)
                        raise ClientClosedRequestError("the client closed the connection")
                try:
                    item = queue.get_nowait()
                except asyncio.QueueEmpty:
                    try:
                        wait_s = max(next_poll - loop.time(), 0.001)
                        item = await asyncio.wait_for(queue.get(), timeout=wait_s)
                    except TimeoutError:
                        continue
                if item is None:
                    return
                if isinstance(item, BaseException):
                    raise item
                yield item
        finally:
            if not task.done():
                task.cancel()
                await asyncio.gather(task, return_exceptions=True)

    async def _pull(self) -> GenerationChunk:
        """The next chunk within the slot's time limit (the deadline, or a drain's cut)."""
        slot = self._admission.slot
        try:
            async with asyncio.timeout_at(slot.time_limit) as guard:
                slot.guarding(guard)
                try:
                    chunk = await anext(self._stream)
                finally:
                    slot.guarding(None)
        except TimeoutError:
            if not guard.expired():
                raise  # a timeout of the engine's own, not ours
            # The cancelled pull already made the engine drop the request; abort by id as
            # well, in case an engine only stops when told explicitly.
            await self._gate.engine.abort(self.request_id)
            self._engine_done = True
            raise slot.expired_error() from None
        self._observe(chunk)
        return chunk

    def _observe(self, chunk: GenerationChunk) -> None:
        now = time.perf_counter()
        if chunk.text:
            if not self._first_text_seen:
                self._first_text_seen = True
                metrics.GENERATION_TIME_TO_FIRST_TOKEN.labels(endpoint=self.endpoint).observe(
                    now - self.started
                )
            # per token, so a remote engine that sends several tokens in one event is
            # measured like the in-process engine
            added = max(chunk.output_tokens - self._last_tokens, 1)
            if self._last_text_at is not None:
                gap = (now - self._last_text_at) / added
                for _ in range(added):
                    metrics.GENERATION_INTER_TOKEN_LATENCY.observe(gap)
            self._last_text_at = now
            self._last_tokens = chunk.output_tokens
        if chunk.finish_reason is not None and not self._finished:
            self._finished = self._engine_done = True
            metrics.GENERATION_REQUESTS.labels(self.endpoint, chunk.finish_reason).inc()
            metrics.GENERATION_OUTPUT_TOKENS.labels(self.endpoint).observe(chunk.output_tokens)
            metrics.GENERATION_PROMPT_TOKENS.labels(self.endpoint).observe(chunk.prompt_tokens)
            # the slot and the in-flight count go at once, not when the caller lets go of
            # the iterator: the autoscaler reads the gauge
            self._admission.release()

    async def _close(self, outcome: Outcome) -> None:
        """Count how an unfinished call ended, abort it in the engine, release its slot.

        ``done`` without a finish reason is an engine stream that simply ended: nothing
        to count or abort.
        """
        if self._closed:
            return
        self._closed = True
        if not self._finished and outcome != "done":
            metrics.GENERATION_REQUESTS.labels(self.endpoint, outcome).inc()
        if not self._engine_done and outcome != "done":
            self._gate.abort_later(self.request_id)
        self._admission.release()
        closer = getattr(self._stream, "aclose", None)
        if closer is not None:
            try:
                await closer()
            except Exception:
                log.debug("closing the engine stream of %s failed", self.request_id, exc_info=True)
