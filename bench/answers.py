"""The answer benchmark: whole customer conversations played against a running Concierge
over HTTP and scored by what a customer and the business would check (docs/answers.md).

For each suite (``bench/suites/<name>/``) the tenant is set up through the public API,
as an integration would: the tenant file (``PUT /admin/tenants/{tenant}``), the KB
(multipart upload, reindex waited for), the catalog, and before every scenario the
scenario's customer is erased and imported again, so scenarios do not see each other's
conversations. Each turn is a ``POST /v1/support/reply`` with ``include_prompt`` (the
"fact in the prompt" measure), the suite's ``as_of`` as "today", and a seed fixed per
scenario and run (replies sample at the configured temperature). Every field is scored
by ``bench/lib/answer_scoring.py``; the report (``bench/lib/answers_report.py``) goes to
its suite's section of docs/answers.md, and every response to
bench/out/answers-<timestamp>.json.

    make bench-answers                                   # every suite, two runs
    .venv/bin/python -m bench.answers --suite demo --runs 1 --limit 5   # smoke
    .venv/bin/python -m bench.answers --url http://127.0.0.1:8000 --api-key ...
    .venv/bin/python -m bench.answers --prompt-only   # citations and facts in the prompt

``--prompt-only`` measures only what is decided before the first token (the right article
cited, the facts in the prompt) with replies cut to 16 tokens: a few minutes for both
suites, for trying retrieval and prompt changes; it does not touch docs/answers.md.

Without ``--url`` it starts ``concierge serve`` (the in-process vLLM engine and the shipped
model) on a data directory of its own, borrowing ./var's converted model.
"""

from __future__ import annotations

import argparse
import logging
import os
import shutil
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import httpx

from bench.lib.answer_scoring import score_scenario
from bench.lib.answers_report import (
    ANSWERS_DOC,
    PlayedScenario,
    SuiteRun,
    render_prompt_figures,
    render_suite,
    write_suite_section,
)
from bench.lib.concierge import ConciergeServer, link_shared_artifacts, run_cli
from bench.lib.paths import OUT_DIR, REPO, SHARED_VAR
from bench.lib.report import raw_args, shown_command, start_run, write_json
from bench.lib.suite_api import (
    TENANT_HEADER,
    Client,
    restore_customer,
    scenario_seed,
    set_up_tenant,
)
from bench.lib.suites import Suite, all_suites, load_suite

log = logging.getLogger("bench.answers")


def play(client: Client, suite: Suite, scenario: dict[str, Any], run: int) -> PlayedScenario:
    customer_id = str(scenario["customer_id"])
    restore_customer(client, suite, customer_id)
    seed = scenario_seed(str(scenario["id"]), run)
    responses: list[dict[str, Any] | None] = []
    errors: list[str] = []
    latencies: list[float] = []
    conversation_id = None
    for message in scenario["turns"]:
        body = {
            "customer_id": customer_id,
            "message": message,
            "include_prompt": True,
            "as_of": suite.as_of.isoformat(),
            "seed": seed,
        }
        if conversation_id:
            body["conversation_id"] = conversation_id
        started = time.perf_counter()
        response = client.http.post(
            "/v1/support/reply", json=body, headers={TENANT_HEADER: suite.tenant}
        )
        latencies.append(time.perf_counter() - started)
        if response.status_code != 200:
            responses.append(None)
            errors.append(f"{response.status_code} {response.text[:300]}")
            continue
        answer = response.json()
        conversation_id = answer.get("conversation_id") or conversation_id
        responses.append(answer)
    others = [s for cid, s in suite.secrets().items() if cid != customer_id]
    score = score_scenario(scenario, responses, suite.categories(), others)
    composed = None
    if any(((r or {}).get("grounding") or {}).get("composed") for r in responses):
        composed = score_scenario(
            scenario, with_composed_answers(responses), suite.categories(), others
        )
    prompts = [r.pop("prompt", None) or [] for r in responses if r]
    if responses and responses[-1] is not None:
        responses[-1]["prompt"] = prompts[-1] if prompts else []
    return PlayedScenario(
        str(scenario["id"]), run, seed, responses, errors, latencies, score, composed
    )


def with_composed_answers(
    responses: list[dict[str, Any] | None],
) -> list[dict[str, Any] | None]:
    """The responses as ``reply_check=fallback`` would have sent them: each failed reply
    replaced by the composed answer a ``mark`` server reports beside it. Approximate for
    a multi-turn scenario: its later turns remembered the model's reply, not this one."""
    replaced: list[dict[str, Any] | None] = []
    for response in responses:
        grounding = (response or {}).get("grounding") or {}
        if response is not None and grounding.get("composed"):
            response = {**response, "reply": grounding["composed"]}
        replaced.append(response)
    return replaced


