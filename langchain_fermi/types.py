"""Data model: users, opinions, scored prompts, the Fermi configuration and results.

Every object that crosses a module boundary is defined here, validated with pydantic,
so a bad input fails at the edge with a message that names the user and the opinion.
"""

from __future__ import annotations

import math
import numbers
import re
import string
from collections.abc import Iterable, Mapping, Sequence
from typing import Any, Literal

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    computed_field,
    field_validator,
    model_validator,
)

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
    "validate_choices",
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

_USER_ID_RE = re.compile(r"[A-Za-z0-9][A-Za-z0-9_.@-]{0,127}")
_CONTROL_RE = re.compile(r"[\x00-\x1f\x7f-\x9f]")


def validate_user_id(user_id: Any) -> str:
    """Return ``user_id`` as a string, or raise ``ValueError`` if it is empty or unsafe.

    User ids end up in Chroma ids, LangGraph namespaces, thread ids and file names, so they are
    restricted to letters, digits and ``_ . @ -`` (1-128 characters, not starting with a symbol).
    Nothing is stripped or normalised: ``"alice\\n"`` would silently be another user than
    ``"alice"``, so it is an error that says so.
    """
    if user_id is None or (isinstance(user_id, str) and not user_id.strip()):
        msg = "user id must be a non-empty string"
        raise ValueError(msg)
    if isinstance(user_id, bool) or not isinstance(user_id, (str, numbers.Integral)):
        msg = f"user id must be a string or an integer, got {type(user_id).__name__} {user_id!r}"
        raise ValueError(msg)
    uid = str(user_id)
    if uid != uid.strip():
        msg = (
            f"unsafe user id {uid!r}: leading or trailing whitespace "
            f"(it would be another user than {uid.strip()!r})"
        )
        raise ValueError(msg)
    if _CONTROL_RE.search(uid):
        msg = f"unsafe user id {uid!r}: control character {_CONTROL_RE.search(uid)[0]!r}"
        raise ValueError(msg)
    if not _USER_ID_RE.fullmatch(uid) or ".." in uid:
        msg = (
            f"unsafe user id {uid!r}: use 1-128 letters, digits, '_', '.', '@' or '-', "
            "starting with a letter or digit"
        )
        raise ValueError(msg)
    return uid


def validate_choices(choices: Any, where: str = "choices") -> list[str]:
    """Return ``choices`` as a list of option texts, or raise ``ValueError`` naming ``where``.

    Models see options as letters A-Z, so 2 to 26 distinct, non-empty texts are needed; a
    ``None`` option would otherwise be shown as the text "None".
    """
    if isinstance(choices, (str, bytes)) or not isinstance(choices, Sequence):
        msg = f"{where}: choices must be a list of option texts, got {type(choices).__name__}"
        raise ValueError(msg)
    out = list(choices)
    for i, c in enumerate(out, start=1):
        if not isinstance(c, str):
            msg = f"{where}: choice {i} is {c!r}, not text"
            raise ValueError(msg)
    if len(out) < 2:
        msg = f"{where}: needs at least 2 choices, got {len(out)}"
        raise ValueError(msg)
    if len(out) > len(OPTION_LETTERS):
        msg = f"{where}: at most {len(OPTION_LETTERS)} choices, got {len(out)} (lettered A-Z)"
        raise ValueError(msg)
    if any(not c.strip() for c in out):
        msg = f"{where}: empty choice in {out!r}"
        raise ValueError(msg)
    dupes = sorted({c for c in out if out.count(c) > 1})
    if dupes:
        msg = f"{where}: duplicate choices {dupes!r}"
        raise ValueError(msg)
    return out


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

    @field_validator("choices", mode="before")
    @classmethod
    def _valid_choices(cls, v: Any, info: Any) -> list[str]:
        # Before pydantic's own check, so a None option gets a message naming the opinion.
        return validate_choices(v, f"opinion {info.data.get('id', '?')!r}")

    @model_validator(mode="after")
    def _check(self) -> Opinion:
        where = f"opinion {self.id!r}"
        if not self.question.strip():
            msg = f"{where}: empty question"
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
    def _attrs_as_text(cls, v: Any, info: Any) -> dict[str, str]:
        # Missing values (None, NaN) are left out: str() would store the text "None" / "nan".
        if v is None:
            return {}
        where = f"user {info.data.get('user_id', '?')!r}"
        if not isinstance(v, Mapping):
            msg = f"{where}: attributes must be a {{name: value}} mapping, got {type(v).__name__}"
            raise ValueError(msg)
        out: dict[str, str] = {}
        for k, val in v.items():
            if not isinstance(k, (str, int)) or isinstance(k, bool) or not str(k).strip():
                msg = f"{where}: attribute name {k!r} must be non-empty text"
                raise ValueError(msg)
            if val is None or (isinstance(val, float) and math.isnan(val)):
                continue
            if not isinstance(val, (str, int, float)):
                msg = f"{where}: attribute {k!r} must be text, got {type(val).__name__} {val!r}"
                raise ValueError(msg)
            out[str(k)] = str(val)
        return out

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

    @field_validator("score", "correctness", mode="after")
    @classmethod
    def _finite(cls, v: float | list[float], info: Any) -> float | list[float]:
        # NaN / inf would make the user unreadable in the store and break every ranking.
        values = v if isinstance(v, list) else [v]
        bad = next((x for x in values if not math.isfinite(x)), None)
        if bad is not None:
            msg = f"{info.field_name} must be finite numbers, got {bad!r}"
            raise ValueError(msg)
        return v

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
    """The opinions any of ``prompts`` was scored on (the part of the scoring split they cover)."""
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
    stop_at_bracket: bool = Field(
        True,
        description="end each optimizer reply at its first ']' (the new prompt is complete there; "
        "saves the tokens a model writes after it); False: replies run to their token limit",
    )


