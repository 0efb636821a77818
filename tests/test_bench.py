"""The benchmark end to end on synthetic users with scripted, deterministic models.

The target answers "B" when its system prompt says "B-leaning" and "A" otherwise; the optimizer
proposes alternately B-leaning and neutral prompts. Users answer mostly B, so learned prompts
matter, and every call is recorded so the tests can check what the optimization was shown.
"""

from __future__ import annotations

import itertools
import json
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.embeddings import DeterministicFakeEmbedding
from langchain_core.language_models import BaseChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult
from pydantic import Field

import langchain_fermi.graph as fermi_graph
from langchain_fermi.evaluation import userrun
from langchain_fermi.evaluation.config import DEFAULT_METHODS, REFERENCE_METHODS, BenchConfig
from langchain_fermi.evaluation.runner import run_benchmark
from langchain_fermi.evaluation.schema import BenchReport, UserResult
from langchain_fermi.types import Opinion, UserProfile


class ScriptedTarget(BaseChatModel):
    """Answers from the system prompt; logs (phase, question) for every call."""

    phase: str = "idle"
    log: list[tuple[str, str]] = Field(default_factory=list)

    @property
    def _llm_type(self) -> str:
        return "scripted-target"

    def _generate(self, messages: list[BaseMessage], stop: Any = None, **kw: Any) -> ChatResult:
        system, human = str(messages[0].content), str(messages[-1].content)
        question = human.splitlines()[0].removeprefix("Question: ")
        self.log.append((self.phase, question))
        letter = "B" if "B-leaning" in system else "A"
        return ChatResult(generations=[ChatGeneration(message=AIMessage(letter))])


class ScriptedOptimizer(BaseChatModel):
    """Returns bracketed prompts, alternately B-leaning and neutral, numbered so none repeats."""

    counter: list[int] = Field(default_factory=lambda: [0])
    prompts_seen: list[str] = Field(default_factory=list)

    @property
    def _llm_type(self) -> str:
        return "scripted-optimizer"

    def _generate(self, messages: list[BaseMessage], stop: Any = None, **kw: Any) -> ChatResult:
        with _LOCK:
            self.counter[0] += 1
            n = self.counter[0]
            self.prompts_seen.append(str(messages[-1].content))
        text = (
            f"[Answer as a B-leaning person would. Variant {n}.]" if n % 2 else f"[Be neutral {n}.]"
        )
        return ChatResult(generations=[ChatGeneration(message=AIMessage(text))])


_LOCK = threading.Lock()


def _user(uid: str, n: int = 14, b_share: float = 0.8) -> UserProfile:
    ops = []
    for j in range(n):
        choices = ["Agree", "Disagree", "Unsure"] if j % 2 else ["Yes", "No"]
        answer = choices[1] if (j * 7 % 10) < b_share * 10 else choices[0]
        ops.append(
            Opinion(
                id=f"{uid}-q{j}",
                question=f"Synthetic item {j} for {uid}: topic {j % 4}?",
                choices=choices,
                answer=answer,
            )
        )
    return UserProfile(
        user_id=uid, attributes={"Age": "30-49", "Party": "Independent"}, opinions=ops
    )


USERS = [_user("alice"), _user("bob", b_share=0.5), _user("carol", b_share=0.2)]


def _config(tmp_path: Path, **kw: Any) -> BenchConfig:
    base: dict[str, Any] = dict(
        run_name="synthetic",
        results_dir=tmp_path,
        max_users=2,
        n_optimize=8,
        n_test=5,
        K=2,
        L=2,
        T=2,
        few_shot_k=2,
        num_neighbors=2,
        bootstrap_samples=200,
    )
    base.update(kw)
    return BenchConfig(**base)


@pytest.fixture
def models() -> Iterator[tuple[ScriptedTarget, ScriptedOptimizer]]:
    target = ScriptedTarget(log=[])
    optimizer = ScriptedOptimizer(counter=[0], prompts_seen=[])
    yield target, optimizer


