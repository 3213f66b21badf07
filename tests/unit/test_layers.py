"""The packages are layers: core <- models <- retrieval <- server, each importing only below.

Every ``import`` and ``from ... import`` in the tree is checked, including those inside
functions and ``TYPE_CHECKING`` blocks: a lazy upward import is still an upward import.
"""

from __future__ import annotations

import ast
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
LAYERS = ("core", "models", "retrieval", "server")
"""Bottom first: a package may import the ones before it, never the ones after."""


@dataclass(frozen=True)
class UpwardImport:
    path: Path
    line: int
    importer: str
    imported: str

    def __str__(self) -> str:
        return f"{self.path}:{self.line}: {self.importer} imports {self.imported} (a layer above)"


def imported_packages(source: str) -> list[tuple[int, str]]:
    """(line, top-level package) for every absolute import in ``source``."""
    found = []
    for node in ast.walk(ast.parse(source)):
        if isinstance(node, ast.Import):
            found += [(node.lineno, alias.name.split(".")[0]) for alias in node.names]
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.append((node.lineno, node.module.split(".")[0]))
    return found


def upward_imports(root: Path) -> list[UpwardImport]:
    """Every import in ``root``'s layer packages that reaches a layer above its own."""
    rank = {name: index for index, name in enumerate(LAYERS)}
    found = []
    for layer in LAYERS:
        for path in sorted((root / layer).rglob("*.py")):
            for line, package in imported_packages(path.read_text(encoding="utf-8")):
                if (package in rank and rank[package] > rank[layer]) or package in (
                    "bench",
                    "tests",
                ):
                    found.append(UpwardImport(path.relative_to(root), line, layer, package))
    return found


def test_no_layer_imports_a_layer_above_it() -> None:
    problems = upward_imports(REPO)
    assert not problems, "upward imports:\n" + "\n".join(map(str, problems))


def test_every_layer_is_a_package_here() -> None:
    for layer in LAYERS:
        assert (REPO / layer / "__init__.py").is_file(), layer


def test_the_check_finds_an_upward_import_in_every_pair_of_layers(tmp_path: Path) -> None:
    """The checker itself: each lower layer importing each higher one is reported."""
    for layer in LAYERS:
        (tmp_path / layer).mkdir()
        (tmp_path / layer / "__init__.py").write_text("")
    expected = set()
    for low_index, low in enumerate(LAYERS):
        lines = ["from __future__ import annotations", "import json", f"from {low} import x"]
        for high in LAYERS[low_index + 1 :]:
            lines.append(f"def lazy_{high}() -> None:\n    from {high}.deep import thing")
            expected.add((low, high))
        lines.append("import bench.lib")
        expected.add((low, "bench"))
        (tmp_path / low / "module.py").write_text("\n".join(lines) + "\n")
    found = {(problem.importer, problem.imported) for problem in upward_imports(tmp_path)}
    assert found == expected


def test_relative_and_downward_imports_pass(tmp_path: Path) -> None:
    for layer in LAYERS:
        (tmp_path / layer).mkdir()
    (tmp_path / "server" / "a.py").write_text(
        "from . import b\nfrom core.errors import X\nimport models.embedder\nimport retrieval\n"
    )
    (tmp_path / "models" / "a.py").write_text("from core import metrics\nfrom .engine import y\n")
    assert upward_imports(tmp_path) == []
