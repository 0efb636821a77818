"""FermiStore against a Chroma server (``chroma run``) through HttpClient."""

from __future__ import annotations

import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest
from fermi_store_fakes import KeywordEmbeddings, economy_and_gun_prompts, make_result, make_user

from langchain_fermi.personalizer import FermiPersonalizer
from langchain_fermi.store import FermiStore


def _chroma_cli() -> str | None:
    return shutil.which("chroma", path=str(Path(sys.executable).parent)) or shutil.which("chroma")


@pytest.fixture(scope="module")
def chroma_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[tuple[str, int]]:
    cli = _chroma_cli()
    if cli is None:
        pytest.skip("the chroma CLI is not installed")
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    data = tmp_path_factory.mktemp("chroma_server")
    log = (data / "server.log").open("w")
    proc = subprocess.Popen(
        [cli, "run", "--path", str(data / "db"), "--host", "127.0.0.1", "--port", str(port)],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        deadline = time.monotonic() + 60
        while True:
            try:
                with urllib.request.urlopen(f"http://127.0.0.1:{port}/api/v2/heartbeat", timeout=2):
                    break
            except OSError:
                if proc.poll() is not None or time.monotonic() > deadline:
                    pytest.fail(f"chroma run did not start: {(data / 'server.log').read_text()}")
                time.sleep(0.3)
        yield "127.0.0.1", port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


@pytest.mark.server
def test_store_over_http(chroma_server: tuple[str, int], monkeypatch: pytest.MonkeyPatch):
    host, port = chroma_server
    store = FermiStore(host=host, port=port, embeddings=KeywordEmbeddings(), collection_prefix="h1")
    assert store.path is None
    store.save_result(make_result("alice", economy_and_gun_prompts()), user=make_user("alice"))
    # a second client (as another process would) through the environment
    monkeypatch.delenv("FERMI_STORE_PATH", raising=False)
    monkeypatch.setenv("FERMI_CHROMA_HOST", host)
    monkeypatch.setenv("FERMI_CHROMA_PORT", str(port))
    other = FermiStore(embeddings=KeywordEmbeddings(), collection_prefix="h1")
    assert other.get_prompts("alice") == economy_and_gun_prompts()
    assert other.get_user("alice") == make_user("alice")
    sel = FermiPersonalizer(other).select_prompt("alice", "Would you buy a gun?")
    assert sel.prompt.text == "You are a gun owner."
    other.delete_user("alice")
    assert store.list_users() == []


@pytest.mark.server
def test_purge_over_http_rewrites_the_collections(chroma_server: tuple[str, int]):
    host, port = chroma_server
    store = FermiStore(host=host, port=port, embeddings=KeywordEmbeddings(), collection_prefix="h2")
    for uid in ("alice", "bob"):
        store.save_result(make_result(uid, economy_and_gun_prompts()), user=make_user(uid))
    other = FermiStore(host=host, port=port, embeddings=KeywordEmbeddings(), collection_prefix="h2")
    bob = other.export_user("bob")  # `other` now holds the old collections
    ids_before = {c.name: c.id for c in store._client.list_collections()}
    store.delete_user("alice", purge=True)  # no folder to compact: the server's operator does
    assert store.purge() == {}
    ids_after = {c.name: c.id for c in store._client.list_collections()}
    assert set(ids_after) >= {"h2_users", "h2_opinions", "h2_prompts"}
    assert all(ids_after[n] != ids_before[n] for n in ("h2_users", "h2_opinions", "h2_prompts"))
    assert other.list_users() == ["bob"] and other.export_user("bob") == bob  # finds the new ones
    assert not other.has_user("alice")
