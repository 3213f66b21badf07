"""The serving workload: prompts drawn once per seed and never repeated across steps, Poisson
arrival times, and what a measured step counts."""

import math
from pathlib import Path

import pytest

from bench.lib.streaming import Streamed
from bench.lib.workload import SYSTEM_WARMUP, Load, Measured, Sample, build_plan, parse_loads


@pytest.fixture
def bitext(tmp_path: Path) -> Path:
    path = tmp_path / "bitext.csv"
    rows = ["flags,instruction,category,intent,response"]
    rows += [f"B,question {i},ORDER,track_order,answer {i}" for i in range(400)]
    path.write_text("\n".join(rows) + "\n", encoding="utf-8")
    return path


def test_loads_are_closed_loops_then_poisson_rates() -> None:
    assert parse_loads("1,4", "0.5") == [
        Load("closed", 1),
        Load("closed", 4),
        Load("poisson", 0.5),
    ]
    assert [load.label for load in parse_loads("16", "2")] == ["c=16", "2 req/s"]


def test_every_prompt_of_a_plan_is_its_own(bitext: Path) -> None:
    plan = build_plan(parse_loads("1,4", "2"), None, 64, bitext, seed=0)
    prompts = plan.warmup + [p for step in plan.steps for p in step.warmup + step.prompts]
    assert len(prompts) == len(set(prompts))  # no request is a prefix-cache hit of another
    assert len(plan.warmup) == SYSTEM_WARMUP
    assert [len(step.prompts) for step in plan.steps] == [24, 24, 24]
    assert [len(step.warmup) for step in plan.steps] == [1, 4, 0]


def test_the_same_seed_draws_the_same_plan(bitext: Path) -> None:
    loads = parse_loads("2", "1")
    first = build_plan(loads, 4, 16, bitext, seed=7)
    assert build_plan(loads, 4, 16, bitext, seed=7) == first
    assert build_plan(loads, 4, 16, bitext, seed=8) != first


def test_poisson_arrivals_are_increasing_offsets(bitext: Path) -> None:
    (step,) = build_plan(parse_loads("", "4"), 40, 16, bitext, seed=0).steps
    assert len(step.offsets_s) == 40 and step.offsets_s == sorted(step.offsets_s)
    assert 40 / 4 / 3 < step.offsets_s[-1] < 40 / 4 * 3  # about 10 s at 4 req/s


def streamed(arrivals: list[float], completion_tokens: int | None) -> Streamed:
    return Streamed(began=0.0, ended=2.0, arrivals=arrivals, completion_tokens=completion_tokens)


def test_a_sample_counts_the_servers_tokens_else_its_text_chunks() -> None:
    sample = Sample.of(streamed([0.1, 0.2, 0.4], 5))
    assert (sample.ttft_s, sample.output_tokens, sample.chunks) == (0.1, 5, 3)
    assert sample.itl_s == pytest.approx([0.1, 0.2])
    assert Sample.of(streamed([0.1, 0.2, 0.4], None)).output_tokens == 3
    assert Sample.of(streamed([], 5)).output_tokens == 0


def test_failed_requests_and_handovers_are_counted_apart() -> None:
    good = Sample(ttft_s=0.1, output_tokens=10, itl_s=[0.01, 0.02])
    slow = Sample(ttft_s=2.0, output_tokens=10, itl_s=[0.01])
    handover = Sample(ttft_s=0.1, output_tokens=5, answered_by="handover")
    failed = Sample(error="HTTP 503")
    summary = Measured("s", Load("closed", 4), 2.0, [good, slow, handover, failed]).summary()
    assert (summary["requests"], summary["counted"]) == (4, 2)
    assert (summary["errors"], summary["handovers"]) == (1, 1)
    assert summary["tokens_per_s"] == 10.0 and summary["goodput_rps"] == 0.5
    assert summary["ttft_p50_ms"] == pytest.approx(1050.0)
    assert math.isnan(Measured("s", Load("closed", 1), 1.0, [failed]).summary()["ttft_p50_ms"])
