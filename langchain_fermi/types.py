"""Data model: users, opinions, scored prompts, the Fermi configuration and results.

Every object that crosses a module boundary is defined here, validated with pydantic,
so a bad input fails at the edge with a message that names the user and the opinion.
"""

from __future__ import annotations

import re
import string
from collections.abc import Iterable
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from langchain_fermi.errors import validation_message

__all__ = [
    "DEFAULT_DEMO_FRACTION",
    "DEFAULT_ITERATIONS",
    "DEFAULT_MEMORY_SIZE",
    "DEFAULT_NUM_CANDIDATES",
    "DEFAULT_NUM_NEIGHBORS",
    "DEFAULT_TAU",
    "OPTION_LETTERS",
    "Cost",
    "FermiConfig",
    "FermiResult",
    "MisalignedCase",
    "Opinion",
    "ScoredPrompt",
    "UserProfile",
    "Variant",
    "scored_opinion_ids",
    "validate_user_id",
]

# Paper defaults (Kim & Yang 2025): K new prompts per iteration, L kept in memory, T iterations,
# Ñ opinions retrieved at inference, 20 % of the opinions shown as demonstrations,
# τ = 1 for accuracy.
DEFAULT_NUM_CANDIDATES = 4
DEFAULT_MEMORY_SIZE = 5
DEFAULT_ITERATIONS = 10
DEFAULT_NUM_NEIGHBORS = 3
DEFAULT_DEMO_FRACTION = 0.2
DEFAULT_TAU = 1.0

OPTION_LETTERS = string.ascii_uppercase
"""Options are shown to models as A, B, C, ... (at most 26 options)."""

Variant = Literal["fermi", "opro", "profile"]
"""How a prompt was produced: Fermi's meta-prompt, the OPRO ablation, or the profile-only prompt."""

_USER_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.@-]{0,127}$")


def validate_user_id(user_id: Any) -> str:
    """Return ``user_id`` as a string, or raise ``ValueError`` if it is empty or unsafe.

    User ids end up in Chroma ids, LangGraph namespaces, thread ids and file names, so they are
    restricted to letters, digits and ``_ . @ -`` (1-128 characters, not starting with a symbol).
    """
    if user_id is None or (isinstance(user_id, str) and not user_id.strip()):
        msg = "user id must be a non-empty string"
        raise ValueError(msg)
    uid = str(user_id)
    if not _USER_ID_RE.match(uid) or ".." in uid:
        msg = (
            f"unsafe user id {uid!r}: use 1-128 letters, digits, '_', '.', '@' or '-', "
            "starting with a letter or digit"
        )
        raise ValueError(msg)
    return uid


class Opinion(BaseModel):
    """One multiple-choice question and the option the user chose.

    Example:
        >>> Opinion(id="q1", question="Do you own a car?", choices=["Yes", "No"], answer="No")
    """

    model_config = ConfigDict(frozen=True)

    id: str = Field(description="Unique within the user (e.g. the survey item key).")
    question: str
    choices: list[str] = Field(description="The options, in the order they are shown.")
    answer: str = Field(description="The option text the user chose; one of `choices`.")
    topic: str | None = None

    @field_validator("id", mode="before")
    @classmethod
    def _id_is_text(cls, v: Any) -> str:
        if v is None or not str(v).strip():
            msg = "opinion id must be non-empty"
            raise ValueError(msg)
        return str(v)

    @model_validator(mode="after")
    def _check(self) -> Opinion:
        where = f"opinion {self.id!r}"
        if not self.question.strip():
            msg = f"{where}: empty question"
            raise ValueError(msg)
        if len(self.choices) < 2:
            msg = f"{where}: needs at least 2 choices, got {len(self.choices)}"
            raise ValueError(msg)
        if len(self.choices) > len(OPTION_LETTERS):
            msg = f"{where}: at most {len(OPTION_LETTERS)} choices, got {len(self.choices)}"
            raise ValueError(msg)
        if any(not c.strip() for c in self.choices):
            msg = f"{where}: empty choice in {self.choices!r}"
            raise ValueError(msg)
        dupes = sorted({c for c in self.choices if self.choices.count(c) > 1})
        if dupes:
            msg = f"{where}: duplicate choices {dupes!r}"
            raise ValueError(msg)
        if self.answer not in self.choices:
            msg = f"{where}: answer {self.answer!r} is not one of the choices {self.choices!r}"
            raise ValueError(msg)
        return self

    @property
    def answer_index(self) -> int:
        """Position of the user's answer in `choices`."""
        return self.choices.index(self.answer)

    @property
    def answer_letter(self) -> str:
        """Letter of the user's answer as shown to models (``A`` for the first option)."""
        return OPTION_LETTERS[self.answer_index]