_TOKEN_FIELDS = (
    "target_prompt_tokens",
    "target_completion_tokens",
    "optimizer_prompt_tokens",
    "optimizer_completion_tokens",
)


class Cost(BaseModel):
    """Calls, tokens and time spent, by who spent them (target / optimizer); adds up with ``+``.

    ``prompt_tokens``, ``completion_tokens`` and ``total_tokens`` are the sums over both models
    (dumped with the model, so readers of 0.1.0's JSON keep working). Costs saved by 0.1.0 hold
    only those sums: they load with the tokens counted to the model that made calls, or to the
    target when both did (0.1.0 did not record the split).

    Example:
        >>> cost = Cost(target_calls=2, target_prompt_tokens=80, optimizer_calls=1,
        ...             optimizer_prompt_tokens=900, optimizer_completion_tokens=60)
        >>> cost.prompt_tokens, cost.total_tokens
        (980, 1040)
    """

    target_calls: int = 0
    optimizer_calls: int = 0
    target_prompt_tokens: int = 0
    target_completion_tokens: int = 0
    optimizer_prompt_tokens: int = 0
    optimizer_completion_tokens: int = 0
    cache_hits: int = 0
    wall_seconds: float = 0.0

    @model_validator(mode="before")
    @classmethod
    def _split_legacy_totals(cls, data: Any) -> Any:
        """Accept 0.1.0's ``prompt_tokens`` / ``completion_tokens`` (and our own dumps)."""
        if not isinstance(data, Mapping):
            return data
        data = dict(data)
        data.pop("total_tokens", None)
        totals = {k: data.pop(k) for k in ("prompt_tokens", "completion_tokens") if k in data}
        if any(k in data for k in _TOKEN_FIELDS):
            for side, total in totals.items():  # a dump of this version: the sums must agree
                parts = (data.get(f"target_{side}", 0), data.get(f"optimizer_{side}", 0))
                numbers = all(type(n) is int for n in (total, *parts))  # else the fields say
                if numbers and total != sum(parts):
                    msg = f"{side} {total!r} is not the sum of the target's and optimizer's {parts}"
                    raise ValueError(msg)
            return data
        only_optimizer = not data.get("target_calls") and data.get("optimizer_calls")
        role = "optimizer" if only_optimizer else "target"
        for side, total in totals.items():
            data[f"{role}_{side}"] = total
        return data

    def __add__(self, other: Cost) -> Cost:
        return Cost(**{k: getattr(self, k) + getattr(other, k) for k in Cost.model_fields})

    @computed_field  # type: ignore[prop-decorator]
    @property
    def prompt_tokens(self) -> int:
        """Prompt tokens of both models."""
        return self.target_prompt_tokens + self.optimizer_prompt_tokens

    @computed_field  # type: ignore[prop-decorator]
    @property
    def completion_tokens(self) -> int:
        """Completion tokens of both models."""
        return self.target_completion_tokens + self.optimizer_completion_tokens

    @property
    def total_tokens(self) -> int:
        """Every token, both models, prompt and completion (what ``max_tokens`` budgets)."""
        return self.prompt_tokens + self.completion_tokens

    @property
    def target_tokens(self) -> int:
        """The target model's prompt and completion tokens."""
        return self.target_prompt_tokens + self.target_completion_tokens

    @property
    def optimizer_tokens(self) -> int:
        """The optimizer model's prompt and completion tokens."""
        return self.optimizer_prompt_tokens + self.optimizer_completion_tokens


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