def git_commit() -> str:
    done = subprocess.run(
        ["git", "rev-parse", "--short", "HEAD"], cwd=REPO, capture_output=True, text=True
    )
    dirty = subprocess.run(
        ["git", "status", "--porcelain"], cwd=REPO, capture_output=True, text=True
    )
    commit = done.stdout.strip() or "unknown"
    return commit + ("+changes" if dirty.stdout.strip() else "")


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0] if __doc__ else None)
    parser.add_argument("--suite", action="append", help="suite name or folder (default: all)")
    parser.add_argument("--runs", type=int, default=2, help="runs of every scenario")
    parser.add_argument("--limit", type=int, default=0, help="first N scenarios of each suite")
    parser.add_argument(
        "--tag",
        action="append",
        default=[],
        help="only the scenarios with one of these tags (e.g. language-fr); repeatable",
    )
    parser.add_argument("--url", help="a running Concierge (default: start one)")
    parser.add_argument("--api-key", default=os.environ.get("CONCIERGE_API_KEY"))
    parser.add_argument("--data-dir", type=Path, help="data directory of the started server")
    parser.add_argument("--max-model-len", type=int, default=2048)
    parser.add_argument("--kv-cache-gib", type=float, default=1.0)
    parser.add_argument("--ready-timeout", type=float, default=420.0)
    parser.add_argument(
        "--setting",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a CONCIERGE_* setting of the started server, e.g. reply_max_tokens=128",
    )
    parser.add_argument("--no-doc", action="store_true", help="do not update docs/answers.md")
    parser.add_argument(
        "--prompt-only",
        action="store_true",
        help="one run with 16-token replies; report citations and facts in the prompt only",
    )
    args = parser.parse_args(argv)
    if args.prompt_only:
        args.runs = 1
        args.no_doc = True
        if not any(s.lower().startswith("reply_max_tokens=") for s in args.setting):
            args.setting.append("reply_max_tokens=16")
    return args


def server_overrides(args: argparse.Namespace, data_dir: Path) -> dict[str, Any]:
    overrides: dict[str, Any] = {
        "data_dir": data_dir,
        "engine": "vllm_local",
        "max_model_len": args.max_model_len,
        "kv_cache_memory_gib": args.kv_cache_gib,
    }
    for item in args.setting:
        name, _, value = item.partition("=")
        overrides[name.strip().lower()] = value
    return overrides


def run_suites(client: Client, suites: list[Suite], args: argparse.Namespace) -> list[SuiteRun]:
    runs = []
    for suite in suites:
        set_up_tenant(client, suite)
        scenarios = [
            s for s in suite.scenarios if not args.tag or set(args.tag) & set(s.get("tags", []))
        ]
        scenarios = scenarios[: args.limit] if args.limit else scenarios
        played: list[PlayedScenario] = []
        for run in range(args.runs):
            for number, scenario in enumerate(scenarios, start=1):
                result = play(client, suite, scenario, run)
                played.append(result)
                verdict = (
                    "pass" if result.score.passed else "FAIL " + ",".join(result.score.failing)
                )
                log.info(
                    "%s run %d %d/%d %s: %s",
                    suite.name,
                    run + 1,
                    number,
                    len(scenarios),
                    result.scenario_id,
                    verdict,
                )
        runs.append(SuiteRun(suite, scenarios, played, args.runs))
    return runs


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    stamp = start_run()
    suites = (
        [load_suite(Path(name)) for name in args.suite]
        if args.suite
        else [load_suite(path) for path in all_suites()]
    )
    server = None
    data_dir = args.data_dir
    temporary = data_dir is None and not args.url
    if not args.url:
        data_dir = data_dir or Path(tempfile.mkdtemp(prefix="concierge-answers-"))
        data_dir.mkdir(parents=True, exist_ok=True)
        run_cli(SHARED_VAR, "models", "prepare")
        link_shared_artifacts(data_dir, SHARED_VAR)
        overrides = server_overrides(args, data_dir)
        server = ConciergeServer(overrides, OUT_DIR / f"answers-{stamp}-server.log")
    try:
        base_url = args.url or (server.url if server else "")
        if server is not None:
            model = server.wait_model(args.ready_timeout)
        else:
            model = httpx.get(f"{base_url}/readyz", timeout=30).json().get("model", "?")
        client = Client(base_url, args.api_key)
        info = {
            "model": model,
            "commit": git_commit(),
            "settings": server_overrides(args, data_dir) if server else {"url": args.url},
            "command": shown_command("answers", sys.argv[1:] if argv is None else argv),
            "date": time.strftime("%Y-%m-%d %H:%M"),
        }
        results = run_suites(client, suites, args)
    finally:
        if server is not None:
            server.stop()
        if temporary and data_dir is not None:
            shutil.rmtree(data_dir, ignore_errors=True)
    raw: dict[str, Any] = {
        "args": raw_args(args),
        "info": {**info, "settings": str(info["settings"])},
        "suites": [result.as_raw() for result in results],
    }
    path = write_json(OUT_DIR / f"answers-{stamp}.json", raw)
    for result in results:
        section = (
            render_prompt_figures(result, info) if args.prompt_only else render_suite(result, info)
        )
        print(section)
        if not args.no_doc:
            write_suite_section(ANSWERS_DOC, result.suite.name, section)
    log.info("raw results in %s", path)
    return 0


if __name__ == "__main__":
    sys.exit(main())
