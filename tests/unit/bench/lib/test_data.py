"""The benchmarks' inputs: the same seed draws the same Bitext prompts in every benchmark."""

from pathlib import Path

import pytest

from bench.lib.data import bitext_rows, load_banking77, load_prompts


@pytest.fixture
def bitext(tmp_path: Path) -> Path:
    folder = tmp_path / "bitext-customer-support"
    folder.mkdir()
    rows = ["instruction,response", '" where is my order ","line one\r\n\r\nline two"', ",empty"]
    rows += [f"question {i},answer {i}" for i in range(20)]
    rows += ["question 3,a duplicate"]
    (folder / "data.csv").write_text("\n".join(rows) + "\n", encoding="utf-8", newline="")
    return folder


def test_prompts_are_distinct_stripped_and_seeded(bitext: Path) -> None:
    prompts = load_prompts(bitext, 21, seed=0)
    assert len(set(prompts)) == 21 and "where is my order" in prompts and "" not in prompts
    assert load_prompts(bitext / "data.csv", 5, seed=1) == load_prompts(bitext, 5, seed=1)
    assert load_prompts(bitext, 5, seed=1) != load_prompts(bitext, 5, seed=2)


def test_asking_for_more_prompts_than_there_are_stops_the_run(bitext: Path) -> None:
    with pytest.raises(SystemExit):
        load_prompts(bitext, 22, seed=0)


def test_bitext_rows_have_unix_line_ends(bitext: Path) -> None:
    assert bitext_rows(bitext)[0]["response"] == "line one\n\nline two"


def test_banking77_texts_and_labels(tmp_path: Path) -> None:
    (tmp_path / "banking77").mkdir()
    csv_text = "text,category\nmy card is lost,lost_or_stolen_card\n"
    (tmp_path / "banking77" / "test.csv").write_text(csv_text, encoding="utf-8")
    assert load_banking77(tmp_path, "test") == (["my card is lost"], ["lost_or_stolen_card"])
