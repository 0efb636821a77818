"""The public API is typed: mypy (pydantic plugin, pyproject's [tool.mypy]) sees real classes
behind the lazy top-level names, accepts the README's ``FermiConfig(K=4, L=5, T=3)`` and rejects
misuse. ``scripts/check_types.sh`` (run by scripts/test.sh) checks the whole package and every
README snippet."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "scripts"))

from readme_snippets import snippets  # noqa: E402

USES = """
from langchain_fermi import (
    CostEstimate, FermiConfig, FermiPersonalizer, FermiStore, LocalLlamaChatModel, estimate_cost,
    optimize_user,
)

config = FermiConfig(K=4, L=5, T=3)
k: int = config.num_candidates
reveal_type(FermiStore)
reveal_type(FermiPersonalizer)
reveal_type(LocalLlamaChatModel)
reveal_type(optimize_user)
est: CostEstimate = estimate_cost({"user_id": "u", "opinions": []}, config)
"""

MISUSES = """
from langchain_fermi import FermiConfig, estimate_cost

FermiConfig(K="four")
FermiConfig(unknown=1)
estimate_cost({"user_id": "u"}, FermiConfig(), price_per_1k_prompt="free")
"""


def _mypy(tmp_path: Path, code: str) -> tuple[str, int]:
    if importlib.util.find_spec("mypy") is None:
        pytest.skip("mypy is not installed (the dev extra)")
    from mypy import api

    path = tmp_path / "uses.py"
    path.write_text(code)
    config = str(ROOT / "pyproject.toml")
    out, err, code_ = api.run(["--config-file", config, "--no-error-summary", str(path)])
    return out + err, code_


def _ours(line: str) -> bool:
    """A line about the checked file. Matched by name, not by folder: when the file's text is
    the same as in an earlier run, mypy's cache replays that run's messages, with its path."""
    return line.split(":", 1)[0].endswith("/uses.py")


def test_public_names_are_typed_and_k_l_t_type_check(tmp_path: Path) -> None:
    out, _ = _mypy(tmp_path, USES)
    mine = [line for line in out.splitlines() if _ours(line)]
    assert not [line for line in mine if ": error:" in line], out
    revealed = [line.split("Revealed type is ")[1] for line in mine if "Revealed type" in line]
    assert len(revealed) == 4 and not any(r.strip('"') == "Any" for r in revealed), revealed
    assert "FermiStore" in revealed[0] and "FermiPersonalizer" in revealed[1]


def test_misuse_is_reported(tmp_path: Path) -> None:
    out, code = _mypy(tmp_path, MISUSES)
    errors = [line for line in out.splitlines() if _ours(line) and "error" in line]
    assert len(errors) == 3, out
    assert code == 1


def test_readme_python_snippets_are_extracted() -> None:
    blocks = snippets((ROOT / "README.md").read_text())
    assert blocks and any("FermiConfig(K=" in b for b in blocks)
    assert all("```" not in b for b in blocks)
