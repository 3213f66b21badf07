"""``AdmissionController``: a bounded queue in front of the generation engine.

vLLM accepts every request it is handed and queues the surplus inside the engine, where a
flood grows memory and latency without bound and no client is ever told "no". So at most
``max_running`` generations are let into the engine and at most ``max_queued`` wait for a
slot (first come, first served); one more is refused at once with 503 ``overloaded`` and a
``Retry-After``, which a client or load balancer can act on while the server stays fast.

Every generation has a deadline that starts when it asks for a slot, so time spent waiting
counts. A slot carries that deadline to whoever streams from the engine (see
``server.gate.engine_gate``), which cuts the generation with 504 ``deadline_exceeded``.

On shutdown the controller drains: waiting and new requests are refused with 503
``shutting_down``, and running ones keep going until ``cut_after_s`` and are then cut the
same way a deadline cuts them, early enough for each stream to end with an error event
before the HTTP server stops waiting for it.
"""

from __future__ import annotations

import asyncio
import logging
import math
from collections import deque
from dataclasses import dataclass

from core import metrics
from core.errors import (
    ConciergeError,
    DeadlineExceededError,
    OverloadedError,
    ShuttingDownError,
)

log = logging.getLogger(__name__)

RETRY_AFTER_S = 1.0
"""What 503s ask clients to wait: a slot frees as soon as any generation ends."""


class GenerationSlot:
    """One admitted generation: its deadline, and the time limit guarding its current wait."""

    def __init__(self, controller: AdmissionController, deadline: float) -> None:
        self.deadline = deadline
        self._controller = controller
        self._guard: asyncio.Timeout | None = None
        self._released = False

    @property
    def time_limit(self) -> float:
        """Loop time by which the generation must end: its deadline, or the drain's cut."""
        return min(self.deadline, self._controller.cut_at)

    def guarding(self, guard: asyncio.Timeout | None) -> None:
        """Remember the entered time limit of the current wait, so a drain can move it."""
        self._guard = guard

    def move_limit(self, when: float) -> None:
        """Bring the current wait's time limit forward to ``when`` (never later)."""
        if self._guard is not None:
            current = self._guard.when()
            self._guard.reschedule(when if current is None else min(current, when))

    def expired_error(self) -> ConciergeError:
        """Why the time limit struck: the request's own deadline, or the shutdown."""
        if asyncio.get_running_loop().time() >= self.deadline:
            metrics.GENERATION_SHED.labels(reason="deadline").inc()
            return DeadlineExceededError(
                f"the request did not finish within {self._controller.deadline_s:g} s "
                "(queue wait included); the generation was aborted"
            )
        metrics.GENERATION_SHED.labels(reason="shutting_down").inc()
        return ShuttingDownError(
            "the server is shutting down; the generation was cut off", retry_after_s=RETRY_AFTER_S
        )

    def release(self) -> None:
        """Give the slot back (idempotent): the next waiter, if any, takes it."""
        if not self._released:
            self._released = True
            self._controller._release(self)


@dataclass
class _Waiter:
    granted: asyncio.Future[GenerationSlot]
    deadline: float
    queued_at: float


