"""Which upstream a remote request goes to: a conversation's own, or the least busy."""

from __future__ import annotations

from collections import Counter

import pytest

from models.engine.openai_remote import AFFINITY_SLACK, OpenAIRemoteEngine, RemoteConfig

URLS = ("http://gpu-a:8000", "http://gpu-b:8000", "http://gpu-c:8000")


def _engine(urls: tuple[str, ...] = URLS) -> OpenAIRemoteEngine:
    engine = OpenAIRemoteEngine(RemoteConfig(base_urls=urls))
    for upstream in engine.upstreams:
        upstream.healthy = True
    return engine


def test_a_conversation_keeps_its_upstream_and_conversations_spread() -> None:
    engine = _engine()
    owners = {f"conv-{n}": engine.pick(set(), f"conv-{n}").base_url for n in range(300)}
    assert all(engine.pick(set(), key).base_url == owner for key, owner in owners.items())
    spread = Counter(owners.values())
    assert len(spread) == 3 and min(spread.values()) > 60, spread


def test_a_lost_upstream_moves_only_its_own_conversations() -> None:
    whole = _engine()
    before = {f"conv-{n}": whole.pick(set(), f"conv-{n}").base_url for n in range(300)}
    without_b = _engine((URLS[0], URLS[2]))
    after = {key: without_b.pick(set(), key).base_url for key in before}
    moved = {key for key in before if before[key] != after[key]}
    assert moved == {key for key, owner in before.items() if owner.startswith("http://gpu-b")}


def test_a_down_or_busy_upstream_spills_to_the_keys_next_and_failover_excludes() -> None:
    engine = _engine()
    key = "conv-7"
    own = engine.pick(set(), key)
    own.healthy = False
    second = engine.pick(set(), key)
    assert second is not own and engine.pick(set(), key) is second  # the same spill each time
    own.healthy = True
    own.in_flight = AFFINITY_SLACK  # a few more than the idle others: still its own
    assert engine.pick(set(), key) is own
    own.in_flight = AFFINITY_SLACK + 1
    assert engine.pick(set(), key) is second
    own.in_flight = 0
    assert engine.pick({own.base_url}, key) is second  # a failed try moves on, not back


def test_without_a_key_the_least_busy_upstream_serves() -> None:
    engine = _engine()
    busy, idle, _ = engine.upstreams
    busy.in_flight, idle.in_flight = 3, 0
    engine.upstreams[2].in_flight = 1
    assert engine.pick(set()) is idle


@pytest.mark.parametrize("key", ["", None])
def test_an_empty_key_is_no_key(key: str | None) -> None:
    engine = _engine()
    engine.upstreams[0].in_flight = 5
    engine.upstreams[1].in_flight = 5
    assert engine.pick(set(), key) is engine.upstreams[2]
