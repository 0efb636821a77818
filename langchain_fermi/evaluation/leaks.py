"""Evidence that nothing held out reached the optimization: test questions (every dataset) and
planted users' hidden prompts."""

from __future__ import annotations

from collections.abc import Sequence

from langchain_fermi.evaluation.meter import RecordingCache, TestScorer
from langchain_fermi.evaluation.planted import hidden_prompt_leaked
from langchain_fermi.evaluation.schema import LeakCheck
from langchain_fermi.types import FermiResult, Opinion, UserProfile, scored_opinion_ids

__all__ = ["hidden_prompt_check", "leak_check"]


def leak_check(
    results: Sequence[FermiResult],
    recorders: Sequence[RecordingCache],
    optimize: Sequence[Opinion],
    test: Sequence[Opinion],
    scorer: TestScorer,
) -> LeakCheck:
    """Compare what the optimization scored with the test set, by id and by cache key.

    Args:
        results: The variants' optimization results (every prompt they scored).
        recorders: The per-user cache views the optimizations ran with.
        optimize: The optimization opinions.
        test: The held-out opinions.
        scorer: Computes cache keys the way the target's scorer does.
    """
    scored = sorted(scored_opinion_ids(p for r in results for p in r.all_prompts))
    allowed = {o.id for o in optimize}
    test_ids = {o.id for o in test}
    bad_ids = sorted(i for i in scored if i in test_ids or i not in allowed)
    looked_up: set[str] = set().union(*(rec.keys for rec in recorders)) if recorders else set()
    prompts = {p.text for r in results for p in r.all_prompts}
    by_id = {o.id: o for o in optimize}
    verified = any(
        scorer.key(p.text, by_id[i]) in looked_up
        for r in results
        for p in r.all_prompts
        for i in p.opinion_ids
        if i in by_id
    )
    # A test question with the exact text and choices of an optimization opinion shares its
    # cache key; only keys that can come from the test set alone count as a leak.
    opt_keys = {(o.question, tuple(o.choices)) for o in optimize}
    seen = sorted(
        o.id
        for o in test
        if (o.question, tuple(o.choices)) not in opt_keys
        and any(scorer.key(p, o) in looked_up for p in prompts)
    )
    return LeakCheck(
        scored_ids=scored,
        test_ids_scored=bad_ids,
        keys_looked_up=len(looked_up),
        cache_verified=verified,
        test_questions_seen=seen,
    )


def hidden_prompt_check(
    hidden: str,
    user: UserProfile,
    results: Sequence[FermiResult],
    recorders: Sequence[RecordingCache],
    scorer: TestScorer,
) -> bool:
    """True when a planted user's hidden prompt reached the optimization: in the user it was
    given, in a prompt it scored, or as a cache key it looked up (any of its questions)."""
    texts = [p.text for r in results for p in r.all_prompts]
    looked_up: set[str] = set().union(*(rec.keys for rec in recorders)) if recorders else set()
    keyed = any(scorer.key(hidden, o) in looked_up for o in user.opinions)
    return keyed or hidden_prompt_leaked(hidden, user, texts)
