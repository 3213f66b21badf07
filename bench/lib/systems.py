"""The systems the serving benchmarks compare, started the same way by every benchmark:

* (a) "Concierge chat": ``concierge serve``, streaming ``/v1/chat/completions``;
* (b) "vLLM serve": vLLM's OpenAI server with the same engine settings;
* (c) "llama-server": llama.cpp's server on the GGUF the default model is converted from;
* (d) "Concierge support": the same ``concierge serve``, streaming ``/v1/support/reply``.
"""

from __future__ import annotations

import argparse
import os
import shlex
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.lib.concierge import TENANT
from bench.lib.machine import cpu_flags, speed_probe, wait_for_idle
from bench.lib.paths import SHARED_VAR
from bench.lib.servers import ServerProcess, free_port
from models.engine.vllm_local import RESERVED_CORES_ENV, reserved_cores, usable_cores
from models.prepare import prepare_model
from models.registry import DEFAULT_GENERATION_MODEL, ModelRegistry, PackagedGGUF

if TYPE_CHECKING:
    from bench.lib.workload import Plan

CHAT, VLLM, LLAMA, SUPPORT = "concierge-chat", "vllm-serve", "llama-server", "concierge-support"
LABELS = {
    CHAT: "(a) Concierge chat",
    VLLM: "(b) vLLM serve",
    LLAMA: "(c) llama-server",
    SUPPORT: "(d) Concierge support",
}


@dataclass(frozen=True)
class Engine:
    """Engine settings shared by (a), (b) and (d); llama-server gets their equivalents."""

    model_name: str
    model_dir: Path
    gguf: Path
    max_model_len: int
    kv_cache_bytes: int
    max_num_seqs: int
    max_num_batched_tokens: int
    eager: bool
    reserved_cores: int | None  # vLLM CPU: cores left to the API process; None = vLLM's own

    @property
    def settings(self) -> str:
        """The vLLM settings as the reports name them."""
        return (
            f"{'eager' if self.eager else 'torch.compile'}, max_model_len {self.max_model_len}, "
            f"KV cache {self.kv_cache_bytes / 2**30:g} GiB, max_num_seqs {self.max_num_seqs}, "
            f"max_num_batched_tokens {self.max_num_batched_tokens}"
        )


def make_engine(args: argparse.Namespace) -> Engine:
    """The engine settings of the command line, on the default model converted under var/."""
    spec = ModelRegistry().resolve(DEFAULT_GENERATION_MODEL)
    if not isinstance(spec.source, PackagedGGUF):
        raise SystemExit(f"{spec.name} does not come from a GGUF; llama-server needs one")
    return Engine(
        model_name=spec.name,
        model_dir=Path(prepare_model(spec, SHARED_VAR).location),
        gguf=spec.source.locate(),
        max_model_len=args.max_model_len,
        kv_cache_bytes=int(args.kv_cache_gib * 2**30),
        max_num_seqs=args.max_num_seqs,
        max_num_batched_tokens=args.max_num_batched_tokens,
        eager=args.eager,
        reserved_cores=reserved_cores(args.cpu_reserved_cores),
    )


def quiet_speed_probe() -> dict[str, float]:
    """The machine probe, once the previous server's teardown has stopped using the CPU."""
    wait_for_idle(max_wait_s=60, threshold_cores=0.1)
    return speed_probe()


# -- (b) vLLM serve -----------------------------------------------------------------------------


def vllm_env(engine: Engine) -> dict[str, str]:
    """vLLM serve gets the thread setting Concierge gives its own engine (same settings)."""
    env = dict(os.environ)
    if engine.reserved_cores is not None:
        env[RESERVED_CORES_ENV] = str(engine.reserved_cores)
    return env


def vllm_command(engine: Engine, port: int) -> list[str]:
    """vLLM's OpenAI server as a module: the CPU build's ``vllm`` script cannot find its own
    metadata."""
    command = [
        sys.executable,
        "-m",
        "vllm.entrypoints.openai.api_server",
        "--model",
        str(engine.model_dir),
        "--served-model-name",
        engine.model_name,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--dtype",
        "bfloat16",
        "--max-model-len",
        str(engine.max_model_len),
        "--kv-cache-memory-bytes",
        str(engine.kv_cache_bytes),
        "--max-num-seqs",
        str(engine.max_num_seqs),
        "--max-num-batched-tokens",
        str(engine.max_num_batched_tokens),
    ]
    return [*command, "--enforce-eager"] if engine.eager else command


def shown_vllm_command(engine: Engine, command: Sequence[str]) -> str:
    """``command`` as started, with the thread setting ``vllm_env`` gave it."""
    if engine.reserved_cores is not None:
        command = [f"{RESERVED_CORES_ENV}={engine.reserved_cores}", *command]
    return shlex.join(command)


