"""The layout's two rules, read from the code's own imports so that they stay true.

1. Serving (`retrieval`, `personalizer`, `agents.middleware`) never imports optimization
   (`langchain_fermi.graph`), directly or through anything it imports.
2. Nothing outside `langchain_fermi/store/` imports chromadb.

Imports under ``if TYPE_CHECKING:`` do not run and are not counted; imports inside functions are.
"""

from __future__ import annotations

import ast
from functools import cache
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGE = ROOT / "langchain_fermi"
SERVING = (
    "langchain_fermi.retrieval",
    "langchain_fermi.personalizer",
    "langchain_fermi.agents.middleware",
)
OPTIMIZATION = "langchain_fermi.graph"
MAX_LINES = 400


def _module_name(path: Path) -> str:
    if ROOT not in path.parents:
        return path.stem
    rel = path.relative_to(ROOT).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _path_of(module: str) -> Path | None:
    base = ROOT.joinpath(*module.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def _is_type_checking(node: ast.If) -> bool:
    test = node.test
    return (isinstance(test, ast.Name) and test.id == "TYPE_CHECKING") or (
        isinstance(test, ast.Attribute) and test.attr == "TYPE_CHECKING"
    )


def _imports(path: Path) -> set[str]:
    """Modules ``path`` imports at run time (absolute names; relative imports resolved)."""
    tree = ast.parse(path.read_text(encoding="utf-8"))
    package = (
        _module_name(path) if path.name == "__init__.py" else _module_name(path).rpartition(".")[0]
    )
    found: set[str] = set()

    def visit(node: ast.AST) -> None:
        if isinstance(node, ast.If) and _is_type_checking(node):
            for child in node.orelse:
                visit(child)
            return
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")
                anchor = anchor[: len(anchor) - node.level + 1]
                base = ".".join([*anchor, base]) if base else ".".join(anchor)
            found.add(base)
            # ``from pkg import sub`` imports the submodule ``pkg.sub`` when it is one.
            found.update(
                f"{base}.{alias.name}" for alias in node.names if _path_of(f"{base}.{alias.name}")
            )
        for child in ast.iter_child_nodes(node):
            visit(child)

    visit(tree)
    return found


def _parents(module: str) -> list[str]:
    """Importing ``a.b.c`` first runs ``a`` and ``a.b``."""
    parts = module.split(".")
    return [".".join(parts[:i]) for i in range(1, len(parts))]


@cache
def _closure(module: str) -> frozenset[str]:
    """Every package module that importing ``module`` runs (parents and run-time imports)."""
    seen: set[str] = set()
    todo = [module]
    while todo:
        name = todo.pop()
        if name in seen:
            continue
        seen.add(name)
        path = _path_of(name)
        if path is None:
            continue
        todo += _parents(name)
        todo += [m for m in _imports(path) if m.startswith("langchain_fermi")]
    return frozenset(seen)


def _source_files() -> list[Path]:
    files = [p for p in PACKAGE.rglob("*.py")]
    for folder in ("graphs", "benchmarks", "examples"):
        files += (ROOT / folder).rglob("*.py")
    return sorted(files)


@pytest.mark.parametrize("module", SERVING)
def test_serving_never_imports_optimization(module: str) -> None:
    assert _path_of(module) is not None, f"{module} is gone: update SERVING"
    bad = sorted(
        m for m in _closure(module) if m == OPTIMIZATION or m.startswith(OPTIMIZATION + ".")
    )
    assert not bad, f"{module} imports optimization code: {bad}"


def test_only_the_store_imports_chromadb() -> None:
    store = PACKAGE / "store"
    offenders = [
        str(p.relative_to(ROOT))
        for p in _source_files()
        if store not in p.parents and any(m.split(".")[0] == "chromadb" for m in _imports(p))
    ]
    assert not offenders, f"only langchain_fermi/store/ may import chromadb: {offenders}"


def test_top_level_keeps_only_user_facing_modules() -> None:
    loose = sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem not in {"__init__", "__main__"})
    assert loose == sorted(["errors", "personalizer", "questions", "retrieval", "tokens"]), loose
    assert (PACKAGE / "types" / "__init__.py").is_file()  # the data model: a package of its own


def test_modules_stay_small() -> None:
    big = {
        str(p.relative_to(ROOT)): n
        for p in PACKAGE.rglob("*.py")
        if (n := len(p.read_text(encoding="utf-8").splitlines())) > MAX_LINES
    }
    assert not big, f"modules over {MAX_LINES} lines: {big}"


def test_the_rules_catch_a_violation(tmp_path: Path) -> None:
    """The import reader sees plain, relative, from-submodule and in-function imports."""
    sample = tmp_path / "sample.py"
    sample.write_text(
        "from typing import TYPE_CHECKING\n"
        "if TYPE_CHECKING:\n    import chromadb\n"
        "def f():\n    from langchain_fermi.graph import build_fermi_graph\n"
        "import numpy as np\n"
    )
    found = _imports(sample)
    assert "langchain_fermi.graph" in found
    assert "numpy" in found
    assert "chromadb" not in found
