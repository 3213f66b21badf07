"""The serving benchmark's report: the table of every (load, system), the issue's targets
judged on it, the conditions each system ran in, and the figures."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path

from bench.lib.report import pyplot, save_figure
from bench.lib.stats import percentile
from bench.lib.systems import CHAT, LABELS, LLAMA, SUPPORT, VLLM
from bench.lib.tables import Row, number, times
from bench.lib.workload import Load, SystemRun

COLORS = {VLLM: "C0", CHAT: "C1", SUPPORT: "C2", LLAMA: "C3"}


def table_rows(runs: Sequence[SystemRun], slo: tuple[float, float]) -> list[Row]:
    """One row per (load, system); every row carries its ratios to (b) and (c)."""
    header = [
        "load",
        "system",
        "requests",
        "output tok/s",
        "req/s",
        "tokens/req",
        "TTFT p50 ms",
        "TTFT p95 ms",
        "TTFT p99 ms",
        "ITL p50 ms",
        "ITL p99 ms",
        "goodput req/s",
        "tok/s vs (b)",
        "tok/s vs (c)",
        "req/s vs (b)",
        "req/s vs (c)",
    ]
    rows = [header]
    by = {(r.system, m.load): m.summary(*slo) for r in runs for m in r.measured}
    loads = list(dict.fromkeys(m.load for r in runs for m in r.measured))
    order = [s for s in (CHAT, SUPPORT, VLLM, LLAMA) if any(r.system == s for r in runs)]
    for load in loads:
        vllm, llama = by.get((VLLM, load)), by.get((LLAMA, load))
        for system in order:
            s = by.get((system, load))
            if s is None:
                continue
            requests = f"{s['counted']:.0f}"
            if s["errors"] or s["handovers"]:
                requests += f" ({s['errors']:.0f} err, {s['handovers']:.0f} handover)"
            rows.append(
                [
                    load.label,
                    LABELS[system],
                    requests,
                    number(s["tokens_per_s"], 1),
                    number(s["requests_per_s"], 2),
                    number(s["tokens_per_request"], 0),
                    number(s["ttft_p50_ms"]),
                    number(s["ttft_p95_ms"]),
                    number(s["ttft_p99_ms"]),
                    number(s["itl_p50_ms"], 1),
                    number(s["itl_p99_ms"], 1),
                    number(s["goodput_rps"], 2),
                    times(s["tokens_per_s"], vllm["tokens_per_s"]) if vllm else "",
                    times(s["tokens_per_s"], llama["tokens_per_s"]) if llama else "",
                    times(s["requests_per_s"], vllm["requests_per_s"]) if vllm else "",
                    times(s["requests_per_s"], llama["requests_per_s"]) if llama else "",
                ]
            )
    return rows


@dataclass(frozen=True)
class Check:
    """One of the issue's targets and what this run says about it."""

    claim: str
    holds: bool | None  # None: not measured in this run, or no target
    evidence: str
    target: bool = True

    def line(self) -> str:
        verdict = {True: "holds", False: "does NOT hold", None: "not measured"}[self.holds]
        if not self.target:
            verdict = "reported"
        return f"- {self.claim}: **{verdict}** ({self.evidence})"


def one_run(paired_target: str) -> str:
    """The note on a target within this machine's drift, which a paired benchmark settles."""
    return f"one run, minutes apart: `make {paired_target}` judges this on paired rounds"


PAIRED_LLAMA_CONCURRENCY = 4
"""``make bench-paired-llama`` pairs Concierge chat with llama-server at this concurrency, the
one whose target (>= 1.0x) lies within the drift; at c>=16 the margin is far wider."""


Summary = dict[str, float]


def ratio_check(
    claim: str,
    figures: tuple[Summary | None, Summary | None],
    key: str,
    floor: float,
    evidence: Callable[[Summary, Summary, float], str],
    needs: str,
) -> Check:
    """``claim`` holds where ``key`` of the first system is at least ``floor`` times the
    second's; not measured (``needs`` says what was missing) where either was not run."""
    first, second = figures
    if not (first and second):
        return Check(claim, None, needs)
    ratio = first[key] / second[key]
    return Check(claim, ratio >= floor, evidence(first, second, ratio))


