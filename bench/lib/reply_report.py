"""What one ``/v1/support/reply`` call's latency is made of, against the same prompt sent to
``/v1/chat/completions``: the calls as measured, the server's stages, and the tables, verdict
and figure ``bench/reply_latency.py`` reports from them."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

from bench.lib.report import pyplot, save_figure
from bench.lib.stats import percentile
from bench.lib.tables import Row

log = logging.getLogger("bench.reply_report")

TARGET_OVERHEAD_MS = 50.0

PRE_GENERATION = ("analysis", "recall", "retrieval", "recommend", "prompt")
"""Server stages before the engine is called; analysis and recall run concurrently."""
SERVER_STAGES = (*PRE_GENERATION, "time_to_first_token", "generation", "persist", "total")


@dataclass
class Call:
    """One request as the client saw it, with what the server reported about it.

    ``error`` set means it is left out of the statistics. For the support endpoint,
    ``answered_by`` other than "model" (a handover) means no generation ran, so it is
    left out too: its "first token" is a canned text, not the model's.
    """

    message: str
    customer_id: str
    ttft_ms: float | None = None
    total_ms: float = 0.0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    answered_by: str = "model"
    timings_ms: dict[str, float] = field(default_factory=dict)
    prompt: list[dict[str, str]] = field(default_factory=list)
    error: str | None = None

    @property
    def counted(self) -> bool:
        return self.error is None and self.answered_by == "model" and self.ttft_ms is not None


@dataclass
class Level:
    """All measured calls of one (endpoint, concurrency) pair and the conditions they ran in."""

    endpoint: str
    concurrency: int
    wall_s: float
    others_cores: float
    load_1m: float
    calls: list[Call]

    @property
    def counted(self) -> list[Call]:
        return [c for c in self.calls if c.counted]


def pre_generation_sum(call: Call) -> float:
    """The five pre-generation stages added up, as if they ran one after the other."""
    return sum(call.timings_ms.get(stage, 0.0) for stage in PRE_GENERATION)


def pre_generation_path(call: Call) -> float:
    """The pre-generation critical path: analysis and recall overlap, the rest is serial."""
    t = call.timings_ms
    overlapped = max(t.get("analysis", 0.0), t.get("recall", 0.0))
    return overlapped + sum(t.get(stage, 0.0) for stage in PRE_GENERATION[2:])


def _fmt(value: float) -> str:
    if value != value:  # NaN
        return ""
    return f"{value:.1f}" if value < 100 else f"{value:.0f}"


def level_rows(support: Level, chat: Level) -> list[Row]:
    """p50/p95 of every server stage (support only) and of client TTFT/total (both)."""
    s, c = support.counted, chat.counted
    rows = [["measure (ms)", "support p50", "support p95", "chat p50", "chat p95"]]

    def row(name: str, support_values: list[float], chat_values: list[float] | None) -> None:
        cells = [name, _fmt(percentile(support_values, 50)), _fmt(percentile(support_values, 95))]
        if chat_values is None:
            cells += ["", ""]
        else:
            cells += [_fmt(percentile(chat_values, 50)), _fmt(percentile(chat_values, 95))]
        rows.append(cells)

    for stage in SERVER_STAGES:
        row(f"server {stage}", [x.timings_ms[stage] for x in s if stage in x.timings_ms], None)
        if stage == PRE_GENERATION[-1]:
            row("server pre-generation, sum of 5", [pre_generation_sum(x) for x in s], None)
            row("server pre-generation, critical path", [pre_generation_path(x) for x in s], None)
    row("client time to first token", _ttfts(s), _ttfts(c))
    row("client total", [x.total_ms for x in s], [x.total_ms for x in c])
    row("prompt tokens", [float(x.prompt_tokens) for x in s], [float(x.prompt_tokens) for x in c])
    row(
        "output tokens",
        [float(x.completion_tokens) for x in s],
        [float(x.completion_tokens) for x in c],
    )
    return rows


def _ttfts(calls: Sequence[Call]) -> list[float]:
    return [c.ttft_ms for c in calls if c.ttft_ms is not None]


@dataclass(frozen=True)
class Verdict:
    """The issue's figure: the pipeline's own time before the first token, p50."""

    concurrency: int
    client_overhead_ms: float
    server_sum_ms: float
    server_path_ms: float

    @property
    def passed(self) -> bool:
        return self.client_overhead_ms < TARGET_OVERHEAD_MS

    def line(self) -> str:
        return (
            f"c={self.concurrency}: pipeline overhead before the first token, p50: "
            f"{self.client_overhead_ms:.1f} ms client-side (support TTFT p50 - chat TTFT p50); "
            f"server pre-generation stages {self.server_sum_ms:.1f} ms summed, "
            f"{self.server_path_ms:.1f} ms on the critical path; "
            f"target < {TARGET_OVERHEAD_MS:.0f} ms: {'PASS' if self.passed else 'FAIL'}"
        )


def verdict(support: Level, chat: Level) -> Verdict:
    s = support.counted
    return Verdict(
        support.concurrency,
        percentile(_ttfts(s), 50) - percentile(_ttfts(chat.counted), 50),
        percentile([pre_generation_sum(x) for x in s], 50),
        percentile([pre_generation_path(x) for x in s], 50),
    )


def conditions_line(support: Level, chat: Level) -> str:
    """What could have distorted the level: failures, handovers, unequal prompts, load."""
    handovers = sum(c.error is None and c.answered_by != "model" for c in support.calls)
    errors = sum(c.error is not None for c in [*support.calls, *chat.calls])
    mismatched = sum(  # chat.calls replays support.counted, in order
        b.error is None
        and (a.prompt_tokens != b.prompt_tokens or a.completion_tokens != b.completion_tokens)
        for a, b in zip(support.counted, chat.calls, strict=True)
    )
    return (
        f"c={support.concurrency}: {len(support.counted)} support calls counted of "
        f"{len(support.calls)} ({handovers} handovers without generation left out), "
        f"{len(chat.counted)} chat calls; {errors} errors; {mismatched} pairs with unequal "
        f"prompt/output tokens; wall {support.wall_s:.1f} s / {chat.wall_s:.1f} s; "
        f"1-min load at start {support.load_1m:.2f} / {chat.load_1m:.2f}; "
        f"others' cores {support.others_cores:.2f} / {chat.others_cores:.2f}"
    )


def plot(pairs: Sequence[tuple[Level, Level]], path: Path) -> None:
    """Left: server stage p50s per concurrency; right: client TTFT of both endpoints."""
    plt = pyplot()
    if plt is None:
        return
    fig, (stages_ax, ttft_ax) = plt.subplots(1, 2, figsize=(12, 4.8))
    width = 0.8 / len(pairs)
    for i, (support, _) in enumerate(pairs):
        p50s = [
            percentile([c.timings_ms[s] for c in support.counted if s in c.timings_ms], 50)
            for s in PRE_GENERATION
        ]
        xs = [x + i * width for x in range(len(PRE_GENERATION))]
        stages_ax.bar(xs, p50s, width, label=f"c={support.concurrency}")
    stages_ax.set_xticks([x + width * (len(pairs) - 1) / 2 for x in range(len(PRE_GENERATION))])
    stages_ax.set_xticklabels(PRE_GENERATION)
    stages_ax.set_ylabel("p50 ms (server)")
    stages_ax.set_title("support reply: stages before generation")
    stages_ax.legend()
    data, labels = [], []
    for support, chat in pairs:
        for level in (support, chat):
            data.append(_ttfts(level.counted))
            labels.append(f"{level.endpoint}\nc={level.concurrency}")
    ttft_ax.boxplot(data, tick_labels=labels, whis=(5, 95), showfliers=True)
    ttft_ax.set_ylabel("client time to first token, ms")
    ttft_ax.set_title("support reply vs. chat completions, same prompts")
    log.info("plot in %s", save_figure(plt, fig, path))
