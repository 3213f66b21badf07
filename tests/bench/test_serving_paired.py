"""The paired HTTP-layer benchmark's arithmetic: rounds alternate, the verdict takes medians."""

import pytest

from bench.serving import CHAT, VLLM, Load, Measured, Sample
from bench.serving_paired import Round, order_of, table, verdict, verdict_lines

LOAD = Load("closed", 16)


def measured(system: str, tokens_per_request: int, ttft_s: float, wall_s: float) -> Measured:
    """Four requests of ``tokens_per_request`` tokens each in ``wall_s`` seconds."""
    samples = [Sample(ttft_s=ttft_s, latency_s=1.0, output_tokens=tokens_per_request)] * 4
    return Measured(system, LOAD, wall_s, samples)


def paired(index: int, chat_wall_s: float, chat_ttft_s: float) -> Round:
    """(b) always makes 256 tokens in 1 s at TTFT 100 ms; (a) the same tokens in ``chat_wall_s``."""
    vllm = measured(VLLM, 64, 0.100, 1.0)
    chat = measured(CHAT, 64, chat_ttft_s, chat_wall_s)
    return Round(index, vllm, chat)


def test_the_first_system_alternates_between_rounds() -> None:
    assert [order_of(i) for i in range(3)] == [(VLLM, CHAT), (CHAT, VLLM), (VLLM, CHAT)]


def test_one_disturbed_round_does_not_decide_the_verdict() -> None:
    rounds = [paired(0, 1.0, 0.105), paired(1, 1.6, 0.400), paired(2, 1.02, 0.110)]
    result = verdict(rounds)
    assert result.median_ratio == pytest.approx(1 / 1.02)
    assert result.median_ttft_added_ms == pytest.approx(10.0)
    assert result.throughput_holds and result.ttft_holds
    assert result.ratio_range == pytest.approx((1 / 1.6, 1.0))
    assert result.ttft_range == pytest.approx((5.0, 300.0))


def test_a_consistently_slower_gateway_fails_both_bounds() -> None:
    rounds = [paired(i, 1.1, 0.130) for i in range(4)]
    result = verdict(rounds)
    assert result.median_ratio == pytest.approx(1 / 1.1)
    assert not result.throughput_holds and not result.ttft_holds
    lines = verdict_lines(result, 16)
    assert all("does NOT hold" in line for line in lines)
    assert "0.909" in lines[0] and "+30 ms" in lines[1]


def test_the_table_has_one_row_per_round_with_its_ratio() -> None:
    rows = table([paired(0, 1.0, 0.1), paired(1, 1.25, 0.1)])
    assert len(rows) == 3
    assert [row[1] for row in rows[1:]] == ["(b)", "(a)"]
    assert [row[4] for row in rows[1:]] == ["1.000", "0.800"]


def test_no_rounds_is_an_error_not_a_verdict() -> None:
    with pytest.raises(ValueError):
        verdict([])
