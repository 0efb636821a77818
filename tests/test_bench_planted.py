"""Planted users, reference rows, the signal check and the guard rows of the benchmark, on
synthetic respondents with scripted models (the real-data runs are in tests/test_bench_real.py)."""

from __future__ import annotations

import json
import threading
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from langchain_core.embeddings import DeterministicFakeEmbedding
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import Field

import langchain_fermi.graph as fermi_graph
from langchain_fermi.evaluation import userrun
from langchain_fermi.evaluation.config import DEFAULT_METHODS, BenchConfig
from langchain_fermi.evaluation.planted import (
    TRAITS,
    hidden_prompt,
    hidden_prompt_leaked,
    plant_users,
)
from langchain_fermi.evaluation.redact import PROFILE_REDACTED
from langchain_fermi.evaluation.references import Population, reference_result
from langchain_fermi.evaluation.runner import run_benchmark
from langchain_fermi.evaluation.signal import persona_sensitivity
from langchain_fermi.questions import profile_prompt
from langchain_fermi.scoring import AnswerScorer
from langchain_fermi.types import Opinion, UserProfile

GLOOMY = ("pessimistic", "gloomy")  # the pessimist trait and its paraphrase


class PersonaTarget(BaseChatModel):
    """Follows a persona by meaning: a pessimist (or a paraphrase) picks the last option, a
    conservative Republican the second, anyone else the first. ``noisy``: any extra paragraph
    picks the second option, whatever it says (a model whose "flips" are letter noise)."""

    noisy: bool = False
    calls: list[str] = Field(default_factory=list)

    @property
    def _llm_type(self) -> str:
        return "persona-target"

    def _generate(self, messages: list[BaseMessage], stop: Any = None, **kw: Any) -> ChatResult:
        system, human = str(messages[0].content), str(messages[-1].content)
        with _LOCK:
            self.calls.append(system)
        n = sum(1 for line in human.splitlines() if line[:2] in {f"{c}." for c in "ABCDEF"})
        if self.noisy:  # longer than a profile prompt: some paragraph was added
            letter = "B" if len(system) > 400 else "A"
        elif any(w in system for w in GLOOMY):
            letter = "ABCDEF"[n - 1]
        elif "Very conservative" in system:
            letter = "B"
        else:
            letter = "A"
        return ChatResult(generations=[ChatGeneration(message=AIMessage(letter))])


class GloomOptimizer(BaseChatModel):
    """Proposes a persona that is *not* the hidden prompt but moves the target the same way."""

    counter: list[int] = Field(default_factory=lambda: [0])
    seen: list[str] = Field(default_factory=list)

    @property
    def _llm_type(self) -> str:
        return "gloom-optimizer"

    def _generate(self, messages: list[BaseMessage], stop: Any = None, **kw: Any) -> ChatResult:
        with _LOCK:
            self.counter[0] += 1
            self.seen.append(str(messages[-1].content))
            n = self.counter[0]
        text = f"[Answer as a gloomy person who expects the worst would answer, take {n}.]"
        return ChatResult(generations=[ChatGeneration(message=AIMessage(text))])


_LOCK = threading.Lock()

QUESTIONS = [
    (f"q{j}", f"Survey item {j}: how do you see topic {j}?", ["Good", "Mixed", "Bad"][: 2 + j % 2])
    for j in range(24)
]


def _respondent(i: int) -> UserProfile:
    party, ideology = ("Democrat", "Liberal") if i % 2 else ("Republican", "Conservative")
    ops = [
        Opinion(id=q, question=text, choices=choices, answer=choices[(i + j) % 2])
        for j, (q, text, choices) in enumerate(QUESTIONS)
    ]
    return UserProfile(
        user_id=f"r{i:03d}",
        attributes={"Age": "30-49", "Political party": party, "Political ideology": ideology},
        opinions=ops,
    )


RESPONDENTS = [_respondent(i) for i in range(40)]


