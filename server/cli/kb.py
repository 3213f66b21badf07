"""``concierge kb ...``: ingest, reindex, search and inspect a tenant's knowledge base.

These commands work on the data directory directly (no server needed). A running
server notices versions they publish within ``CONCIERGE_INDEX_REFRESH_INTERVAL_S``;
the per-tenant writer lock keeps a CLI reindex and a server job from interleaving.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

from core.errors import JobCancelledError
from server.config import Settings

if TYPE_CHECKING:
    from retrieval.knowledge import KnowledgeBase, ReindexMode, ReindexReport

# Retrieval (FAISS, numpy, bm25s) is imported inside the handlers, never at module level:
# vLLM's engine processes re-import this module when they spawn, and a second OpenMP
# runtime (FAISS's) loaded next to torch's there keeps them from exiting on SIGTERM.
SEARCH_MODES = ("hybrid", "dense", "lexical")
SNIPPET_CHARS = 160


def add_kb_commands(commands: Any) -> None:
    """Register ``kb ingest|reindex|search|stats|questions`` on the top-level subparsers."""
    kb = commands.add_parser("kb", help="knowledge base: ingest, reindex, search")
    kb_commands = kb.add_subparsers(title="kb commands")

    ingest = kb_commands.add_parser(
        "ingest", help="store documents from a file or folder (.md .html .txt, FAQ .csv .json)"
    )
    ingest.add_argument("path", type=Path)
    ingest.add_argument("--tenant", required=True)
    ingest.add_argument(
        "--prune", action="store_true", help="delete the tenant's documents not found in PATH"
    )
    ingest.add_argument("--no-reindex", action="store_true", help="store only; reindex later")
    ingest.set_defaults(handler=_ingest)

    reindex = kb_commands.add_parser("reindex", help="publish a new index version")
    reindex.add_argument("--tenant", required=True)
    reindex.add_argument("--full", action="store_true", help="re-embed every document")
    reindex.set_defaults(handler=_reindex)

    search = kb_commands.add_parser("search", help="query the tenant's KB as the pipeline does")
    search.add_argument("query")
    search.add_argument("--tenant", required=True)
    search.add_argument("--top-k", type=int, default=5)
    search.add_argument("--mode", choices=SEARCH_MODES)
    search.add_argument("--json", action="store_true", help="machine-readable output")
    search.set_defaults(handler=_search)

    stats = kb_commands.add_parser("stats", help="documents, chunks, versions of a tenant")
    stats.add_argument("--tenant", required=True)
    stats.set_defaults(handler=_stats)

    questions = kb_commands.add_parser(
        "questions",
        help="example questions learned from conversations: list, approve or reject one",
    )
    questions.add_argument("--tenant", required=True)
    decide = questions.add_mutually_exclusive_group()
    decide.add_argument("--approve", metavar="ID", help="add it to its article, then reindex")
    decide.add_argument("--reject", metavar="ID", help="never offer it again")
    questions.add_argument("--json", action="store_true", help="machine-readable list")
    questions.set_defaults(handler=_questions)


def _ingest(args: argparse.Namespace, settings: Settings) -> int:
    from retrieval.documents import documents_from_path
    from retrieval.knowledge import ReindexMode
    from server.lifespan import build_retrieval

    knowledge = build_retrieval(settings).knowledge
    documents = list(documents_from_path(args.path))
    changes = knowledge.put_documents(args.tenant, documents)
    if args.prune:
        keep = {doc.doc_id for doc in documents}
        gone = [d for d in knowledge.store.hashes(args.tenant) if d not in keep]
        changes += knowledge.delete_documents(args.tenant, gone)
    counts: dict[str, int] = {}
    for change in changes:
        counts[change.action] = counts.get(change.action, 0) + 1
    summary = ", ".join(f"{n} {action}" for action, n in sorted(counts.items()))
    sys.stdout.write(
        f"{args.tenant}: {len(documents)} documents read from {args.path} ({summary})\n"
    )
    if args.no_reindex:
        return 0
    return _run_reindex(knowledge, args.tenant, ReindexMode.INCREMENTAL)


def _reindex(args: argparse.Namespace, settings: Settings) -> int:
    from retrieval.knowledge import ReindexMode
    from server.lifespan import build_retrieval

    knowledge = build_retrieval(settings).knowledge
    mode = ReindexMode.FULL if args.full else ReindexMode.INCREMENTAL
    return _run_reindex(knowledge, args.tenant, mode)


def _run_reindex(knowledge: KnowledgeBase, tenant: str, mode: ReindexMode) -> int:
    from tqdm import tqdm

    bar: Any = None

    def progress(done: int, total: int) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=total, unit="doc", desc=f"{mode} reindex", file=sys.stderr)
        bar.update(done - bar.n)

    try:
        report = knowledge.reindex(tenant, mode, progress=progress)
    except (KeyboardInterrupt, JobCancelledError):
        sys.stderr.write("\nreindex cancelled; the served version is unchanged\n")
        return 130
    finally:
        if bar is not None:
            bar.close()
    sys.stdout.write(_describe(report) + "\n")
    return 0


def _describe(report: ReindexReport) -> str:
    if not report.published:
        return f"{report.tenant}: up to date at version {report.version} (nothing changed)"
    return (
        f"{report.tenant}: published version {report.version} ({report.mode}) in "
        f"{report.seconds:.1f} s: {report.embedded_documents} documents embedded "
        f"({report.embedded_chunks} chunks), {report.reused_documents} reused, "
        f"{report.removed_documents} removed; {report.chunks} chunks in the index"
    )


def _search(args: argparse.Namespace, settings: Settings) -> int:
    from retrieval.knowledge import SearchMode
    from server.lifespan import build_retrieval

    retrieval = build_retrieval(settings)
    mode = SearchMode(args.mode) if args.mode else None
    vector = None
    if mode is not SearchMode.LEXICAL:  # the tenant's tuned embedder, if its KB is built by one
        embedder = retrieval.knowledge.query_embedder(args.tenant)
        vector = embedder.embed_sync([args.query], purpose="query")[0]
    hits = retrieval.knowledge.search(args.tenant, args.query, vector, args.top_k, mode)
    if args.json:
        sys.stdout.write(
            json.dumps([vars(hit) for hit in hits], indent=2, ensure_ascii=False) + "\n"
        )
        return 0
    if not hits:
        sys.stdout.write("no results\n")
        return 0
    for rank, hit in enumerate(hits, start=1):
        where = f"{hit.doc_id}" + (f" > {hit.section}" if hit.section else "")
        snippet = " ".join(hit.text.split())
        if len(snippet) > SNIPPET_CHARS:
            snippet = snippet[: SNIPPET_CHARS - 1] + "…"
        sys.stdout.write(f"{rank:>2}. {hit.score:.3f}  {where}\n    {snippet}\n")
    return 0


def _stats(args: argparse.Namespace, settings: Settings) -> int:
    from server.lifespan import build_retrieval

    stats = build_retrieval(settings).knowledge.stats(args.tenant)
    sys.stdout.write(json.dumps(stats, indent=2) + "\n")
    return 0


def _questions(args: argparse.Namespace, settings: Settings) -> int:
    from core.ids import check_tenant
    from retrieval.knowledge import ReindexMode
    from server.lifespan import build_retrieval
    from server.services.knowledge import decide_learned_question
    from server.store.learned_questions import Decision, LearnedQuestions

    tenant = check_tenant(args.tenant)
    retrieval = build_retrieval(settings)
    learned = LearnedQuestions(retrieval.database, retrieval.keyring)
    if args.approve or args.reject:
        decision = Decision.APPROVED if args.approve else Decision.REJECTED
        candidate, _ = decide_learned_question(
            retrieval.knowledge, learned, tenant, args.approve or args.reject, decision, "cli"
        )
        sys.stdout.write(f"{decision} for {candidate.doc_id}: {candidate.question}\n")
        if decision is Decision.APPROVED:
            return _run_reindex(retrieval.knowledge, tenant, ReindexMode.INCREMENTAL)
        return 0
    candidates = learned.candidates(tenant)
    if args.json:
        rows = [{**vars(c), "evidence": str(c.evidence)} for c in candidates]
        sys.stdout.write(json.dumps(rows, indent=2, ensure_ascii=False) + "\n")
        return 0
    if not candidates:
        sys.stdout.write(f"{tenant}: no example questions to review\n")
    for c in candidates:
        sys.stdout.write(f"{c.question_id}  {c.doc_id}  ({c.evidence}, {c.seen}x)  {c.question}\n")
    return 0
