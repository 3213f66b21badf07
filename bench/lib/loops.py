"""Request loops: how requests reach a server under load, the same for every benchmark.

A closed loop is N clients each sending its next request as soon as the previous one
finished (a fixed concurrency); an open loop sends each request at its arrival time,
whatever is still running (a fixed offered load).
"""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from typing import TypeVar

Item = TypeVar("Item")
Result = TypeVar("Result")


async def closed_loop(
    send: Callable[[Item], Awaitable[Result]],
    items: Sequence[Item],
    concurrency: int,
    think_s: float = 0.0,
) -> list[Result]:
    """``concurrency`` clients share one queue of ``items``; each sends back to back, or
    after ``think_s`` of idling once its previous call returned (a person reading).

    Results come back in the order of ``items``, whichever client sent them.
    """
    results: dict[int, Result] = {}
    queue = iter(range(len(items)))  # shared: a free client takes the next index

    async def client() -> None:
        for index in queue:
            results[index] = await send(items[index])
            if think_s:
                await asyncio.sleep(think_s)

    async with asyncio.TaskGroup() as group:
        for _ in range(concurrency):
            group.create_task(client())
    return [results[index] for index in range(len(items))]


async def open_loop(
    send: Callable[[Item], Awaitable[Result]],
    items: Sequence[Item],
    offsets_s: Sequence[float],
) -> list[Result]:
    """Each item sent ``offsets_s[i]`` seconds after the loop's start; results in order."""
    results: dict[int, Result] = {}
    started = time.perf_counter()

    async def arrive(index: int) -> None:
        await asyncio.sleep(max(0.0, started + offsets_s[index] - time.perf_counter()))
        results[index] = await send(items[index])

    async with asyncio.TaskGroup() as group:
        for index in range(len(items)):
            group.create_task(arrive(index))
    return [results[index] for index in range(len(items))]


def closed_levels(
    concurrency: str,
    requests: str | None,
    warmup: int | None,
    default_requests: Callable[[int], int],
    default_warmup: Callable[[int], int],
) -> list[tuple[int, int, int]]:
    """(concurrency, measured requests, warm-up requests) per level of a closed-loop run.

    ``concurrency`` is comma-separated; ``requests`` one number for every level or one per
    level (``default_requests(c)`` when None); ``warmup`` one number for every level
    (``default_warmup(c)`` when None).
    """
    levels = [int(c) for c in concurrency.split(",") if c.strip()]
    if requests is None:
        counts = [default_requests(c) for c in levels]
    else:
        counts = [int(n) for n in requests.split(",")]
        counts = counts * len(levels) if len(counts) == 1 else counts
    if len(counts) != len(levels):
        raise SystemExit("--requests needs one number, or one per concurrency level")
    warmups = [warmup if warmup is not None else default_warmup(c) for c in levels]
    return list(zip(levels, counts, warmups, strict=True))