def start_vllm(engine: Engine, log_path: Path) -> tuple[ServerProcess, str]:
    """vLLM serve started (not ready yet), and its command as the reports show it."""
    port = free_port()
    command = vllm_command(engine, port)
    server = ServerProcess(command, log_path, port, vllm_env(engine))
    return server, shown_vllm_command(engine, command)


# -- (c) llama-server ---------------------------------------------------------------------------


def llama_command(
    binary: Path, engine: Engine, port: int, slots: int, threads: int, amx: bool
) -> list[str]:
    """Slots share a context of ``slots * max_model_len``: each gets the same context length
    as the vLLM engines; continuous batching and prompt caching are on by default.

    On a CPU with AMX, ggml puts Q4_1 weights in its AMX buffer, and its AMX matmul crashed
    llama-server with SIGSEGV in its start-up warm-up on this project's Xeon machines (llama.cpp
    from llama-cpp-python 0.3.36, 2026-12-01). ``--no-repack`` keeps the weights in the plain
    CPU buffer; ggml has no other repacked layout for Q4_1, so without AMX it changes nothing
    and is not passed."""
    command = [
        str(binary),
        "--model",
        str(engine.gguf),
        "--alias",
        engine.model_name,
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--parallel",
        str(slots),
        "--ctx-size",
        str(slots * engine.max_model_len),
        "--threads",
        str(threads),
        "--threads-batch",
        str(threads),
        "--no-webui",
    ]
    return [*command, "--no-repack"] if amx else command


def llama_slots(requested: int | None, plan: Plan) -> int:
    """``requested``, else max(32, the plan's largest closed loop): each client of a closed
    loop gets a slot of its own, so no request waits in llama-server's queue for one."""
    closed = [int(step.load.value) for step in plan.steps if step.load.kind == "closed"]
    return requested or max([32, *closed])


def llama_run_command(
    binary: Path, engine: Engine, port: int, args: argparse.Namespace, plan: Plan
) -> list[str]:
    """``llama_command`` with the run's ``--slots`` and ``--threads`` (``add_system_arguments``),
    ``--no-repack`` where the CPU has AMX: one place for every benchmark that starts it."""
    amx = "amx_int8" in cpu_flags()
    return llama_command(binary, engine, port, llama_slots(args.slots, plan), args.threads, amx)


def start_llama(
    binary: Path, engine: Engine, args: argparse.Namespace, plan: Plan, log_path: Path
) -> tuple[ServerProcess, str]:
    """llama-server (``binary``, see ``bench.lib.llama_server``) started, not ready yet, and
    its command as the reports show it."""
    port = free_port()
    command = llama_run_command(binary, engine, port, args, plan)
    return ServerProcess(command, log_path, port), shlex.join(command)


# -- (a) and (d) Concierge ------------------------------------------------------------------------


def concierge_overrides(args: argparse.Namespace, engine: Engine, data_dir: Path) -> dict[str, Any]:
    """No queue or deadline of Concierge's may refuse a benchmark request."""
    return {
        "engine": "vllm_local",
        "data_dir": data_dir,
        "model": DEFAULT_GENERATION_MODEL,
        "served_model_name": engine.model_name,
        "dtype": "bfloat16",
        "enforce_eager": engine.eager,
        "max_model_len": engine.max_model_len,
        "kv_cache_memory_gib": engine.kv_cache_bytes / 2**30,
        "max_num_seqs": engine.max_num_seqs,
        "max_num_batched_tokens": engine.max_num_batched_tokens,
        "max_queued_requests": 4096,
        "request_deadline_s": 900,
        "reply_max_tokens": args.max_tokens,
        "default_tenant": TENANT,
    } | ({} if engine.reserved_cores is None else {"cpu_reserved_cores": engine.reserved_cores})


# -- command line -------------------------------------------------------------------------------


def add_system_arguments(parser: argparse.ArgumentParser) -> None:
    """The settings every serving benchmark starts its systems with: the vLLM engine that
    every vLLM-backed system of a run shares (see ``Engine``), and llama-server's own
    (``llama_run_command``; the rest follow ``Engine``)."""
    parser.add_argument("--eager", action="store_true", help="skip torch.compile")
    parser.add_argument("--max-model-len", type=int, default=2048)
    parser.add_argument("--kv-cache-gib", type=float, default=2.0)
    parser.add_argument("--max-num-seqs", type=int, default=128, help="vLLM serve's CPU default")
    parser.add_argument("--max-num-batched-tokens", type=int, default=2048, help="same")
    parser.add_argument(
        "--cpu-reserved-cores",
        type=int,
        default=None,
        help="cores vLLM's CPU backend leaves to the API process "
        "(default: Concierge's choice for this machine)",
    )
    parser.add_argument(
        "--slots", type=int, default=None, help="llama-server slots (default max(32, c))"
    )
    parser.add_argument("--threads", type=int, default=usable_cores(), help="llama-server threads")
