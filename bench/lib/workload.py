"""The serving benchmarks' workload and what it measured: loads (closed loops and Poisson
arrivals), the prompts each step sends, and every request as the client saw it."""

from __future__ import annotations

import itertools
import logging
import os
import random
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import httpx

from bench.lib.concierge import TENANT
from bench.lib.data import load_prompts
from bench.lib.loops import closed_loop, open_loop
from bench.lib.machine import CpuSnapshot
from bench.lib.servers import ServerProcess
from bench.lib.stats import percentile
from bench.lib.streaming import Streamed, chat_body, http_client, stream_chat, stream_support
from bench.lib.systems import SUPPORT

log = logging.getLogger("bench.workload")

SYSTEM_WARMUP = 8
"""Requests each system gets (4 at a time) before its first measured step."""


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

    @classmethod
    def of(cls, streamed: Streamed) -> Sample:
        """Output tokens as the server counted them, else one per text chunk."""
        gaps = streamed.gaps_s
        counted = streamed.completion_tokens
        tokens = counted if counted is not None else len(gaps) + 1
        return cls(
            ttft_s=streamed.ttft_s,
            latency_s=streamed.latency_s,
            output_tokens=tokens if streamed.arrivals else 0,
            prompt_tokens=streamed.prompt_tokens,
            chunks=len(streamed.arrivals),
            itl_s=gaps,
            answered_by=streamed.answered_by,
            timings_ms=streamed.timings_ms,
            error=streamed.error,
        )

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
    probe: dict[str, float] = field(default_factory=dict)  # bench.lib.machine.speed_probe()


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


def parse_loads(concurrency: str, rates: str) -> list[Load]:
    """Closed loops first (comma-separated client counts), then Poisson rates (req/s)."""
    closed = [Load("closed", int(c)) for c in concurrency.split(",") if c.strip()]
    return closed + [Load("poisson", float(r)) for r in rates.split(",") if r.strip()]


def build_plan(
    loads: Sequence[Load], requests: int | None, max_tokens: int, data: Path, seed: int
) -> Plan:
    """Each load with prompts of its own (no request is a prefix-cache hit of an earlier
    one), identical for every system. ``requests`` per load, by default max(24, 4c) closed and
    max(24, 10 x rate) Poisson; a closed loop of c clients is warmed up with c requests."""
    counts: list[int] = []
    for load in loads:
        if requests is not None:
            counts.append(requests)
        elif load.kind == "closed":
            counts.append(max(24, 4 * int(load.value)))
        else:
            counts.append(max(24, int(10 * load.value)))
    warmups = [int(load.value) if load.kind == "closed" else 0 for load in loads]
    needed = SYSTEM_WARMUP + sum(counts) + sum(warmups)
    prompts = iter(load_prompts(data, needed, seed))
    system_warmup = [next(prompts) for _ in range(SYSTEM_WARMUP)]
    arrivals = random.Random(seed + 1)
    steps = []
    for load, count, warm in zip(loads, counts, warmups, strict=True):
        offsets: list[float] = []
        if load.kind == "poisson":
            offsets = list(
                itertools.accumulate(arrivals.expovariate(load.value) for _ in range(count))
            )
        warmup = [next(prompts) for _ in range(warm)]
        steps.append(Step(load, warmup, [next(prompts) for _ in range(count)], offsets))
    return Plan(system_warmup, steps, max_tokens)


Send = Callable[[str], Awaitable[Sample]]
"""Sends one prompt to a system and times it."""


def bench_client(base_url: str) -> httpx.AsyncClient:
    """A new connection per request, for every system (llama-server drops idle ones)."""
    return http_client(base_url, connections=512, keepalive=0, timeout_s=900.0, tenant=TENANT)


def chat_sender(client: httpx.AsyncClient, model: str, max_tokens: int) -> Send:
    """Streaming OpenAI chat completions: greedy, exactly ``max_tokens`` tokens."""

    async def send(prompt: str) -> Sample:
        return Sample.of(await stream_chat(client, chat_body(model, prompt, max_tokens)))

    return send


def support_sender(client: httpx.AsyncClient, customers: Sequence[str]) -> Send:
    """Streaming support replies, the demo customers in rotation, a new conversation each."""
    rotation = itertools.cycle(customers)

    async def send(prompt: str) -> Sample:
        body = {"customer_id": next(rotation), "message": prompt, "stream": True}
        return Sample.of(await stream_support(client, body))

    return send


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
    before = CpuSnapshot.now(server)
    started = time.perf_counter()
    if step.load.kind == "closed":
        samples = await closed_loop(send, step.prompts, int(step.load.value))
    else:
        samples = await open_loop(send, step.prompts, step.offsets_s)
    wall = time.perf_counter() - started
    others = CpuSnapshot.now(server).others_since(before)
    result = Measured(system, step.load, wall, samples, load_1m, others)
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
