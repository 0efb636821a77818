"""``fermi quickstart``: Fermi end to end on one example user, offline, in a few minutes.

1. Loads the example users (``examples/data/users.json``) and picks one.
2. Plants them: their answers become the target model's own answers under a hidden persona
   (their profile plus a paragraph about a plausible person), so a prompt *can* reach them. The
   small local models barely follow a persona on real answers (OFFLINE_MODELS.md); a planted
   user is the offline proof that the loop optimizes, not a claim about people. ``--no-plant``
   keeps the example user's own answers.
3. Splits their opinions: 20 for the optimization, the rest held out.
4. Optimizes their prompts (K=3, T=3) and prints, iteration by iteration, the best prompt's
   training and held-out accuracy, from the profile prompt toward the hidden prompt's ceiling.
5. Saves the prompts the user is served to a Chroma store (``./.fermi/chroma`` by default) and
   answers 3 held-out questions through ``FermiPersonalizer(store) | model``.

The model, chosen by measurement (benchmarks/results/planted-filter): Qwen2.5-Coder-1.5B as
target and optimizer (``pip install 'langchain-fermi[qwen15]'``). Its planted users pass the
signal filter; Qwen2.5-Coder-0.5B's and SmolLM2's do not (a persona paragraph changes fewer than
30 % of their answers, and for SmolLM2 a paraphrase agrees no more than another person).
"""

from __future__ import annotations

import argparse
import sys
import time
from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel

from langchain_fermi.cli._common import (
    PROJECT_STORE,
    add_command,
    add_json_argument,
    at_least,
    build_model,
    chat_model,
    check_file,
    open_store_at,
    print_json,
    render_selection,
)
from langchain_fermi.errors import UnknownUserError
from langchain_fermi.evaluation.progress import ProgressPoint

if TYPE_CHECKING:
    from langchain_core.embeddings import Embeddings
    from langchain_core.language_models import BaseChatModel

    from langchain_fermi.personalizer import FermiPersonalizer
    from langchain_fermi.scoring import AnswerScorer
    from langchain_fermi.types import FermiResult, Opinion, UserProfile

__all__ = ["QuickstartAnswer", "QuickstartReport", "find_example_users", "quickstart", "register"]

EXAMPLE_USERS = Path("examples") / "data" / "users.json"
DEFAULT_TARGET = "qwen2.5-coder-1.5b"
DEFAULT_OPTIMIZER = "qwen2.5-coder-1.5b"
PERSONAS = ("optimist", "pessimist", "struggling", "libertarian", "activist", "traditionalist")
"""`evaluation.planted.TRAITS` by name (not imported here: the CLI loads modules lazily)."""
DEFAULT_PERSONA = "optimist"
"""The planted persona: one Qwen2.5-Coder-1.5B as optimizer finds (the planted benchmark's
per-trait rows show which it does not)."""


class QuickstartAnswer(BaseModel):
    """One held-out question answered with the served prompt."""

    opinion_id: str
    question: str
    user_answer: str
    model_answer: str | None
    """The option the target's letter scores pick (calibrated when scoring is): what the
    accuracies measure."""
    reply: str
    """The reply ``personalizer | model`` generates (no calibration: a plain chat call)."""
    generated_answer: str | None = None
    prompt_index: int | None
    correct: bool


class QuickstartReport(BaseModel):
    """What the quickstart did (also returned to callers and tests)."""

    user_id: str
    store: str
    n_optimize: int
    n_test: int
    prompts: int
    best_score: float
    optimize_seconds: float
    answers: list[QuickstartAnswer]
    planted: bool = False
    trait: str | None = None
    progress: list[ProgressPoint] = []
    heldout_profile: float | None = None
    heldout_served: float | None = None
    heldout_ceiling: float | None = None


def find_example_users(path: Path | None = None) -> Path:
    """The example users file: ``path``, else ``./examples/data/users.json``, else the copy
    shipped in the package (`langchain_fermi.data.examples`), so an installed wheel works."""
    if path is not None:
        return check_file(path, "users file")
    from langchain_fermi.data.examples import EXAMPLE_USERS_FILE

    candidates = [Path.cwd() / EXAMPLE_USERS, EXAMPLE_USERS_FILE]
    for c in candidates:
        if c.is_file():
            return c
    msg = (
        f"no example users found at {', '.join(map(str, candidates))}: reinstall "
        "langchain-fermi or pass --data users.json"
    )
    raise FileNotFoundError(msg)