class AdmissionController:
    """Lets at most ``max_running`` generations into the engine and queues ``max_queued``."""

    def __init__(self, max_running: int, max_queued: int, deadline_s: float) -> None:
        if max_running < 1 or max_queued < 0 or deadline_s <= 0:
            raise ValueError("max_running >= 1, max_queued >= 0 and deadline_s > 0 are needed")
        self.max_running = max_running
        self.max_queued = max_queued
        self.deadline_s = deadline_s
        self.cut_at = math.inf
        """Loop time at which running generations are cut; set when draining starts."""
        self._running: set[GenerationSlot] = set()
        self._waiting: deque[_Waiter] = deque()
        self._draining = False

    @property
    def running(self) -> int:
        return len(self._running)

    @property
    def queued(self) -> int:
        return len(self._waiting)

    @property
    def draining(self) -> bool:
        return self._draining

    async def admit(self) -> GenerationSlot:
        """A slot in the engine, now or after a wait; raises 503 or 504 errors instead."""
        loop = asyncio.get_running_loop()
        now = loop.time()
        deadline = now + self.deadline_s
        if self._draining:
            metrics.GENERATION_SHED.labels(reason="shutting_down").inc()
            raise ShuttingDownError(
                "the server is shutting down; retry on another replica",
                retry_after_s=RETRY_AFTER_S,
            )
        if len(self._running) < self.max_running and not self._waiting:
            metrics.GENERATION_QUEUE_WAIT.observe(0.0)
            return self._grant(deadline)
        if len(self._waiting) >= self.max_queued:
            metrics.GENERATION_SHED.labels(reason="queue_full").inc()
            raise OverloadedError(
                f"the server is at capacity ({self.max_running} generations running, "
                f"{self.max_queued} waiting); retry shortly",
                retry_after_s=RETRY_AFTER_S,
            )
        waiter = _Waiter(loop.create_future(), deadline, now)
        self._waiting.append(waiter)
        self._publish()
        try:
            async with asyncio.timeout_at(deadline):
                return await waiter.granted
        except BaseException as exc:  # the deadline, the client leaving, or the drain
            self._abandon(waiter)
            if isinstance(exc, TimeoutError):
                metrics.GENERATION_SHED.labels(reason="deadline").inc()
                raise DeadlineExceededError(
                    f"no generation slot freed within {self.deadline_s:g} s; retry later",
                    retry_after_s=RETRY_AFTER_S,
                ) from None
            raise

    def drain(self, cut_after_s: float) -> None:
        """Refuse new and waiting generations; cut running ones after ``cut_after_s``."""
        loop = asyncio.get_running_loop()
        self._draining = True
        self.cut_at = min(self.cut_at, loop.time() + max(cut_after_s, 0.0))
        waiting, self._waiting = list(self._waiting), deque()
        for waiter in waiting:
            if not waiter.granted.done():
                metrics.GENERATION_SHED.labels(reason="shutting_down").inc()
                waiter.granted.set_exception(
                    ShuttingDownError(
                        "the server is shutting down; retry on another replica",
                        retry_after_s=RETRY_AFTER_S,
                    )
                )
        for slot in self._running:
            slot.move_limit(self.cut_at)
        self._publish()
        log.info(
            "draining: %d generation(s) running get %.1f s to finish, %d waiting refused",
            len(self._running),
            max(cut_after_s, 0.0),
            len(waiting),
        )

    def _grant(self, deadline: float) -> GenerationSlot:
        slot = GenerationSlot(self, deadline)
        self._running.add(slot)
        return slot

    def _release(self, slot: GenerationSlot) -> None:
        self._running.discard(slot)
        while self._waiting and len(self._running) < self.max_running:
            waiter = self._waiting.popleft()
            if waiter.granted.done():  # gave up (deadline, disconnect) a moment ago
                continue
            waited = waiter.granted.get_loop().time() - waiter.queued_at
            metrics.GENERATION_QUEUE_WAIT.observe(waited)
            waiter.granted.set_result(self._grant(waiter.deadline))
        self._publish()

    def _abandon(self, waiter: _Waiter) -> None:
        """A wait ended without its caller getting a slot: leave the queue, return the slot.

        A slot granted in the same instant the waiter timed out or was cancelled belongs
        to nobody; it goes straight to the next waiter instead of leaking.
        """
        if waiter in self._waiting:
            self._waiting.remove(waiter)
        granted = waiter.granted
        if granted.done() and not granted.cancelled() and granted.exception() is None:
            granted.result().release()
        self._publish()

    def _publish(self) -> None:
        metrics.GENERATION_QUEUE_DEPTH.set(len(self._waiting))
