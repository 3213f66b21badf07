"""The serving benchmark's report: machine drift between systems flagged, the figures drawn."""

from pathlib import Path

from bench.lib.serving_report import conditions, plot, probe_drift
from bench.lib.systems import CHAT, LLAMA, VLLM
from bench.lib.workload import Load, Measured, Sample, SystemRun


def run(system: str, copy_gb_s: float, matmul_gflop_s: float) -> SystemRun:
    probe = {"copy_gb_s": copy_gb_s, "matmul_gflop_s": matmul_gflop_s}
    return SystemRun(system, 1.0, "cmd", [], probe)


def test_steady_machine_is_not_flagged() -> None:
    runs = [run(VLLM, 30.0, 180.0), run(LLAMA, 31.5, 190.0), run(CHAT, 29.0, 175.0)]
    assert probe_drift(runs) is None


def test_a_slower_phase_is_flagged_with_its_spread() -> None:
    runs = [run(VLLM, 30.0, 180.0), run(LLAMA, 30.0, 120.0)]
    warning = probe_drift(runs)
    assert warning is not None
    assert "matmul +50%" in warning and "memory copy +0%" in warning
    assert warning in conditions(runs)


def test_runs_without_a_probe_are_left_out() -> None:
    kept = SystemRun(LLAMA, 1.0, "cmd", [])  # from a raw file saved before the probe existed
    assert probe_drift([run(VLLM, 30.0, 180.0), kept]) is None
    assert "machine probe" not in conditions([kept])[0]


def test_the_figures_show_closed_loops_and_poisson_rates(tmp_path: Path) -> None:
    sample = Sample(ttft_s=0.1, output_tokens=8, itl_s=[0.01, 0.02])
    loads = [Load("closed", 1), Load("closed", 4), Load("poisson", 2)]
    measured = [Measured(CHAT, load, 1.0, [sample] * 4) for load in loads]
    paths = plot([SystemRun(CHAT, 1.0, "cmd", measured)], tmp_path)
    assert [p.name for p in paths] == ["serving-throughput.png", "serving-ttft.png"]
    assert all(p.stat().st_size > 0 for p in paths)
