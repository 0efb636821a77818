"""``fermi ask``: answer a question as a stored user would (their Fermi prompt + the model).

Example:
    fermi ask --user-id alice "Do you own a gun?" --choices Yes No --explain
"""

from __future__ import annotations

import argparse
from typing import TYPE_CHECKING, Any

from langchain_fermi.cli.users import add_store_argument, open_store

if TYPE_CHECKING:
    from langchain_fermi.retrieval import PromptSelection

__all__ = ["register", "render_selection", "run"]


def _short(text: str, width: int) -> str:
    text = " ".join(text.split())
    return text if len(text) <= width else text[: width - 3] + "..."


def render_selection(selection: PromptSelection, *, width: int = 110) -> str:
    """A few readable lines: the chosen prompt, the neighbours and every prompt's accuracy."""
    lines: list[str] = []
    p = selection.prompt
    if p is None:
        lines.append("no system prompt (fallback 'none')")
    else:
        where = f"#{selection.index}" if selection.index is not None else "(profile)"
        lines.append(f"prompt {where} [{selection.strategy}], overall score {p.score:.2f}:")
        lines.append(f'  "{_short(p.text, width)}"')
    if selection.neighbours:
        lines.append("nearest past opinions of the user:")
        for n in selection.neighbours:
            sim = f"{n.similarity:.2f}" if n.similarity is not None else "  - "
            q = _short(n.question or "", width - 40)
            lines.append(f"  {sim}  {n.opinion_id}: {q} -> {n.answer}")
    if selection.accuracies:
        cells = []
        for a in selection.accuracies:
            acc = f"{a.correct:g}/{a.covered}" if a.accuracy is not None else "n/a"
            mark = " <- chosen" if a.index == selection.index else ""
            cells.append(f"  #{a.index}: {acc} right on them, overall {a.score:.2f}{mark}")
        lines.append("accuracy of each prompt on those opinions:")
        lines += cells
    lines.append(f"why: {selection.explanation}")
    return "\n".join(lines)


def run(args: argparse.Namespace) -> int:
    """Select the user's prompt, call the model (unless ``--dry-run``) and print the answer."""
    from langchain_core.output_parsers import StrOutputParser

    from langchain_fermi.personalizer import FermiPersonalizer
    from langchain_fermi.questions import parse_answer
    from langchain_fermi.types import OPTION_LETTERS

    store = open_store(args)
    personalizer = FermiPersonalizer(
        store, strategy=args.strategy, num_neighbors=args.neighbors, fallback=args.fallback
    )
    choices = list(args.choices) if args.choices else None
    if args.explain or args.dry_run:
        print(render_selection(personalizer.select_prompt(args.user_id, args.question)))
    inputs = {"question": args.question, "choices": choices, "user_id": args.user_id}
    if args.dry_run:
        for m in personalizer.invoke(inputs).messages:
            print(f"--- {m.type}\n{m.content}")
        return 0
    from langchain_fermi.models import get_chat_model

    max_tokens = args.max_tokens or (16 if choices else 256)
    model = get_chat_model(args.model, role="target", max_tokens=max_tokens)
    reply = (personalizer | model | StrOutputParser()).invoke(inputs)
    if not choices:
        print(reply.strip())
        return 0
    parsed = parse_answer(reply, choices)
    if parsed.index is None:
        print(f"(unreadable reply: {parsed.reason}) {reply.strip()}")
        return 1
    print(f"{OPTION_LETTERS[parsed.index]}. {choices[parsed.index]}")
    return 0


def register(subparsers: Any) -> None:
    """Add ``fermi ask`` to the ``fermi`` command."""
    parser = subparsers.add_parser(
        "ask",
        help="answer a question as a stored user would",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("question")
    parser.add_argument("--user-id", required=True)
    parser.add_argument(
        "--choices", nargs="+", default=None, help="the options, if multiple choice"
    )
    parser.add_argument(
        "--model",
        default=None,
        help="target model name for get_chat_model (default: $FERMI_TARGET_LLM or smollm2)",
    )
    add_store_argument(parser)
    parser.add_argument("--explain", action="store_true", help="show why the prompt was chosen")
    parser.add_argument(
        "--dry-run", action="store_true", help="show the selection and messages; no model call"
    )
    parser.add_argument("--strategy", choices=["retrieval", "best", "profile"], default="retrieval")
    parser.add_argument("--neighbors", type=int, default=3, help="Ñ: past opinions retrieved")
    parser.add_argument(
        "--fallback",
        choices=["profile", "none"],
        default=None,
        help="for users without learned prompts (default: an error)",
    )
    parser.add_argument("--max-tokens", type=int, default=None)
    parser.set_defaults(func=run)
