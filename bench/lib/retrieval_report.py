"""The retrieval benchmark's tables and figure: one row per measured case, aligned text for
the terminal and markdown for bench/out, from the same rows."""

from __future__ import annotations

from pathlib import Path

from bench.lib.embedding_speed import EmbeddingResult, RealismResult, ReindexRun
from bench.lib.report import pyplot, save_figure
from bench.lib.tables import Row, header, markdown_table, text_table, times
from bench.lib.vector_search import SearchCase, SizeResult


def render(
    head: list[str], sections: list[tuple[str, list[Row]]], notes: list[str]
) -> tuple[str, str]:
    """The printed report and its markdown twin: the head, each titled table, the notes."""
    text = [*head, ""]
    markdown = ["  \n".join(head), ""]
    for title, table in sections:
        text += [title, text_table(table), ""]
        markdown += [f"**{title}**", "", markdown_table(table), ""]
    text += notes
    markdown += [f"- {note}" for note in notes]
    return "\n".join(text), "\n".join(markdown)


def _ms(value: float) -> str:
    return f"{value:.3f}" if value < 1 else f"{value:.2f}" if value < 100 else f"{value:.0f}"


def search_rows(sizes: list[SizeResult]) -> list[Row]:
    """One row per (size, index, filter), latency columns per FAISS thread count.

    The ratio compares p50 with exact flat search under the same filter, both at the
    first (default) thread count; "others' cores" is the most any variant saw.
    """
    threads: list[int] = []
    for size in sizes:
        for case in size.cases:
            if case.role != "reference" and case.faiss_threads not in threads:
                threads.append(case.faiss_threads)
    header = ["chunks", "index (nlist/nprobe)", "filter", "build s"]
    header += [f"p50 ms, {t} thr" for t in threads] + [f"p99 ms, {t} thr" for t in threads]
    header += ["recall@10", "results/query", f"p50 vs exact flat ({threads[0]} thr)"]
    rows: list[Row] = [[*header, "others' cores"]]
    for size in sizes:
        groups: dict[tuple[str, str, str], dict[int, SearchCase]] = {}
        for case in size.cases:
            groups.setdefault((case.role, case.index, case.filter), {})[case.faiss_threads] = case
        exact = {
            case.filter_kind: case.latency.p50_ms
            for case in size.cases
            if case.role == "exact" and case.faiss_threads == threads[0]
        }
        for (role, index, filt), variants in groups.items():
            first = next(iter(variants.values()))
            build = ""
            if first.filter_kind == "none" and role == "chosen":
                build = f"{size.build_s:.1f}"
            elif first.filter_kind == "none" and role == "exact" and size.flat_build_s:
                build = f"{size.flat_build_s:.1f}"
            base = exact.get(first.filter_kind.replace(", exhaustive", ""))
            lead = variants.get(threads[0], first)
            p50 = [_ms(variants[t].latency.p50_ms) if t in variants else "" for t in threads]
            p99 = [_ms(variants[t].latency.p99_ms) if t in variants else "" for t in threads]
            if role == "reference":  # numpy: FAISS threads do not apply
                p50 = [_ms(first.latency.p50_ms)] + [""] * (len(threads) - 1)
                p99 = [_ms(first.latency.p99_ms)] + [""] * (len(threads) - 1)
            rows.append(
                [
                    f"{size.chunks:,}",
                    index,
                    filt,
                    build,
                    *p50,
                    *p99,
                    f"{lead.recall_at_10:.3f}",
                    f"{lead.results_per_query:.1f}",
                    times(lead.latency.p50_ms, base) if base and role != "exact" else "",
                    f"{max(v.others_cores for v in variants.values()):.2f}",
                ]
            )
    return rows


def sweep_rows(sizes: list[SizeResult]) -> list[Row]:
    columns = "chunks | nlist | nprobe | lists probed | p50 ms | p99 ms | recall@10 | others' cores"
    rows: list[Row] = [header(columns)]
    for size in sizes:
        for point in size.sweep:
            default = " (default)" if point.nprobe == size.layout["nprobe"] else ""
            rows.append(
                [
                    f"{size.chunks:,}",
                    str(size.layout["nlist"]),
                    f"{point.nprobe}{default}",
                    f"{100 * point.nprobe / size.layout['nlist']:.1f}%",
                    _ms(point.latency.p50_ms),
                    _ms(point.latency.p99_ms),
                    f"{point.recall_at_10:.3f}",
                    f"{point.others_cores:.2f}",
                ]
            )
    return rows


