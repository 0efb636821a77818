"""Read-only stores are readable (list, show, export, snapshot, selection) and refuse writes.

Tests run as root, for whom ``chmod a-w`` does not stop writes. So the mode is tested three ways:
``read_only=True`` explicitly; the detection with `is_writable` patched; and, when this process
is root, for real: a subprocess drops to the ``nobody`` user after importing what it needs and
opens a ``chmod -R a-w`` copy of a store.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from pathlib import Path

import pytest
from fermi_store_fakes import KeywordEmbeddings, economy_and_gun_prompts, make_result, make_user

import langchain_fermi.store.access as access_module
from langchain_fermi.errors import FermiError, StoreReadOnlyError
from langchain_fermi.store import FermiStore
from langchain_fermi.store.client import is_writable

TESTS = Path(__file__).resolve().parent


def _files(path: Path) -> dict[str, str]:
    return {
        str(p.relative_to(path)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(path.rglob("*"))
        if p.is_file()
    }


@pytest.fixture
def saved(tmp_path: Path) -> Path:
    path = tmp_path / "chroma"
    store = FermiStore(path, embeddings=KeywordEmbeddings())
    store.save_result(make_result("alice", economy_and_gun_prompts()), user=make_user("alice"))
    store.save_user(make_user("bob"))
    return path


def _check_reads_and_refusals(store: FermiStore, writer_export: dict) -> None:
    assert store.read_only
    assert store.list_users() == ["alice", "bob"]
    assert store.export_user("alice") == writer_export
    assert store.snapshot("alice").describe()["prompts"] == 2
    assert store.nearest_opinions("alice", "gun laws", k=1)[0][0].id in {"o1", "o2", "o3"}
    assert [r["user_id"] for r in store.describe_users()] == ["alice", "bob"]
    for write in (
        lambda: store.save_user(make_user("carol")),
        lambda: store.save_prompts("alice", []),
        lambda: store.delete_user("bob"),
        lambda: store.import_user(writer_export, replace=True),
        lambda: store.bulk_import([(make_user("dave"), [])]),
        lambda: store.purge(),
    ):
        with pytest.raises(StoreReadOnlyError, match="read-only") as err:
            write()
        assert isinstance(err.value, PermissionError) and isinstance(err.value, FermiError)


def test_read_only_mode_reads_and_refuses_writes(saved: Path):
    export = FermiStore(saved, embeddings=KeywordEmbeddings()).export_user("alice")
    before = _files(saved)
    store = FermiStore(saved, embeddings=KeywordEmbeddings(), read_only=True)
    _check_reads_and_refusals(store, export)
    assert "read_only=True" in repr(store)
    assert _files(saved) == before  # not one byte of the folder changed


def test_unwritable_folder_opens_read_only(saved: Path, monkeypatch: pytest.MonkeyPatch):
    export = FermiStore(saved, embeddings=KeywordEmbeddings()).export_user("alice")
    monkeypatch.setattr(access_module, "is_writable", lambda path: False)
    _check_reads_and_refusals(FermiStore(saved, embeddings=KeywordEmbeddings()), export)
    with pytest.raises(FileNotFoundError, match="no Fermi store at"):
        FermiStore(saved.parent / "empty-and-unwritable", read_only=True)


def test_is_writable(tmp_path: Path, monkeypatch: pytest.MonkeyPatch):
    assert is_writable(tmp_path)
    monkeypatch.setattr(os, "access", lambda path, mode: str(path) != str(tmp_path))
    assert not is_writable(tmp_path)


@pytest.mark.skipif(not hasattr(os, "geteuid") or os.geteuid() != 0, reason="needs root to setuid")
def test_non_root_process_reads_a_read_only_folder(saved: Path):
    export = FermiStore(saved, embeddings=KeywordEmbeddings()).export_user("alice")
    # A folder the unprivileged user can reach (pytest's tmp_path is private to root).
    outer = Path(tempfile.mkdtemp(prefix="fermi-ro-"))
    try:
        ro = outer / "chroma"
        shutil.copytree(saved, ro)
        os.chmod(outer, 0o755)
        for root, dirs, files in os.walk(ro):
            for name in dirs:
                os.chmod(os.path.join(root, name), 0o555)
            for name in files:
                os.chmod(os.path.join(root, name), 0o444)
        os.chmod(ro, 0o555)
        warm = outer / "warm"
        script = textwrap.dedent(f"""
            import json, os, sys
            sys.path.insert(0, {str(TESTS)!r})
            from fermi_store_fakes import KeywordEmbeddings, make_user
            from langchain_fermi.errors import StoreReadOnlyError
            from langchain_fermi.store import FermiStore
            # as root, run every code path once so that nothing is imported after setuid
            w = FermiStore({str(warm)!r}, embeddings=KeywordEmbeddings())
            w.save_user(make_user("x")); w.export_user("x"); w.describe_users()
            w.nearest_opinions("x", "gun", k=1)
            FermiStore({str(warm)!r}, embeddings=KeywordEmbeddings(), read_only=True).list_users()
            os.setgid(65534); os.setuid(65534)
            assert not os.access({str(ro)!r}, os.W_OK)
            store = FermiStore({str(ro)!r}, embeddings=KeywordEmbeddings())
            out = {{"read_only": store.read_only, "users": store.list_users(),
                    "export": store.export_user("alice"),
                    "nearest": store.nearest_opinions("alice", "gun laws", k=1)[0][0].id}}
            try:
                store.save_user(make_user("carol"))
                out["write"] = "accepted"
            except StoreReadOnlyError as e:
                out["write"] = str(e)
            print(json.dumps(out))
        """)
        env = {**os.environ, "TMPDIR": "/tmp", "HOME": "/tmp"}
        done = subprocess.run(
            [sys.executable, "-c", script], capture_output=True, text=True, timeout=300, env=env
        )
        if done.returncode != 0 and "Operation not permitted" in done.stderr:
            pytest.skip("this container does not allow setuid")
        assert done.returncode == 0, done.stderr[-3000:]
        got = json.loads(done.stdout.strip().splitlines()[-1])
        assert got["read_only"] and got["users"] == ["alice", "bob"]
        assert got["export"] == export and got["nearest"] in {"o1", "o2", "o3"}
        assert "is read-only" in got["write"]
    finally:
        for root, dirs, _ in os.walk(outer):
            for name in dirs:
                os.chmod(os.path.join(root, name), 0o755)
        shutil.rmtree(outer, ignore_errors=True)
