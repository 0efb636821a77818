"""The data model rejects bad input with messages that name the user and the opinion."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from langchain_fermi.types import (
    Cost,
    FermiConfig,
    FermiResult,
    MisalignedCase,
    Opinion,
    ScoredPrompt,
    UserProfile,
    validate_user_id,
)


def opinion(**kw: object) -> dict:
    base = {"id": "q1", "question": "Do you own a car?", "choices": ["Yes", "No"], "answer": "No"}
    return {**base, **kw}


def user(opinions: list[dict], user_id: str = "alice") -> UserProfile:
    return UserProfile(user_id=user_id, attributes={"Age": "30-49"}, opinions=opinions)


def test_valid_opinion_and_letters() -> None:
    o = Opinion(**opinion(choices=["Yes", "No", "Not sure"], answer="Not sure"))
    assert o.answer_index == 2
    assert o.answer_letter == "C"


@pytest.mark.parametrize(
    ("bad", "expected"),
    [
        ({"answer": "Maybe"}, "answer 'Maybe' is not one of the choices ['Yes', 'No']"),
        ({"choices": ["Yes"], "answer": "Yes"}, "needs at least 2 choices, got 1"),
        ({"choices": ["Yes", "No", "Yes"]}, "duplicate choices ['Yes']"),
        ({"question": "   "}, "empty question"),
        ({"choices": ["Yes", " "], "answer": "Yes"}, "empty choice"),
        ({"choices": [f"o{i}" for i in range(27)], "answer": "o0"}, "at most 26 choices, got 27"),
    ],
)
def test_bad_opinion_names_user_and_opinion(bad: dict, expected: str) -> None:
    with pytest.raises(ValueError) as err:
        user([opinion(id="q7", **bad)])
    message = str(err.value)
    assert "user 'alice', opinion 'q7'" in message
    assert expected in message


def test_bad_opinion_alone_names_the_opinion() -> None:
    with pytest.raises(ValidationError, match="opinion 'q1': answer 'Maybe' is not one"):
        Opinion(**opinion(answer="Maybe"))


def test_missing_field_is_named() -> None:
    data = opinion()
    del data["answer"]
    with pytest.raises(ValueError, match="user 'alice', opinion 'q1': answer: Field required"):
        user([data])


@pytest.mark.parametrize("oid", ["", "  ", None])
def test_empty_opinion_id(oid: object) -> None:
    with pytest.raises(ValueError, match=r"user 'alice', opinion .*opinion id must be non-empty"):
        user([opinion(id=oid)])


def test_duplicate_opinion_ids() -> None:
    with pytest.raises(ValueError, match="user 'alice': duplicate opinion id 'q1'"):
        user([opinion(), opinion(question="Another?")])


@pytest.mark.parametrize("uid", ["../x", "a b", "x/y", "-lead", "a..b", "é", "x" * 129])
def test_unsafe_user_ids(uid: str) -> None:
    with pytest.raises(ValueError, match="unsafe user id") as err:
        user([opinion()], user_id=uid)
    assert repr(uid) in str(err.value)


@pytest.mark.parametrize("uid", ["", "   ", None])
def test_empty_user_id(uid: object) -> None:
    with pytest.raises(ValueError, match="user id must be a non-empty string"):
        UserProfile(user_id=uid)


@pytest.mark.parametrize("uid", ["alice", "100260", "a.b@c-d_e", "X" * 128])
def test_safe_user_ids(uid: str) -> None:
    assert validate_user_id(uid) == uid
    assert UserProfile(user_id=uid).user_id == uid


def test_user_id_from_int_and_attributes_as_text() -> None:
    u = UserProfile(user_id=100260, attributes={"Children": 3, "Urban": True})
    assert u.user_id == "100260"
    assert u.attributes == {"Children": "3", "Urban": "True"}
    assert u.profile_text() == "Children: 3\nUrban: True"


def test_opinion_lookup() -> None:
    u = user([opinion(), opinion(id="q2", answer="Yes")])
    assert u.opinion("q2").answer == "Yes"
    with pytest.raises(KeyError, match="user 'alice' has no opinion 'q9'"):
        u.opinion("q9")


def test_opinion_is_frozen() -> None:
    o = Opinion(**opinion())
    with pytest.raises(ValidationError):
        o.answer = "Yes"  # type: ignore[misc]


def test_scored_prompt_lengths_must_match() -> None:
    ok = ScoredPrompt(
        text="p", score=0.5, opinion_ids=["a", "b"], correctness=[1.0, 0.0], answers=["Yes", None]
    )
    assert ok.correctness_by_id() == {"a": 1.0, "b": 0.0}
    with pytest.raises(ValueError, match="same length, got 2, 1, 2"):
        ScoredPrompt(
            text="p", score=0.5, opinion_ids=["a", "b"], correctness=[1.0], answers=["Yes", None]
        )


def test_config_aliases_and_bounds() -> None:
    cfg = FermiConfig(K=2, L=3, T=1)
    assert (cfg.num_candidates, cfg.memory_size, cfg.iterations) == (2, 3, 1)
    assert FermiConfig(num_candidates=6).num_candidates == 6
    with pytest.raises(ValidationError):
        FermiConfig(K=0)
    with pytest.raises(ValidationError):
        FermiConfig(unknown_option=1)
    with pytest.raises(ValidationError):
        FermiConfig(tau=0.0)


def test_cost_adds_up() -> None:
    total = Cost(target_calls=2, prompt_tokens=10) + Cost(target_calls=1, completion_tokens=5)
    assert (total.target_calls, total.total_tokens) == (3, 15)


def test_cost_records_who_spent_the_tokens() -> None:
    target = Cost(target_calls=3, target_prompt_tokens=30, target_completion_tokens=3)
    optimizer = Cost(optimizer_calls=1, optimizer_prompt_tokens=500, optimizer_completion_tokens=40)
    total = target + optimizer
    assert (total.target_tokens, total.optimizer_tokens) == (33, 540)
    assert (total.prompt_tokens, total.completion_tokens, total.total_tokens) == (530, 43, 573)
    dumped = total.model_dump(mode="json")
    assert dumped["prompt_tokens"] == 530 and dumped["completion_tokens"] == 43  # old keys stay
    assert dumped["optimizer_prompt_tokens"] == 500
    assert Cost.model_validate(dumped) == total  # a dump of this version round-trips
    assert Cost.model_validate_json(total.model_dump_json()) == total
    with pytest.raises(ValidationError, match="prompt_tokens 999 is not the sum"):
        Cost.model_validate({**dumped, "prompt_tokens": 999})
    with pytest.raises(ValidationError, match="target_prompt_tokens"):
        Cost.model_validate({**dumped, "target_prompt_tokens": "many"})


def test_costs_saved_by_0_1_0_still_load() -> None:
    """0.1.0 saved only the sums: they load with their totals, counted to whoever made calls."""
    mixed = {
        "target_calls": 48,
        "optimizer_calls": 8,
        "prompt_tokens": 18290,
        "completion_tokens": 1774,
        "cache_hits": 0,
        "wall_seconds": 84.5,
    }
    old = Cost.model_validate(mixed)
    assert (old.prompt_tokens, old.completion_tokens, old.total_tokens) == (18290, 1774, 20064)
    assert (old.target_calls, old.optimizer_calls, old.wall_seconds) == (48, 8, 84.5)
    assert old.target_tokens == 20064  # 0.1.0 did not record the split: counted to the target
    only_optimizer = Cost.model_validate({"optimizer_calls": 4, "prompt_tokens": 100})
    assert (only_optimizer.optimizer_prompt_tokens, only_optimizer.target_tokens) == (100, 0)
    saved = {
        "user_id": "alice",
        "prompts": [],
        "memory": [],
        "cost": mixed,
        "cost_per_iteration": [{**mixed, "optimizer_calls": 0}],
    }
    result = FermiResult.model_validate_json(FermiResult.model_validate(saved).model_dump_json())
    assert result.cost.total_tokens == 20064
    assert result.cost_per_iteration[0].target_prompt_tokens == 18290


def test_result_best_needs_memory() -> None:
    case = MisalignedCase(
        index=0,
        opinion_id="a",
        question="q?",
        choices=["x", "y"],
        user_answer="x",
        model_answer=None,
    )
    p = ScoredPrompt(
        text="p", score=0.0, opinion_ids=["a"], correctness=[0.0], answers=[None], misaligned=[case]
    )
    assert FermiResult(user_id="u1", prompts=[p], memory=[p]).best.text == "p"
    with pytest.raises(ValueError, match="user 'u1': the result holds no scored prompt"):
        _ = FermiResult(user_id="u1", prompts=[], memory=[]).best


# --- validation at the boundary (issue 11, item 4) ---------------------------------------------


@pytest.mark.parametrize(
    ("uid", "fragment"),
    [
        ("alice\n", "leading or trailing whitespace (it would be another user than 'alice')"),
        (" alice", "leading or trailing whitespace"),
        ("alice\t", "leading or trailing whitespace"),
        ("al\x00ice", "control character '\\x00'"),
        ("al\x1bice", "control character '\\x1b'"),
        ("al\u0085ice", "control character"),
    ],
)
def test_user_ids_with_whitespace_or_control_characters(uid: str, fragment: str) -> None:
    with pytest.raises(ValueError, match="unsafe user id") as err:
        validate_user_id(uid)
    assert fragment in str(err.value)


@pytest.mark.parametrize("uid", [True, 1.5, ["alice"], b"alice"])
def test_user_id_must_be_text_or_integer(uid: object) -> None:
    with pytest.raises(ValueError, match="user id must be a string or an integer, got"):
        validate_user_id(uid)


def test_null_attributes_are_dropped_never_the_text_none() -> None:
    u = UserProfile(user_id="alice", attributes={"Age": None, "Income": float("nan"), "X": "1"})
    assert u.attributes == {"X": "1"}
    assert "None" not in u.profile_text() and "nan" not in u.profile_text()


@pytest.mark.parametrize(
    ("attributes", "fragment"),
    [
        ({"Age": ["30", "49"]}, "user 'alice': attribute 'Age' must be text, got list"),
        ({"Age": {"min": 30}}, "attribute 'Age' must be text, got dict"),
        ({"": "x"}, "attribute name '' must be non-empty text"),
        ({None: "x"}, "attribute name None must be non-empty text"),
        (["Age", "30"], "attributes must be a {name: value} mapping, got list"),
    ],
)
def test_bad_attributes(attributes: object, fragment: str) -> None:
    with pytest.raises(ValueError) as err:
        UserProfile(user_id="alice", attributes=attributes)
    assert fragment in str(err.value)


@pytest.mark.parametrize(
    ("choices", "fragment"),
    [
        (["Yes", None], "opinion 'q7': choice 2 is None, not text"),
        ([1, 2], "opinion 'q7': choice 1 is 1, not text"),
        ("Yes|No", "choices must be a list of option texts, got str"),
        ([f"o{i}" for i in range(30)], "at most 26 choices, got 30"),
    ],
)
def test_bad_choices_name_the_opinion(choices: object, fragment: str) -> None:
    with pytest.raises(ValueError) as err:
        user([opinion(id="q7", choices=choices, answer="Yes")])
    assert "user 'alice', opinion 'q7'" in str(err.value)
    assert fragment in str(err.value)


def test_validate_choices_alone() -> None:
    from langchain_fermi.types import validate_choices

    assert validate_choices(("Yes", "No")) == ["Yes", "No"]
    with pytest.raises(ValueError, match="question 3: at most 26 choices, got 27"):
        validate_choices([str(i) for i in range(27)], "question 3")


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("score", float("nan")),
        ("score", float("inf")),
        ("correctness", [1.0, float("nan")]),
        ("correctness", [float("-inf"), 0.0]),
    ],
)
def test_scored_prompt_numbers_must_be_finite(field: str, value: object) -> None:
    data: dict = {
        "text": "p",
        "score": 0.5,
        "opinion_ids": ["a", "b"],
        "correctness": [1.0, 0.0],
        "answers": ["Yes", None],
    }
    data[field] = value
    with pytest.raises(ValidationError, match=f"{field} must be finite numbers, got"):
        ScoredPrompt(**data)
