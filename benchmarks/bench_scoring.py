"""Scoring (prompt, question) pairs on SmolLM2: one chat completion per pair vs `AnswerScorer`.

    python -m benchmarks.bench_scoring [--users 4] [--opinions 16] [--candidates rewrite|extend]

The workload has the shape of a Fermi run (K=4, T=1, scored on 16 opinions): per user, the
profile-only prompt P0 (iteration 0), then 4 candidate prompts (iteration 1), each 150-300
tokens (the user's profile from ``examples/data/users.json`` + an instruction paragraph), each
scored on the same 16 opinions. Candidates are free rewrites by default, as the optimizer
writes them; ``--candidates extend`` makes them P0 + paragraphs (a shared ~115-token prefix,
which also helps the naive method). Repeats included, as a run has them: the best prompt is
scored again on the same 16 opinions (the final memory evaluation; a resumed run does the
same). So 96 pairs per user, 80 of them unique.

* **naive**: ``llama.create_chat_completion(max_tokens=8, temperature=0)`` per pair, pairs in a
  random order, no cache, reply read with `parse_answer`.
* **ours**: `AnswerScorer` (letter logits, KV-prefix reuse, pairs grouped by prompt, cache),
  called once per iteration as the graph does, pairs handed over in a random order.

Users alternate which method runs first, so a change in the machine's load hits both. Prints a
table and writes ``benchmarks/results/bench_scoring.json``.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import random
import time
from pathlib import Path
from typing import Any

from langchain_fermi.models import LocalLlamaChatModel, get_chat_model, to_chat_messages
from langchain_fermi.questions import parse_answer, profile_prompt
from langchain_fermi.scoring import AnswerScorer, ScoreCache
from langchain_fermi.scoring.llama import LlamaLetterScorer
from langchain_fermi.types import Opinion, UserProfile

ROOT = Path(__file__).resolve().parents[1]
USERS = ROOT / "examples" / "data" / "users.json"
RESULTS = ROOT / "benchmarks" / "results" / "bench_scoring.json"

PARAGRAPHS = [
    "When a question touches on politics, answer the way a {ideology} {party} usually would, "
    "and keep in mind that this person is {age} years old and lives in a {community} in the "
    "{region}. Prefer the answer that fits their everyday experience over an abstract ideal.",
    "This person's religion is {religion} and they attend services {attendance}. Their "
    "education ({education}) and work as a {occupation} shape how they see the economy, the "
    "government and social change. When two answers seem close, pick the more moderate one "
    "unless the person's ideology is clearly strong, and do not hedge.",
    "Think about what someone with an income of {income} worries about: prices, jobs, health "
    "care and their family's future. A {ideology} person who is {marital} answers survey "
    "questions about technology, climate and society from that position. Answer quickly and "
    "consistently, as in a real telephone survey, and always choose exactly one option.",
    "Past answers show that this person takes firm positions: they choose the strongest "
    "option on issues their party cares about and the middle options elsewhere. They trust "
    "science, local news and their own community more than national politicians. Read every "
    "choice carefully before answering and answer as this {age}-year-old {occupation} would.",
]


def _fields(user: UserProfile) -> dict[str, str]:
    a = user.attributes
    keys = {
        "ideology": "Political ideology",
        "party": "Political party",
        "age": "Age",
        "community": "Community",
        "region": "Region",
        "religion": "Religion",
        "attendance": "Frequency of religious attendance",
        "education": "Education",
        "occupation": "Occupation",
        "income": "Income",
        "marital": "Marital status",
        "gender": "Gender",
    }
    return {
        k: a.get(v, "unknown").lower() if k != "age" else a.get(v, "?") for k, v in keys.items()
    }


OPENINGS = [
    "You are answering a survey as a {age}-year-old {gender} from a {community} in the "
    "{region}: {education}, works as a {occupation}, earns {income}, {marital}, {religion}, "
    "a {ideology} {party}.",
    "Imagine you are this person. Age {age}; {gender}; lives in a {community} ({region}); "
    "{occupation} with {education} education; income {income}; religion: {religion}, "
    "attends {attendance}; politically a {ideology} {party}.",
    "Take on the views of a {ideology} {party} who works as a {occupation}. They are {age}, "
    "{marital}, live in a {community} in the {region}, earn {income} and their religion is "
    "{religion}.",
    "Respond to each question the way a {age}-year-old {occupation} would: someone who is "
    "{ideology}, votes {party}, lives in a {community} in the {region} and attends religious "
    "services {attendance}.",
]


def build_prompts(user: UserProfile, candidates: str = "rewrite") -> list[str]:
    """P0 (profile only) and 4 candidate prompts of realistic Fermi length (150-300 tokens).

    ``rewrite``: each candidate is a new text, as the optimizer writes them (no shared prefix
    with P0). ``extend``: each candidate is P0 + paragraphs, so all of a user's prompts share
    P0's ~115 tokens, which llama.cpp's own prefix cache reuses in the naive method too.
    """
    base = profile_prompt(user)
    f = _fields(user)
    out = [base]
    for i in range(4):
        extend = candidates == "extend"
        n_par = 1 + i % 2 if extend else 2 + i % 2
        extra = " ".join(PARAGRAPHS[(i + j) % 4].format(**f) for j in range(n_par))
        head = base if extend else OPENINGS[i].format(**f)
        out.append(f"{head}\n\n{extra}")
    return out


def workload(
    users: list[UserProfile], n_opinions: int, rng: random.Random, candidates: str
) -> list[dict[str, Any]]:
    """Per user, the scoring calls of a run: iteration 0, iteration 1, the final re-score."""
    plan = []
    for user in users:
        prompts = build_prompts(user, candidates)
        ops = user.opinions[:n_opinions]
        calls = [
            [(prompts[0], o) for o in ops],
            [(p, o) for p in prompts[1:] for o in ops],
            [(prompts[rng.randrange(1, 5)], o) for o in ops],  # the best prompt, re-scored
        ]
        for call in calls:
            rng.shuffle(call)
        plan.append({"user": user.user_id, "calls": calls})
    return plan


class EvalCounter:
    """Counts the tokens llama.cpp really evaluates (wraps `Llama.eval`)."""

    def __init__(self, model: LocalLlamaChatModel) -> None:
        self.n = 0
        llama = model.llama
        real = llama.eval

        def counted(tokens: Any) -> None:
            self.n += len(tokens)
            real(tokens)

        llama.eval = counted  # type: ignore[method-assign]


def run_naive(
    model: LocalLlamaChatModel, items: list[tuple[str, Opinion]], rng: random.Random
) -> dict[str, Any]:
    order = list(range(len(items)))
    rng.shuffle(order)
    letters: dict[int, int | None] = {}
    seen: set[tuple[str, str]] = set()
    wall = unique_wall = 0.0
    for i in order:
        prompt, op = items[i]
        chat = to_chat_messages(AnswerScorer.messages(prompt, op.question, op.choices))
        t = time.perf_counter()
        with model.lock:
            out = model.llama.create_chat_completion(messages=chat, max_tokens=8, temperature=0)
        dt = time.perf_counter() - t
        wall += dt
        if (prompt, op.id) not in seen:
            unique_wall += dt
            seen.add((prompt, op.id))
        letters[i] = parse_answer(out["choices"][0]["message"]["content"] or "", op.choices).index  # type: ignore[index]
    return {
        "wall": wall,
        "unique_wall": unique_wall,
        "answers": [letters[i] for i in range(len(items))],
    }


def run_ours(scorer: AnswerScorer, calls: list[list[tuple[str, Opinion]]]) -> dict[str, Any]:
    wall = unique_wall = 0.0
    answers: list[int | None] = []
    for k, call in enumerate(calls):
        t = time.perf_counter()
        res = scorer.score(call)
        dt = time.perf_counter() - t
        wall += dt
        if k < 2:
            unique_wall += dt  # the last call only repeats pairs of the second
        answers += [a.index for a in res]
    return {"wall": wall, "unique_wall": unique_wall, "answers": answers}


def main(argv: list[str] | None = None) -> dict[str, Any]:
    ap = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    ap.add_argument("--users", type=int, default=4)
    ap.add_argument("--opinions", type=int, default=16)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--candidates", choices=["rewrite", "extend"], default="rewrite")
    ap.add_argument("--out", type=Path, default=None, help=f"default: {RESULTS.name}")
    args = ap.parse_args(argv)
    if args.out is None:
        suffix = "" if args.candidates == "rewrite" else f"_{args.candidates}"
        args.out = RESULTS.with_name(f"bench_scoring{suffix}.json")
    rng = random.Random(args.seed)
    raw = json.loads(USERS.read_text())
    users = [UserProfile.model_validate(u) for u in raw][: args.users]
    model: LocalLlamaChatModel = get_chat_model("smollm2")  # type: ignore[assignment]
    counter = EvalCounter(model)
    scorer = AnswerScorer(model, cache=ScoreCache())
    tok = model.llama.tokenize
    letters = LlamaLetterScorer(model)
    load_before = os.getloadavg()
    totals = {m: {"wall": 0.0, "unique_wall": 0.0, "evaluated": 0} for m in ("naive", "ours")}
    pairs = unique = prompt_tokens = 0
    compared: dict[tuple[str, str], tuple[int | None, int | None]] = {}
    prompt_lengths: list[int] = []
    for n, entry in enumerate(workload(users, args.opinions, rng, args.candidates)):
        items = [it for call in entry["calls"] for it in call]
        pairs += len(items)
        keys = {(p, o.id) for p, o in items}
        unique += len(keys)
        for p, o in items:
            chat = to_chat_messages(AnswerScorer.messages(p, o.question, o.choices))
            prompt_tokens += len(letters.prompt_tokens(chat))
        prompt_lengths += [len(tok(p.encode(), add_bos=False)) for p in {p for p, _ in items}]
        results: dict[str, dict[str, Any]] = {}
        for method in ("naive", "ours") if n % 2 == 0 else ("ours", "naive"):
            before = counter.n
            if method == "naive":
                results[method] = run_naive(model, items, rng)
            else:
                results[method] = run_ours(scorer, entry["calls"])
            totals[method]["wall"] += results[method]["wall"]
            totals[method]["unique_wall"] += results[method]["unique_wall"]
            totals[method]["evaluated"] += counter.n - before
        answers = zip(results["naive"]["answers"], results["ours"]["answers"], strict=True)
        for (p, o), (a, b) in zip(items, answers, strict=True):
            compared[(p, o.id)] = (a, b)  # agreement is counted on unique pairs
        print(
            f"user {entry['user']}: naive {results['naive']['wall']:.1f} s, "
            f"ours {results['ours']['wall']:.1f} s",
            flush=True,
        )
    report = {
        "machine": {
            "cpus": os.cpu_count(),
            "python": platform.python_version(),
            "load_before": load_before,
            "load_after": os.getloadavg(),
        },
        "config": {
            "users": len(users),
            "opinions": args.opinions,
            "prompts_per_user": 5,
            "seed": args.seed,
            "candidates": args.candidates,
            "n_threads": model.n_threads,
            "model": "SmolLM2-135M-Instruct Q4_1",
        },
        "pairs": pairs,
        "unique_pairs": unique,
        "repeats": pairs - unique,
        "prompt_tokens": prompt_tokens,
        "prompt_lengths_tokens": {"min": min(prompt_lengths), "max": max(prompt_lengths)},
        "naive": totals["naive"],
        "ours": totals["ours"],
        "speedup": totals["naive"]["wall"] / totals["ours"]["wall"],
        "speedup_without_repeats": totals["naive"]["unique_wall"] / totals["ours"]["unique_wall"],
        "agreement": sum(a == b for a, b in compared.values()) / len(compared),
        "naive_valid_rate": sum(a is not None for a, _ in compared.values()) / len(compared),
        "ours_answer_histogram": _histogram([b for _, b in compared.values()]),
    }
    _print_table(report)
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(report, indent=2) + "\n")
    print(f"wrote {args.out}")
    return report


def _histogram(indices: list[int | None]) -> dict[str, int]:
    out: dict[str, int] = {}
    for i in indices:
        key = "none" if i is None else "ABCDEFGHIJKLMNOPQRSTUVWXYZ"[i]
        out[key] = out.get(key, 0) + 1
    return dict(sorted(out.items()))


def _print_table(r: dict[str, Any]) -> None:
    print(
        f"\n{r['pairs']} pairs ({r['unique_pairs']} unique, {r['repeats']} repeats), "
        f"{r['prompt_tokens']} prompt tokens; system prompts {r['prompt_lengths_tokens']['min']}-"
        f"{r['prompt_lengths_tokens']['max']} tokens; threads {r['config']['n_threads']}; "
        f"load {r['machine']['load_before'][0]:.1f} -> {r['machine']['load_after'][0]:.1f}"
    )
    print(
        f"{'method':<8}{'evaluated tok':>15}{'wall s':>10}{'ms/pair':>10}"
        f"{'unique-only s':>15}{'speedup':>10}"
    )
    for m in ("naive", "ours"):
        t = r[m]
        speed = r["naive"]["wall"] / t["wall"]
        print(
            f"{m:<8}{t['evaluated']:>15}{t['wall']:>10.1f}{1000 * t['wall'] / r['pairs']:>10.0f}"
            f"{t['unique_wall']:>15.1f}{speed:>9.2f}x"
        )
    print(
        f"speedup {r['speedup']:.2f}x (without repeats {r['speedup_without_repeats']:.2f}x); "
        f"agreement naive letter = our argmax: {100 * r['agreement']:.1f} %; "
        f"naive valid letters: {100 * r['naive_valid_rate']:.1f} %"
    )


if __name__ == "__main__":
    main()
