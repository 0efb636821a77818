"""What the wheel ships besides code: the example users (``fermi quickstart`` from an install)
and the MiniLM tokenizer; the wheel's own contents are checked in tests/test_wheel_install.py."""

from __future__ import annotations

from pathlib import Path

import pytest

from langchain_fermi.cli.quickstart import find_example_users
from langchain_fermi.data import load_users
from langchain_fermi.data.examples import EXAMPLE_USERS_FILE, load_example_users

ROOT = Path(__file__).resolve().parents[1]


def test_packaged_example_users_are_the_repository_ones() -> None:
    assert EXAMPLE_USERS_FILE.read_bytes() == (ROOT / "examples/data/users.json").read_bytes()
    users = load_example_users()
    assert [u.user_id for u in users] == [u.user_id for u in load_users(EXAMPLE_USERS_FILE)]
    assert len(users) >= 2 and all(u.opinions for u in users)


def test_quickstart_finds_the_packaged_users_outside_a_checkout(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)  # no ./examples here
    assert find_example_users() == EXAMPLE_USERS_FILE
    (tmp_path / "examples" / "data").mkdir(parents=True)
    local = tmp_path / "examples" / "data" / "users.json"
    local.write_text("[]")
    assert find_example_users() == local  # a project's own examples win
