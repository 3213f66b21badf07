"""The paired benchmark's arithmetic: rounds alternate, the verdict takes medians, and the peer
(vLLM serve or llama-server) decides the target, the command and the section written."""

import argparse
import json
from pathlib import Path
from typing import Any

import pytest

from bench import serving_paired
from bench.lib import systems
from bench.lib.paths import DOC_PATH
from bench.lib.systems import CHAT, LLAMA, VLLM, Engine
from bench.lib.workload import Load, Measured, Plan, Sample, Step
from bench.serving_paired import (
    LLAMA_PEER,
    PEERS,
    VLLM_PEER,
    Round,
    order_of,
    parse_args,
    report,
    save_raw,
    start_peer,
    table,
    verdict,
    verdict_lines,
)

LOAD = Load("closed", 16)
ENGINE = Engine("m", Path("model"), Path("m.Q4_1.gguf"), 2048, 2**30, 128, 2048, False, 0)


def measured(system: str, tokens_per_request: int, ttft_s: float, wall_s: float) -> Measured:
    """Four requests of ``tokens_per_request`` tokens each in ``wall_s`` seconds."""
    samples = [Sample(ttft_s=ttft_s, latency_s=1.0, output_tokens=tokens_per_request)] * 4
    return Measured(system, LOAD, wall_s, samples)


def paired(index: int, chat_wall_s: float, chat_ttft_s: float, peer: str = VLLM) -> Round:
    """The peer always makes 256 tokens in 1 s at TTFT 100 ms; (a) the same in ``chat_wall_s``."""
    other = measured(peer, 64, 0.100, 1.0)
    chat = measured(CHAT, 64, chat_ttft_s, chat_wall_s)
    return Round(index, other, chat)


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


def test_llama_peer_alternates_the_same_way() -> None:
    assert [order_of(i, LLAMA) for i in range(3)] == [(LLAMA, CHAT), (CHAT, LLAMA), (LLAMA, CHAT)]
    assert [paired(i, 1.0, 0.1, LLAMA).first for i in range(2)] == [LLAMA, CHAT]


def test_against_llama_server_parity_holds_and_ttft_is_not_judged() -> None:
    rounds = [
        paired(0, 1.0, 0.400, LLAMA),
        paired(1, 0.9, 0.400, LLAMA),
        paired(2, 1.2, 0.4, LLAMA),
    ]
    result = verdict(rounds, LLAMA_PEER)
    assert result.median_ratio == pytest.approx(1.0)
    assert result.throughput_holds
    assert result.median_ttft_added_ms == pytest.approx(300.0)
    assert result.ttft_holds is None  # +300 ms would fail vLLM serve's 15 ms bound
    throughput, ttft = verdict_lines(result, 4)
    assert "c=4" in throughput and ">= 100% of llama-server's" in throughput
    assert "**holds**" in throughput
    assert "**not judged**" in ttft and "+300 ms" in ttft


def test_against_llama_server_a_few_percent_short_does_not_hold() -> None:
    rounds = [paired(i, 1.03, 0.050, LLAMA) for i in range(4)]
    result = verdict(rounds, LLAMA_PEER)
    assert result.median_ratio == pytest.approx(1 / 1.03)
    assert not result.throughput_holds  # would hold against vLLM serve's 95 % floor
    assert verdict(rounds, VLLM_PEER).throughput_holds
    assert "does NOT hold" in verdict_lines(result, 4)[0]


def test_the_llama_table_names_llama_server_c() -> None:
    rows = table([paired(0, 1.0, 0.1, LLAMA), paired(1, 0.8, 0.1, LLAMA)], LLAMA_PEER)
    assert rows[0][2] == "(c) tok/s" and rows[0][4] == "(a)/(c)"
    assert [row[1] for row in rows[1:]] == ["(c)", "(a)"]
    assert [row[4] for row in rows[1:]] == ["1.000", "1.250"]


def test_peer_option_defaults_to_vllm() -> None:
    assert parse_args([]).peer == "vllm"
    args = parse_args(["--peer", "llama", "--concurrency", "4"])
    assert PEERS[args.peer] is LLAMA_PEER
    assert args.slots is None and args.threads >= 1


def test_each_peer_has_its_own_section_and_files() -> None:
    assert VLLM_PEER.marks == ("<!-- serving-paired:begin -->", "<!-- serving-paired:end -->")
    assert LLAMA_PEER.marks == (
        "<!-- serving-paired-llama:begin -->",
        "<!-- serving-paired-llama:end -->",
    )
    assert (VLLM_PEER.stem, LLAMA_PEER.stem) == ("serving-paired", "serving-paired-llama")
    doc = DOC_PATH.read_text(encoding="utf-8")
    for peer in (VLLM_PEER, LLAMA_PEER):
        assert all(mark in doc for mark in peer.marks)


class FakeServer:
    """Records what ``ServerProcess`` would have started."""

    def __init__(self, command: list[str], log_path: Path, port: int, env: Any = None) -> None:
        self.command, self.log_path, self.port, self.env = command, log_path, port, env


def test_llama_peer_starts_llama_server_as_the_serving_benchmark_does(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setattr(systems, "ServerProcess", FakeServer)
    monkeypatch.setattr(serving_paired, "ensure_llama_server", lambda: Path("llama-server"))
    monkeypatch.setattr(systems, "free_port", lambda: 8080)
    monkeypatch.setattr(systems, "cpu_flags", lambda: {"avx512f", "amx_int8"})
    step = Step(Load("closed", 4), [], [], [])
    plan = Plan([], [step, step], 16)
    args = argparse.Namespace(slots=None, threads=2)
    server, shown = start_peer(LLAMA_PEER, ENGINE, args, plan, Path("out/serving-paired-llama-x"))
    assert isinstance(server, FakeServer)
    expected = systems.llama_command(Path("llama-server"), ENGINE, 8080, 32, 2, amx=True)
    assert server.command == expected and expected[-1] == "--no-repack"
    assert server.log_path == Path("out/serving-paired-llama-x-llama.log")
    assert shown.startswith("llama-server --model m.Q4_1.gguf")


def test_the_llama_report_fills_its_own_section(tmp_path: Path) -> None:
    rounds = [paired(i, 0.95, 0.1, LLAMA) for i in range(2)]
    args = argparse.Namespace(
        concurrency=4, argv=["--peer", "llama"], threads=2, max_tokens=64, seed=0
    )
    info = {"cpu_model": "cpu", "cpus_usable": 2, "cpu_count": 2, "torch": "t", "vllm": "v"}
    text, md = report(args, LLAMA_PEER, rounds, ENGINE, "- cmds", info, 60.0)
    lines = md.splitlines()
    assert lines[:2] == [LLAMA_PEER.marks[0], LLAMA_PEER.heading]
    assert lines[-1] == LLAMA_PEER.marks[1]
    assert "(c) = llama-server" in md and "m.Q4_1.gguf" in md
    assert "keeps >= 100% of llama-server's output tokens/s: holds" in text
    path = tmp_path / "raw.json"
    save_raw(path, args, rounds, info)
    raw = json.loads(path.read_text(encoding="utf-8"))["rounds"][0]
    assert set(raw) >= {LLAMA, CHAT, "first", "ratio"} and raw["first"] == LLAMA
