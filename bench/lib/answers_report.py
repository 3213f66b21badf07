"""The answer benchmark's report: one section of docs/answers.md per suite.

Per suite: scenarios passed per run and in every run; the pass rate of every field over
the scenarios that score it, and for the two fact fields how often the fact was in the
prompt (the measure that does not depend on the model); the pass rate per tag; latency
per turn; every failure of the first run with its failing fields and final reply; the
model, settings, commit and command it ran on.
"""

from __future__ import annotations

import statistics
from collections import defaultdict
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from bench.lib.answer_scoring import ScenarioScore
from bench.lib.paths import REPO
from bench.lib.report import update_doc

if TYPE_CHECKING:
    from bench.lib.suites import Suite

ANSWERS_DOC = REPO / "docs" / "answers.md"
FACT_FIELDS = ("must_mention_any", "personalized_fact_any")
REPLY_CHARS = 220


@dataclass
class PlayedScenario:
    """One scenario, one run: each turn's response (None: an error), timings, the score."""

    scenario_id: str
    run: int
    seed: int
    responses: list[dict[str, Any] | None]
    errors: list[str]
    latencies_s: list[float]
    score: ScenarioScore
    composed: ScenarioScore | None = None
    """Scored with every failed reply replaced by its composed answer (a ``mark`` run)."""


@dataclass
class SuiteRun:
    suite: Suite
    scenarios: list[dict[str, Any]]
    played: list[PlayedScenario]
    runs: int

    def by_run(self, run: int) -> list[PlayedScenario]:
        return [p for p in self.played if p.run == run]

    def as_raw(self) -> dict[str, Any]:
        return {
            "suite": self.suite.name,
            "tenant": self.suite.tenant,
            "as_of": self.suite.as_of.isoformat(),
            "played": [
                {
                    "scenario_id": p.scenario_id,
                    "run": p.run,
                    "seed": p.seed,
                    "passed": p.score.passed,
                    "failing": p.score.failing,
                    "score": asdict(p.score),
                    "composed_score": asdict(p.composed) if p.composed else None,
                    "errors": p.errors,
                    "latencies_s": p.latencies_s,
                    "responses": p.responses,
                }
                for p in self.played
            ],
        }


def _rate(hits: int, total: int) -> str:
    return f"{hits}/{total} ({hits / total:.0%})" if total else "-"


