"""One agent, two users, each answered with their own Fermi prompt; it learns from new opinions.

    python examples/agent_memory.py [--store DIR] [--users maya-chen,walter-briggs]

Fully offline (SmolLM2 through llama.cpp, MiniLM embeddings, Chroma), a few minutes on a laptop:

1. each user's first 8 opinions are stored and optimized with a tiny Fermi config (K=1, T=1);
2. one `create_agent` agent with `FermiMiddleware` answers a held-out question for each user:
   the middleware reads the user id from the run context and puts that user's prompt, chosen by
   Retrieval-of-Prompt, in the system message;
3. each user states a new opinion, recorded in their memory by the `record_opinion` tool;
4. `reoptimize(..., background=True)` learns new prompts from all stored opinions, warm-started
   from the current prompts; the agent keeps answering with the old prompts until the new ones
   are saved, then switches.

SmolLM2-135M writes poor prompts and barely follows personas: this shows the plumbing, not
accuracy (use a bigger target/optimizer for that). ``FERMI_LLAMA_THREADS=1`` speeds llama.cpp up
on a machine whose cores are busy with other work.
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path
from typing import Any

from langchain.agents import create_agent
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import HumanMessage, SystemMessage
from langgraph.store.memory import InMemoryStore

from langchain_fermi import FermiConfig, FermiStore, get_chat_model
from langchain_fermi.agents import (
    FermiAgentContext,
    FermiMemoryStore,
    FermiMiddleware,
    record_opinion,
    reoptimize,
)
from langchain_fermi.data import load_users, split_user
from langchain_fermi.graph import optimize_user
from langchain_fermi.questions import format_question, parse_answer
from langchain_fermi.types import Opinion

HERE = Path(__file__).resolve().parent
TINY = FermiConfig(K=1, L=2, T=1, max_concurrency=1)


class SystemPromptSpy(BaseCallbackHandler):
    """Keeps the system message of the last chat-model call (to show which prompt was used)."""

    def __init__(self) -> None:
        self.system = ""

    def on_chat_model_start(self, serialized: Any, messages: Any, **kwargs: Any) -> None:
        first = messages[0][0] if messages and messages[0] else None
        self.system = first.text if isinstance(first, SystemMessage) else "(none)"


def ask(agent: Any, user_id: str, opinion: Opinion) -> None:
    """Ask the agent ``opinion``'s question as ``user_id`` and print the prompt and the answer."""
    spy = SystemPromptSpy()
    question = format_question(opinion.question, opinion.choices)
    out = agent.invoke(
        {"messages": [HumanMessage(question)]},
        context={"user_id": user_id},
        config={"callbacks": [spy]},
    )
    reply = out["messages"][-1].text
    parsed = parse_answer(reply, opinion.choices)
    picked = opinion.choices[parsed.index] if parsed.index is not None else "(no option)"
    prompt = " ".join(spy.system.split())
    print(f"  [{user_id}] system prompt: {prompt[:110]}{'...' if len(prompt) > 110 else ''}")
    print(f"  [{user_id}] Q: {opinion.question}")
    print(f"  [{user_id}] model: {picked!r}   (the user's answer: {opinion.answer!r})")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, default=None, help="default: a temporary folder")
    parser.add_argument("--users", default="maya-chen,walter-briggs")
    args = parser.parse_args()
    store_dir = args.store or Path(tempfile.mkdtemp(prefix="fermi-agent-")) / "chroma"

    wanted = args.users.split(",")
    users = {u.user_id: u for u in load_users(HERE / "data" / "users.json") if u.user_id in wanted}
    target = get_chat_model("smollm2", max_tokens=16)  # answers: a letter and a few words
    optimizer = get_chat_model("smollm2", role="optimizer", max_tokens=160)  # same llama.cpp model
    fermi = FermiStore(store_dir)
    memory = FermiMemoryStore(fermi, fallback=InMemoryStore())
    held_out: dict[str, list[Opinion]] = {}

    print(f"1. optimizing {len(users)} users (tiny config) into {store_dir}")
    for uid, user in users.items():
        split = split_user(user, n_optimize=8, n_test=None, seed=0)
        held_out[uid] = split.test
        if not fermi.has_user(uid) or not fermi.get_prompts(uid):
            t0 = time.perf_counter()
            result = optimize_user(split.optimize, target, optimizer, config=TINY, progress=False)
            fermi.save_result(result, user=split.optimize)
            print(
                f"  [{uid}] best score {result.best.score:.2f} ({time.perf_counter() - t0:.0f} s)"
            )

    agent = create_agent(
        target,
        middleware=[FermiMiddleware()],
        context_schema=FermiAgentContext,
        store=memory,
    )
    print("\n2. the same agent answers each user with their own prompt")
    for uid in users:
        ask(agent, uid, held_out[uid][0])

    print("\n3. each user states a new opinion; the record_opinion tool stores it")
    for uid in users:
        stated = held_out[uid][1]
        # SmolLM2 cannot call tools reliably (and its llama.cpp wrapper has no bind_tools), so we
        # make the call a tool-calling model would make. The tool takes the user id from the run
        # context (ToolRuntime), exactly as inside the agent's tool node.
        runtime = memory_runtime(memory, uid)
        call = {"question": stated.question, "choices": stated.choices, "answer": stated.answer}
        message = record_opinion.invoke(
            {"type": "tool_call", "id": f"call-{uid}", "name": "record_opinion",
             "args": {**call, "runtime": runtime}}
        )  # fmt: skip
        print(f"  [{uid}] {message.content}  ({len(fermi.get_user(uid).opinions)} opinions)")

    print("\n4. re-optimizing in the background; the agent keeps serving the old prompts")
    futures = {
        uid: reoptimize(uid, memory, target, optimizer, config=TINY, background=True)
        for uid in users
    }
    for uid in users:
        ask(agent, uid, held_out[uid][2])
    for uid, future in futures.items():
        result = future.result()
        best = " ".join(result.best.text.split())[:70]
        n_opinions, n_prompts = len(fermi.get_user(uid).opinions), len(fermi.get_prompts(uid))
        print(f"  [{uid}] re-optimized on {n_opinions} opinions, {n_prompts} prompts saved")
        print(f"  [{uid}] best ({result.best.score:.2f}): {best!r}")
    print("\n5. after the save, the agent answers with the new prompts")
    for uid in users:
        ask(agent, uid, held_out[uid][2])


def memory_runtime(memory: FermiMemoryStore, user_id: str) -> Any:
    """The `ToolRuntime` the agent's tool node would inject for this user's run."""
    from langchain.tools import ToolRuntime

    return ToolRuntime(
        state={"messages": []},
        context={"user_id": user_id},
        config={},
        stream_writer=lambda _chunk: None,
        tool_call_id=f"call-{user_id}",
        store=memory,
    )


if __name__ == "__main__":
    main()
