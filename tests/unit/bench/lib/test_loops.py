"""Request loops: a closed loop keeps exactly N requests in flight, an open loop sends each at
its arrival time; results come back in the order of the items either way."""

import asyncio
import time

import pytest

from bench.lib.loops import closed_levels, closed_loop, open_loop


class Recorder:
    """A fake server: answers after ``delay_s`` and remembers how many requests overlapped."""

    def __init__(self, delay_s: float = 0.0) -> None:
        self.delay_s = delay_s
        self.in_flight = 0
        self.most = 0
        self.sent_at: dict[int, float] = {}

    async def send(self, item: int) -> str:
        self.sent_at[item] = time.perf_counter()
        self.in_flight += 1
        self.most = max(self.most, self.in_flight)
        await asyncio.sleep(self.delay_s * (item % 3))  # uneven, so answers finish out of order
        self.in_flight -= 1
        return f"answer {item}"


async def test_a_closed_loop_keeps_n_in_flight_and_answers_in_order() -> None:
    server = Recorder(0.002)
    results = await closed_loop(server.send, list(range(10)), concurrency=3)
    assert results == [f"answer {i}" for i in range(10)]
    assert server.most == 3


async def test_more_clients_than_items_sends_each_item_once() -> None:
    server = Recorder()
    assert await closed_loop(server.send, [0, 1], concurrency=8) == ["answer 0", "answer 1"]
    assert sorted(server.sent_at) == [0, 1]


async def test_an_open_loop_sends_at_the_arrival_times_whatever_is_running() -> None:
    server = Recorder(0.3)
    started = time.perf_counter()
    results = await open_loop(server.send, [0, 1, 2], [0.0, 0.02, 0.04])
    assert results == ["answer 0", "answer 1", "answer 2"]
    offsets = [server.sent_at[i] - started for i in range(3)]
    assert offsets[1] >= 0.02 and offsets[2] >= 0.04
    assert offsets[2] < 0.3  # not held back by request 1, which runs until 0.32 s
    assert server.most >= 2


def test_levels_take_their_defaults_from_the_concurrency() -> None:
    levels = closed_levels("1,16", None, None, lambda c: max(16, 4 * c), lambda c: c)
    assert levels == [(1, 16, 1), (16, 64, 16)]


def test_one_request_count_for_every_level_or_one_each() -> None:
    assert closed_levels("1,8", "5", 2, lambda c: 0, lambda c: 0) == [(1, 5, 2), (8, 5, 2)]
    assert closed_levels("1,8", "5,7", None, lambda c: 0, lambda c: c) == [(1, 5, 1), (8, 7, 8)]
    with pytest.raises(SystemExit):
        closed_levels("1,8,16", "5,7", None, lambda c: 0, lambda c: c)


async def test_think_time_idles_each_client_between_its_calls() -> None:
    server = Recorder()
    await closed_loop(server.send, [0, 1, 2], concurrency=1, think_s=0.05)
    gaps = [server.sent_at[i + 1] - server.sent_at[i] for i in range(2)]
    assert min(gaps) >= 0.05
