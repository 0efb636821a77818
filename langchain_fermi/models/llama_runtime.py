"""Process-wide llama.cpp instances: one model per GGUF file, its lock, and clean shutdown.

A target and an optimizer on the same local model share one `llama_cpp.Llama` (memory, KV cache);
llama.cpp contexts are not thread-safe, so every call holds the instance's lock.
"""

from __future__ import annotations

import atexit
import contextlib
import os
import threading
import weakref
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from langchain_fermi.errors import ModelNotInstalledError

if TYPE_CHECKING:
    from llama_cpp import Llama

__all__ = [
    "SharedLlama",
    "chat_formatter",
    "chat_prompt_tokens",
    "close_llamas",
    "default_threads",
    "shared_llama",
]


def default_threads() -> int:
    """``FERMI_LLAMA_THREADS`` or 2.

    llama.cpp's threads spin while they wait for each other, so on a machine whose cores are
    busy with other work more threads are much slower (measured on 2 busy cores: prompt
    evaluation 4-10x slower with 2 threads than with 1). Set the variable to 1 there.
    """
    raw = os.environ.get("FERMI_LLAMA_THREADS", "").strip()
    if not raw:
        return 2
    if not raw.isdigit() or int(raw) < 1:
        msg = f"FERMI_LLAMA_THREADS must be a positive integer, got {raw!r}"
        raise ValueError(msg)
    return int(raw)


@dataclass
class SharedLlama:
    llama: Llama
    lock: threading.Lock
    last_chat: str | None = None
    """The chat of the last chat completion, while the KV cache holds nothing else since (set
    to None by any other use): a seeded call whose chat differs starts from an empty cache."""


_LLAMAS: dict[tuple[str, int], SharedLlama] = {}
_LLAMAS_LOCK = threading.Lock()


def shared_llama(path: str, n_ctx: int, n_threads: int) -> SharedLlama:
    """One `llama_cpp.Llama` per (GGUF file, n_ctx) per process, with the lock that guards it."""
    key = (os.path.realpath(path), n_ctx)
    with _LLAMAS_LOCK:
        shared = _LLAMAS.get(key)
        if shared is None:
            try:
                from llama_cpp import Llama
            except ImportError as e:
                msg = "llama-cpp-python is not installed: pip install 'langchain-fermi[local]'"
                raise ModelNotInstalledError(msg) from e
            if not Path(path).is_file():
                msg = f"GGUF model file not found: {path}"
                raise FileNotFoundError(msg)
            llama = Llama(
                model_path=path,
                n_ctx=n_ctx,
                n_threads=n_threads,
                n_threads_batch=n_threads,
                verbose=False,
            )
            shared = SharedLlama(llama=llama, lock=threading.Lock())
            if not _LLAMAS:
                atexit.register(close_llamas)
            _LLAMAS[key] = shared
        return shared


def close_llamas() -> None:
    """Free the shared models before interpreter teardown.

    Left to ``Llama.__del__`` at shutdown, llama.cpp's free functions may already be gone and every
    process exit prints a ``TypeError`` traceback.
    """
    with _LLAMAS_LOCK:
        for shared in _LLAMAS.values():
            with contextlib.suppress(Exception):
                shared.llama.close()
        _LLAMAS.clear()


_FORMATTERS: weakref.WeakKeyDictionary[Any, Any] = weakref.WeakKeyDictionary()


def chat_formatter(llm: Llama) -> Any:
    """The chat formatter `create_chat_completion` uses for ``llm`` (same template and tokens).

    The letter scorer builds its exact prompt tokens with it, and streaming counts the prompt's
    tokens with it (llama.cpp reports no usage while streaming).

    Raises:
        NotImplementedError: a custom ``chat_handler`` or a chat format other than the GGUF's
            own template or ChatML.
    """
    cached = _FORMATTERS.get(llm)
    if cached is not None:
        return cached
    from llama_cpp import llama_chat_format

    if llm.chat_handler is not None:
        msg = "a model with a custom chat_handler cannot be scored from logits; use 'parse'"
        raise NotImplementedError(msg)
    fmt = llm.chat_format or ""
    key = "tokenizer.chat_template" + ("" if fmt == "chat_template.default" else f".{fmt}")
    if fmt.startswith("chat_template.") and key in llm.metadata:
        # Mirrors Llama.__init__, which builds its handler from the GGUF's template this way.
        eos_id, bos_id = llm.token_eos(), llm.token_bos()
        eos = llm._model.token_get_text(eos_id) if eos_id != -1 else ""
        bos = llm._model.token_get_text(bos_id) if bos_id != -1 else ""
        formatter: Any = llama_chat_format.Jinja2ChatFormatter(
            template=llm.metadata[key], eos_token=eos, bos_token=bos, stop_token_ids=[eos_id]
        )
    elif fmt == "chatml":
        formatter = llama_chat_format.format_chatml
    else:
        msg = f"chat format {fmt!r} is not supported by the logits scorer; use method='parse'"
        raise NotImplementedError(msg)
    _FORMATTERS[llm] = formatter
    return formatter


def chat_prompt_tokens(llm: Llama, messages: Sequence[dict[str, str]]) -> list[int]:
    """The tokens `create_chat_completion(messages)` evaluates, generation prompt included."""
    result = chat_formatter(llm)(messages=list(messages))
    return llm.tokenize(
        result.prompt.encode("utf-8"), add_bos=not result.added_special, special=True
    )
