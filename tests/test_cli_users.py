"""``fermi users ...`` and ``fermi ask`` end to end (in-process ``main``), with real MiniLM."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fermi_store_fakes import economy_and_gun_prompts, make_result, make_user, prompt

from langchain_fermi.cli import main
from langchain_fermi.cli._common import PROJECT_STORE, resolve_store_path
from langchain_fermi.store import FermiStore

GUN_Q = "Would you buy a gun for self defense?"


@pytest.fixture(autouse=True)
def _no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("FERMI_STORE_PATH", "FERMI_CHROMA_HOST", "FERMI_CHROMA_PORT"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture
def store_path(tmp_path: Path) -> Path:
    path = tmp_path / "chroma"
    store = FermiStore(path)  # the CLI's own default embeddings (offline MiniLM)
    store.save_result(make_result("alice", economy_and_gun_prompts()), user=make_user("alice"))
    store.save_result(make_result("bob", [prompt("BOB", {"o1": 1})]), user=make_user("bob"))
    return path


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(list(argv))
    out = capsys.readouterr()
    return code, out.out, out.err


def test_list_and_show(store_path: Path, capsys: pytest.CaptureFixture[str]):
    code, out, _ = _run(capsys, "users", "list", "--store", str(store_path))
    assert code == 0
    rows = {line.split()[0]: line.split() for line in out.splitlines()[1:]}
    assert rows["alice"][1:4] == ["8", "2", "0.62"] and rows["bob"][1:4] == ["8", "1", "1.00"]
    code, out, _ = _run(capsys, "users", "show", "alice", "--store", str(store_path))
    assert code == 0
    assert "Age: 30-49" in out and "opinions: 8" in out
    assert "#0 score 0.62" in out and "You are a gun owner." in out
    code, out, _ = _run(capsys, "users", "show", "alice", "--json", "--store", str(store_path))
    assert json.loads(out) == FermiStore(store_path).export_user("alice")


def test_export_delete_import(store_path: Path, tmp_path: Path, capsys):
    dump = tmp_path / "alice.json"
    before = FermiStore(store_path).export_user("alice")
    assert (
        _run(capsys, "users", "export", "alice", "-o", str(dump), "--store", str(store_path))[0]
        == 0
    )
    assert json.loads(dump.read_text()) == before
    code, out, _ = _run(capsys, "users", "delete", "alice", "--store", str(store_path))
    assert code == 0 and "deleted user alice" in out
    assert FermiStore(store_path).list_users() == ["bob"]
    code, _, err = _run(capsys, "users", "show", "alice", "--store", str(store_path))
    assert code == 1 and "unknown user 'alice'" in err  # a runtime error, not a usage error
    code, out, _ = _run(capsys, "users", "import", str(dump), "--store", str(store_path))
    assert code == 0 and "imported user alice" in out
    assert FermiStore(store_path).export_user("alice") == before
    code, _, err = _run(capsys, "users", "import", str(dump), "--store", str(store_path))
    assert code == 1 and "already exists" in err and "pass --replace" in err
    assert (
        _run(capsys, "users", "import", str(dump), "--replace", "--store", str(store_path))[0] == 0
    )
    code, out, _ = _run(capsys, "users", "export", "bob", "--store", str(store_path))
    assert json.loads(out)["prompts"][0]["text"] == "BOB"


def test_missing_store_is_an_error(tmp_path: Path, capsys):
    code, _, err = _run(capsys, "users", "list", "--store", str(tmp_path / "nope"))
    assert code == 1 and "no Fermi store at" in err
    assert not (tmp_path / "nope").exists()


def test_project_store_is_the_default_when_present(tmp_path: Path, monkeypatch):
    monkeypatch.chdir(tmp_path)
    assert resolve_store_path(None) is None
    (tmp_path / PROJECT_STORE).mkdir(parents=True)
    assert resolve_store_path(None) == PROJECT_STORE
    monkeypatch.setenv("FERMI_STORE_PATH", str(tmp_path / "x"))
    assert resolve_store_path(None) is None  # the environment wins over ./.fermi
    assert resolve_store_path(tmp_path / "y") == tmp_path / "y"


def test_ask_dry_run_explains(store_path: Path, capsys):
    code, out, _ = _run(
        capsys, "ask", GUN_Q, "--user-id", "alice", "--choices", "Yes", "No",
        "--dry-run", "--store", str(store_path),
    )  # fmt: skip
    assert code == 0
    assert "prompt #1 [retrieval]" in out and "You are a gun owner." in out
    assert "nearest past opinions" in out and "#1: 3/3 right on them" in out
    assert "--- system\nYou are a gun owner." in out and "A. Yes\nB. No" in out
    code, _, err = _run(capsys, "ask", GUN_Q, "--user-id", "carol", "--dry-run",
                        "--store", str(store_path))  # fmt: skip
    assert code == 1 and "unknown user 'carol'" in err


@pytest.mark.local_model
def test_ask_with_the_local_model(store_path: Path, capsys):
    pytest.importorskip("llama_cpp")
    code, out, _ = _run(
        capsys, "ask", GUN_Q, "--user-id", "alice", "--choices", "Yes", "No",
        "--explain", "--store", str(store_path),
    )  # fmt: skip
    last = out.strip().splitlines()[-1]
    assert "You are a gun owner." in out
    assert (code == 0 and last in ("A. Yes", "B. No")) or (code == 1 and "unreadable" in last)


def test_delete_purge_leaves_no_byte_of_the_user(store_path: Path, capsys):
    """`fermi users delete --purge`: carl's prompt text is on disk before, nowhere after."""
    marker = b"ZQX-carl-only-7f3a9c"
    FermiStore(store_path).save_result(
        make_result("carl", [prompt(marker.decode(), {"o1": 1})]), user=make_user("carl")
    )

    def hits() -> list[str]:
        return [str(p) for p in store_path.rglob("*") if p.is_file() and marker in p.read_bytes()]

    assert hits()  # it was written somewhere
    code, out, _ = _run(capsys, "users", "delete", "carl", "--purge", "--store", str(store_path))
    assert code == 0 and "purged" in out
    assert hits() == []
    assert FermiStore(store_path).list_users() == ["alice", "bob"]
    assert FermiStore(store_path).get_prompts("alice")[0].score == pytest.approx(0.62, abs=0.01)
