"""The shape of bench/: each script is its plan plus ``main`` and takes everything it shares
from bench/lib/, which holds each shared piece once; no module grows past 500 lines; bench is
checked by mypy but not installed with Concierge (it runs as modules from the repository)."""

from __future__ import annotations

import ast
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[3]
BENCH = REPO / "bench"
MODULES = sorted(BENCH.rglob("*.py"))
SCRIPTS = sorted(p for p in BENCH.glob("*.py") if p.name != "__init__.py")
MAX_LINES = 500


def bench_imports(path: Path) -> list[tuple[str, list[str]]]:
    """(module, names) of each ``from bench... import names`` in ``path``."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    return [
        (node.module, [alias.name for alias in node.names])
        for node in ast.walk(tree)
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("bench")
    ]


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(REPO)))
def test_no_module_is_over_500_lines(path: Path) -> None:
    lines = len(path.read_text(encoding="utf-8").splitlines())
    assert lines <= MAX_LINES, f"{path.relative_to(REPO)} has {lines} lines"


@pytest.mark.parametrize("path", MODULES, ids=lambda p: str(p.relative_to(REPO)))
def test_nothing_private_is_imported_from_another_module(path: Path) -> None:
    private = [(m, n) for m, names in bench_imports(path) for n in names if n.startswith("_")]
    assert not private, f"{path.relative_to(REPO)} imports private {private}"


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: p.name)
def test_scripts_share_only_through_bench_lib(path: Path) -> None:
    others = [m for m, _ in bench_imports(path) if not m.startswith("bench.lib")]
    assert not others, f"{path.name} imports {others}: shared code belongs in bench/lib"


@pytest.mark.parametrize("path", SCRIPTS, ids=lambda p: p.name)
def test_every_script_runs_as_a_module_with_main(path: Path) -> None:
    source = path.read_text(encoding="utf-8")
    names = {n.name for n in ast.parse(source).body if isinstance(n, ast.FunctionDef)}
    assert "main" in names and 'if __name__ == "__main__":' in source


def test_bench_lib_never_imports_a_script() -> None:
    for path in sorted((BENCH / "lib").glob("*.py")):
        scripts = [m for m, _ in bench_imports(path) if not m.startswith("bench.lib")]
        assert not scripts, f"{path.name} imports {scripts}"


def test_bench_is_type_checked_but_not_installed() -> None:
    config = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["tool"]
    assert not [p for p in config["setuptools"]["packages"]["find"]["include"] if "bench" in p]
    assert "bench" in config["mypy"]["packages"]
