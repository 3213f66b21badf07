"""Where a benchmark's results go: its own marked section of docs/benchmarks.md (and nothing
else in it), raw JSON, and the command that produced them."""

import argparse
from pathlib import Path

from bench.lib.report import raw_args, replace_section, shown_command, update_doc, write_json

MARKS = ("<!-- x:begin -->", "<!-- x:end -->")
OTHER = "<!-- y:begin -->\nother benchmark\n<!-- y:end -->"


def section(body: str) -> str:
    return f"{MARKS[0]}\n{body}\n{MARKS[1]}"


def test_only_the_marked_section_is_replaced() -> None:
    text = f"# Benchmarks\n\nintro\n\n{section('old')}\n\n{OTHER}\n\n## Notes\n"
    replaced = replace_section(text, section("new"), MARKS)
    assert replaced == f"# Benchmarks\n\nintro\n\n{section('new')}\n\n{OTHER}\n\n## Notes\n"


def test_a_first_run_goes_before_the_first_heading() -> None:
    text = "# Benchmarks\n\nintro\n\n## Retrieval\n\nfigures\n"
    replaced = replace_section(text, section("new"), MARKS)
    assert replaced == f"# Benchmarks\n\nintro\n\n{section('new')}\n\n## Retrieval\n\nfigures\n"


def test_a_first_run_never_lands_inside_another_benchmarks_section() -> None:
    text = "# Benchmarks\n\nintro\n\n<!-- y:begin -->\n## Other\n\nfigures\n<!-- y:end -->\n"
    replaced = replace_section(text, section("new"), MARKS)
    assert replaced == (
        f"# Benchmarks\n\nintro\n\n{section('new')}\n\n"
        "<!-- y:begin -->\n## Other\n\nfigures\n<!-- y:end -->\n"
    )


def test_without_a_heading_it_is_appended() -> None:
    assert replace_section("# Benchmarks\n\n", section("s"), MARKS) == (
        f"# Benchmarks\n\n{section('s')}\n"
    )


def test_update_doc_rewrites_the_file_and_leaves_no_temporary(tmp_path: Path) -> None:
    doc = tmp_path / "benchmarks.md"
    update_doc(doc, section("one"), MARKS)
    update_doc(doc, section("two"), MARKS)
    assert doc.read_text(encoding="utf-8") == f"# Benchmarks\n\n{section('two')}\n"
    assert [p.name for p in tmp_path.iterdir()] == ["benchmarks.md"]


def test_the_command_shown_runs_from_the_repository_root() -> None:
    command = shown_command("serving", ["--concurrency", "1,4", "--note", "a b"])
    assert command == ".venv/bin/python -m bench.serving --concurrency 1,4 --note 'a b'"


def test_raw_json_stores_paths_as_text(tmp_path: Path) -> None:
    args = argparse.Namespace(data=Path("/data/x.csv"), seed=3, argv=["--seed", "3"])
    assert raw_args(args) == {"data": "/data/x.csv", "seed": 3, "argv": ["--seed", "3"]}
    path = write_json(tmp_path / "raw.json", {"args": raw_args(args)})
    assert '"seed": 3' in path.read_text(encoding="utf-8")
