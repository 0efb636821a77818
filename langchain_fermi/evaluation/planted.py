"""Planted personas: synthetic users whose answers a prompt can reach, to prove the loop optimizes.

The small local models carry almost no persona signal on real respondents (OFFLINE_MODELS.md), so
no method can show personalization on them. A planted user is built so that one exists: a real
W92 profile and real OpinionQA questions, but the answers are the *target model's own* answers
under a hidden system prompt (the profile prompt plus a paragraph describing a plausible person:
beliefs, values, circumstances; never an answer-format rule). Optimization never sees the hidden
prompt; the benchmark checks that (`hidden_prompt_leaked`).

A hidden prompt is kept only when it carries a signal the target model follows by meaning:

* it changes at least ``flip_min`` of the answers compared with the profile prompt, and
* a paraphrase of it agrees with it clearly more (by ``margin``) than a different person's
  paragraph does. SmolLM2's "flips" fail this: any added paragraph moves its letter bias, and two
  opposite personas agree more than a persona and its paraphrase.

This is the offline proof that the loop optimizes, not a claim about people.
"""

from __future__ import annotations

import hashlib
import logging
import random
from collections.abc import Sequence
from dataclasses import dataclass

from pydantic import BaseModel, Field

from langchain_fermi.questions import profile_prompt, profile_prompt_with
from langchain_fermi.scoring import AnswerScorer
from langchain_fermi.types import Opinion, UserProfile

__all__ = [
    "TRAITS",
    "PlantedPersona",
    "PlantedSet",
    "Trait",
    "hidden_prompt",
    "hidden_prompt_leaked",
    "plant_users",
]


@dataclass(frozen=True)
class Trait:
    """A plausible person's paragraph, a paraphrase of it, and its most different counterpart."""

    name: str
    text: str
    paraphrase: str
    opposite: str


TRAITS: tuple[Trait, ...] = (
    Trait(
        "pessimist",
        "This person is deeply pessimistic and distrustful. They do not trust the federal "
        "government, big companies, the news media or scientists, believe the country is "
        "heading in the wrong direction, expect the economy and their own finances to get "
        "worse, and think most people cannot be trusted.",
        "They are a gloomy, suspicious person: Washington, corporations, journalists and "
        "experts are not to be believed; America is on the wrong track; next year money will "
        "be tighter and the economy weaker; and you cannot count on most people.",
        "optimist",
    ),
    Trait(
        "optimist",
        "This person is hopeful and trusting. They have confidence in the federal government, "
        "scientists, the news media and large institutions, believe the country is heading in "
        "the right direction, expect the economy and their own finances to improve, and think "
        "most people can be trusted.",
        "They look on the bright side: public officials, researchers, reporters and big "
        "organisations mostly do their jobs well; America is on the right track; money and "
        "jobs will be better next year; and most people deserve trust.",
        "pessimist",
    ),
    Trait(
        "struggling",
        "This person is barely getting by. They lost hours at work, worry every month about "
        "rent and medical bills, feel the economic system is rigged against people like them, "
        "and want the government to do much more to help working families.",
        "Money is a constant worry for them: their shifts were cut, paying for housing and "
        "doctors is hard each month, the economy seems stacked against ordinary workers, and "
        "they think government should step in far more for families like theirs.",
        "libertarian",
    ),
    Trait(
        "libertarian",
        "This person runs a small business and believes strongly in individual freedom. They "
        "think the government is too big and wasteful, that taxes and regulations should be "
        "cut, that people should solve their own problems rather than rely on government "
        "programs, and that owning a gun is a basic right.",
        "As a self-employed owner they prize personal liberty: Washington spends too much and "
        "does too much, taxes and rules hold people back, individuals rather than public "
        "programs should handle their own lives, and the right to bear arms is fundamental.",
        "struggling",
    ),
    Trait(
        "activist",
        "This person is a committed activist. They see climate change as an emergency, believe "
        "racism and inequality are built into American institutions, want sweeping government "
        "action on health care and the environment, and are angry that leaders move too slowly.",
        "They campaign for change: global warming is a crisis, discrimination and unfairness "
        "are part of how the country's institutions work, government should act boldly on "
        "health and the climate, and politicians' slowness infuriates them.",
        "traditionalist",
    ),
    Trait(
        "traditionalist",
        "Faith is the center of this person's life. They pray every day, hold traditional "
        "family values, feel that society is losing its moral compass, want less government "
        "interference in their community, and trust their church more than politicians or the "
        "media.",
        "Their religion guides everything they do: daily prayer, old-fashioned values about "
        "family, a sense that the country has lost its morals, a wish for government to stay "
        "out of local life, and more faith in their congregation than in officials or news.",
        "activist",
    ),
)
"""The paragraphs a hidden prompt adds to the profile prompt. Strong attitudes (distrust,
pessimism) move Qwen2.5 far more than identity labels (OFFLINE_MODELS.md), so most are
attitudes."""