def _run(
    config: BenchConfig, models: tuple[ScriptedTarget, ScriptedOptimizer], **kw: Any
) -> BenchReport:
    target, optimizer = models
    return run_benchmark(
        config,
        users=kw.pop("users", USERS),
        target=target,
        optimizer=optimizer,
        embeddings=DeterministicFakeEmbedding(size=16),
        progress=False,
        console=None,
        **kw,
    )


@pytest.fixture
def phases(
    monkeypatch: pytest.MonkeyPatch, models: tuple[ScriptedTarget, ScriptedOptimizer]
) -> None:
    """Mark the target's log with the phase: 'optimize' inside optimize_user, else 'test'."""
    real = fermi_graph.optimize_user
    target = models[0]

    def marked(*args: Any, **kw: Any) -> Any:
        target.phase = "optimize"
        try:
            return real(*args, **kw)
        finally:
            target.phase = "test"

    monkeypatch.setattr(fermi_graph, "optimize_user", marked)


def test_small_benchmark_report_schema(tmp_path: Path, models: Any, phases: None) -> None:
    report = _run(_config(tmp_path), models)
    run_dir = tmp_path / "synthetic"
    on_disk = BenchReport.model_validate_json((run_dir / "report.json").read_text())
    assert on_disk.model_dump() == report.model_dump()
    methods = DEFAULT_METHODS["opinionqa"]  # the baselines, the learned rows, the references
    assert report.n_users == 2 and [m.method for m in report.methods] == list(methods)
    for m in report.methods:
        assert 0.0 <= m.ci_low <= m.accuracy <= m.ci_high <= 1.0
        assert m.n_users == 2 and m.n_questions == 10
        assert (m.diff_vs_fermi_rop is None) == (m.method == "fermi_rop")
    by_method = {m.method: m for m in report.methods}
    # The scripted target answers A without a B-leaning prompt: zero-shot accuracy is the share
    # of A answers among the test questions, computed here from the users' data.
    expected = []
    for r in report.users:
        user = next(u for u in USERS if u.user_id == r.user_id)
        expected.append(
            sum(user.opinion(i).answer_index == 0 for i in r.test_ids) / len(r.test_ids)
        )
    assert by_method["zero_shot"].accuracy == pytest.approx(sum(expected) / 2)
    # random: the expected accuracy (1/2 or 1/3 per question), not the draw
    rand = [r.methods["random"].expected_accuracy for r in report.users]
    assert by_method["random"].accuracy == pytest.approx(sum(rand) / 2)
    assert report.random_draw_accuracy is not None
    # curves: one per variant, T + 1 points (iteration 0 scores the profile prompt)
    assert set(report.curves) == {"fermi", "opro"}
    assert all(len(c) >= 1 for c in report.curves.values())
    assert all(b >= a for c in report.curves.values() for a, b in itertools.pairwise(c))
    for variant, summary in report.optimization.items():
        recs = [r.optimization[variant] for r in report.users]
        assert summary["mean_prompts_scored"] == sum(r.prompts_scored for r in recs) / 2
        assert summary["users_improved"] == sum(r.curve[-1] > r.curve[0] for r in recs)
    # costs: every method but random and the references (no model), plus the run total;
    # optimizer calls only for learned ones
    costs = {c.method: c for c in report.costs}
    assert set(costs) == set(methods) - {"random", *REFERENCE_METHODS} | {"total"}
    assert costs["zero_shot"].actual.optimizer_calls == 0
    assert costs["fermi_rop"].actual.optimizer_calls > 0
    assert costs["fermi_rop"].shares_optimization_with == ["fermi_best"]
    for c in costs.values():
        assert c.naive.target_calls >= c.actual.target_calls
    total = costs["total"]
    assert total.call_ratio is not None and total.call_ratio >= 1.0
    # the latency probe timed the same pairs both ways and scales the naive call count
    assert report.probe_pairs == 20 and report.naive_call_seconds is not None
    assert total.naive_target_seconds == pytest.approx(
        total.naive.target_calls * report.naive_call_seconds
    )
    # per-user files, plots, leak check
    assert sorted(p.stem for p in (run_dir / "users").glob("*.json")) == sorted(
        r.user_id for r in report.users
    )
    assert {"accuracy.png", "curve.png"} <= set(report.plots)
    assert (run_dir / "accuracy.png").read_bytes()[:4] == b"\x89PNG"
    assert report.leak_free and all(r.leak_check.cache_verified for r in report.users)