def _pick_user(users: Sequence[UserProfile], user_id: str | None, path: Path) -> UserProfile:
    if not users:
        msg = f"the users file {path} holds no user"
        raise ValueError(msg)
    if user_id is None:
        return max(users, key=lambda u: len(u.opinions))  # the most opinions: the largest test set
    for u in users:
        if u.user_id == user_id:
            return u
    ids = ", ".join(u.user_id for u in users)
    msg = f"no user {user_id!r} in the file {path}; there are {ids} (pass one to --user-id)"
    raise UnknownUserError(msg)


def _answer(chain: Any, user_id: str, o: Opinion) -> tuple[str, str | None]:
    from langchain_fermi.questions import parse_answer

    reply = chain.invoke({"question": o.question, "choices": o.choices, "user_id": user_id})
    parsed = parse_answer(reply, o.choices)
    return reply, o.choices[parsed.index] if parsed.index is not None else None


def _seeded(model: Any, seed: int) -> Any:
    """A local optimizer with a sampling seed (one per call, from ``seed``), so a fresh
    quickstart samples the same prompts; other models are left as they are (a remote seed
    would make the K samples of one meta-prompt alike)."""
    from langchain_fermi.models import seeded_copy

    already_seeded = getattr(model, "seed", None) is not None
    return model if already_seeded else seeded_copy(model, seed)


def _plant(
    user: UserProfile, scorer: AnswerScorer, echo: Callable[[str], None], persona: str | None
) -> tuple[UserProfile, str | None, str | None]:
    """The planted version of ``user`` (its hidden prompt and trait), or ``user`` itself;
    ``persona`` is tried first, the other traits after it if it does not pass the filter."""
    from langchain_fermi.evaluation.planted import TRAITS, plant_users

    n = len(user.opinions)
    planted, hidden, record = plant_users(
        [user], scorer, max_users=1, n_questions=n, attempts=len(TRAITS),
        filter_questions=min(20, n), first_traits=[persona] if persona else (),
    )  # fmt: skip
    if not planted:
        echo(
            f"no hidden persona moved {scorer.model_id} enough (flips >= 30 %, a paraphrase "
            "agreeing clearly more than another person): the user's own answers are used"
        )
        return user, None, None
    kept = record.kept[0]
    echo(f"PLANTED user {planted[0].user_id}: {user.user_id}'s profile and questions, answered "
         f"as {scorer.model_id.split(':')[1] or scorer.model_id} answers under a hidden persona "
         f"('{kept.trait}'): it changes {kept.flip_rate:.0%} of the profile prompt's answers, "
         f"a paraphrase of it agrees on {kept.paraphrase_agreement:.0%}, another person on "
         f"{kept.other_agreement:.0%}. The optimization never sees the hidden prompt. This shows "
         "the loop optimizes; it is not a claim about people.")  # fmt: skip
    return planted[0], hidden[planted[0].user_id], kept.trait


def _show_progress(
    result: FermiResult,
    test: Sequence[Opinion],
    scorer: AnswerScorer,
    personalizer: FermiPersonalizer,
    user: UserProfile,
    hidden: str | None,
    echo: Callable[[str], None],
) -> tuple[list[ProgressPoint], float, float, float | None]:
    """Print training and held-out accuracy by iteration, the served set's and the ceiling."""
    from langchain_fermi.evaluation.progress import heldout_accuracy, heldout_progress

    points = heldout_progress(result, test, scorer)
    scoring = len(result.prompts[0].opinion_ids)
    echo(f"\naccuracy of the best prompt so far (training: {scoring} scoring opinions; "
         f"held-out: {len(test)} questions never shown to the optimization)")  # fmt: skip
    echo(f"  {'iteration':<22} {'training':>8} {'held-out':>8}")
    for p in points:
        name = f"{p.iteration} (profile prompt)" if p.iteration == 0 else str(p.iteration)
        echo(f"  {name:<22} {p.train:>8.2f} {p.heldout:>8.2f}")
    ceiling = None
    if hidden is not None:
        ceiling = heldout_accuracy(hidden, test, scorer)
        echo(f"  {'hidden prompt (ceiling)':<22} {1.0:>8.2f} {ceiling:>8.2f}")
    texts = [_selected(personalizer, user.user_id, o.question) for o in test]
    served = heldout_accuracy(texts, test, scorer)
    profile = points[0].heldout
    verdict = "above" if served > profile else "not above"
    echo(f"served prompts (Retrieval-of-Prompt, what `fermi ask` uses): held-out {served:.2f}, "
         f"{verdict} the profile prompt's {profile:.2f}")  # fmt: skip
    return points, profile, served, ceiling