def _config(tmp_path: Path, **kw: Any) -> BenchConfig:
    base: dict[str, Any] = dict(
        run_name="planted",
        results_dir=tmp_path,
        dataset="planted",
        max_users=2,
        n_optimize=10,
        n_test=6,
        K=2,
        L=3,
        T=2,
        few_shot_k=2,
        num_neighbors=2,
        bootstrap_samples=200,
        naive_probe=0,
        guard=False,  # 6 scoring opinions: too few for a validation split; tested below
    )
    base.update(kw)
    return BenchConfig(**base)


def _run(config: BenchConfig, target: BaseChatModel, users: list[UserProfile], **kw: Any) -> Any:
    return run_benchmark(
        config,
        users=users,
        target=target,
        optimizer=kw.pop("optimizer", None) or GloomOptimizer(),
        embeddings=DeterministicFakeEmbedding(size=16),
        progress=False,
        console=None,
        **kw,
    )


# ------------------------------------------------------------------------------ planting


def test_hidden_prompt_is_the_profile_prompt_plus_a_person_never_a_format_rule() -> None:
    user = RESPONDENTS[0]
    for trait in TRAITS:
        text = hidden_prompt(user, trait)
        assert text.startswith(profile_prompt(user).rpartition("\n\n")[0])
        assert trait.text in text and text.endswith(profile_prompt(user).rpartition("\n\n")[2])
        assert hidden_prompt(user, trait, paraphrase=True) != text
        for rule in ("always pick", "first option", "letter", "answer A"):
            assert rule not in trait.text.lower() and rule not in trait.paraphrase.lower()


def test_planting_keeps_persona_signal_and_drops_noise() -> None:
    scorer = AnswerScorer(PersonaTarget())
    users, hidden, planted = plant_users(
        RESPONDENTS[:8], scorer, max_users=3, n_questions=16, attempts=6
    )
    assert len(users) == 3 and planted.summary()["kept"] == 3
    for u in users:
        assert "pessimist" in u.user_id and u.user_id in hidden
        source = next(r for r in RESPONDENTS if u.user_id.startswith(r.user_id))
        assert u.attributes == source.attributes  # the real profile, planted answers
        assert all(o.answer == o.choices[-1] for o in u.opinions)
    kept = planted.kept
    assert all(c.flip_rate >= 0.3 and c.margin >= 0.15 for c in kept)
    dropped = [c for c in planted.candidates if not c.kept]
    assert dropped and all(c.reason == "flips" for c in dropped)  # other traits: no effect
    # a model whose "flips" are noise: any paragraph moves it, a paraphrase no more than another
    _, _, noisy = plant_users(
        RESPONDENTS[:4], AnswerScorer(PersonaTarget(noisy=True)), max_users=3, n_questions=16
    )
    assert noisy.summary()["kept"] == 0
    assert {c.reason for c in noisy.candidates} == {"paraphrase"}
    assert all(c.flip_rate >= 0.3 for c in noisy.candidates)


def test_a_resumed_planting_reuses_the_recorded_candidates_without_model_calls() -> None:
    first = AnswerScorer(PersonaTarget())
    users, hidden, planted = plant_users(
        RESPONDENTS[:8], first, max_users=3, n_questions=16, attempts=6
    )
    assert all(c.answers is not None for c in planted.kept)
    known = type(planted).model_validate_json(planted.model_dump_json())  # planted.json
    target = PersonaTarget()
    again_users, again_hidden, again = plant_users(
        RESPONDENTS[:8], AnswerScorer(target), max_users=3, n_questions=16, attempts=6,
        known=known,
    )  # fmt: skip
    assert target.calls == []  # no model call: every candidate came from the record
    assert again_users == users and again_hidden == hidden and again == planted
    # more users than recorded: the recorded ones are reused, only the new ones are planted
    more, _, grown = plant_users(
        RESPONDENTS[:12], AnswerScorer(target), max_users=4, n_questions=16, attempts=6,
        known=known,
    )  # fmt: skip
    assert more[:3] == users and len(more) == 4 and target.calls
    assert grown.candidates[: len(planted.candidates)] == planted.candidates
    # other questions or other thresholds: the record does not apply, the users are planted anew
    other = PersonaTarget()
    plant_users(RESPONDENTS[:8], AnswerScorer(other), max_users=3, n_questions=12, known=known)
    assert other.calls
    strict = PersonaTarget()
    plant_users(RESPONDENTS[:8], AnswerScorer(strict), max_users=3, n_questions=16,
                attempts=6, flip_min=0.5, known=known)  # fmt: skip
    assert strict.calls


