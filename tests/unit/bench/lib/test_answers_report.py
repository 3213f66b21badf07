"""The prompt-only report: citations and facts in the prompt, and every miss by name."""

from __future__ import annotations

from pathlib import Path

from bench.lib.answer_scoring import ScenarioScore
from bench.lib.answers_report import PlayedScenario, SuiteRun, render_prompt_figures
from bench.lib.suites import all_suites, load_suite


def played(scenario_id: str, cited: bool, fact: bool, own: bool | None) -> PlayedScenario:
    score = ScenarioScore(scenario_id, fields={"cite_any_of": cited, "must_mention_any": False})
    score.in_prompt["must_mention_any"] = fact
    if own is not None:
        score.in_prompt["personalized_fact_any"] = own
    return PlayedScenario(scenario_id, 0, 1, [], [], [], score)


def test_the_prompt_figures_count_only_what_the_prompt_decides() -> None:
    suite = load_suite(next(p for p in all_suites() if Path(p).name == "demo"))
    run = SuiteRun(
        suite,
        suite.scenarios[:3],
        [
            played("a", True, True, None),
            played("b", False, True, True),
            played("c", True, False, False),
        ],
        1,
    )
    info = {
        "commit": "abc1234",
        "date": "2026-12-06 20:00",
        "command": "bench.answers --prompt-only",
    }
    report = render_prompt_figures(run, info)
    assert "| right article cited (`cite_any_of`) | 2/3 (67%) |" in report
    assert "| KB fact in the prompt (`must_mention_any`) | 2/3 (67%) |" in report  # not the reply
    assert "| 1/2 (50%) |" in report  # the customer's own fact, where the scenario scores it
    assert "- `b` cite_any_of" in report and "- `c` must_mention_any" in report
    assert "- `a`" not in report