_BY_NAME = {t.name: t for t in TRAITS}

logger = logging.getLogger(__name__)


def hidden_prompt(user: UserProfile, trait: Trait, *, paraphrase: bool = False) -> str:
    """The profile prompt with a trait paragraph added before its final instruction."""
    return profile_prompt_with(user, trait.paraphrase if paraphrase else trait.text)


class PlantedPersona(BaseModel):
    """One candidate planted user: the trait tried and whether its signal passed the filter."""

    user_id: str = Field(description="The planted user's id (the respondent's id + the trait).")
    source_user_id: str = Field(description="The real respondent whose profile it uses.")
    trait: str
    flip_rate: float = Field(description="Answers that differ from the profile prompt's.")
    paraphrase_agreement: float = Field(description="Answers a paraphrase of it shares.")
    other_agreement: float = Field(description="Answers the opposite person's prompt shares.")
    kept: bool
    reason: str = ""
    opinion_ids: list[str] = Field(default_factory=list)
    answers: list[int | None] | None = Field(
        None,
        description="kept: the option the target chose under the hidden prompt, per opinion id "
        "(model output, no survey text); a resumed run rebuilds the user from it",
    )

    @property
    def margin(self) -> float:
        """How much more the paraphrase agrees with it than a different person does."""
        return self.paraphrase_agreement - self.other_agreement


class PlantedSet(BaseModel):
    """What planting produced: every candidate tried (kept or dropped)."""

    flip_min: float
    margin: float
    candidates: list[PlantedPersona]

    @property
    def kept(self) -> list[PlantedPersona]:
        return [c for c in self.candidates if c.kept]

    def keeping(self, known: PlantedSet | None) -> PlantedSet:
        """This planting followed by the candidates of ``known`` (an earlier planting with the
        same thresholds) it did not try, e.g. those a larger ``max_users`` reached."""
        seen = {c.user_id for c in self.candidates}
        extra = [
            c for uid, c in _reusable(known, self.flip_min, self.margin).items() if uid not in seen
        ]
        return self.model_copy(update={"candidates": [*self.candidates, *extra]})

    def summary(self) -> dict[str, object]:
        """Counts and rates for the report."""
        kept = self.kept
        return {
            "tried": len(self.candidates),
            "kept": len(kept),
            "dropped": len(self.candidates) - len(kept),
            "dropped_low_flips": sum(1 for c in self.candidates if c.reason == "flips"),
            "dropped_no_meaning": sum(1 for c in self.candidates if c.reason == "paraphrase"),
            "flip_min": self.flip_min,
            "margin_min": self.margin,
            "mean_flip_rate_kept": _mean([c.flip_rate for c in kept]),
            "mean_paraphrase_agreement_kept": _mean([c.paraphrase_agreement for c in kept]),
            "mean_other_agreement_kept": _mean([c.other_agreement for c in kept]),
        }


def _mean(values: Sequence[float]) -> float | None:
    return sum(values) / len(values) if values else None