def test_hidden_prompt_leak_detection() -> None:
    user = RESPONDENTS[0]
    text = hidden_prompt(user, TRAITS[0])
    assert not hidden_prompt_leaked(text, user, ["Answer as a gloomy person would."])
    assert hidden_prompt_leaked(text, user, [f"Be yourself. {TRAITS[0].text}"])
    leaky = user.model_copy(update={"attributes": {**user.attributes, "Note": TRAITS[0].text}})
    assert hidden_prompt_leaked(text, leaky, [])


def test_planted_benchmark_end_to_end(tmp_path: Path) -> None:
    target, optimizer = PersonaTarget(), GloomOptimizer()
    report = _run(_config(tmp_path), target, RESPONDENTS[:8], optimizer=optimizer)
    assert [m.method for m in report.methods] == list(DEFAULT_METHODS["planted"])
    acc = {m.method: m.accuracy for m in report.methods}
    assert acc["hidden_prompt"] == 1.0  # the ceiling, by construction
    assert acc["profile"] < 0.5  # the profile prompt answers the first option
    assert acc["fermi_rop"] == 1.0 and acc["fermi_best"] == 1.0
    assert report.gap_recovery["fermi_rop"]["recovered"] == pytest.approx(1.0)
    assert report.planted is not None and report.planted["kept"] == 2
    assert {u["user_id"] for u in report.planted["users"]} == {r.user_id for r in report.users}
    assert (tmp_path / "planted" / "planted.json").is_file()
    # resumed without its score cache (a fresh checkout): planted.json replaces the planting
    cache = tmp_path / "planted" / "cache" / "scores.sqlite"
    cache.unlink()
    calls = len(target.calls)
    resumed = _run(_config(tmp_path), target, RESPONDENTS[:8], optimizer=optimizer)
    assert len(target.calls) == calls and resumed.users == report.users
    # a smaller --max-users later keeps the larger run's record (nothing to plant again after)
    recorded = (tmp_path / "planted" / "planted.json").read_text()
    smaller = _run(_config(tmp_path, max_users=1), target, RESPONDENTS[:8], optimizer=optimizer)
    assert len(smaller.users) == 1 and smaller.planted is not None
    assert smaller.planted["kept"] == 1  # the report describes the run's own users
    assert (
        json.loads((tmp_path / "planted" / "planted.json").read_text())["summary"]
        == (json.loads(recorded)["summary"])
    )
    cache.unlink(missing_ok=True)
    again = _run(_config(tmp_path), target, RESPONDENTS[:8], optimizer=optimizer)
    assert len(target.calls) == calls and again.users == report.users
    assert report.leak_free
    assert not any(r.leak_check.hidden_prompt_leaked for r in report.users)
    # the hidden prompt never reached the optimizer, nor any trait paragraph
    for seen in optimizer.seen:
        assert not any(t.text in seen or t.paraphrase in seen for t in TRAITS)


