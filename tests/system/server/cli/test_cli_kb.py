"""``concierge kb``: ingest, search, reindex and stats on a data directory, as a user runs them."""

from __future__ import annotations

import json
from pathlib import Path

from tests.cli import invoke, run_cli
from tests.servers import REPO


def test_ingest_the_demo_kb_search_it_and_reindex(tmp_path: Path) -> None:
    env = {"CONCIERGE_DATA_DIR": str(tmp_path)}
    first = invoke("kb", "ingest", str(REPO / "examples" / "kb"), "--tenant", "demo", env=env)
    assert first.returncode == 0, first.stderr
    assert "published version 1" in first.stdout
    assert "doc/s" in first.stderr  # the progress bar, on stderr, out of the way of stdout
    again = run_cli("kb", "ingest", str(REPO / "examples" / "kb"), "--tenant", "demo", env=env)
    assert "unchanged" in again and "nothing changed" in again

    found = run_cli("kb", "search", "my parcel tracking has not moved", "--tenant", "demo", env=env)
    assert found.splitlines()[0].endswith(
        "shipping.md > Shipping and delivery > Tracking your parcel"
    )
    hits = json.loads(
        run_cli("kb", "search", "JD01", "--tenant", "demo", "--mode", "lexical", "--json", env=env)
    )
    assert hits[0]["doc_id"] == "shipping.md" and hits[0]["lexical_score"] > 0

    full = run_cli("kb", "reindex", "--tenant", "demo", "--full", env=env)
    assert "published version 2 (full)" in full
    stats = json.loads(run_cli("kb", "stats", "--tenant", "demo", env=env))
    assert stats["version"] == 2 and stats["documents_indexed"] == stats["documents_stored"]


def test_ingest_with_prune_deletes_what_is_gone(tmp_path: Path) -> None:
    env = {"CONCIERGE_DATA_DIR": str(tmp_path / "data")}
    corpus = tmp_path / "kb"
    corpus.mkdir()
    (corpus / "a.md").write_text("# A\n\nAlpha.")
    (corpus / "b.md").write_text("# B\n\nBeta.")
    run_cli("kb", "ingest", str(corpus), "--tenant", "acme", env=env)
    (corpus / "b.md").unlink()
    pruned = run_cli("kb", "ingest", str(corpus), "--tenant", "acme", "--prune", env=env)
    assert "1 deleted" in pruned and "1 removed" in pruned


def test_bad_input_is_a_clear_error_without_a_traceback(tmp_path: Path) -> None:
    env = {"CONCIERGE_DATA_DIR": str(tmp_path / "data")}
    (tmp_path / "bad.csv").write_text("q,a\nx,y\n")
    cases = [
        (
            ["kb", "ingest", str(tmp_path / "bad.csv"), "--tenant", "acme"],
            "'question' and 'answer'",
        ),
        (
            ["kb", "ingest", str(tmp_path / "missing"), "--tenant", "acme"],
            "neither a file nor a folder",
        ),
        (["kb", "search", "x", "--tenant", "Not Valid"], "must match"),
        (["kb", "stats", "--tenant", "../etc"], "must match"),
    ]
    for args, message in cases:
        result = invoke(*args, env=env)
        assert result.returncode == 2, (args, result.stdout, result.stderr)
        assert message in result.stderr and "Traceback" not in result.stderr


def test_learned_questions_are_listed_and_an_unknown_one_is_a_clear_error(
    tmp_path: Path,
) -> None:
    env = {"CONCIERGE_DATA_DIR": str(tmp_path / "data")}
    listed = run_cli("kb", "questions", "--tenant", "acme", env=env)
    assert listed == "acme: no example questions to review\n"
    assert json.loads(run_cli("kb", "questions", "--tenant", "acme", "--json", env=env)) == []
    unknown = invoke(
        "kb", "questions", "--tenant", "acme", "--approve", "0123456789abcdef", env=env
    )
    assert unknown.returncode == 2, unknown.stderr
    assert "no undecided example question" in unknown.stderr and "Traceback" not in unknown.stderr
