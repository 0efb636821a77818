"""``FermiConfig(restarts=N)``: N independent searches sharing one score cache; the one whose
best served prompt scores highest on the user's scoring opinions is kept, costs add up, and
each restart resumes on its own checkpoint thread."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
from fermi_graph_fakes import KeywordTarget, ScriptedOptimizer, keyword_prompt, make_user
from test_bench import ScriptedOptimizer as BenchOptimizer
from test_bench import ScriptedTarget, _config, _run

from langchain_fermi.errors import LLMCallError
from langchain_fermi.graph import aoptimize_user, optimize_user
from langchain_fermi.graph.restarts import pick_search, restart_optimizers, restart_seed
from langchain_fermi.types import Cost, FermiConfig, FermiResult, ScoredPrompt

B = "[{}]".format
WEAK = [B(keyword_prompt("t1")), B(keyword_prompt("t3"))]  # one topic right each
STRONG = [B(keyword_prompt("t1", "t3")), B(keyword_prompt("t1", "t3", "t6", "t9"))]
CONFIG = FermiConfig(K=2, L=3, T=1, max_concurrency=1, max_retries=1, retry_backoff=0.0)


def _restarts(n: int) -> FermiConfig:
    return CONFIG.model_copy(update={"restarts": n})


def test_the_search_that_fits_the_user_best_is_kept_and_costs_add_up() -> None:
    target = KeywordTarget()
    weak, strong = ScriptedOptimizer(replies=WEAK), ScriptedOptimizer(replies=STRONG)
    result = optimize_user(make_user(), target, [weak, strong], config=_restarts(2), progress=False)
    first, second = result.searches
    assert result.restart == 1 and second.best.score > first.best.score
    assert result.best == second.best and result.curve == second.curve
    assert result.config.restarts == 2 and first.config.restarts == 1
    # every search paid for its own prompts; the shared cache scored the profile prompt once
    assert result.cost == first.cost + second.cost
    assert result.cost.target_calls == target.calls
    assert len(set(target.call_log)) == target.calls  # no (prompt, question) scored twice
    assert result.cost.optimizer_calls == weak.attempts + strong.attempts == 4
    assert {p.text for p in result.all_prompts} == {
        p.text for s in result.searches for p in s.prompts
    }
    assert len(result.all_prompts) == len(first.prompts) + len(second.prompts)
    # the order of the searches does not decide: the better one wins from either position
    again = optimize_user(
        make_user(),
        KeywordTarget(),
        [ScriptedOptimizer(replies=STRONG), ScriptedOptimizer(replies=WEAK)],
        config=_restarts(2),
        progress=False,
    )
    assert again.restart == 0 and again.best.text == result.best.text


def test_one_search_is_the_plain_result_and_bad_model_lists_are_refused() -> None:
    result = optimize_user(
        make_user(), KeywordTarget(), ScriptedOptimizer(replies=STRONG), config=CONFIG,
        progress=False,
    )  # fmt: skip
    assert result.searches == [] and result.restart == 0
    assert result.all_prompts == result.prompts
    with pytest.raises(ValueError, match="one per restart"):
        optimize_user(
            make_user(), KeywordTarget(), [ScriptedOptimizer(replies=STRONG)],
            config=_restarts(2), progress=False,
        )  # fmt: skip
    with pytest.raises(ValueError, match="restarts"):
        FermiConfig(restarts=0)


def _scored(text: str, score: float, likelihood: float | None) -> ScoredPrompt:
    return ScoredPrompt(
        text=text, score=score, opinion_ids=["q1"], correctness=[score], answers=["x"],
        likelihood=likelihood,
    )  # fmt: skip


def _result(score: float, likelihood: float | None) -> FermiResult:
    best = _scored(f"p{score}{likelihood}", score, likelihood)
    return FermiResult(user_id="u", prompts=[best], memory=[best])


def test_ties_go_to_the_first_search_unless_likelihood_breaks_them() -> None:
    tied = [_result(0.5, 0.2), _result(0.5, 0.4), _result(0.25, 0.9)]
    assert pick_search(tied) == 0
    assert pick_search(tied, "likelihood") == 1
    assert pick_search([_result(0.5, None), _result(0.5, None)], "likelihood") == 0
    with pytest.raises(ValueError, match="no search"):
        pick_search([])


def test_each_restart_resumes_on_its_own_thread(tmp_path: Path) -> None:
    ckpt = tmp_path / "fermi.sqlite"
    weak = ScriptedOptimizer(replies=WEAK)
    failing = ScriptedOptimizer(replies=STRONG, fail_from=0)
    with pytest.raises(LLMCallError, match="optimizer is down"):
        optimize_user(
            make_user(), KeywordTarget(), [weak, failing], config=_restarts(2),
            checkpointer=ckpt, progress=False,
        )  # fmt: skip
    assert weak.attempts == 2  # restart 0 finished before restart 1 failed
    failing.fail_from, failed_attempts = None, failing.attempts
    target = KeywordTarget()
    resumed = optimize_user(
        make_user(), target, [weak, failing], config=_restarts(2), checkpointer=ckpt,
        progress=False,
    )  # fmt: skip
    assert weak.attempts == 2  # restart 0 was read back from its finished thread
    assert failing.attempts == failed_attempts + 2 and resumed.restart == 1
    scored_by_restart_1 = {p.text for p in resumed.searches[1].prompts}
    assert {system for system, _ in target.call_log} <= scored_by_restart_1
    # a finished one-search run is restart 0 of a later restarts=2 run on the same checkpoint
    ckpt2 = tmp_path / "grow.sqlite"
    first = ScriptedOptimizer(replies=WEAK)
    optimize_user(make_user(), KeywordTarget(), first, config=CONFIG, checkpointer=ckpt2,
                  progress=False)  # fmt: skip
    grown = optimize_user(
        make_user(), KeywordTarget(), [first, ScriptedOptimizer(replies=STRONG)],
        config=_restarts(2), checkpointer=ckpt2, progress=False,
    )  # fmt: skip
    assert first.attempts == 2 and len(grown.searches) == 2 and grown.restart == 1


async def test_async_restarts_pick_the_same_search() -> None:
    weak, strong = ScriptedOptimizer(replies=WEAK), ScriptedOptimizer(replies=STRONG)
    result = await aoptimize_user(make_user(), KeywordTarget(), [weak, strong], config=_restarts(2))
    assert result.restart == 1 and len(result.searches) == 2
    assert result.cost == sum((s.cost for s in result.searches), Cost())


def test_restart_seeds_are_far_apart_and_remote_models_are_reused() -> None:
    seeds = {restart_seed(0, i) for i in range(1, 50)}
    assert len(seeds) == 49 and not seeds & set(range(100))  # not seed + i
    remote = ScriptedOptimizer(replies=STRONG)
    assert restart_optimizers(remote, 3, seed=0) == [remote] * 3


@pytest.mark.local_model
def test_local_restarts_replay_the_one_search_runs_of_their_seeds() -> None:
    """Against the real local model: restart i is exactly the search its optimizer alone makes."""
    pytest.importorskip("llama_cpp", reason="the local model needs langchain-fermi[local]")
    from langchain_fermi.models import get_chat_model, seeded_copy

    model = get_chat_model("smollm2", role="optimizer", max_tokens=40)
    config = CONFIG.model_copy(update={"bracket_fallback": "reply"})
    alone = optimize_user(
        make_user(), KeywordTarget(), seeded_copy(model, 8), config=config, progress=False
    )
    both = optimize_user(
        make_user(), KeywordTarget(), [seeded_copy(model, 7), seeded_copy(model, 8)],
        config=config.model_copy(update={"restarts": 2}), progress=False,
    )  # fmt: skip
    assert [p.text for p in both.searches[1].prompts] == [p.text for p in alone.prompts]
    assert len(alone.prompts) > 1
    default = restart_optimizers(model, 2, seed=0)
    assert default[0] is model and default[1].seed == restart_seed(0, 1)


@pytest.fixture
def bench_models() -> tuple[ScriptedTarget, BenchOptimizer]:
    """The bench tests' scripted target and optimizer (tests/test_bench.py)."""
    return ScriptedTarget(log=[]), BenchOptimizer(counter=[0], prompts_seen=[])


