"""``fermi ask``: answer a question as a stored user would (their Fermi prompt + the model).

Example:
    fermi ask --user-id alice "Do you own a gun?" --choices Yes No --explain
"""

from __future__ import annotations

import argparse
from typing import Any

from langchain_fermi.cli._common import (
    EXIT_ERROR,
    add_command,
    add_json_argument,
    add_model_arguments,
    add_store_argument,
    at_least,
    build_model,
    open_store,
    print_json,
    render_selection,
    require_user,
)
from langchain_fermi.errors import NoPromptsError

__all__ = ["register", "run"]

_FLAGS = {"strategy": "--strategy", "num_neighbors": "--neighbors", "fallback": "--fallback"}


def run(args: argparse.Namespace) -> int:
    """Select the user's prompt, call the model (unless ``--dry-run``) and print the answer."""
    from langchain_core.output_parsers import StrOutputParser

    from langchain_fermi.personalizer import FermiPersonalizer, PersonalizerInput
    from langchain_fermi.questions import parse_answer
    from langchain_fermi.types import OPTION_LETTERS

    values = {"strategy": args.strategy, "num_neighbors": args.neighbors, "fallback": args.fallback}
    store = open_store(args)
    personalizer = build_model(FermiPersonalizer, {"store": store, **values}, _FLAGS)
    if args.fallback != "none":
        require_user(store, args.user_id)
    choices = list(args.choices) if args.choices else None
    try:
        selection = personalizer.select_prompt(args.user_id, args.question)
    except NoPromptsError:
        msg = (
            f"user {args.user_id!r} has no optimized prompts yet: run `fermi optimize` for them, "
            "or pass --fallback profile (their profile as the prompt) or --fallback none"
        )
        raise NoPromptsError(msg) from None
    out: dict[str, Any] = {"user_id": args.user_id, "question": args.question, "choices": choices}
    out["selection"] = selection.model_dump(mode="json")
    if (args.explain or args.dry_run) and not args.json:
        print(render_selection(selection))
    inputs: PersonalizerInput = {
        "question": args.question,
        "choices": choices,
        "user_id": args.user_id,
    }
    if args.dry_run:
        messages = personalizer.invoke(inputs).messages
        out["messages"] = [{"type": m.type, "content": m.content} for m in messages]
        if args.json:
            print_json(out)
        else:
            for m in messages:
                print(f"--- {m.type}\n{m.content}")
        return 0
    from langchain_fermi.models import get_chat_model

    max_tokens = args.max_tokens or (16 if choices else 256)
    model = get_chat_model(args.model, role="target", max_tokens=max_tokens)
    reply = (personalizer | model | StrOutputParser()).invoke(inputs)
    out["reply"] = reply
    code = 0
    if not choices:
        line = reply.strip()
    else:
        parsed = parse_answer(reply, choices)
        out["answer_index"] = parsed.index
        out["answer"] = choices[parsed.index] if parsed.index is not None else None
        if parsed.index is None:
            line, code = f"(unreadable reply: {parsed.reason}) {reply.strip()}", EXIT_ERROR
        else:
            line = f"{OPTION_LETTERS[parsed.index]}. {choices[parsed.index]}"
    if args.json:
        print_json(out)
    else:
        print(line)
    return code


def register(subparsers: Any) -> None:
    """Add ``fermi ask`` to the ``fermi`` command."""
    parser = add_command(
        subparsers, "ask", run, help="answer a question as a stored user would", description=__doc__
    )
    parser.add_argument("question")
    parser.add_argument("--user-id", required=True)
    parser.add_argument(
        "--choices", nargs="+", default=None, help="the options, if multiple choice"
    )
    add_model_arguments(parser, optimizer=False)
    add_store_argument(parser)
    parser.add_argument("--explain", action="store_true", help="show why the prompt was chosen")
    parser.add_argument(
        "--dry-run", action="store_true", help="show the selection and messages; no model call"
    )
    add_json_argument(parser, "the selection, the messages or reply, and the answer")
    parser.add_argument("--strategy", choices=["retrieval", "best", "profile"], default="retrieval")
    parser.add_argument(
        "--neighbors", type=at_least(1), default=3, help="Ñ: past opinions retrieved"
    )
    parser.add_argument(
        "--fallback",
        choices=["raise", "profile", "none"],
        default="raise",
        help="for users without learned prompts: raise (an error, the default), profile (their "
        "profile as the prompt) or none (no system prompt)",
    )
    parser.add_argument("--max-tokens", type=at_least(1), default=None, help="reply length cap")