def _percentile(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def render_suite(result: SuiteRun, info: dict[str, Any]) -> str:
    """The suite's section of docs/answers.md, between its marks."""
    suite = result.suite
    begin, end = marks(suite.name)
    total = len(result.scenarios)
    lines = [
        begin,
        f"## Suite `{suite.name}`",
        "",
        f"{suite.description.rstrip('.')}. Tenant `{suite.tenant}`, "
        f"today = {suite.as_of:%Y-%m-%d %H:%M %z}, "
        f"{total} scenarios, {result.runs} run(s).",
        "",
        f"Model `{info['model']}`, commit `{info['commit']}`, {info['date']}. Settings: "
        f"`{_settings(info['settings'])}`.",
        "",
        f"    {info['command']}",
        "",
        "| run | scenarios passed |",
        "|---|---|",
    ]
    passed_ids: list[set[str]] = []
    for run in range(result.runs):
        played = result.by_run(run)
        passed = {p.scenario_id for p in played if p.score.passed}
        passed_ids.append(passed)
        lines.append(f"| {run + 1} | {_rate(len(passed), len(played))} |")
    if result.runs > 1:
        both = set.intersection(*passed_ids) if passed_ids else set()
        lines.append(f"| every run | {_rate(len(both), total)} |")
    if any(p.composed for p in result.played):
        lines += ["", *_with_composed(result)]
    lines += ["", *_field_table(result), "", *_tag_table(result), "", *_latency(result)]
    lines += ["", *_writing(result), "", *_speed(result)]
    lines += ["", *_failures(result), end]
    return "\n".join(lines)


def render_prompt_figures(result: SuiteRun, info: dict[str, Any]) -> str:
    """The measures that do not depend on the model's writing, and every miss.

    A citation is a passage the prompt numbered, so "right article cited" is decided before
    the first token, like the two "fact in the prompt" rates; ``--prompt-only`` runs measure
    these with replies cut to a few tokens, in minutes instead of half an hour.
    """
    counted: dict[str, list[int]] = defaultdict(lambda: [0, 0])
    misses: list[str] = []
    for p in result.played:
        checks = dict(p.score.in_prompt)
        if "cite_any_of" in p.score.fields:
            checks["cite_any_of"] = p.score.fields["cite_any_of"]
        for name, ok in checks.items():
            counted[name][0] += int(ok)
            counted[name][1] += 1
            if not ok:
                misses.append(f"- `{p.scenario_id}` {name}")
    lines = [
        f"Suite `{result.suite.name}`, commit `{info['commit']}`, {info['date']}: "
        f"`{info['command']}`",
        "",
        "| measure (model-independent) | rate |",
        "|---|---|",
        f"| right article cited (`cite_any_of`) | {_rate(*counted['cite_any_of'])} |",
        f"| KB fact in the prompt (`must_mention_any`) | {_rate(*counted['must_mention_any'])} |",
        "| customer's own fact in the prompt (`personalized_fact_any`) | "
        f"{_rate(*counted['personalized_fact_any'])} |",
        "",
        "Misses:",
        *misses,
    ]
    return "\n".join(lines)


def _settings(settings: Any) -> str:
    if isinstance(settings, dict):
        shown = {k: v for k, v in settings.items() if k != "data_dir"}
        return ", ".join(f"{k}={v}" for k, v in shown.items())
    return str(settings)


def _field_table(result: SuiteRun) -> list[str]:
    scored: dict[str, int] = defaultdict(int)
    passed: dict[str, int] = defaultdict(int)
    in_prompt: dict[str, int] = defaultdict(int)
    leaks = 0
    for p in result.played:
        for name, ok in p.score.fields.items():
            scored[name] += 1
            passed[name] += int(ok)
        for name, there in p.score.in_prompt.items():
            in_prompt[name] += int(there)
        leaks += int(bool(p.score.leaks))
    lines = [
        "| field | pass rate (all runs) | fact in the prompt |",
        "|---|---|---|",
    ]
    for name in sorted(scored):
        prompt = _rate(in_prompt[name], scored[name]) if name in FACT_FIELDS else ""
        lines.append(f"| `{name}` | {_rate(passed[name], scored[name])} | {prompt} |")
    lines.append(f"| leak check | {_rate(len(result.played) - leaks, len(result.played))} | |")
    return lines


def _tag_table(result: SuiteRun) -> list[str]:
    tags_of = {str(s["id"]): s.get("tags", []) for s in result.scenarios}
    scored: dict[str, int] = defaultdict(int)
    passed: dict[str, int] = defaultdict(int)
    for p in result.played:
        for tag in tags_of.get(p.scenario_id, []):
            scored[tag] += 1
            passed[tag] += int(p.score.passed)
    lines = ["| tag | scenarios passed (all runs) |", "|---|---|"]
    lines += [f"| {tag} | {_rate(passed[tag], scored[tag])} |" for tag in sorted(scored)]
    return lines


def _latency(result: SuiteRun) -> list[str]:
    latencies = [s for p in result.played for s in p.latencies_s]
    if not latencies:
        return []
    return [
        f"Latency per turn: p50 {statistics.median(latencies):.2f} s, "
        f"p95 {_percentile(latencies, 0.95):.2f} s over {len(latencies)} turns."
    ]


def _with_composed(result: SuiteRun) -> list[str]:
    """A ``reply_check=mark`` run scored twice: as sent (the model's replies, the fallback
    off) and with each failed reply replaced by the composed answer the server reported
    (the fallback on; approximate for multi-turn scenarios, whose later turns remembered
    the model's reply)."""
    lines = [
        "Fallback off (the model's replies, as sent) and on (each failed reply replaced "
        "by the composed answer the server reported beside it):",
        "",
        "| run | fallback off | fallback on |",
        "|---|---|---|",
    ]
    for run in range(result.runs):
        played = result.by_run(run)
        on = sum(1 for p in played if (p.composed or p.score).passed)
        off = sum(1 for p in played if p.score.passed)
        lines.append(f"| {run + 1} | {_rate(off, len(played))} | {_rate(on, len(played))} |")
    scored: dict[str, int] = defaultdict(int)
    passed: dict[str, int] = defaultdict(int)
    for p in result.played:
        for name, ok in (p.composed or p.score).fields.items():
            scored[name] += 1
            passed[name] += int(ok)
    lines += ["", "| field, fallback on | pass rate (all runs) |", "|---|---|"]
    lines += [f"| `{name}` | {_rate(passed[name], scored[name])} |" for name in sorted(scored)]
    return lines


def _writing(result: SuiteRun) -> list[str]:
    """Per run: replies that copy the prompt's labels or say a sentence three times (none
    may), and what the server's check of the model's replies found and did."""
    lines = [
        "| run | replies | with prompt scaffolding | a sentence said 3 times | model replies "
        "checked | passed the check | with unsupported claims | replaced by the composed "
        "answer |",
        "|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for run in range(result.runs):
        played = result.by_run(run)
        answers = [r for p in played for r in p.responses if r]
        checks = [r.get("grounding") or {} for r in answers]
        checked = [g for g in checks if g.get("checked")]
        lines.append(
            f"| {run + 1} | {len(answers)} | {sum(p.score.scaffolding for p in played)} "
            f"| {sum(p.score.repeated for p in played)} | {len(checked)} "
            f"| {_rate(sum(1 for g in checked if g.get('passed')), len(checked))} "
            f"| {_rate(sum(1 for g in checked if g.get('unsupported')), len(checked))} "
            f"| {_rate(sum(1 for g in checked if g.get('fallback')), len(checked))} |"
        )
    problems: dict[str, int] = defaultdict(int)
    for p in result.played:
        for r in p.responses:
            for problem in ((r or {}).get("grounding") or {}).get("problems", []):
                problems[problem] += 1
    if problems:
        found = ", ".join(f"{name} {count}" for name, count in sorted(problems.items()))
        lines += ["", f"What the check found (all runs, replies may have several): {found}."]
    return lines


def _speed(result: SuiteRun) -> list[str]:
    """Time to first token, decode rate and prompt length per model-written turn, from
    the server's own timings (``timings_ms``) and token counts (``usage``)."""
    ttft: list[float] = []
    rates: list[float] = []
    prompts: list[float] = []
    outputs: list[float] = []
    for p in result.played:
        for r in p.responses:
            if not r or r.get("answered_by") != "model":
                continue
            timings = r.get("timings_ms") or {}
            usage = r.get("usage") or {}
            if "time_to_first_token" in timings:
                ttft.append(float(timings["time_to_first_token"]))
            generated = int(usage.get("completion_tokens", 0))
            seconds = float(timings.get("generation", 0)) / 1000
            if generated > 1 and seconds > 0:
                rates.append((generated - 1) / seconds)
            prompts.append(float(usage.get("prompt_tokens", 0)))
            outputs.append(float(generated))
    if not ttft:
        return []
    return [
        f"Model-written turns ({len(ttft)}): time to first token p50 "
        f"{statistics.median(ttft):.0f} ms, p95 {_percentile(ttft, 0.95):.0f} ms; decoding "
        f"p50 {statistics.median(rates) if rates else 0:.1f} tokens/s; prompt p50 "
        f"{statistics.median(prompts):.0f} tokens, p95 {_percentile(prompts, 0.95):.0f}; "
        f"reply p50 {statistics.median(outputs):.0f} tokens."
    ]


def _failures(result: SuiteRun) -> list[str]:
    failed = [p for p in result.by_run(0) if not p.score.passed]
    if not failed:
        return ["No failures in run 1."]
    lines = ["Failures of run 1:", "", "| scenario | failing | final reply |", "|---|---|---|"]
    for p in failed:
        reply = " ".join(p.score.final_reply.split())[:REPLY_CHARS].replace("|", "\\|")
        failing = ", ".join(p.score.failing)
        if p.errors:
            failing += f" ({p.errors[0][:60]})"
        lines.append(f"| `{p.scenario_id}` | {failing} | {reply} |")
    return lines


def marks(name: str) -> tuple[str, str]:
    return f"<!-- answers:{name}:begin -->", f"<!-- answers:{name}:end -->"


def write_suite_section(path: Path, name: str, section: str) -> None:
    """Replace the suite's section of ``path``; a suite seen for the first time goes at
    the end, after the explanation of the rules."""
    begin, _ = marks(name)
    text = path.read_text(encoding="utf-8") if path.exists() else "# Answers\n"
    if begin not in text:
        text = text.rstrip("\n") + "\n\n" + begin + "\n" + marks(name)[1] + "\n"
        path.write_text(text, encoding="utf-8")
    update_doc(path, section, marks(name))
