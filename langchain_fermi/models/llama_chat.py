"""`LocalLlamaChatModel`: a GGUF chat model running in-process on llama.cpp, a standard LangChain
chat model (invoke, token streaming sync and async, usage metadata, stop sequences, tool calling).

Why not langchain-community's ``ChatLlamaCpp``: it always loads its own ``llama_cpp.Llama`` in
its validator and calls it without a lock, so it cannot share the process-wide instance that
`AnswerScorer` reads letter logits from (``scoring/llama.py``); a target and an optimizer on the
same file would load it twice and race on one context. This class keeps one loaded model per
(file, ``n_ctx``) and its lock (``models/llama_runtime.py``).
"""

from __future__ import annotations

import asyncio
import itertools
import json
import logging
import threading
from collections.abc import AsyncIterator, Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, cast

from langchain_core.callbacks import (
    AsyncCallbackManagerForLLMRun,
    CallbackManagerForLLMRun,
)
from langchain_core.language_models import BaseChatModel, LanguageModelInput
from langchain_core.language_models.chat_models import generate_from_stream
from langchain_core.messages import (
    AIMessage,
    AIMessageChunk,
    BaseMessage,
)
from langchain_core.messages.ai import UsageMetadata
from langchain_core.messages.tool import tool_call_chunk
from langchain_core.outputs import ChatGeneration, ChatGenerationChunk, ChatResult
from langchain_core.runnables import Runnable
from langchain_core.tools import BaseTool
from langchain_core.utils.function_calling import convert_to_openai_tool
from pydantic import BaseModel, ConfigDict, Field, PrivateAttr

from langchain_fermi.models.llama_messages import to_chat_messages
from langchain_fermi.models.llama_runtime import SharedLlama, chat_prompt_tokens, default_threads
from langchain_fermi.models.llama_runtime import shared_llama as _shared_llama
from langchain_fermi.models.llama_tools import (
    forced_tool_schema,
    normalize_tool_choice,
    parse_tool_calls,
    with_tool_instructions,
)

if TYPE_CHECKING:
    from llama_cpp import Llama

__all__ = ["LocalLlamaChatModel", "to_chat_messages"]

logger = logging.getLogger(__name__)

_INSTANCES = itertools.count()
"""Numbers the instances (copies included): whose call left the shared KV cache."""

MIN_TOOL_CALL_TOKENS = 512
"""A forced tool call may use at least this many tokens, whatever ``max_tokens`` says."""


def _usage(prompt_tokens: int, completion_tokens: int) -> UsageMetadata:
    return UsageMetadata(
        input_tokens=prompt_tokens,
        output_tokens=completion_tokens,
        total_tokens=prompt_tokens + completion_tokens,
    )