def test_no_test_question_reaches_the_optimization(
    tmp_path: Path, models: Any, phases: None
) -> None:
    target, optimizer = models
    report = _run(_config(tmp_path), models)
    asked_while_optimizing = {q for phase, q in target.log if phase == "optimize"}
    assert asked_while_optimizing  # the optimization did score questions
    for r in report.users:
        user = next(u for u in USERS if u.user_id == r.user_id)
        test_questions = {user.opinion(i).question for i in r.test_ids}
        assert not test_questions & asked_while_optimizing
        assert set(r.leak_check.scored_ids) <= set(r.optimize_ids)
        # nor do they appear in anything the optimizer was shown (demonstrations)
        assert not any(q in p for q in test_questions for p in optimizer.prompts_seen)


def test_a_leaking_optimization_is_caught(
    tmp_path: Path, models: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    real = fermi_graph.optimize_user

    def leaky(user: UserProfile, *args: Any, **kw: Any) -> Any:
        full = next(u for u in USERS if u.user_id == user.user_id)
        return real(full, *args, **kw)  # optimizes on the test opinions too

    monkeypatch.setattr(fermi_graph, "optimize_user", leaky)
    seen: list[UserResult] = []
    monkeypatch.setattr(
        "langchain_fermi.evaluation.runner.save_user_result", lambda d, r: seen.append(r)
    )
    with pytest.raises(userrun.TestLeakError, match="test opinions scored"):
        _run(_config(tmp_path, methods="zero_shot,fermi_best"), models)
    assert seen == []  # nothing was saved


def test_interrupted_run_resumes_without_recomputing_finished_users(
    tmp_path: Path, models: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    config = _config(tmp_path, max_users=3, methods="zero_shot,profile,fermi_rop")
    real = userrun.evaluate_user
    calls: list[str] = []

    def killed_after_first(user: UserProfile, ctx: Any) -> UserResult:
        if calls:
            raise KeyboardInterrupt
        calls.append(user.user_id)
        return real(user, ctx)

    monkeypatch.setattr("langchain_fermi.evaluation.runner.evaluate_user", killed_after_first)
    with pytest.raises(KeyboardInterrupt):
        _run(config, models)
    first = calls[0]
    saved = tmp_path / "synthetic" / "users" / f"{first}.json"
    before = saved.read_text()
    assert [p.stem for p in saved.parent.glob("*.json")] == [first]

    calls.clear()

    def counting(user: UserProfile, ctx: Any) -> UserResult:
        calls.append(user.user_id)
        return real(user, ctx)

    monkeypatch.setattr("langchain_fermi.evaluation.runner.evaluate_user", counting)
    report = _run(config, models)
    assert first not in calls and len(calls) == 2
    assert saved.read_text() == before
    assert [r.user_id for r in report.users] == [u.user_id for u in USERS]


def test_changed_settings_refuse_to_mix_with_old_results(tmp_path: Path, models: Any) -> None:
    _run(_config(tmp_path, methods="zero_shot"), models)
    with pytest.raises(ValueError, match="n_test"):
        _run(_config(tmp_path, methods="zero_shot", n_test=4), models)
    report = _run(_config(tmp_path, methods="zero_shot", n_test=4), models, fresh=True)
    assert all(len(r.test_ids) == 4 for r in report.users)
    # max_users / methods do not change a user's numbers: a bigger run reuses the finished ones
    cfg = json.loads((tmp_path / "synthetic" / "config.json").read_text())
    assert cfg["config"]["n_test"] == 4


def test_resume_with_fewer_methods_keeps_the_runs_other_methods(
    tmp_path: Path, models: Any
) -> None:
    from benchmarks.rebuild_report import rebuild

    _run(_config(tmp_path, methods="zero_shot,profile"), models)
    # topping up (or resuming) with one method must not forget the run's other one
    _run(_config(tmp_path, methods="zero_shot,random"), models)
    run_dir = tmp_path / "synthetic"
    cfg = json.loads((run_dir / "config.json").read_text())
    assert cfg["config"]["methods"] == ["zero_shot", "profile", "random"]
    rebuild(run_dir)
    report = json.loads((run_dir / "report.json").read_text())
    assert {row["method"] for row in report["methods"]} == {"zero_shot", "profile", "random"}


def test_call_cap_stops_starting_new_users(tmp_path: Path, models: Any) -> None:
    report = _run(
        _config(tmp_path, max_users=3, methods="zero_shot,fermi_best", max_total_calls=1), models
    )
    assert report.n_users == 1


def test_baselines_only_need_no_optimizer(tmp_path: Path) -> None:
    target = ScriptedTarget(log=[])
    config = _config(tmp_path, methods="random,zero_shot,profile,few_shot_bm25")
    report = run_benchmark(config, users=USERS, target=target, progress=False, console=None)
    assert report.curves == {} and report.optimizer_model == ""
    assert {c.method for c in report.costs} == {"zero_shot", "profile", "few_shot_bm25", "total"}
    # zero-shot asks the same (prompt, question) for each user once: later users hit no cache
    # here (synthetic users have their own questions), so calls == test questions
    zs = next(c for c in report.costs if c.method == "zero_shot")
    assert zs.actual.target_calls == zs.naive.target_calls == 10


def test_jobs_run_users_in_parallel_with_the_same_results(tmp_path: Path, models: Any) -> None:
    methods = "zero_shot,profile,few_shot_dense"
    one = _run(_config(tmp_path, run_name="seq", methods=methods), models)
    two = _run(_config(tmp_path, run_name="par", methods=methods, jobs=2), models)
    assert [m.accuracy for m in one.methods] == [m.accuracy for m in two.methods]


def test_cli_options_map_to_the_config(
    tmp_path: Path, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    import argparse
    import runpy
    import sys

    from langchain_fermi.cli import build_parser
    from langchain_fermi.cli.bench import add_arguments, config_from_args

    argv = [
        "-K",
        "3",
        "-L",
        "4",
        "-T",
        "2",
        "--methods",
        "fermi_rop,zero_shot",
        "--budget",
        "100",
        "--n-optimize",
        "10",
        "--n-test",
        "7",
        "--target-model",
        "qwen2.5-coder-1.5b",
        "--optimizer-max-tokens",
        "200",
        "--results-dir",
        str(tmp_path),
    ]
    config = config_from_args(add_arguments(argparse.ArgumentParser()).parse_args(argv))
    assert (config.num_candidates, config.memory_size, config.iterations) == (3, 4, 2)
    assert config.methods == ("zero_shot", "fermi_rop")  # report order
    assert config.run_name == "opinionqa-qwen2.5-coder-1.5b"
    fc = config.fermi_config("fermi")
    assert (
        fc.max_target_calls == 100
        and fc.optimizer_temperature == 1.0
        and fc.target_temperature == 0.0
    )
    assert (config.n_optimize, config.n_test, config.optimizer_max_tokens) == (10, 7, 200)
    # `fermi bench` has the same options
    args = build_parser().parse_args(["bench", *argv])
    assert config_from_args(args) == config
    # the script is `fermi bench` itself: a bad method is a usage error naming the choices
    monkeypatch.syspath_prepend(str(Path(__file__).resolve().parents[1]))  # the repo root
    bad = ["--methods", "zero_shot,bogus", "--results-dir", str(tmp_path)]
    monkeypatch.setattr(sys, "argv", ["opinionqa", *bad])
    with pytest.raises(SystemExit) as exit_:
        runpy.run_module("benchmarks.opinionqa", run_name="__main__")
    assert exit_.value.code == 2
    assert "bogus" in capsys.readouterr().err


def test_leak_check_reads_the_recorded_cache_keys(models: Any) -> None:
    from langchain_fermi.evaluation.meter import RecordingCache, TestScorer
    from langchain_fermi.scoring import ScoreCache
    from langchain_fermi.types import FermiResult, ScoredPrompt

    user = USERS[0]
    optimize, test = user.opinions[:6], user.opinions[6:9]
    scorer = TestScorer(models[0], ScoreCache())
    prompt = ScoredPrompt(
        text="p",
        score=1.0,
        opinion_ids=[o.id for o in optimize[:2]],
        correctness=[1, 1],
        answers=[None, None],
    )
    result = FermiResult(user_id=user.user_id, prompts=[prompt], memory=[prompt])
    clean = RecordingCache(ScoreCache())
    for o in optimize[:2]:
        clean.get(scorer.key("p", o))
    ok = userrun.leak_check([result], [clean], optimize, test, scorer)
    assert ok.ok and ok.cache_verified and ok.keys_looked_up == 2
    # the same optimization, but the cache was also asked about a test question
    clean.get(scorer.key("p", test[1]))
    leaked = userrun.leak_check([result], [clean], optimize, test, scorer)
    assert not leaked.ok and leaked.test_questions_seen == [test[1].id]
    # a recorder that saw nothing cannot vouch for anything
    blind = userrun.leak_check([result], [RecordingCache(ScoreCache())], optimize, test, scorer)
    assert blind.ok and not blind.cache_verified


def test_fermi_rop_selects_what_fermi_ask_serves(
    tmp_path: Path, models: Any, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every test question of a small run is answered with the prompt `FermiPersonalizer`
    (what `fermi ask` and the agent middleware use) picks from an independently saved store."""
    from langchain_fermi.evaluation.meter import TestScorer
    from langchain_fermi.personalizer import FermiPersonalizer
    from langchain_fermi.store import FermiStore, result_prompts
    from langchain_fermi.types import FermiResult

    learned: dict[str, tuple[UserProfile, FermiResult]] = {}
    real_optimize = userrun.optimize_variant

    def keep(user: UserProfile, variant: Any, ctx: Any) -> Any:
        result, recorder = real_optimize(user, variant, ctx)
        if variant == "fermi":
            learned[user.user_id] = (user, result)
        return result, recorder

    monkeypatch.setattr(userrun, "optimize_variant", keep)
    asked: dict[str, str] = {}  # test opinion id -> system prompt it was scored with
    real_predict = TestScorer.predict

    def spy(self: TestScorer, pairs: Any) -> Any:
        asked.update((o.id, p) for p, o in pairs)
        return real_predict(self, pairs)

    monkeypatch.setattr(TestScorer, "predict", spy)
    report = _run(_config(tmp_path, methods="fermi_rop", max_users=3), models)

    served = FermiStore(tmp_path / "served", embeddings=DeterministicFakeEmbedding(size=16))
    personalizer = FermiPersonalizer(served, num_neighbors=2)
    chosen: set[str] = set()
    for r in report.users:
        split, result = learned[r.user_id]
        assert {o.id for o in split.opinions} == set(r.optimize_ids)  # no test opinion stored
        served.save_result(result, user=split)
        full = next(u for u in USERS if u.user_id == r.user_id)
        details = r.methods["fermi_rop"].detail
        assert len(details) == len(r.test_ids) == 5
        for oid, detail in zip(r.test_ids, details, strict=True):
            sel = personalizer.select_prompt(r.user_id, full.opinion(oid).question)
            assert sel.prompt is not None
            assert asked[oid] == sel.prompt.text
            assert detail == {
                "neighbours": [n.opinion_id for n in sel.neighbours],
                "prompt_index": sel.index,
            }
            assert set(detail["neighbours"]) <= set(r.optimize_ids)
            assert sel.prompt.text in {p.text for p in result_prompts(result)}
            chosen.add(sel.prompt.text)
    assert len(chosen) >= 2  # retrieval, not one best prompt for everything
