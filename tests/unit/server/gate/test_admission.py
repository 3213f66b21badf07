"""The admission controller on its own: slots, the bounded FIFO queue, deadlines, draining."""

from __future__ import annotations

import asyncio
from collections.abc import Coroutine
from typing import Any

import pytest

from core.errors import DeadlineExceededError, OverloadedError, ShuttingDownError
from server.gate.admission import AdmissionController


def run(coroutine: Coroutine[Any, Any, None]) -> None:
    asyncio.run(coroutine)


def test_running_then_queued_then_refused_with_retry_after() -> None:
    async def scenario() -> None:
        admission = AdmissionController(max_running=2, max_queued=1, deadline_s=30)
        first, second = await admission.admit(), await admission.admit()
        waiting = asyncio.create_task(admission.admit())
        await asyncio.sleep(0)
        assert (admission.running, admission.queued) == (2, 1)
        with pytest.raises(OverloadedError) as refused:
            await admission.admit()
        assert refused.value.status_code == 503
        assert refused.value.headers() == {"Retry-After": "1"}
        first.release()
        third = await waiting  # the freed slot goes to the waiter, not to a newcomer
        assert (admission.running, admission.queued) == (2, 0)
        first.release()  # releasing twice changes nothing
        assert admission.running == 2
        second.release()
        third.release()
        assert admission.running == 0

    run(scenario())


def test_waiters_are_served_first_come_first_served() -> None:
    async def scenario() -> None:
        admission = AdmissionController(max_running=1, max_queued=3, deadline_s=30)
        holder = await admission.admit()
        order: list[int] = []

        async def wait(number: int) -> None:
            slot = await admission.admit()
            order.append(number)
            await asyncio.sleep(0.01)
            slot.release()

        waiters = [asyncio.create_task(wait(n)) for n in range(3)]
        await asyncio.sleep(0)
        holder.release()
        await asyncio.gather(*waiters)
        assert order == [0, 1, 2]
        assert (admission.running, admission.queued) == (0, 0)

    run(scenario())


def test_queue_wait_counts_toward_the_deadline() -> None:
    async def scenario() -> None:
        admission = AdmissionController(max_running=1, max_queued=4, deadline_s=0.2)
        holder = await admission.admit()
        started = asyncio.get_running_loop().time()
        with pytest.raises(DeadlineExceededError) as late:
            await admission.admit()
        assert 0.15 < asyncio.get_running_loop().time() - started < 2
        assert late.value.status_code == 504
        assert admission.queued == 0
        holder.release()
        assert admission.running == 0

    run(scenario())


def test_a_waiter_that_goes_away_leaves_no_trace() -> None:
    async def scenario() -> None:
        admission = AdmissionController(max_running=1, max_queued=2, deadline_s=30)
        holder = await admission.admit()
        gone = asyncio.create_task(admission.admit())
        await asyncio.sleep(0)
        assert admission.queued == 1
        gone.cancel()
        holder.release()  # in the same tick: the slot must not be lost to the cancelled one
        with pytest.raises(asyncio.CancelledError):
            await gone
        assert (admission.running, admission.queued) == (0, 0)
        slot = await asyncio.wait_for(admission.admit(), timeout=1)
        slot.release()

    run(scenario())


def test_draining_refuses_new_and_waiting_and_cuts_running_at_the_end() -> None:
    async def scenario() -> None:
        admission = AdmissionController(max_running=1, max_queued=2, deadline_s=30)
        running = await admission.admit()
        waiting = asyncio.create_task(admission.admit())
        await asyncio.sleep(0)
        loop = asyncio.get_running_loop()
        started = loop.time()
        with pytest.raises(TimeoutError):
            async with asyncio.timeout_at(running.time_limit) as guard:
                running.guarding(guard)  # as GenerationCall does around each engine pull
                admission.drain(cut_after_s=0.2)
                with pytest.raises(ShuttingDownError):
                    await waiting
                with pytest.raises(ShuttingDownError) as refused:
                    await admission.admit()
                assert refused.value.headers() == {"Retry-After": "1"}
                await asyncio.sleep(5)  # a generation that would outlive the grace period
        assert 0.15 < loop.time() - started < 2
        assert isinstance(running.expired_error(), ShuttingDownError)
        running.release()
        assert (admission.running, admission.queued) == (0, 0)

    run(scenario())
