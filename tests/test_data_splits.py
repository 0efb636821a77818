"""Seeded per-user splits and locating the shared data folder."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from langchain_fermi.data import UserSplit, find_shared_data_dir, split_user, splits
from langchain_fermi.types import Opinion, UserProfile


def make_user(n: int, user_id: str = "alice") -> UserProfile:
    ops = [
        Opinion(
            id=f"q{i:02d}",
            question=f"Question {i}?",
            choices=["Yes", "No"],
            answer="Yes" if i % 3 else "No",
        )
        for i in range(n)
    ]
    return UserProfile(user_id=user_id, attributes={"Age": "30-49"}, opinions=ops)


def ids(ops: list[Opinion]) -> list[str]:
    return [o.id for o in ops]


def test_sizes_disjoint_and_complete() -> None:
    user = make_user(60)
    split = split_user(user, n_optimize=20, n_test=30, seed=0)
    assert isinstance(split, UserSplit)
    opt, test = ids(split.optimize.opinions), ids(split.test)
    assert (len(opt), len(test)) == (20, 30)
    assert not set(opt) & set(test)
    assert set(opt) | set(test) <= set(ids(user.opinions))
    assert split.optimize.user_id == "alice" and split.optimize.attributes == user.attributes
    # both parts keep the user's order
    order = ids(user.opinions)
    assert opt == sorted(opt, key=order.index) and test == sorted(test, key=order.index)
    assert len(user.opinions) == 60  # the input is not modified


def test_same_seed_same_split_other_seed_other_split() -> None:
    user = make_user(60)
    a, b = split_user(user, seed=0), split_user(user, seed=0)
    assert ids(a.optimize.opinions) == ids(b.optimize.opinions) and ids(a.test) == ids(b.test)
    c = split_user(user, seed=1)
    assert ids(c.optimize.opinions) != ids(a.optimize.opinions)
    # a random pick, not the first opinions
    assert ids(a.optimize.opinions) != ids(user.opinions)[:20]


def test_split_ignores_opinion_order_and_depends_on_user() -> None:
    user = make_user(40)
    shuffled = user.model_copy(update={"opinions": list(reversed(user.opinions))})
    assert set(ids(split_user(user).optimize.opinions)) == set(
        ids(split_user(shuffled).optimize.opinions)
    )
    other = make_user(40, user_id="bob")
    assert ids(split_user(other).optimize.opinions) != ids(split_user(user).optimize.opinions)


def test_same_split_in_another_process_with_other_hash_seed() -> None:
    code = (
        "from langchain_fermi.data import split_user;"
        "from langchain_fermi.types import Opinion, UserProfile;"
        "ops = [Opinion(id=f'q{i:02d}', question='Q?', choices=['Yes', 'No'], answer='No')"
        " for i in range(50)];"
        "s = split_user(UserProfile(user_id='alice', opinions=ops), seed=3);"
        "print(','.join(o.id for o in s.test))"
    )
    root = Path(__file__).resolve().parents[1]
    outs = {
        subprocess.run(
            [sys.executable, "-c", code],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
            env={**os.environ, "PYTHONHASHSEED": hs},
        ).stdout.strip()
        for hs in ("1", "2")
    }
    assert outs == {",".join(ids(split_user(make_user(50), seed=3).test))}


def test_too_few_opinions_fill_optimization_first() -> None:
    split = split_user(make_user(25), n_optimize=20, n_test=30)
    assert (len(split.optimize.opinions), len(split.test)) == (20, 5)
    split = split_user(make_user(12), n_optimize=20, n_test=30)
    assert (len(split.optimize.opinions), len(split.test)) == (12, 0)


def test_n_test_none_keeps_the_rest_and_bad_sizes() -> None:
    split = split_user(make_user(45), n_optimize=20, n_test=None)
    assert (len(split.optimize.opinions), len(split.test)) == (20, 25)
    with pytest.raises(ValueError, match="user 'alice': n_optimize and n_test must be >= 0"):
        split_user(make_user(5), n_optimize=-1)


def test_find_shared_data_dir_env(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FERMI_DATA_DIR", str(tmp_path))
    assert find_shared_data_dir() == tmp_path.resolve()
    monkeypatch.setenv("FERMI_DATA_DIR", str(tmp_path / "missing"))
    assert find_shared_data_dir() is None


def test_find_shared_data_dir_lookup_order(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.delenv("FERMI_DATA_DIR", raising=False)
    checkout = tmp_path / "a" / "repo"
    fake_module = checkout / "langchain_fermi" / "data" / "splits.py"
    monkeypatch.setattr(splits, "__file__", str(fake_module))
    monkeypatch.chdir(tmp_path)
    assert find_shared_data_dir() is None
    (tmp_path / "b" / "repo").mkdir(parents=True)
    (tmp_path / "b" / "shared" / "data").mkdir(parents=True)
    monkeypatch.chdir(tmp_path / "b" / "repo")
    assert find_shared_data_dir() == (tmp_path / "b" / "shared" / "data").resolve()
    (tmp_path / "a" / "shared" / "data").mkdir(parents=True)  # next to the checkout wins
    assert find_shared_data_dir() == (tmp_path / "a" / "shared" / "data").resolve()