def _agreement(a: Sequence[int | None], b: Sequence[int | None]) -> float:
    return sum(1 for x, y in zip(a, b, strict=True) if x == y) / len(a)


_STRONG = ("pessimist", "optimist")
"""Attitudes that move Qwen2.5 most (OFFLINE_MODELS.md): tried first, so fewer respondents are
spent on traits that rarely pass the filter."""


def _trait_order(user_id: str, seed: int, first: Sequence[str] = ()) -> list[Trait]:
    """``first`` (trait names) in that order, then the strong attitudes, then the others, each
    group in a seeded per-user order."""
    unknown = [name for name in first if name not in _BY_NAME]
    if unknown:
        msg = f"unknown trait(s) {unknown}; expected some of {sorted(_BY_NAME)}"
        raise ValueError(msg)
    rng = random.Random(hashlib.sha256(f"{seed}\x1ftrait\x1f{user_id}".encode()).digest())
    strong = [t for t in TRAITS if t.name in _STRONG]
    others = [t for t in TRAITS if t.name not in _STRONG]
    rng.shuffle(strong)
    rng.shuffle(others)
    chosen = [_BY_NAME[name] for name in dict.fromkeys(first)]
    return chosen + [t for t in strong + others if t not in chosen]


def _sample(
    user_id: str, opinions: Sequence[Opinion], n: int, seed: int, salt: str
) -> list[Opinion]:
    """``n`` of ``opinions``, a seeded sample kept in their order."""
    if len(opinions) <= n:
        return list(opinions)

    def rank(o: Opinion) -> bytes:
        return hashlib.sha256(f"{seed}\x1f{salt}\x1f{user_id}\x1f{o.id}".encode()).digest()

    chosen = {o.id for o in sorted(opinions, key=rank)[:n]}
    return [o for o in opinions if o.id in chosen]


def _answers(scorer: AnswerScorer, prompt: str, opinions: Sequence[Opinion]) -> list[int | None]:
    return [a.index for a in scorer.score([(prompt, o) for o in opinions])]


def _planted_user(
    source: UserProfile, trait: Trait, opinions: Sequence[Opinion], answers: Sequence[int | None]
) -> UserProfile:
    planted = [
        o.model_copy(update={"answer": o.choices[i]})
        for o, i in zip(opinions, answers, strict=True)
        if i is not None
    ]
    return UserProfile(
        user_id=f"{source.user_id}-{trait.name}",
        attributes=dict(source.attributes),
        opinions=planted,
    )