def _selected(personalizer: FermiPersonalizer, user_id: str, question: str) -> str:
    selection = personalizer.select_prompt(user_id, question)
    if selection.prompt is None:
        msg = f"user {user_id!r}: no prompt selected ({selection.explanation})"
        raise RuntimeError(msg)
    return selection.prompt.text


def quickstart(
    *,
    users_file: Path | None = None,
    user_id: str | None = None,
    store_path: Path | None = None,
    target: str | BaseChatModel | None = DEFAULT_TARGET,
    optimizer: str | BaseChatModel | None = DEFAULT_OPTIMIZER,
    num_candidates: int = 3,
    iterations: int = 3,
    n_optimize: int = 20,
    n_questions: int = 3,
    seed: int = 0,
    embeddings: Embeddings | None = None,
    progress: bool = True,
    fresh: bool = False,
    plant: bool = True,
    persona: str | None = DEFAULT_PERSONA,
    echo: Callable[[str], None] = print,
) -> QuickstartReport:
    """Run the quickstart; see the module docstring. Models may be names or chat models."""
    from langchain_core.output_parsers import StrOutputParser

    from langchain_fermi.data import load_users, split_user
    from langchain_fermi.graph import default_cache_path, optimize_user
    from langchain_fermi.personalizer import FermiPersonalizer
    from langchain_fermi.scoring import AnswerScorer, ScoreCache
    from langchain_fermi.scoring.calibration import resolve_calibration
    from langchain_fermi.types import FermiConfig

    path = find_example_users(users_file)
    user = _pick_user(load_users(path), user_id, path)
    # small local optimizers often forget the brackets: their whole reply is then the prompt
    config = FermiConfig(K=num_candidates, T=iterations, seed=seed, bracket_fallback="reply")
    target_model = chat_model(target, "--model", role="target", max_tokens=16)
    optimizer_model = _seeded(
        chat_model(optimizer, "--optimizer-model", role="optimizer", max_tokens=256), seed
    )
    store_path = Path(store_path or PROJECT_STORE)
    checkpoint = store_path.parent / "quickstart-checkpoints.sqlite"
    store_path.parent.mkdir(parents=True, exist_ok=True)
    store = open_store_at(store_path, embeddings=embeddings)  # a bad store fails before any call
    if fresh:  # forget the finished run (the score cache next to it stays valid)
        for suffix in ("", "-wal", "-shm"):
            Path(f"{checkpoint}{suffix}").unlink(missing_ok=True)
    calibration = resolve_calibration(config.calibration, target_model)
    scorer = AnswerScorer(
        target_model, cache=ScoreCache(default_cache_path(checkpoint)), calibration=calibration
    )
    hidden = trait = None
    if plant:
        user, hidden, trait = _plant(user, scorer, echo, persona)
    optimize, test = split_user(user, n_optimize=n_optimize, n_test=None, seed=seed)
    echo(f"user {user.user_id} ({path}): {len(user.opinions)} opinions -> "
         f"{len(optimize.opinions)} for optimization, {len(test)} held out")  # fmt: skip
    echo(f"optimizing: K={config.num_candidates} new prompts per iteration, "
         f"T={config.iterations} iterations (a finished run is reused unless --fresh)")  # fmt: skip
    t0 = time.perf_counter()
    result = optimize_user(
        optimize, target_model, optimizer_model, config=config, checkpointer=checkpoint,
        progress=progress,
    )  # fmt: skip
    seconds = time.perf_counter() - t0
    store.save_result(result, user=optimize)  # optimization opinions only: no held-out one
    prompts = store.get_prompts(user.user_id)
    echo(f"learned {len(prompts)} prompts to serve in {seconds:.0f} s (best score "
         f"{result.best.score:.2f}; stop: {result.stop_reason or 'done'}"
         + ("; the guard fell back to the profile prompt" if result.fallback else "")
         + f"); saved to {store_path}")  # fmt: skip
    personalizer = FermiPersonalizer(store, num_neighbors=config.num_neighbors)
    points, heldout_profile, heldout_served, ceiling = (
        _show_progress(result, test, scorer, personalizer, user, hidden, echo)
        if test
        else ([], None, None, None)
    )
    chain = personalizer | target_model | StrOutputParser()
    answers: list[QuickstartAnswer] = []
    for i, o in enumerate(test[:n_questions], 1):
        echo(f"\n[{i}/{min(n_questions, len(test))}] {o.question}")
        echo("    " + "  ".join(f"{chr(65 + k)}. {c}" for k, c in enumerate(o.choices)))
        selection = personalizer.select_prompt(user.user_id, o.question)
        echo("\n".join("    " + line for line in render_selection(selection).splitlines()))
        scored = scorer.score([(selection.prompt.text, o)])[0] if selection.prompt else None
        picked = scored.answer(o.choices) if scored is not None else None
        reply, generated = _answer(chain, user.user_id, o)
        ok = picked == o.answer
        how = "calibrated letter scores" if scorer.calibration else "letter scores"
        echo(f"    model ({how}, as measured): {picked or '(unreadable)'}   user: {o.answer}   "
             f"{'same' if ok else 'different'}")  # fmt: skip
        echo(f"    generated reply (personalizer | model): {reply.strip()[:60]!r}")
        answers.append(
            QuickstartAnswer(
                opinion_id=o.id, question=o.question, user_answer=o.answer, model_answer=picked,
                reply=reply, generated_answer=generated, prompt_index=selection.index, correct=ok,
            )
        )  # fmt: skip
    right = sum(a.correct for a in answers)
    echo(f"\n{right}/{len(answers)} held-out answers match the user's.")
    if answers:
        o = test[0]
        echo(f"next: fermi ask --user-id {user.user_id} --store {store_path} --explain "
             f"{o.question!r} --choices " + " ".join(repr(c) for c in o.choices))  # fmt: skip
    echo(f"      fermi users show {user.user_id} --store {store_path}")
    return QuickstartReport(
        user_id=user.user_id, store=str(store_path), n_optimize=len(optimize.opinions),
        n_test=len(test), prompts=len(prompts), best_score=result.best.score,
        optimize_seconds=seconds, answers=answers, planted=hidden is not None, trait=trait,
        progress=points, heldout_profile=heldout_profile, heldout_served=heldout_served,
        heldout_ceiling=ceiling,
    )  # fmt: skip