def embedding_rows(results: list[EmbeddingResult]) -> list[Row]:
    columns = "texts | batch | sentences | mean tokens | sentences/s | tokens/s | ms/call p50"
    rows: list[Row] = [header(f"{columns} | others' cores")]
    for r in results:
        rows.append(
            [
                r.texts,
                str(r.batch),
                str(r.sentences),
                f"{r.mean_tokens:.0f}",
                f"{r.sentences_per_s:.1f}",
                f"{r.tokens_per_s:,.0f}",
                _ms(r.call_ms.p50_ms),
                f"{r.others_cores:.2f}",
            ]
        )
    return rows


def reindex_rows(runs: list[ReindexRun]) -> list[Row]:
    columns = "run | mode | documents | embedded | chunks | seconds | embedded docs/s"
    rows: list[Row] = [header(f"{columns} | full reindex time / this | others' cores")]
    full = next((r.seconds for r in runs if r.report["mode"] == "full"), 0.0)
    for run in runs:
        rep = run.report
        rows.append(
            [
                run.label,
                rep["mode"],
                f"{rep['documents']:,}",
                f"{rep['embedded_documents']:,}",
                f"{rep['chunks']:,}",
                f"{run.seconds:.2f}",
                f"{rep['documents_per_second']:.1f}",
                times(full, run.seconds) if run.seconds >= 0.001 else "",
                f"{run.others_cores:.2f}",
            ]
        )
    return rows


def plot(sizes: list[SizeResult], path: Path) -> bool:
    """Latency and recall against collection size (and the nprobe sweep if there is one)."""
    plt = pyplot()
    if plt is None:
        return False
    sweeps = [s for s in sizes if s.sweep]
    panels = 3 if sweeps else 2
    fig, axes = plt.subplots(1, panels, figsize=(5.5 * panels, 4.5))
    series: dict[tuple[str, str, str], list[tuple[int, SearchCase]]] = {}
    for size in sizes:
        first_threads = size.cases[0].faiss_threads
        for case in size.cases:
            threads = ""
            if case.faiss_threads != first_threads and case.role != "reference":
                if case.filter_kind != "none":
                    continue  # other thread counts: only the unfiltered search, to stay legible
                threads = f", {case.faiss_threads} thread{'s' if case.faiss_threads > 1 else ''}"
            roles = [case.role]
            if case.role == "chosen" and size.layout["kind"] == "flat":
                roles.append("exact")  # below FLAT_MAX_VECTORS the chosen index is exact
            for role in roles:
                key = (role, case.filter_kind, threads)
                series.setdefault(key, []).append((size.chunks, case))
    styles = {"chosen": "-", "exact": "--", "reference": ":"}
    names = {"chosen": "plan_layout", "exact": "exact flat", "reference": "numpy rows"}
    for (role, kind, threads), points in sorted(series.items()):
        xs = [n for n, _ in points]
        label = f"{names[role]}, {kind}{threads}"
        style = {"linestyle": styles[role], "marker": "o", "label": label}
        axes[0].plot(xs, [c.latency.p50_ms for _, c in points], **style)
        if role != "exact" and not threads:
            axes[1].plot(xs, [c.recall_at_10 for _, c in points], **style)
    axes[0].set(xscale="log", yscale="log", xlabel="chunks", ylabel="single-query p50 (ms)")
    default_threads = sizes[0].cases[0].faiss_threads
    axes[0].set_title(f"search latency, one query per call ({default_threads} FAISS threads)")
    axes[1].set(xscale="log", xlabel="chunks", ylabel="recall@10 vs exact", ylim=(0, 1.05))
    axes[1].set_title("recall@10")
    for ax in axes[:2]:
        ax.grid(True, which="both", alpha=0.3)
        ax.legend(fontsize=7)
    if sweeps:
        for size in sweeps:
            axes[2].plot(
                [p.latency.p50_ms for p in size.sweep],
                [p.recall_at_10 for p in size.sweep],
                marker="o",
                label=f"{size.chunks:,} chunks, nlist {size.layout['nlist']}",
            )
            for p in size.sweep:
                axes[2].annotate(str(p.nprobe), (p.latency.p50_ms, p.recall_at_10), fontsize=7)
        axes[2].set(xscale="log", xlabel="p50 ms", ylabel="recall@10")
        axes[2].set_title("IVF nprobe sweep")
        axes[2].grid(True, which="both", alpha=0.3)
        axes[2].legend(fontsize=7)
    save_figure(plt, fig, path)
    return True


def realism_rows(result: RealismResult) -> list[Row]:
    """One row per nprobe: recall@10 of real and synthetic vectors under the same layout."""
    rows: list[Row] = [["nprobe", "lists probed", "real recall@10", "synthetic recall@10"]]
    for nprobe, real in result.recall["real"].items():
        default = " (default)" if nprobe == result.default_nprobe else ""
        rows.append(
            [
                f"{nprobe}{default}",
                f"{100 * nprobe / result.nlist:.1f}%",
                f"{real:.3f}",
                f"{result.recall['synthetic'][nprobe]:.3f}",
            ]
        )
    return rows