class LocalLlamaChatModel(BaseChatModel):
    """A chat model running a GGUF file in-process with llama.cpp, safe to share between threads.

    Every model object on the same (file, ``n_ctx``) shares one `llama_cpp.Llama` and its lock, so a
    target and an optimizer on the same local model load it once. Calls hold the lock because a
    llama.cpp context is not thread-safe. `AnswerScorer` reads letter logits through `.llama`
    under `.lock`. Streaming yields one chunk per token; `bind_tools` describes the tools in the
    system turn and, when a call is forced, generates it under a JSON-schema grammar.

    Example:
        >>> model = LocalLlamaChatModel(model_path=str(local_model_path("smollm2")))
        >>> model.invoke("Say hi").content
        >>> [c.content for c in model.stream("Count to 3")]
    """

    model_config = ConfigDict(arbitrary_types_allowed=True)

    model_path: str
    model_name: str = Field(default="", description="Short name used in ids; default: file stem.")
    n_ctx: int = Field(default=4096, ge=64)
    n_threads: int = Field(
        default_factory=default_threads,
        ge=1,
        description="Threads for generation and prompt eval (env FERMI_LLAMA_THREADS, else 2).",
    )
    temperature: float = Field(default=0.0, ge=0.0)
    max_tokens: int = Field(default=512, ge=1)
    top_p: float = Field(default=0.95, gt=0.0, le=1.0)
    seed: int | None = Field(
        default=None,
        description="Sampling seed of the first call; each later call of this instance uses "
        "the next one, so K samples of one prompt differ and a fresh instance repeats a run. "
        "None: llama.cpp picks a random seed per call.",
    )
    stop: list[str] | None = None
    streaming: bool = Field(default=False, description="invoke() streams internally when True.")
    tool_string_max_chars: int | None = Field(
        default=256,
        ge=1,
        description="Cap on each free string argument of a forced tool call (None: no cap). "
        "Small models decoding greedily can repeat themselves inside a JSON string until the "
        "token limit cuts the call; the cap closes the string instead.",
    )

    _shared: SharedLlama | None = PrivateAttr(default=None)
    _calls: int = PrivateAttr(default=0)
    _calls_lock: threading.Lock = PrivateAttr(default_factory=threading.Lock)
    _instance: int = PrivateAttr(default_factory=lambda: next(_INSTANCES))

    def model_post_init(self, context: Any, /) -> None:
        if not self.model_name:
            self.model_name = Path(self.model_path).stem

    @property
    def _handle(self) -> SharedLlama:
        if self._shared is None:
            self._shared = _shared_llama(self.model_path, self.n_ctx, self.n_threads)
        return self._shared

    @property
    def llama(self) -> Llama:
        """The shared `llama_cpp.Llama` (loaded on first use). Use it only while holding `lock`."""
        handle = self._handle
        handle.last_chat = None  # the caller may evaluate anything: see `_fresh_if_seeded`
        return handle.llama

    def _fresh_if_seeded(
        self, handle: SharedLlama, chat: list[dict[str, Any]], params: dict[str, Any]
    ) -> None:
        """Before a seeded call (hold the lock): empty the KV cache unless this instance's
        previous call left it, with the same chat. llama.cpp's logits differ in the last bits
        with how much of a prompt is reused from the cache, which at temperature > 0 can change
        a sample; with this, a seeded copy (`with_seed`) replies the same whatever ran before
        it. The K samples of one prompt still share its evaluation."""
        key = f"{self._instance}:{json.dumps(chat, sort_keys=True)}"
        if "seed" in params and handle.last_chat != key:
            handle.llama.reset()
        handle.last_chat = key

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

    # ------------------------------------------------------------------ tools
    def bind_tools(
        self,
        tools: Sequence[dict[str, Any] | type[BaseModel] | Callable[..., Any] | BaseTool],
        *,
        tool_choice: str | bool | dict[str, Any] | None = None,
        **kwargs: Any,
    ) -> Runnable[LanguageModelInput, AIMessage]:
        """Bind tools (LangChain tools, functions, pydantic models or OpenAI tool dicts).

        Args:
            tools: the tools the model may call.
            tool_choice: ``"auto"`` / ``None`` (the model decides), ``"none"``, ``"any"`` /
                ``"required"`` (some bound tool, grammar-forced), a tool name or
                ``{"type": "function", "function": {"name": ...}}`` (that tool), ``True``
                (the only tool).
            **kwargs: other call options bound with them.

        Raises:
            ValueError: ``tool_choice`` names no bound tool.
        """
        formatted = [convert_to_openai_tool(t) for t in tools]
        choice = normalize_tool_choice(tool_choice, formatted)
        return super().bind(tools=formatted, tool_choice=choice, **kwargs)

    def with_seed(self, seed: int | None) -> LocalLlamaChatModel:
        """A copy whose calls are seeded from ``seed`` (counting from its first call); it
        shares the loaded model."""
        copy = self.model_copy(update={"seed": seed})
        copy._calls, copy._calls_lock = 0, threading.Lock()
        copy._instance = next(_INSTANCES)
        return copy

    # ------------------------------------------------------------------ calls
    def _completion_params(self, stop: list[str] | None, kwargs: dict[str, Any]) -> dict[str, Any]:
        params: dict[str, Any] = {
            "temperature": kwargs.pop("temperature", self.temperature),
            "max_tokens": kwargs.pop("max_tokens", self.max_tokens),
            "top_p": kwargs.pop("top_p", self.top_p),
        }
        seed = kwargs.pop("seed", None)
        if seed is None and self.seed is not None:
            with self._calls_lock:
                seed, self._calls = self.seed + self._calls, self._calls + 1
        if seed is not None:
            params["seed"] = seed
        stops = stop if stop is not None else kwargs.pop("stop", self.stop)
        if stops:
            params["stop"] = list(stops)
        kwargs.pop("ls_structured_output_format", None)  # tracing hint from with_structured_output
        if kwargs:
            logger.debug("LocalLlamaChatModel ignores unsupported arguments %s", sorted(kwargs))
        return params

    def _request(
        self, messages: list[BaseMessage], stop: list[str] | None, kwargs: dict[str, Any]
    ) -> tuple[list[dict[str, str]], dict[str, Any], list[dict[str, Any]], str | None]:
        """The chat turns, llama.cpp options, bound tools and tool choice of one call."""
        kwargs = dict(kwargs)
        tools: list[dict[str, Any]] = list(kwargs.pop("tools", None) or [])
        # bind_tools normalised it already; options passed per call are normalised here
        choice = normalize_tool_choice(kwargs.pop("tool_choice", None), tools) if tools else None
        params = self._completion_params(stop, kwargs)
        chat = to_chat_messages(messages)
        if tools and choice != "none":
            chat = with_tool_instructions(chat, tools)
            if choice is not None:
                schema = forced_tool_schema(
                    tools, choice, max_string_chars=self.tool_string_max_chars
                )
                params["response_format"] = {"type": "json_object", "schema": schema}
                # a call cut short is no call at all: give the JSON room to close
                params["max_tokens"] = max(params["max_tokens"], MIN_TOOL_CALL_TOKENS)
        else:
            tools = []
        return chat, params, tools, choice

    def _complete(
        self, messages: list[BaseMessage], stop: list[str] | None, kwargs: dict[str, Any]
    ) -> AIMessage:
        chat, params, tools, _ = self._request(messages, stop, kwargs)
        handle = self._handle
        with handle.lock:
            self._fresh_if_seeded(handle, chat, params)
            out = handle.llama.create_chat_completion(messages=chat, **params)  # type: ignore[arg-type]
        choice = out["choices"][0]  # type: ignore[index]
        usage = out.get("usage") or {}  # type: ignore[union-attr]
        text = choice["message"].get("content") or ""
        calls = parse_tool_calls(text, tools) if tools else []
        meta = {"finish_reason": choice.get("finish_reason"), "model_name": self.model_name}
        if calls:
            meta["finish_reason"] = "tool_calls"
        return AIMessage(
            content="" if calls else text,
            tool_calls=calls,
            usage_metadata=_usage(
                int(usage.get("prompt_tokens", 0)), int(usage.get("completion_tokens", 0))
            ),
            response_metadata=meta,
        )

    def _generate(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> ChatResult:
        if self.streaming:
            return generate_from_stream(self._stream(messages, stop, run_manager, **kwargs))
        message = self._complete(messages, stop, kwargs)
        info = dict(message.response_metadata)
        return ChatResult(generations=[ChatGeneration(message=message, generation_info=info)])

    def _token_chunks(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None,
        kwargs: dict[str, Any],
        cancelled: threading.Event | None = None,
    ) -> Iterator[AIMessageChunk]:
        """One chunk per generated token, then a last one with the finish reason and usage.

        With tools bound the reply is generated whole (a call must be parsed, or is grammar-
        forced) and comes as one chunk carrying its tool-call chunks.
        """
        chat, params, tools, _ = self._request(messages, stop, kwargs)
        if tools:
            message = self._complete(messages, stop, kwargs)
            calls = [
                tool_call_chunk(name=c["name"], args=json.dumps(c["args"]), id=c["id"], index=i)
                for i, c in enumerate(message.tool_calls)
            ]
            yield AIMessageChunk(
                content=message.content,
                tool_call_chunks=calls,
                usage_metadata=message.usage_metadata,
                response_metadata=message.response_metadata,
                chunk_position="last",
            )
            return
        handle = self._handle
        with handle.lock:
            try:
                prompt_tokens = len(chat_prompt_tokens(handle.llama, chat))
            except NotImplementedError:  # a custom chat handler: its prompt is not ours to build
                prompt_tokens = 0
            self._fresh_if_seeded(handle, chat, params)
            stream = handle.llama.create_chat_completion(messages=chat, stream=True, **params)  # type: ignore[arg-type]
            generated, finish = 0, None
            for part in cast(Iterator[dict[str, Any]], stream):
                if cancelled is not None and cancelled.is_set():
                    finish = "cancelled"
                    break
                choice = part["choices"][0]
                finish = choice.get("finish_reason") or finish
                text = (choice.get("delta") or {}).get("content")
                if text is None:
                    continue
                generated += 1
                if text:
                    yield AIMessageChunk(content=text)
        meta = {"finish_reason": finish, "model_name": self.model_name}
        yield AIMessageChunk(
            content="",
            usage_metadata=_usage(prompt_tokens, generated),
            response_metadata=meta,
            chunk_position="last",
        )

    def _stream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: CallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> Iterator[ChatGenerationChunk]:
        for chunk in self._token_chunks(messages, stop, kwargs):
            out = ChatGenerationChunk(message=chunk)
            if run_manager is not None and chunk.content:
                run_manager.on_llm_new_token(str(chunk.content), chunk=out)
            yield out

    async def _astream(
        self,
        messages: list[BaseMessage],
        stop: list[str] | None = None,
        run_manager: AsyncCallbackManagerForLLMRun | None = None,
        **kwargs: Any,
    ) -> AsyncIterator[ChatGenerationChunk]:
        """Tokens as they come, generated on a worker thread (the event loop never blocks);
        a consumer that stops early ends the generation at the next token."""
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[AIMessageChunk | BaseException | None] = asyncio.Queue()
        cancelled = threading.Event()

        def produce() -> None:
            try:
                for chunk in self._token_chunks(messages, stop, kwargs, cancelled):
                    loop.call_soon_threadsafe(queue.put_nowait, chunk)
            except BaseException as e:  # re-raised in the consumer
                loop.call_soon_threadsafe(queue.put_nowait, e)
            else:
                loop.call_soon_threadsafe(queue.put_nowait, None)

        worker = loop.run_in_executor(None, produce)
        try:
            while (item := await queue.get()) is not None:
                if isinstance(item, BaseException):
                    raise item
                out = ChatGenerationChunk(message=item)
                if run_manager is not None and item.content:
                    await run_manager.on_llm_new_token(str(item.content), chunk=out)
                yield out
        finally:
            cancelled.set()
            await worker
