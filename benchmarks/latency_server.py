"""A LOAD STAND-IN for a hosted LLM API: OpenAI-compatible, fixed latency, deterministic answers.

    python -m benchmarks.latency_server --port 8765 --delay 0.2 [--takes 4]

It is not a model. It exists to measure how many users per minute the optimization loop gets
through when every call costs a fixed delay, as a hosted API's does, and to count what was sent.

* ``POST /v1/chat/completions``: after ``--delay`` seconds, a scoring call (``logprobs`` or
  ``max_tokens`` <= 8) gets an option letter with ``logprobs.content[0].top_logprobs`` over the
  letters, picked by a hash of (system prompt, question); any other call is an optimizer call
  and gets ``"[...]"``, a bracketed prompt text derived from a hash of its prompt. ``usage`` is
  counted with tiktoken (``langchain_fermi.tokens``).
* The K samples of one optimizer prompt differ only by ``(take i)``, ``i`` = the sample's
  arrival count modulo ``--takes`` (set it to K); scoring and hashing ignore the take number, so
  a run takes the same path whichever concurrent request arrives first, and a retried step
  produces the same texts.
* ``GET /stats``: requests by kind, tokens, requests in flight, repeated scoring pairs.
  ``GET /log``: every request (arrival time, kind, tokens, pair key). ``POST /reset`` clears.

It is a plain ASGI app on uvicorn (no framework: the server must stay cheap next to the client
it measures).
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import hashlib
import json
import math
import os
import re
import subprocess
import sys
import time
import urllib.request
from collections import Counter
from collections.abc import Iterator
from typing import Any

from langchain_fermi.tokens import count_message_tokens, count_tokens
from langchain_fermi.types import OPTION_LETTERS

__all__ = ["LatencyServer", "fetch", "main", "running"]

_TAKE = re.compile(r"\s*\(take \d+\)\.?")
_OPTION = re.compile(r"^([A-Z])\. ", re.MULTILINE)
_WORDS = (
    "careful",
    "practical",
    "hopeful",
    "frank",
    "quiet",
    "steady",
    "curious",
    "modest",
    "patient",
    "direct",
    "thrifty",
    "warm",
    "skeptical",
    "loyal",
    "independent",
    "cautious",
    "generous",
    "proud",
    "busy",
    "traditional",
)


def _normalise(text: str) -> str:
    """The text without its ``(take i)`` marks: the part that decides answers and hashes."""
    return _TAKE.sub("", text)


def _digest(*parts: str) -> int:
    raw = "\x1f".join(_normalise(p) for p in parts)
    return int.from_bytes(hashlib.sha256(raw.encode("utf-8")).digest()[:8], "big")


def _text(content: Any) -> str:
    if isinstance(content, str):
        return content
    return "".join(p.get("text", "") for p in content or [] if isinstance(p, dict))


class LatencyServer:
    """The ASGI app: state (counters, log) plus the request handlers.

    Args:
        delay: seconds every completion waits before answering.
        takes: how many distinct samples one optimizer prompt yields (K).
    """

    def __init__(self, delay: float = 0.2, takes: int = 4) -> None:
        self.delay = delay
        self.takes = max(1, takes)
        self.reset()

    def reset(self) -> None:
        """Forget every counter and the log."""
        self.started = time.time()
        self.kinds: Counter[str] = Counter()
        self.tokens: Counter[str] = Counter()
        self.in_flight = 0
        self.max_in_flight = 0
        self.pairs: Counter[str] = Counter()
        self.samples: Counter[str] = Counter()
        self.log: list[dict[str, Any]] = []

    # ------------------------------------------------------------------ answers
    def _score(self, messages: list[dict[str, Any]], top: int) -> tuple[str, dict[str, Any], str]:
        system = next((_text(m["content"]) for m in messages if m["role"] == "system"), "")
        question = _text(messages[-1]["content"]) if messages else ""
        letters = _OPTION.findall(question) or list(OPTION_LETTERS[:2])
        pick = _digest(system, question) % len(letters)
        rest = math.log(0.3 / max(len(letters) - 1, 1))
        tops = [
            {"token": c, "logprob": math.log(0.7) if i == pick else rest, "bytes": list(c.encode())}
            for i, c in enumerate(letters)
        ]
        tops.sort(key=lambda t: -t["logprob"])
        letter = letters[pick]
        entry = {**tops[0], "top_logprobs": tops[: max(1, top)]}
        return (
            letter,
            {"content": [entry]},
            hashlib.sha256(f"{system}\x1f{question}".encode()).hexdigest()[:16],
        )

    def _write(self, messages: list[dict[str, Any]]) -> str:
        prompt = "\n".join(_text(m["content"]) for m in messages)
        key = hashlib.sha256(_normalise(prompt).encode("utf-8")).hexdigest()
        take = self.samples[key] % self.takes
        self.samples[key] += 1
        h = _digest(prompt)
        words = [_WORDS[(h >> (5 * i)) % len(_WORDS)] for i in range(3)]
        text = (
            f"You are a {words[0]}, {words[1]} and {words[2]} person; answer every question "
            f"as this person would, picking one letter (take {take})."
        )
        return f"Here is a new text: [{text}]"

    def complete(self, body: dict[str, Any]) -> tuple[dict[str, Any], str]:
        """The chat completion for ``body`` (no waiting) and its kind (scoring / optimizer)."""
        messages = body.get("messages") or []
        limit = body.get("max_tokens") or body.get("max_completion_tokens")
        scoring = bool(body.get("logprobs")) or (isinstance(limit, int) and limit <= 8)
        logprobs, pair = None, ""
        if scoring:
            content, logprobs, pair = self._score(messages, int(body.get("top_logprobs") or 1))
            kind = "scoring"
        else:
            content, kind = self._write(messages), "optimizer"
        from langchain_core.messages import convert_to_messages

        prompt_tokens = count_message_tokens(
            convert_to_messages([(m["role"], _text(m["content"])) for m in messages])
        )
        completion_tokens = 1 if scoring else count_tokens(content)
        choice: dict[str, Any] = {
            "index": 0,
            "message": {"role": "assistant", "content": content},
            "finish_reason": "length" if scoring else "stop",
            "logprobs": logprobs if body.get("logprobs") else None,
        }
        reply = {
            "id": f"chatcmpl-standin-{sum(self.kinds.values())}",
            "object": "chat.completion",
            "created": int(time.time()),
            "model": body.get("model", "standin"),
            "choices": [choice],
            "usage": {
                "prompt_tokens": prompt_tokens,
                "completion_tokens": completion_tokens,
                "total_tokens": prompt_tokens + completion_tokens,
            },
        }
        self.kinds[kind] += 1
        self.tokens[f"{kind}_prompt"] += prompt_tokens
        self.tokens[f"{kind}_completion"] += completion_tokens
        if pair:
            self.pairs[pair] += 1
        self.log.append(
            {
                "t": time.time(),
                "done": None,
                "kind": kind,
                "tokens": prompt_tokens + (limit if isinstance(limit, int) else completion_tokens),
                "prompt_tokens": prompt_tokens,
                "pair": pair,
            }
        )
        return reply, self.log[-1]

    def stats(self) -> dict[str, Any]:
        """Counters: requests by kind, tokens, in flight, repeated scoring pairs."""
        return {
            "requests": sum(self.kinds.values()),
            "by_kind": dict(self.kinds),
            "tokens": dict(self.tokens),
            "in_flight": self.in_flight,
            "max_in_flight": self.max_in_flight,
            "distinct_pairs": len(self.pairs),
            "repeated_pairs": sum(n - 1 for n in self.pairs.values() if n > 1),
            "delay": self.delay,
            "takes": self.takes,
            "uptime_s": time.time() - self.started,
        }

    # ------------------------------------------------------------------ ASGI
    async def __call__(self, scope: dict[str, Any], receive: Any, send: Any) -> None:
        if scope["type"] == "lifespan":
            while True:
                message = await receive()
                if message["type"] == "lifespan.startup":
                    await send({"type": "lifespan.startup.complete"})
                elif message["type"] == "lifespan.shutdown":
                    await send({"type": "lifespan.shutdown.complete"})
                    return
        if scope["type"] != "http":
            return
        path, method = scope["path"].rstrip("/"), scope["method"]
        if method == "POST" and path.endswith("/chat/completions"):
            body = await self._body(receive)
            self.in_flight += 1
            self.max_in_flight = max(self.max_in_flight, self.in_flight)
            try:
                reply, entry = self.complete(json.loads(body or b"{}"))
                await asyncio.sleep(self.delay)
            finally:
                self.in_flight -= 1
            await self._json(send, reply)
            entry["done"] = time.time()
        elif method == "GET" and path.endswith("/models"):
            await self._json(
                send, {"object": "list", "data": [{"id": "standin", "object": "model"}]}
            )
        elif method == "GET" and path == "/stats":
            await self._json(send, self.stats())
        elif method == "GET" and path == "/log":
            await self._json(send, self.log)
        elif method == "POST" and path == "/reset":
            await self._body(receive)
            self.reset()
            await self._json(send, {"ok": True})
        elif method == "GET" and path in ("", "/health"):
            await self._json(send, {"ok": True, "standin": "latency server (not a model)"})
        else:
            await self._json(send, {"error": f"no route {method} {path}"}, status=404)

    @staticmethod
    async def _body(receive: Any) -> bytes:
        chunks = []
        while True:
            message = await receive()
            chunks.append(message.get("body", b""))
            if not message.get("more_body"):
                return b"".join(chunks)

    @staticmethod
    async def _json(send: Any, payload: Any, status: int = 200) -> None:
        data = json.dumps(payload).encode("utf-8")
        headers = [
            (b"content-type", b"application/json"),
            (b"content-length", str(len(data)).encode()),
        ]
        await send({"type": "http.response.start", "status": status, "headers": headers})
        await send({"type": "http.response.body", "body": data})


def fetch(base: str, path: str, *, post: bool = False) -> Any:
    """GET (or POST) ``base + path`` and decode its JSON (``/stats``, ``/log``, ``/reset``)."""
    request = urllib.request.Request(base + path, data=b"" if post else None)
    with urllib.request.urlopen(request, timeout=30) as response:
        return json.load(response)


@contextlib.contextmanager
def running(delay: float = 0.2, takes: int = 4, *, timeout: float = 60) -> Iterator[str]:
    """Run the stand-in in a subprocess on a free port; yield its base URL (no ``/v1``)."""
    from langchain_fermi.scale.local import free_port, stop_process_group

    port = free_port()
    cmd = [sys.executable, "-m", "benchmarks.latency_server", "--port", str(port)]
    cmd += ["--delay", str(delay), "--takes", str(takes)]
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    proc = subprocess.Popen(cmd, cwd=root, start_new_session=True)
    base = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            with contextlib.suppress(OSError):
                fetch(base, "/health")
                break
            if proc.poll() is not None or time.monotonic() > deadline:
                msg = f"the latency server did not start (exit code {proc.poll()})"
                raise RuntimeError(msg)
            time.sleep(0.1)
        yield base
    finally:
        stop_process_group(proc.pid, grace=5)
        proc.wait()


def main(argv: list[str] | None = None) -> int:
    """Serve the stand-in on 127.0.0.1 until interrupted."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8765)
    parser.add_argument("--delay", type=float, default=0.2, help="seconds per completion")
    parser.add_argument("--takes", type=int, default=4, help="distinct samples per prompt (K)")
    args = parser.parse_args(argv)
    import uvicorn

    app = LatencyServer(delay=args.delay, takes=args.takes)
    uvicorn.run(
        app, host=args.host, port=args.port, log_level="warning", access_log=False, backlog=4096
    )
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