class UserProfile(BaseModel):
    """A user: an id, profile attributes (e.g. demographics) and past opinions.

    Example:
        >>> UserProfile(user_id="alice", attributes={"Age": "30-49"}, opinions=[...])
    """

    user_id: str
    attributes: dict[str, str] = Field(default_factory=dict)
    opinions: list[Opinion] = Field(default_factory=list)

    @field_validator("user_id", mode="before")
    @classmethod
    def _safe_id(cls, v: Any) -> str:
        return validate_user_id(v)

    @field_validator("attributes", mode="before")
    @classmethod
    def _attrs_as_text(cls, v: Any) -> dict[str, str]:
        if v is None:
            return {}
        return {str(k): str(val) for k, val in dict(v).items()}

    @field_validator("opinions", mode="before")
    @classmethod
    def _opinions(cls, v: Any, info: Any) -> list[Opinion]:
        uid = info.data.get("user_id", "?")
        out: list[Opinion] = []
        for i, item in enumerate(v or []):
            if isinstance(item, Opinion):
                out.append(item)
                continue
            oid = item.get("id", f"#{i}") if isinstance(item, dict) else f"#{i}"
            try:
                out.append(Opinion.model_validate(item))
            except ValidationError as e:
                text = validation_message(e, strip_prefix=f"opinion {str(oid)!r}: ")
                msg = f"user {uid!r}, opinion {oid!r}: {text}"
                raise ValueError(msg) from None
        seen: set[str] = set()
        for o in out:
            if o.id in seen:
                msg = f"user {uid!r}: duplicate opinion id {o.id!r}"
                raise ValueError(msg)
            seen.add(o.id)
        return out

    def opinion(self, opinion_id: str) -> Opinion:
        """Return the opinion with this id (``KeyError`` if absent)."""
        for o in self.opinions:
            if o.id == opinion_id:
                return o
        msg = f"user {self.user_id!r} has no opinion {opinion_id!r}"
        raise KeyError(msg)

    def profile_text(self) -> str:
        """The profile as ``key: value`` lines, used by the initial prompt."""
        return "\n".join(f"{k}: {v}" for k, v in self.attributes.items())


class MisalignedCase(BaseModel):
    """An opinion where the model's answer scored below τ: what the optimizer is shown."""

    index: int = Field(description="Position of the opinion in the scoring split.")
    opinion_id: str
    question: str
    choices: list[str]
    user_answer: str
    model_answer: str | None = Field(description="None when the reply could not be parsed.")
    score: float = 0.0


class ScoredPrompt(BaseModel):
    """A prompt with its score on a user's scoring opinions: Fermi's memory triplet.

    ``correctness[i]`` is the metric for ``opinion_ids[i]`` (1.0 / 0.0 for multiple choice);
    Retrieval-of-Prompt reads it to rank prompts on a query's nearest opinions without LLM calls.
    """

    text: str
    score: float
    opinion_ids: list[str]
    correctness: list[float]
    answers: list[str | None] = Field(description="The model's answer (option text) per opinion.")
    misaligned: list[MisalignedCase] = Field(default_factory=list)
    iteration: int = 0
    model: str = "unknown"
    variant: Variant = "fermi"

    @model_validator(mode="after")
    def _aligned(self) -> ScoredPrompt:
        if not (len(self.opinion_ids) == len(self.correctness) == len(self.answers)):
            msg = (
                "opinion_ids, correctness and answers must have the same length, got "
                f"{len(self.opinion_ids)}, {len(self.correctness)}, {len(self.answers)}"
            )
            raise ValueError(msg)
        return self

    def correctness_by_id(self) -> dict[str, float]:
        """Map opinion id -> metric value."""
        return dict(zip(self.opinion_ids, self.correctness, strict=True))


