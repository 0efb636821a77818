"""What the benchmark keeps of one user's optimization: `OptimizationRecord`, and its cost.

Separate from `userrun` (which runs the methods) so the record's rules (redaction, the guard's
counts, every restart paid for) read in one place.
"""

from __future__ import annotations

from collections.abc import Sequence

from langchain_fermi.evaluation import costs
from langchain_fermi.evaluation.meter import RecordingCache, TestScorer
from langchain_fermi.evaluation.redact import redact_profile, redact_survey_text
from langchain_fermi.evaluation.schema import OptimizationRecord
from langchain_fermi.graph.guard import degenerate_reason
from langchain_fermi.questions import profile_addendum
from langchain_fermi.types import Cost, FermiResult, Opinion, UserProfile

__all__ = ["optimization_cost", "optimization_record", "written_text"]


def optimization_cost(
    result: FermiResult, recorder: RecordingCache, optimize: Sequence[Opinion], scorer: TestScorer
) -> tuple[Cost, Cost]:
    """The optimization's actual and naive cost, target tokens counted the same way for both.

    `Cost` records the target's and the optimizer's share apart (`costs.optimization_cost`);
    the target calls actually made are those this optimization wrote to the cache.
    """
    by_id = {o.id: o for o in optimize}
    pairs = ((p.text, by_id[i]) for p in result.all_prompts for i in p.opinion_ids)
    paid = recorder.paid_pairs(pairs, scorer.key)
    return costs.optimization_cost(result, paid, optimize)


def written_text(text: str, user: UserProfile) -> str:
    """What the optimizer wrote of a prompt: the paragraph of the addendum form, else all of it
    (the guard's checks apply to that, not to the profile prompt around it)."""
    added = profile_addendum(user, text)
    return text if added is None else added


def optimization_record(
    variant: str,
    result: FermiResult,
    recorder: RecordingCache,
    user: UserProfile,
    scorer: TestScorer,
) -> OptimizationRecord:
    """What the report keeps of one optimization: served prompts (redacted), costs, curve,
    the guard's counts and, with restarts, each search's best score."""
    optimize = list(user.opinions)
    min_words = result.config.min_prompt_words
    best = result.best_served
    actual, naive = optimization_cost(result, recorder, optimize, scorer)
    questions = [o.question for o in optimize]
    profile = user.profile_text()

    def clean(text: str) -> str:  # no survey text and no respondent profile on disk
        return redact_survey_text(redact_profile(text, profile), questions)

    served = result.serving_prompts()
    written = [written_text(p.text, user) for p in served if p.iteration > 0]
    scored = result.all_prompts
    generated = sum(p.iteration > 0 for p in scored)  # the profile prompt was not generated
    return OptimizationRecord(
        variant=variant,
        guard=result.config.guard,
        served=[
            {
                "text": clean(p.text),
                "score": p.score,
                "validation": result.validation.get(p.text),
            }
            for p in served
        ],
        fallback=result.fallback,
        degenerate_served=sum(
            degenerate_reason(text, optimize, min_words=min_words) is not None
            for text in written
            if text
        ),
        dropped=dict(result.dropped),
        optimizer_tokens_per_candidate=(
            result.cost.optimizer_tokens / generated if generated else None
        ),
        curve=list(result.curve),
        stop_reason=result.stop_reason,
        cost=actual,
        naive=naive,
        reported_cost=result.cost,
        prompts_scored=len(scored),
        pairs_scored=sum(len(p.opinion_ids) for p in scored),
        best_prompt=clean(best.text),
        best_score=best.score,
        memory=[
            {
                "text": clean(p.text),
                "score": p.score,
                "iteration": p.iteration,
            }
            for p in result.memory
        ],
        restart=result.restart,
        search_scores=[s.best_served.score for s in result.searches],
    )