def plant_users(
    sources: Sequence[UserProfile],
    scorer: AnswerScorer,
    *,
    max_users: int,
    n_questions: int,
    flip_min: float = 0.3,
    margin: float = 0.15,
    attempts: int = 2,
    filter_questions: int = 20,
    seed: int = 0,
    first_traits: Sequence[str] = (),
    known: PlantedSet | None = None,
) -> tuple[list[UserProfile], dict[str, str], PlantedSet]:
    """Build up to ``max_users`` planted users from real respondents' profiles and questions.

    For each respondent (in order) up to ``attempts`` traits are tried, in a seeded order, until
    one passes the filter (module doc); each respondent gives at most one planted user.

    Args:
        sources: real respondents (their profile and the questions they answered).
        scorer: the target model's scorer, with the benchmark's calibration and cache: planted
            answers are exactly what that scorer reads under the hidden prompt.
        max_users: stop once this many users are kept.
        n_questions: questions per planted user (a seeded sample of the respondent's).
        flip_min: least share of answers the hidden prompt must change.
        margin: least extra agreement of the paraphrase over the opposite person.
        attempts: traits tried per respondent.
        filter_questions: questions the paraphrase and the opposite person answer (a seeded
            subset of the user's; the flip rate uses all of them).
        seed: trait order and question sample.
        first_traits: trait names tried before the seeded order (the quickstart's persona).
        known: an earlier planting with the same settings (a resumed run's ``planted.json``):
            a candidate it tried on the same questions is taken as it was, without model calls
            (a kept one rebuilt from its recorded answers).

    Returns:
        The planted users, their hidden prompts by user id, and every candidate's record.
    """
    users: list[UserProfile] = []
    hidden: dict[str, str] = {}
    records: list[PlantedPersona] = []
    reusable = _reusable(known, flip_min, margin)
    for source in sources:
        if len(users) >= max_users:
            break
        opinions = _sample(source.user_id, source.opinions, n_questions, seed, "plant")
        subset = _sample(source.user_id, opinions, filter_questions, seed, "filter")
        at = [i for i, o in enumerate(opinions) if o in subset]
        base: list[int | None] | None = None
        for trait in _trait_order(source.user_id, seed, first_traits)[:attempts]:
            text = hidden_prompt(source, trait)
            prior = _prior(reusable.get(f"{source.user_id}-{trait.name}"), opinions)
            if prior is not None:
                records.append(prior)
                if prior.kept and prior.answers is not None:
                    users.append(_planted_user(source, trait, opinions, prior.answers))
                    hidden[users[-1].user_id] = text
                    break
                continue
            if base is None:
                base = _answers(scorer, profile_prompt(source), opinions)
            answers = _answers(scorer, text, opinions)
            para = _answers(scorer, hidden_prompt(source, trait, paraphrase=True), subset)
            other = _answers(scorer, hidden_prompt(source, _BY_NAME[trait.opposite]), subset)
            mine = [answers[i] for i in at]
            record = PlantedPersona(
                user_id=f"{source.user_id}-{trait.name}",
                source_user_id=source.user_id,
                trait=trait.name,
                flip_rate=1.0 - _agreement(answers, base),
                paraphrase_agreement=_agreement(mine, para),
                other_agreement=_agreement(mine, other),
                kept=False,
                opinion_ids=[o.id for o in opinions],
            )
            if record.flip_rate < flip_min:
                record.reason = "flips"
            elif record.margin < margin:
                record.reason = "paraphrase"
            else:
                record.kept, record.answers = True, answers
            records.append(record)
            logger.info(
                "planting %s: flips %.2f, paraphrase %.2f vs other %.2f -> %s",
                record.user_id, record.flip_rate, record.paraphrase_agreement,
                record.other_agreement, "kept" if record.kept else f"dropped ({record.reason})",
            )  # fmt: skip
            if record.kept:
                user = _planted_user(source, trait, opinions, answers)
                users.append(user)
                hidden[user.user_id] = text
                break
    return users, hidden, PlantedSet(flip_min=flip_min, margin=margin, candidates=records)


def _reusable(
    known: PlantedSet | None, flip_min: float, margin: float
) -> dict[str, PlantedPersona]:
    """An earlier planting's candidates by user id, when its thresholds are these."""
    if known is None or (known.flip_min, known.margin) != (flip_min, margin):
        return {}
    return {c.user_id: c for c in known.candidates}


def _prior(record: PlantedPersona | None, opinions: Sequence[Opinion]) -> PlantedPersona | None:
    """``record`` if it was tried on exactly ``opinions`` and, when kept, recorded answers that
    fit their choices; else None (plant it again)."""
    if record is None or record.opinion_ids != [o.id for o in opinions]:
        return None
    if not record.kept:
        return record
    answers = record.answers
    if answers is None or len(answers) != len(opinions):
        return None
    fits = all(i is None or 0 <= i < len(o.choices) for i, o in zip(answers, opinions, strict=True))
    return record if fits else None


def hidden_prompt_leaked(hidden: str, user: UserProfile, prompt_texts: Sequence[str]) -> bool:
    """Whether the hidden prompt (or its trait paragraph) reached what optimization saw: the
    user given to it, or any prompt it scored."""
    paragraphs = [t.text for t in TRAITS if t.text in hidden]
    needles = [hidden, *paragraphs]
    seen = [user.model_dump_json(), *prompt_texts]
    return any(n in s for n in needles for s in seen)