def acceptance(runs: Sequence[SystemRun], slo: tuple[float, float]) -> list[Check]:
    """The issue's targets, judged on this run's figures."""
    by = {(r.system, m.load): m.summary(*slo) for r in runs for m in r.measured}

    def get(system: str, c: int) -> Summary | None:
        return by.get((system, Load("closed", c)))

    def tokens(paired_target: str | None) -> Callable[[Summary, Summary, float], str]:
        def evidence(a: Summary, b: Summary, ratio: float) -> str:
            text = f"{a['tokens_per_s']:.1f} vs {b['tokens_per_s']:.1f} tok/s, {ratio:.2f}x"
            return f"{text}; {one_run(paired_target)}" if paired_target else text

        return evidence

    chat, vllm = get(CHAT, 16), get(VLLM, 16)
    claim = "c=16: Concierge chat keeps >= 95% of vLLM serve's output tokens/s"
    needs = "needs (a) and (b) at c=16"
    checks = [ratio_check(claim, (chat, vllm), "tokens_per_s", 0.95, tokens("bench-paired"), needs)]
    if chat and vllm:
        added = chat["ttft_p50_ms"] - vllm["ttft_p50_ms"]
        evidence = (
            f"{chat['ttft_p50_ms']:.0f} vs {vllm['ttft_p50_ms']:.0f} ms, {added:+.0f} ms; "
            f"{one_run('bench-paired')}"
        )
        checks.append(
            Check("c=16: Concierge adds <= 15 ms TTFT p50 to vLLM serve", added <= 15, evidence)
        )
    for c, floor in ((4, 1.0), (16, 1.4), (32, 1.4)):
        claim = f"c={c}: Concierge chat tokens/s >= {floor:.1f}x llama-server"
        paired = "bench-paired-llama" if c == PAIRED_LLAMA_CONCURRENCY else None
        figures = (get(CHAT, c), get(LLAMA, c))
        needs = f"needs (a) and (c) at c={c}"
        checks.append(ratio_check(claim, figures, "tokens_per_s", floor, tokens(paired), needs))
    chat, llama = get(CHAT, 1), get(LLAMA, 1)
    if chat and llama:
        evidence = (
            f"{chat['tokens_per_s']:.1f} vs {llama['tokens_per_s']:.1f} tok/s "
            f"({chat['tokens_per_s'] / llama['tokens_per_s']:.2f}x); ITL p50 "
            f"{chat['itl_p50_ms']:.1f} vs {llama['itl_p50_ms']:.1f} ms; TTFT p50 "
            f"{chat['ttft_p50_ms']:.0f} vs {llama['ttft_p50_ms']:.0f} ms"
        )
        checks.append(Check("c=1: gap to llama-server (no target)", None, evidence, False))

    def requests(support: Summary, chat: Summary, ratio: float) -> str:
        return (
            f"{support['requests_per_s']:.2f} vs {chat['requests_per_s']:.2f} req/s, {ratio:.2f}x; "
            f"support replies averaged {support['tokens_per_request']:.0f} tokens, chat "
            f"{chat['tokens_per_request']:.0f}"
        )

    claim = "c=16: /v1/support/reply keeps >= 80% of chat's requests/s"
    figures = (get(SUPPORT, 16), get(CHAT, 16))
    needs = "needs (a) and (d) at c=16"
    checks.append(ratio_check(claim, figures, "requests_per_s", 0.8, requests, needs))
    return checks


