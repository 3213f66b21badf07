"""Tables as the benchmarks print and publish them: aligned text for the terminal, markdown
for docs/benchmarks.md, from the same rows, so both always show the same figures."""

from __future__ import annotations

from collections.abc import Sequence

from bench.lib.stats import ratio

Row = list[str]
"""One table row of formatted cells; the first row of a table is its header."""


def header(columns: str) -> Row:
    """A header row written as a markdown header reads: ``"load | system | tok/s"``."""
    return [column.strip() for column in columns.split(" | ")]


def leading_left(rows: Sequence[Row], left: int) -> str:
    """Alignment with the first ``left`` columns left-aligned and the rest right-aligned
    (labels first, figures after)."""
    return "l" * left + "r" * (len(rows[0]) - left)


def numeric_alignment(rows: Sequence[Row]) -> str:
    """A column is right-aligned when every non-empty body cell in it looks like a number."""
    return "".join(
        "r" if all(_looks_numeric(row[i]) for row in rows[1:] if row[i]) else "l"
        for i in range(len(rows[0]))
    )


def _looks_numeric(cell: str) -> bool:
    stripped = cell.replace(",", "").replace("x", "").replace("%", "").strip()
    try:
        float(stripped)
    except ValueError:
        return False
    return True


def text_table(rows: Sequence[Row], align: str | None = None) -> str:
    """Columns padded to their widest cell, a dashed line under the header.

    ``align`` has one ``l`` or ``r`` per column; None picks ``numeric_alignment``.
    """
    align = align or numeric_alignment(rows)
    widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
    lines = [
        "  ".join(
            cell.ljust(widths[i]) if align[i] == "l" else cell.rjust(widths[i])
            for i, cell in enumerate(row)
        ).rstrip()
        for row in rows
    ]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown_table(rows: Sequence[Row], align: str | None = None) -> str:
    """A markdown table; ``align`` as in ``text_table``."""
    align = align or numeric_alignment(rows)
    lines = ["| " + " | ".join(row) + " |" for row in rows]
    lines.insert(1, "|" + "|".join("---" if a == "l" else "---:" for a in align) + "|")
    return "\n".join(lines)


def number(value: float, digits: int = 0, missing: str = "n/a") -> str:
    """``value`` with thousands separators; ``missing`` for NaN (nothing was measured)."""
    if value != value:
        return missing
    return f"{value:,.{digits}f}"


def times(numerator: float, denominator: float, missing: str = "") -> str:
    """A ratio as ``1.23x`` (``123x`` from 100 on); ``missing`` where it is undefined."""
    value = ratio(numerator, denominator)
    if value != value:
        return missing
    return f"{value:,.0f}x" if value >= 100 else f"{value:.2f}x"