def test_a_leaked_hidden_prompt_fails_the_run(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = fermi_graph.optimize_user

    def leaky(user: UserProfile, *args: Any, **kw: Any) -> Any:
        note = {"Note": TRAITS[0].text}  # as if the hidden paragraph were part of the profile
        return real(
            user.model_copy(update={"attributes": {**user.attributes, **note}}), *args, **kw
        )

    monkeypatch.setattr(fermi_graph, "optimize_user", leaky)
    with pytest.raises(userrun.TestLeakError, match="hidden prompt"):
        _run(_config(tmp_path, max_users=1), PersonaTarget(), RESPONDENTS[:4])


def test_methods_must_fit_the_dataset() -> None:
    with pytest.raises(ValueError, match="do not apply to the opinionqa dataset"):
        BenchConfig(methods="profile,hidden_prompt")
    with pytest.raises(ValueError, match="do not apply to the planted dataset"):
        BenchConfig(dataset="planted", methods="profile,ref_knn")
    assert "ref_group_majority" not in BenchConfig(dataset="globalopinionqa").methods


# ------------------------------------------------------------------------------ references


def _population_user(uid: str, answers: list[int], party: str = "Democrat") -> UserProfile:
    ops = [
        Opinion(
            id=f"q{j}",
            question=f"Q{j}?",
            choices=["Yes", "No", "Maybe"],
            answer=["Yes", "No", "Maybe"][a],
        )
        for j, a in enumerate(answers)
        if a >= 0
    ]
    attrs = {"Political party": party, "Political ideology": "Moderate"}
    return UserProfile(user_id=uid, attributes=attrs, opinions=ops)


def test_reference_rows_read_only_the_other_respondents(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("langchain_fermi.evaluation.references.KNN_K", 3)
    me = _population_user("me", [0, 0, 0, 2, 2])
    twins = [_population_user(f"t{i}", [0, 0, 0, 2, 2]) for i in range(3)]
    crowd = [_population_user(f"c{i}", [1, 1, 1, 1, 1], party="Republican") for i in range(12)]
    population = Population.from_users([me, *twins, *crowd])
    optimize, test = me.opinions[:3], me.opinions[3:]
    majority = reference_result("ref_majority", me, optimize, test, population)
    assert majority.predictions == [1, 1] and majority.accuracy == 0.0  # the crowd says No
    knn = reference_result("ref_knn", me, optimize, test, population)
    assert knn.predictions == [2, 2] and knn.accuracy == 1.0  # the twins agreed on q0-q2
    # the group (Democrat, Moderate) has 3 others: fewer than MIN_GROUP, so the overall majority
    group = reference_result("ref_group_majority", me, optimize, test, population)
    assert group.predictions == majority.predictions
    # the user's own answers are never counted: alone, a respondent has no reference
    alone = Population.from_users([me])
    assert reference_result("ref_majority", me, optimize, test, alone).predictions == [None, None]


def test_group_majority_uses_the_group_when_large_enough() -> None:
    me = _population_user("me", [2, 2])
    group = [_population_user(f"g{i}", [2, 2]) for i in range(10)]
    crowd = [_population_user(f"c{i}", [1, 1], party="Republican") for i in range(30)]
    population = Population.from_users([me, *group, *crowd])
    result = reference_result("ref_group_majority", me, [], me.opinions, population)
    assert result.predictions == [2, 2]
    assert reference_result("ref_majority", me, [], me.opinions, population).predictions == [1, 1]


# ------------------------------------------------------------------------------ signal check


def test_signal_check_reads_persona_sensitivity_against_the_real_gap() -> None:
    users = RESPONDENTS  # Democrats answer choices[1] on even items, Republicans choices[0]
    population = Population.from_users(users)
    follows = persona_sensitivity(AnswerScorer(PersonaTarget()), users, population, "opinionqa")
    assert follows.questions == 24 and follows.flips == 24 and follows.real_flips == 24
    assert follows.distance == pytest.approx(1.0)
    deaf = persona_sensitivity(
        AnswerScorer(PersonaTarget(noisy=True)), users, population, "opinionqa"
    )
    assert deaf.flips == 0 and deaf.distance == 0.0 and not deaf.personalizable
    assert "barely reacts" in deaf.verdict and "No method can show personalization" in deaf.verdict
    assert np.isfinite(follows.real_distance)


def test_survey_report_has_the_signal_check_and_reference_rows(tmp_path: Path) -> None:
    config = _config(tmp_path, dataset="opinionqa", run_name="survey", methods=None, max_users=2)
    target = PersonaTarget()
    report = _run(config, target, RESPONDENTS)
    assert report.signal is not None and report.signal["verdict"]
    names = [m.method for m in report.methods]
    assert names[-3:] == ["ref_majority", "ref_group_majority", "ref_knn"]
    # a rerun that adds nothing learned reuses the finished users: no optimizer call
    calls = len(target.calls)
    optimizer = GloomOptimizer()
    again = _run(config, target, RESPONDENTS, optimizer=optimizer)
    assert optimizer.counter == [0]
    assert [m.accuracy for m in again.methods] == [m.accuracy for m in report.methods]
    assert len(target.calls) >= calls


def test_reference_rows_are_added_to_finished_users_without_optimizing(tmp_path: Path) -> None:
    first = _config(tmp_path, dataset="opinionqa", run_name="topup", methods="profile,fermi_rop")
    _run(first, PersonaTarget(), RESPONDENTS)
    optimizer = GloomOptimizer()
    more = _config(
        tmp_path, dataset="opinionqa", run_name="topup", methods="profile,fermi_rop,ref_knn"
    )
    report = _run(more, PersonaTarget(), RESPONDENTS, optimizer=optimizer)
    assert optimizer.counter == [0]  # topped up, not re-optimized
    assert all("ref_knn" in r.methods for r in report.users)


def test_a_learned_row_is_added_to_finished_users_with_only_its_optimization(
    tmp_path: Path,
) -> None:
    first = _config(tmp_path, run_name="topup-learned", guard=True, n_optimize=16)
    first = first.model_copy(update={"methods": ("profile", "fermi_rop")})
    before = _run(first, PersonaTarget(), RESPONDENTS[:6])
    optimizer = GloomOptimizer()
    more = first.model_copy(update={"methods": ("profile", "fermi_rop", "fermi_rop_paper")})
    after = _run(more, PersonaTarget(), RESPONDENTS[:6], optimizer=optimizer)
    # only the guard-off optimization ran: T iterations of K samples per user
    assert optimizer.counter == [more.iterations * more.num_candidates * len(after.users)]
    old = {r.user_id: r for r in before.users}
    for r in after.users:
        assert set(r.optimization) == {"fermi", "fermi_paper"}
        assert r.optimization["fermi"] == old[r.user_id].optimization["fermi"]
        assert r.methods["fermi_rop"] == old[r.user_id].methods["fermi_rop"]
        assert "fermi_rop_paper" in r.methods and not r.optimization["fermi_paper"].guard
        assert r.test_ids == old[r.user_id].test_ids


# ------------------------------------------------------------------------------ the guard rows


def test_guard_on_and_off_rows(tmp_path: Path) -> None:
    class ShortOptimizer(GloomOptimizer):
        def _generate(self, messages: list[BaseMessage], stop: Any = None, **kw: Any) -> ChatResult:
            with _LOCK:
                self.counter[0] += 1
                n = self.counter[0]
            text = "[C]" if n % 2 else f"[Answer as a gloomy person would, take {n}.]"
            return ChatResult(generations=[ChatGeneration(message=AIMessage(text))])

    sources = RESPONDENTS[:8]
    config = _config(
        tmp_path,
        run_name="guard",
        guard=True,
        n_optimize=16,
        n_test=6,
        methods="profile,fermi_best,fermi_rop,fermi_rop_paper,hidden_prompt",
    )
    report = _run(config, PersonaTarget(), sources, optimizer=ShortOptimizer())
    on, off = report.optimization["fermi"], report.optimization["fermi_paper"]
    assert on["guard"] and not off["guard"]
    assert on["degenerate_served"] == 0
    assert on["dropped"].get("option_label", 0) > 0
    assert "option_label" not in off["dropped"]
    assert 0 <= on["fallback_users"] <= on["users"]
    for r in report.users:
        assert r.optimization["fermi"].served  # what the user is served is recorded
        for record in r.optimization.values():  # no respondent's attributes on disk
            texts = [s["text"] for s in record.served] + [record.best_prompt]
            assert all("Political party:" not in t for t in texts)
            assert any(PROFILE_REDACTED in t for t in texts)


def test_traits_named_first_are_tried_first_then_the_seeded_order() -> None:
    from langchain_fermi.cli.quickstart import DEFAULT_PERSONA, PERSONAS
    from langchain_fermi.evaluation.planted import _trait_order

    assert sorted(PERSONAS) == sorted(t.name for t in TRAITS) and DEFAULT_PERSONA in PERSONAS
    seeded = _trait_order("u1", 0)
    chosen = _trait_order("u1", 0, ["activist", "optimist"])
    assert [t.name for t in chosen[:2]] == ["activist", "optimist"]
    assert [t for t in chosen[2:]] == [t for t in seeded if t.name not in {"activist", "optimist"}]
    with pytest.raises(ValueError, match="unknown trait"):
        _trait_order("u1", 0, ["grumpy"])
