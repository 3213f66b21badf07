"""Tables as the benchmarks print (aligned text) and publish them (markdown), from one set of
rows."""

from bench.lib.tables import (
    header,
    leading_left,
    markdown_table,
    number,
    numeric_alignment,
    text_table,
    times,
)

ROWS = [
    ["load", "system", "tok/s", "vs (b)"],
    ["c=1", "(a) Concierge chat", "1,234.5", "0.98x"],
    ["c=16", "(b) vLLM serve", "12.0", ""],
]


TEXT = """\
load  system                tok/s  vs (b)
----  ------------------  -------  ------
c=1   (a) Concierge chat  1,234.5   0.98x
c=16  (b) vLLM serve         12.0"""

MARKDOWN = """\
| load | system | tok/s | vs (b) |
|---|---|---:|---:|
| c=1 | (a) Concierge chat | 1,234.5 | 0.98x |
| c=16 | (b) vLLM serve | 12.0 |  |"""


def test_text_and_markdown_show_the_same_rows_labels_left_figures_right() -> None:
    assert text_table(ROWS, leading_left(ROWS, 2)) == TEXT
    assert markdown_table(ROWS, leading_left(ROWS, 2)) == MARKDOWN


def test_right_aligned_text_keeps_the_columns_and_drops_trailing_blanks() -> None:
    lines = text_table(ROWS, leading_left(ROWS, 0)).splitlines()
    assert lines[2] == " c=1  (a) Concierge chat  1,234.5   0.98x"
    assert all(line == line.rstrip() for line in lines)


def test_columns_of_numbers_are_found_by_their_cells() -> None:
    rows = [["index", "recall@10", "share", "ratio", "note"]]
    rows += [["flat", "0.912", "12.5%", "1,234x", "1e3 ok"], ["ivf 64/8", "", "3%", "0.50x", ""]]
    assert numeric_alignment(rows) == "lrrrl"  # an empty cell decides nothing
    assert text_table(rows).splitlines()[1:] == [
        "--------  ---------  -----  ------  ------",
        "flat          0.912  12.5%  1,234x  1e3 ok",
        "ivf 64/8                3%   0.50x",
    ]
    assert markdown_table(rows).splitlines()[1] == "|---|---:|---:|---:|---|"


def test_a_header_is_written_as_markdown_reads() -> None:
    assert header("load | system | tok/s") == ["load", "system", "tok/s"]


def test_numbers_and_missing_figures() -> None:
    assert number(1234.56, 1) == "1,234.6"
    assert number(float("nan")) == "n/a"
    assert number(float("nan"), missing="") == ""


def test_ratios_as_times() -> None:
    assert times(3.0, 2.0) == "1.50x"
    assert times(250.0, 2.0) == "125x"
    assert times(1.0, 0.0) == ""
    assert times(float("nan"), 1.0, missing="n/a") == "n/a"
