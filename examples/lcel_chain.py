"""FermiPersonalizer inside a longer LCEL chain, fully offline (SmolLM2 + MiniLM + Chroma).

    python examples/lcel_chain.py [--store .fermi/chroma] [--user-id maya-chen]

The chain keeps its input, adds the model's raw reply and parses it into one of the options:

    {"question", "choices", "user_id"}
      -> RunnablePassthrough.assign(reply=FermiPersonalizer(store) | model | StrOutputParser())
      -> RunnableLambda(to_option)
      -> {"question", "choices", "user_id", "reply", "answer"}

If the store has no prompts for the user yet (run ``fermi quickstart`` first to reuse its
store), a tiny optimization (K=1, T=1 on 10 opinions, well under a minute) creates them.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

from langchain_core.output_parsers import StrOutputParser
from langchain_core.runnables import RunnableLambda, RunnablePassthrough

from langchain_fermi import FermiConfig, FermiPersonalizer, FermiStore, get_chat_model
from langchain_fermi.data import load_users, split_user
from langchain_fermi.graph import optimize_user
from langchain_fermi.questions import parse_answer

HERE = Path(__file__).resolve().parent


def to_option(row: dict[str, Any]) -> dict[str, Any]:
    """Map the model's reply to the option text (None when it names no option)."""
    parsed = parse_answer(row["reply"], row["choices"])
    answer = row["choices"][parsed.index] if parsed.index is not None else None
    return {**row, "answer": answer}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--store", type=Path, default=Path(".fermi") / "chroma")
    parser.add_argument("--user-id", default="maya-chen")
    args = parser.parse_args()

    user = next(u for u in load_users(HERE / "data" / "users.json") if u.user_id == args.user_id)
    optimize, test = split_user(user, n_optimize=20, n_test=None, seed=0)
    model = get_chat_model("smollm2", max_tokens=16)  # one llama.cpp model for both roles
    store = FermiStore(args.store)
    if not store.has_user(user.user_id) or not store.get_prompts(user.user_id):
        small = split_user(optimize, n_optimize=10, n_test=0, seed=0).optimize
        result = optimize_user(small, model, model, config=FermiConfig(K=1, T=1))
        store.save_result(result, user=small)

    personalizer = FermiPersonalizer(store)
    chain = RunnablePassthrough.assign(
        reply=personalizer | model | StrOutputParser()
    ) | RunnableLambda(to_option)

    questions = [{"question": o.question, "choices": o.choices} for o in test[:3]]
    # The user id can travel in the config instead of the input; batch runs them concurrently.
    rows = chain.batch(
        [{**q, "user_id": user.user_id} for q in questions], config={"max_concurrency": 1}
    )
    for row, o in zip(rows, test, strict=False):
        why = personalizer.select_prompt(user.user_id, row["question"]).explanation
        print(f"Q: {row['question']}\n   model: {row['answer']}   user: {o.answer}\n   {why}\n")

    per_user = chain.with_config(configurable={"user_id": user.user_id})
    row = per_user.invoke({"question": test[0].question, "choices": test[0].choices})
    print(f"user id from config -> {row['answer']!r} (reply {row['reply'].strip()!r})")


if __name__ == "__main__":
    main()
