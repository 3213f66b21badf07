"""How the serving benchmarks start their peers: llama-server kept off AMX, a slot per client."""

from pathlib import Path

from bench.lib.systems import Engine, llama_command, llama_slots
from bench.lib.workload import Load, Plan, Step


def test_llama_server_avoids_ggml_amx_only_on_amx_cpus() -> None:
    engine = Engine("m", Path("model"), Path("m.gguf"), 2048, 2**30, 128, 2048, False, 0)
    with_amx = llama_command(Path("llama-server"), engine, 8080, 32, 2, amx=True)
    without = llama_command(Path("llama-server"), engine, 8080, 32, 2, amx=False)
    assert with_amx == [*without, "--no-repack"]
    assert without[without.index("--parallel") + 1] == "32"
    assert without[without.index("--ctx-size") + 1] == str(32 * 2048)


def test_llama_slots_cover_the_largest_closed_loop() -> None:
    steps = [Step(Load("closed", c), [], [], []) for c in (4, 64)]
    assert llama_slots(None, Plan([], steps, 16)) == 64
    assert llama_slots(None, Plan([], steps[:1], 16)) == 32
    assert llama_slots(8, Plan([], steps, 16)) == 8
    assert llama_slots(None, Plan([], [], 16)) == 32  # Poisson rates only
