"""Fermi with the target and optimizer models behind an OpenAI-compatible endpoint.

Works with OpenAI itself, or any server that speaks the API (vLLM, llama.cpp's server, ...).
Configure it with environment variables:

    FERMI_OPENAI_BASE_URL   the endpoint, e.g. http://127.0.0.1:8000/v1 (unset: api.openai.com)
    FERMI_OPENAI_API_KEY    the key (a local server accepts anything, e.g. sk-local)
    FERMI_TARGET_MODEL      the model being personalized, e.g. gpt-4o-mini
    FERMI_OPTIMIZER_MODEL   the model that writes the prompts (default: the target model)
    FERMI_OPENAI_MODEL      fallback for both model names
    (OPENAI_BASE_URL / OPENAI_API_KEY are read when the FERMI_ ones are unset.)

    python examples/openai_endpoint.py [--user-id maya-chen] [-K 4] [-T 3] [--store PATH]

Example with a local llama.cpp server (``pip install 'llama-cpp-python[server]'``):

    python -m llama_cpp.server --model SmolLM2-135M-Instruct.Q4_1.gguf --port 8000 \\
        --logits_all true &
    FERMI_OPENAI_BASE_URL=http://127.0.0.1:8000/v1 FERMI_OPENAI_API_KEY=sk-local \\
        FERMI_OPENAI_MODEL=smollm2 python examples/openai_endpoint.py -K 1 -T 1

Scoring reads the answer letter's log-probabilities when the endpoint returns them
(``logprobs``), so a multiple-choice answer costs one output token.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
from pathlib import Path

HERE = Path(__file__).resolve().parent
ENV_HELP = (
    "set FERMI_OPENAI_API_KEY (or OPENAI_API_KEY) and FERMI_TARGET_MODEL (or FERMI_OPENAI_MODEL), "
    "plus FERMI_OPENAI_BASE_URL for a non-OpenAI server; see the top of this file"
)


def endpoint_configured() -> str | None:
    """None when the environment names an endpoint and a model, else what is missing."""
    env = os.environ
    missing = []
    if not (env.get("FERMI_OPENAI_API_KEY") or env.get("OPENAI_API_KEY")) and not (
        env.get("FERMI_OPENAI_BASE_URL") or env.get("OPENAI_BASE_URL")
    ):
        missing.append("FERMI_OPENAI_API_KEY or FERMI_OPENAI_BASE_URL")
    if not (env.get("FERMI_TARGET_MODEL") or env.get("FERMI_OPENAI_MODEL")):
        missing.append("FERMI_TARGET_MODEL")
    return ", ".join(missing) or None


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--user-id", default="maya-chen")
    parser.add_argument("--store", type=Path, default=None, help="default: a temporary folder")
    parser.add_argument("-K", type=int, default=2)
    parser.add_argument("-T", type=int, default=2)
    parser.add_argument("--n-optimize", type=int, default=20)
    parser.add_argument("--questions", type=int, default=5)
    args = parser.parse_args(argv)

    missing = endpoint_configured()
    if missing:
        print(f"openai_endpoint: not configured (missing {missing}): {ENV_HELP}", file=sys.stderr)
        return 2

    from langchain_core.output_parsers import StrOutputParser

    from langchain_fermi import FermiConfig, FermiPersonalizer, FermiStore, get_chat_model
    from langchain_fermi.data import load_users, split_user
    from langchain_fermi.graph import optimize_user
    from langchain_fermi.questions import parse_answer

    target_name = os.environ.get("FERMI_TARGET_MODEL") or os.environ["FERMI_OPENAI_MODEL"]
    optimizer_name = os.environ.get("FERMI_OPTIMIZER_MODEL") or target_name
    target = get_chat_model(f"openai:{target_name}", role="target")
    optimizer = get_chat_model(f"openai:{optimizer_name}", role="optimizer")
    users = {u.user_id: u for u in load_users(HERE / "data" / "users.json")}
    optimize, test = split_user(users[args.user_id], n_optimize=args.n_optimize, n_test=None)

    result = optimize_user(optimize, target, optimizer, config=FermiConfig(K=args.K, T=args.T))
    cost = result.cost
    print(
        f"learned {len(result.memory)} prompts; best score {result.best.score:.2f}; "
        f"{cost.target_calls} target + {cost.optimizer_calls} optimizer calls"
    )

    store = FermiStore(args.store or Path(tempfile.mkdtemp()) / "chroma")
    store.save_result(result, user=optimize)
    personalizer = FermiPersonalizer(store)
    chain = personalizer | target.bind(max_tokens=16) | StrOutputParser()
    right = 0
    for o in test[: args.questions]:
        question = {"question": o.question, "choices": o.choices, "user_id": optimize.user_id}
        reply = chain.invoke(question)
        parsed = parse_answer(reply, o.choices)
        answer = o.choices[parsed.index] if parsed.index is not None else None
        right += answer == o.answer
        sel = personalizer.select_prompt(optimize.user_id, o.question)
        print(f"Q: {o.question}\n   prompt #{sel.index}: model {answer!r}, user {o.answer!r}")
    print(f"{right}/{min(args.questions, len(test))} held-out answers match the user's")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