def conditions(runs: Sequence[SystemRun]) -> list[str]:
    """Start-up, prompt length, the support pipeline's own stages, and the CPU other processes
    took while each system was measured."""
    lines = []
    for run in runs:
        others = max((m.others_cores for m in run.measured), default=0.0)
        load = max((m.load_1m for m in run.measured), default=0.0)
        counted = [s for m in run.measured for s in m.samples if s.counted]
        prompt = percentile([float(s.prompt_tokens) for s in counted], 50)
        line = (
            f"- {LABELS[run.system]}: ready {run.startup_s:.0f} s after start; prompt tokens "
            f"p50 {number(prompt)}; other processes used up to {others:.2f} cores during a "
            f"measured step (1-min load up to {load:.2f})"
        )
        if run.probe:
            line += (
                f"; machine probe before start: {run.probe['copy_gb_s']:.1f} GB/s memory copy, "
                f"{run.probe['matmul_gflop_s']:.0f} GFLOP/s fp32 matmul"
            )
        if run.system == SUPPORT:
            stages = sorted({k for s in counted for k in s.timings_ms} - {"total"})
            stage_ms = {k: [s.timings_ms[k] for s in counted if k in s.timings_ms] for k in stages}
            p50s = [f"{k} {number(percentile(stage_ms[k], 50))}" for k in stages]
            line += f"; server stage p50 ms over all loads: {', '.join(p50s)}"
        lines.append(line)
    drift = probe_drift(runs)
    if drift is not None:
        lines.append(drift)
    return lines


PROBE_DRIFT = 0.10
"""Spread of the machine probe across systems above which rows are flagged as not comparable."""


def probe_drift(runs: Sequence[SystemRun]) -> str | None:
    """A warning when the machine itself got faster or slower between systems."""
    probed = [r for r in runs if r.probe]
    if len(probed) < 2:
        return None
    spreads = {}
    for key, label in (("copy_gb_s", "memory copy"), ("matmul_gflop_s", "matmul")):
        values = [r.probe[key] for r in probed]
        spreads[label] = max(values) / min(values) - 1
    if max(spreads.values()) <= PROBE_DRIFT:
        return None
    worst = ", ".join(f"{label} {spread:+.0%}" for label, spread in spreads.items())
    return (
        f"- **Machine drift**: the probe taken before each system differs by {worst} between "
        "systems; ratios across those rows mix the systems' speed with the machine's."
    )


def plot(runs: Sequence[SystemRun], img_dir: Path) -> list[Path]:
    """Throughput and TTFT against load: closed loops on the left, Poisson on the right."""
    plt = pyplot()
    if plt is None:
        return []
    kinds = [
        k for k in ("closed", "poisson") if any(m.load.kind == k for r in runs for m in r.measured)
    ]
    xlabel = {
        "closed": "concurrent clients (closed loop)",
        "poisson": "offered load, req/s (Poisson)",
    }
    paths = []
    panels = {
        "serving-throughput.png": [
            ("tokens_per_s", "output tokens/s", "-"),
            ("requests_per_s", "requests/s", "-"),
        ],
        "serving-ttft.png": [("ttft_p50_ms", "TTFT ms (p50 solid, p95 dashed)", "-")],
    }
    for name, rows in panels.items():
        fig, axes = plt.subplots(
            len(rows), len(kinds), figsize=(6 * len(kinds), 4 * len(rows)), squeeze=False
        )
        for i, (metric, ylabel, _) in enumerate(rows):
            for j, kind in enumerate(kinds):
                ax = axes[i][j]
                for run in runs:
                    points = [
                        (m.load.value, m.summary()) for m in run.measured if m.load.kind == kind
                    ]
                    xs = [x for x, _ in points]
                    color = COLORS[run.system]
                    ax.plot(
                        xs,
                        [s[metric] for _, s in points],
                        "o-",
                        color=color,
                        label=LABELS[run.system],
                    )
                    if metric == "ttft_p50_ms":
                        ax.plot(
                            xs, [s["ttft_p95_ms"] for _, s in points], "s--", color=color, alpha=0.6
                        )
                if metric.startswith("ttft"):
                    ax.set_yscale("log")
                if kind == "closed":
                    ax.set_xscale("log", base=2)
                values = sorted(
                    {m.load.value for r in runs for m in r.measured if m.load.kind == kind}
                )
                ax.set_xticks(values, [f"{v:g}" for v in values])
                ax.xaxis.set_minor_locator(plt.NullLocator())
                ax.set_xlabel(xlabel[kind])
                ax.set_ylabel(ylabel)
                ax.grid(True, alpha=0.3)
                ax.legend(fontsize=8)
        fig.suptitle("SmolLM2-135M-Instruct on this CPU, one system at a time")
        paths.append(save_figure(plt, fig, img_dir / name))
    return paths