def test_the_bench_pays_for_every_restart_and_serves_the_first_search_apart(
    tmp_path: Path, bench_models: Any
) -> None:
    config = _config(
        tmp_path,
        run_name="restarts",
        restarts=2,
        methods="profile,fermi_rop,fermi_rop_first_search",
    )
    report = _run(config, bench_models)
    assert config.fermi_config("fermi").restarts == 2
    for user in report.users:
        record = user.optimization["fermi"]
        assert len(record.search_scores) == 2
        assert record.best_score == max(record.search_scores)
        assert record.restart == record.search_scores.index(record.best_score)
        assert record.reported_cost.optimizer_calls == 2 * config.num_candidates * config.iterations
        generated = 2 * config.num_candidates * config.iterations  # both searches
        assert record.prompts_scored == 2 + generated - sum(record.dropped.values())
        assert user.leak_check.ok
        first, kept = user.methods["fermi_rop_first_search"], user.methods["fermi_rop"]
        if record.restart == 0:
            assert first.predictions == kept.predictions
    one = _run(_config(tmp_path, run_name="one", methods="profile,fermi_rop"), bench_models)
    single = one.users[0].optimization["fermi"]
    assert single.search_scores == [] and single.restart == 0
    assert single.reported_cost.optimizer_calls == config.num_candidates * config.iterations


def test_the_cost_estimate_counts_every_restart() -> None:
    from langchain_fermi.graph.estimate import estimate_cost

    config = _restarts(2).model_copy(update={"guard": False})
    target = KeywordTarget()
    optimizers = [ScriptedOptimizer(replies=WEAK), ScriptedOptimizer(replies=STRONG)]
    result = optimize_user(make_user(), target, optimizers, config=config, progress=False)
    one = estimate_cost(make_user(), CONFIG.model_copy(update={"guard": False}), target=target)
    both = estimate_cost(make_user(), config, target=target)
    assert both.expected.optimizer_calls == 2 * one.expected.optimizer_calls
    assert both.expected.optimizer_calls == result.cost.optimizer_calls
    assert both.expected_prompts == len(result.all_prompts)
    # the shared cache scores the profile prompt once: the saving the estimate leaves in
    assert both.expected.target_calls - result.cost.target_calls == both.scoring_opinions
    assert both.upper.target_calls >= result.cost.target_calls