def scored_opinion_ids(prompts: Iterable[ScoredPrompt]) -> set[str]:
    """The opinions any of ``prompts`` was scored on (the scoring split, as far as they cover it)."""
    return {i for p in prompts for i in p.opinion_ids}


class FermiConfig(BaseModel):
    """Fermi's hyperparameters and our implementation choices (paper defaults).

    The paper's symbols are accepted as aliases: ``FermiConfig(K=2, L=3, T=2)``.

    Example:
        >>> FermiConfig(T=3, patience=2, max_target_calls=500)
    """

    model_config = ConfigDict(populate_by_name=True, frozen=True, extra="forbid")

    num_candidates: int = Field(DEFAULT_NUM_CANDIDATES, alias="K", ge=1, description="K")
    memory_size: int = Field(DEFAULT_MEMORY_SIZE, alias="L", ge=1, description="L")
    iterations: int = Field(DEFAULT_ITERATIONS, alias="T", ge=0, description="T")
    num_neighbors: int = Field(DEFAULT_NUM_NEIGHBORS, ge=1, description="Ñ at inference")
    demo_fraction: float = Field(DEFAULT_DEMO_FRACTION, ge=0.0, lt=1.0)
    tau: float = Field(DEFAULT_TAU, gt=0.0, le=1.0, description="mis-aligned when s < tau")
    target_temperature: float = Field(0.0, ge=0.0)
    optimizer_temperature: float = Field(1.0, ge=0.0)
    seed: int = 0
    max_concurrency: int = Field(4, ge=1)
    variant: Literal["fermi", "opro"] = "fermi"
    patience: int | None = Field(
        None, ge=1, description="stop after this many non-improving iterations"
    )
    max_target_calls: int | None = Field(None, ge=1, description="budget: target-model calls")
    max_optimizer_calls: int | None = Field(None, ge=1, description="budget: optimizer calls")
    max_tokens: int | None = Field(
        None, ge=1, description="budget: prompt+completion tokens, all models"
    )
    max_retries: int = Field(3, ge=0, description="retries of a failing LLM call, with back-off")
    retry_backoff: float = Field(1.0, ge=0.0, description="seconds before the first retry; doubles")
    max_demos: int = Field(8, ge=0, description="cap on demonstrations shown to the optimizer")
    max_failures_shown: int = Field(10, ge=0, description="cap on the first entry's failures shown")
    include_final_candidates: bool = Field(
        True, description="score the last generation too (FERMI.md: memory + last generation)"
    )
    bracket_fallback: Literal["drop", "reply"] = Field(
        "drop",
        description="an optimizer reply with no [...]: drop it (counted as unparseable), or use "
        "the whole reply as the prompt (helps small local optimizers that ignore the brackets)",
    )


class Cost(BaseModel):
    """Calls, tokens and time spent; adds up with ``+``."""

    target_calls: int = 0
    optimizer_calls: int = 0
    prompt_tokens: int = 0
    completion_tokens: int = 0
    cache_hits: int = 0
    wall_seconds: float = 0.0

    def __add__(self, other: Cost) -> Cost:
        return Cost(**{k: getattr(self, k) + getattr(other, k) for k in Cost.model_fields})

    @property
    def total_tokens(self) -> int:
        return self.prompt_tokens + self.completion_tokens


class FermiResult(BaseModel):
    """What one user's optimization produced."""

    user_id: str
    variant: Literal["fermi", "opro"] = "fermi"
    model: str = "unknown"
    prompts: list[ScoredPrompt] = Field(description="Every prompt scored, in scoring order.")
    memory: list[ScoredPrompt] = Field(description="The final top-L memory, best first.")
    curve: list[float] = Field(default_factory=list, description="Best score after each iteration.")
    cost: Cost = Field(default_factory=Cost)
    cost_per_iteration: list[Cost] = Field(default_factory=list)
    stop_reason: str = ""
    dropped: dict[str, int] = Field(
        default_factory=dict,
        description="optimizer outputs not scored, by reason (duplicate / empty / unparseable)",
    )
    config: FermiConfig = Field(default_factory=FermiConfig)

    @property
    def best(self) -> ScoredPrompt:
        """The single best prompt (ties: the earlier one)."""
        if not self.memory:
            msg = f"user {self.user_id!r}: the result holds no scored prompt"
            raise ValueError(msg)
        return self.memory[0]
