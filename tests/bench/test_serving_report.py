"""The serving benchmark's report and commands: drift flagged, llama-server kept off AMX."""

from pathlib import Path

from bench.serving import (
    CHAT,
    LLAMA,
    VLLM,
    Engine,
    SystemRun,
    conditions,
    llama_command,
    probe_drift,
)


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


def test_llama_server_avoids_ggml_amx_only_on_amx_cpus() -> None:
    engine = Engine("m", Path("model"), Path("m.gguf"), 2048, 2**30, 128, 2048, False, 0)
    with_amx = llama_command(Path("llama-server"), engine, 8080, 32, 2, amx=True)
    without = llama_command(Path("llama-server"), engine, 8080, 32, 2, amx=False)
    assert with_amx == [*without, "--no-repack"]
    assert without[without.index("--parallel") + 1] == "32"
    assert without[without.index("--ctx-size") + 1] == str(32 * 2048)