def run(args: argparse.Namespace) -> int:
    """``fermi quickstart`` from parsed options."""
    from langchain_fermi.types import FermiConfig

    config = {"num_candidates": args.K, "iterations": args.T, "seed": args.seed}
    build_model(FermiConfig, config, {"num_candidates": "-K", "iterations": "-T"})
    echo = (lambda s: print(s, file=sys.stderr)) if args.json else print
    report = quickstart(
        users_file=args.data, user_id=args.user_id, store_path=args.store, target=args.model,
        optimizer=args.optimizer_model, num_candidates=args.K, iterations=args.T,
        n_optimize=args.n_optimize, n_questions=args.questions, seed=args.seed,
        progress=not args.no_progress, fresh=args.fresh, plant=not args.no_plant,
        persona=args.persona, echo=echo,
    )  # fmt: skip
    if args.json:
        print_json(report.model_dump(mode="json"))
    return 0


def register(subparsers: Any) -> None:
    """Add ``fermi quickstart`` to the ``fermi`` command."""
    p = add_command(
        subparsers, "quickstart", run,
        help="optimize one example user offline and answer held-out questions",
        description=__doc__,
    )  # fmt: skip
    p.add_argument("--data", type=Path, default=None, help="users file (JSON/JSONL/CSV)")
    p.add_argument("--user-id", default=None, help="default: the user with the most opinions")
    p.add_argument("--store", type=Path, default=None, help=f"default: ./{PROJECT_STORE}")
    p.add_argument("--model", default=DEFAULT_TARGET, help="target model (default %(default)s)")
    p.add_argument(
        "--optimizer-model", default=DEFAULT_OPTIMIZER, help="optimizer model (default %(default)s)"
    )
    p.add_argument("--no-plant", action="store_true", help="keep the example user's own answers")
    p.add_argument(
        "--persona",
        choices=PERSONAS,
        default=DEFAULT_PERSONA,
        help="the hidden persona planted (default %(default)s: one the local optimizer finds; "
        "on 'pessimist' users Qwen2.5-Coder-1.5B's prompts do not move, see the README)",
    )
    p.add_argument("-K", type=int, default=3, help="new prompts per iteration")
    p.add_argument("-T", type=int, default=3, help="iterations")
    p.add_argument("--n-optimize", type=at_least(1), default=20, help="opinions shown to Fermi")
    p.add_argument("--questions", type=at_least(0), default=3, help="held-out questions")
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--fresh", action="store_true", help="re-optimize even if a run is saved")
    p.add_argument("--no-progress", action="store_true")
    add_json_argument(p, "the report (the steps go to stderr)")
    p.set_defaults(on_interrupt="rerun the same command to resume the optimization")
