"""The Fermi loop on scripted deterministic models: memory, contexts, dedup, stop rules, costs."""

from __future__ import annotations

import json
from collections import Counter

import pytest
from fermi_graph_fakes import KeywordTarget, ScriptedOptimizer, keyword_prompt, make_user
from langgraph.checkpoint.memory import InMemorySaver

from langchain_fermi.errors import LLMCallError
from langchain_fermi.graph import Node, build_fermi_graph, optimize_user, result_from_state
from langchain_fermi.graph.sampling import estimate_tokens
from langchain_fermi.questions import profile_prompt
from langchain_fermi.types import FermiConfig, ScoredPrompt

B = "[{}]".format  # a bracketed optimizer reply


def _config(**kw) -> FermiConfig:
    # the paper's exact loop (no guard): these tests pin its mechanics; tests/test_graph_guard.py
    # covers the guard; the paper's prompt form (the optimizer writes whole prompts): these
    # tests compare exact texts, tests/test_prompt_form.py covers the addendum form
    base = {"K": 2, "L": 3, "T": 3, "max_concurrency": 1, "retry_backoff": 0.0, "guard": False}
    base["prompt_form"] = "full"
    return FermiConfig(**{**base, **kw})


def _run(replies: list[str], **kw):
    target, optimizer = KeywordTarget(), ScriptedOptimizer(replies=replies)
    result = optimize_user(make_user(), target, optimizer, config=_config(**kw), progress=False)
    return result, target, optimizer


GOOD = [
    B(keyword_prompt("t1")),  # 0.5
    B(keyword_prompt("t3")),  # 0.5, scored later: ranks after t1 (tie-break)
    B(keyword_prompt("t1", "t3")),  # 0.625
    B(keyword_prompt("t6")),  # 0.5
    B(keyword_prompt("t1", "t3", "t6")),  # 0.75
    B(keyword_prompt("t9")),  # 0.5
]


def test_loop_keeps_the_top_l_best_first_with_earlier_first_on_ties() -> None:
    result, _, _ = _run(GOOD, L=3, T=3)
    scores = {p.text: p.score for p in result.prompts}
    assert [p.score for p in result.memory] == sorted(scores.values(), reverse=True)[:3]
    assert [p.text for p in result.memory] == [
        keyword_prompt("t1", "t3", "t6"),
        keyword_prompt("t1", "t3"),
        keyword_prompt("t1"),  # 0.5 like t3, t6 and t9, but scored first
    ]
    assert len(result.prompts) == 1 + 2 * 3  # initial prompt + K*T
    assert result.prompts[0].text == profile_prompt(make_user())
    assert [p.iteration for p in result.prompts] == [0, 1, 1, 2, 2, 3, 3]
    assert result.curve == [0.375, 0.5, 0.625, 0.75]
    assert result.stop_reason == "iterations"
    assert result.best.text == keyword_prompt("t1", "t3", "t6")


def test_memory_size_is_capped_at_l() -> None:
    result, _, _ = _run(GOOD, L=2, T=3)
    assert len(result.memory) == 2
    result, _, _ = _run(GOOD, L=10, T=3)
    assert len(result.memory) == 7  # everything scored fits


def test_misaligned_contexts_are_the_wrong_answers() -> None:
    result, _, _ = _run(GOOD, T=1)
    user = make_user()
    by_id = {o.id: o for o in user.opinions}
    for sp in result.prompts:
        assert len(sp.correctness) == len(sp.opinion_ids) == 8  # 80 % of 10 opinions
        wrong = [i for i, c in enumerate(sp.correctness) if c < 1.0]
        assert [c.index for c in sp.misaligned] == wrong
        for case in sp.misaligned:
            o = by_id[case.opinion_id]
            assert case.opinion_id == sp.opinion_ids[case.index]
            assert (case.question, case.user_answer) == (o.question, o.answer)
            assert case.model_answer == sp.answers[case.index] != o.answer
    initial = result.prompts[0]  # answers "Yes" (A) everywhere
    assert set(initial.answers) == {"Yes"}
    assert initial.score == sum(by_id[i].answer == "Yes" for i in initial.opinion_ids) / 8


def test_optimizer_sees_memory_ascending_with_first_failures_in_full() -> None:
    _, _, optimizer = _run(GOOD, L=3, T=2)
    assert len(optimizer.prompts) == 4  # K per iteration 1..T
    second_round = optimizer.prompts[2]  # memory: initial (0.375), t1 (0.5), t3 (0.5)
    initial = profile_prompt(make_user())
    i_first = second_round.index(initial)
    assert (
        i_first
        < second_round.index(keyword_prompt("t3"))
        < second_round.index(keyword_prompt("t1"))
    )
    first_block = second_round[i_first : second_round.index("Text 2:")]
    assert first_block.count("The person's answer:") == 5  # the initial prompt's 5 failures
    assert "[t9] What do you think about issue number 9?" in first_block
    later = second_round[second_round.index("Text 2:") : second_round.index("Below are examples")]
    assert "The person's answer" not in later
    # t3's failures are the initial ones minus t3 itself: 4 shared, no others
    assert "shared with Text 1: Q1, Q4, Q6, Q7; other mis-aligned questions: 0." in later
    assert second_round.count("<INS>") >= 3  # the marker explained + 2 demos
    assert "square brackets" in second_round
    assert "POLIDEOLOGY: Very liberal" in second_round


def test_opro_variant_shows_no_failures_and_no_profile() -> None:
    result, _, optimizer = _run(GOOD, T=2, variant="opro")
    assert result.variant == "opro"
    assert {p.variant for p in result.prompts} == {"opro"}
    for prompt in optimizer.prompts:
        for sp in result.prompts:
            prompt = prompt.replace(sp.text, "")
        assert "Northeast" not in prompt and "Very liberal" not in prompt
        assert "issue number" not in prompt
        assert "mis-aligned" not in prompt.lower()
        assert "score:" in prompt


def test_duplicate_empty_and_unparseable_outputs_are_dropped_and_counted() -> None:
    replies = [
        B(keyword_prompt("t1")),
        B("  " + keyword_prompt("t1") + "  "),  # duplicate within the batch (whitespace)
        B(profile_prompt(make_user())),  # duplicate of a scored prompt
        "I would rather not.",  # unparseable
        "[]",  # empty
        B(keyword_prompt("t3")),
    ]
    target = KeywordTarget()
    optimizer = ScriptedOptimizer(replies=replies)
    graph = build_fermi_graph(target, optimizer, config=_config(K=2, T=3))
    state = graph.invoke({"user": make_user().model_dump(mode="json")})
    assert state["dropped"] == {"duplicate": 2, "empty": 1, "unparseable": 1}
    texts = [p["text"] for p in state["scored"]]
    assert texts == [profile_prompt(make_user()), keyword_prompt("t1"), keyword_prompt("t3")]
    assert state["curve"] == [0.375, 0.5, 0.5, 0.5]  # iteration 2 dropped all K and went on
    assert state["stop_reason"] == "iterations"


@pytest.mark.parametrize("fallback", ["drop", "reply"])
def test_unbracketed_replies_follow_the_configured_fallback(fallback: str) -> None:
    replies = [keyword_prompt("t1"), f"Sure. [{keyword_prompt('t3')}]"]  # the first has no [...]
    result, _, _ = _run(replies, K=2, T=1, bracket_fallback=fallback)
    texts = [p.text for p in result.prompts[1:]]
    if fallback == "drop":
        assert texts == [keyword_prompt("t3")]
        assert result.dropped["unparseable"] == 1
    else:
        assert texts == [keyword_prompt("t1"), keyword_prompt("t3")]
        assert result.dropped["unparseable"] == 0


def test_no_prompt_question_pair_is_scored_twice() -> None:
    replies = [*GOOD, B(keyword_prompt("t1"))]
    _, target, _ = _run(replies, T=4)
    counts = Counter(target.call_log)
    assert counts and max(counts.values()) == 1


@pytest.mark.parametrize(
    ("t", "include_final", "evaluations"), [(0, True, 1), (2, True, 3), (2, False, 2)]
)
def test_iterations_stop_rule(t: int, include_final: bool, evaluations: int) -> None:
    result, _, optimizer = _run(GOOD, T=t, include_final_candidates=include_final)
    assert len(result.curve) == evaluations
    assert len(optimizer.prompts) == 2 * (evaluations - 1)
    assert result.stop_reason == "iterations"


def test_patience_stops_when_the_best_score_stalls() -> None:
    replies = [B(keyword_prompt("t1")), B(keyword_prompt("t3")), B(keyword_prompt("t6"))]
    result, _, _ = _run(replies, K=1, T=10, patience=2)
    # 0.375 -> 0.5 (t1) -> 0.5 (t3) -> 0.5 (t6): two iterations without improvement
    assert result.curve == [0.375, 0.5, 0.5, 0.5]
    assert result.stop_reason == "patience"


def test_target_call_budget() -> None:
    result, target, _ = _run(GOOD, T=10, max_target_calls=20)
    assert result.stop_reason == "max_target_calls"
    assert result.cost.target_calls == target.calls
    # each prompt costs 8 calls; the candidate that crosses the budget is the last one scored
    assert 20 <= target.calls < 20 + 8
    assert len(result.prompts) == 3


def test_optimizer_call_budget_is_a_hard_cap() -> None:
    result, _, optimizer = _run(GOOD, K=2, T=10, max_optimizer_calls=3)
    assert result.stop_reason == "max_optimizer_calls"
    assert optimizer.attempts == result.cost.optimizer_calls == 3
    assert len(result.curve) == 3  # 2 calls in iteration 1, the last 1 in iteration 2


def test_token_budget() -> None:
    result, _, _ = _run(GOOD, T=10, max_tokens=100)
    assert result.stop_reason == "max_tokens"
    assert result.cost.total_tokens >= 100
    # iteration 0 (8 target calls x 11 tokens = 88) is under the budget; iteration 1 is not
    assert len(result.curve) == 2


def test_cost_counters_add_up() -> None:
    result, target, optimizer = _run(GOOD, T=3)
    cost = result.cost
    assert cost.target_calls == target.calls == 8 * 7
    assert cost.optimizer_calls == optimizer.attempts == 6
    assert len(result.cost_per_iteration) == len(result.curve) == 4
    for field in ("target_calls", "optimizer_calls", "prompt_tokens", "completion_tokens"):
        assert getattr(cost, field) == sum(getattr(c, field) for c in result.cost_per_iteration)
    assert result.cost_per_iteration[0].optimizer_calls == 0
    assert result.cost_per_iteration[0].prompt_tokens == 80  # usage metadata: 10 per call
    assert cost.prompt_tokens > 80  # the optimizer's prompts were counted (tiktoken estimate)
    assert cost.wall_seconds > 0
    # who spent the tokens: the target's from its usage metadata (10 in, 1 out per call), the
    # optimizer's estimated from its meta-prompts and replies; the sums are what users read
    assert cost.target_prompt_tokens == 10 * cost.target_calls
    assert cost.target_completion_tokens == cost.target_calls
    assert result.cost_per_iteration[0].optimizer_tokens == 0
    assert cost.optimizer_prompt_tokens == sum(estimate_tokens(p) for p in optimizer.prompts)
    assert cost.optimizer_completion_tokens > 0
    assert cost.prompt_tokens == cost.target_prompt_tokens + cost.optimizer_prompt_tokens
    assert cost.total_tokens == cost.target_tokens + cost.optimizer_tokens
    for field in ("target_prompt_tokens", "optimizer_prompt_tokens", "optimizer_completion_tokens"):
        assert getattr(cost, field) == sum(getattr(c, field) for c in result.cost_per_iteration)


def test_optimizer_errors_are_retried_then_raised() -> None:
    class Flaky(ScriptedOptimizer):
        failures_left: int = 2

        def _generate(self, messages, stop=None, run_manager=None, **kwargs):
            if self.failures_left:
                self.failures_left -= 1
                msg = "rate limited"
                raise ConnectionError(msg)
            return super()._generate(messages, stop, run_manager, **kwargs)

    result = optimize_user(
        make_user(),
        KeywordTarget(),
        Flaky(replies=GOOD),
        config=_config(K=1, T=1, max_retries=2),
        progress=False,
    )
    assert result.cost.optimizer_calls == 3  # two failed attempts + the success
    assert len(result.prompts) == 2
    with pytest.raises(LLMCallError, match="after 2 attempt"):
        optimize_user(
            make_user(),
            KeywordTarget(),
            Flaky(replies=GOOD, failures_left=5),
            config=_config(K=1, T=1, max_retries=1),
            progress=False,
        )


def test_warm_start_prompts_are_scored_in_iteration_zero() -> None:
    old = ScoredPrompt(
        text=keyword_prompt("t1", "t3"),
        score=0.99,  # a stale score from other opinions: re-scored here
        opinion_ids=["x"],
        correctness=[1.0],
        answers=["Yes"],
    )
    warm = [old, keyword_prompt("t6"), profile_prompt(make_user())]  # the last is a duplicate
    result = optimize_user(
        make_user(),
        KeywordTarget(),
        ScriptedOptimizer(replies=GOOD),
        config=_config(T=0),
        warm_start=warm,
        progress=False,
    )
    assert [p.text for p in result.prompts] == [
        profile_prompt(make_user()),
        keyword_prompt("t1", "t3"),
        keyword_prompt("t6"),
    ]
    assert result.prompts[1].score == 0.625
    assert result.best.text == keyword_prompt("t1", "t3")


def test_stream_updates_are_per_node_and_small() -> None:
    graph = build_fermi_graph(KeywordTarget(), ScriptedOptimizer(replies=GOOD), config=_config(T=1))
    updates = list(graph.stream({"user": make_user().model_dump(mode="json")}))
    nodes = [next(iter(u)) for u in updates]
    assert nodes == [Node.SPLIT_OPINIONS, *Node.LOOP, *Node.LOOP]
    # the published node names (STYLE.md), defined once in `Node`
    loop = ["generate_candidates", "evaluate_candidates", "extract_misaligned", "update_memory"]
    assert list(Node.ALL) == ["split_opinions", *loop]
    assert set(graph.get_graph().nodes) == {"__start__", "__end__", *Node.ALL}
    for u in updates:
        assert "user" not in next(iter(u.values()))  # the user is never echoed back
    last = updates[-1][Node.UPDATE_MEMORY]
    assert last["curve"] == [0.5]  # only the new point
    assert [p["text"] for p in last["scored"]] == [keyword_prompt("t1"), keyword_prompt("t3")]
    assert last["stop_reason"] == "iterations"


async def test_async_run_matches_the_sync_run() -> None:
    config = _config(T=2)
    sync = build_fermi_graph(KeywordTarget(), ScriptedOptimizer(replies=GOOD), config=config)
    asyn = build_fermi_graph(KeywordTarget(), ScriptedOptimizer(replies=GOOD), config=config)
    inputs = {"user": make_user().model_dump(mode="json")}
    a = result_from_state(await asyn.ainvoke(inputs), config)
    s = result_from_state(sync.invoke(inputs), config)
    assert [p.text for p in a.memory] == [p.text for p in s.memory]
    assert a.curve == s.curve
    assert a.cost.target_calls == s.cost.target_calls


def test_state_is_json_serialisable_in_checkpoints() -> None:
    graph = build_fermi_graph(
        KeywordTarget(),
        ScriptedOptimizer(replies=GOOD),
        config=_config(T=1),
        checkpointer=InMemorySaver(),
    )
    cfg = {"configurable": {"thread_id": "t"}}
    graph.invoke({"user": make_user().model_dump(mode="json")}, cfg)
    values = graph.get_state(cfg).values
    assert json.loads(json.dumps(values)) == values


def test_bad_inputs_are_reported() -> None:
    graph = build_fermi_graph(KeywordTarget(), ScriptedOptimizer(replies=GOOD), config=_config())
    with pytest.raises(ValueError, match="needs an input with a 'user'"):
        graph.invoke({"warm_start": []})
    empty = make_user().model_copy(update={"opinions": []})
    with pytest.raises(ValueError, match="user 'u1' has no opinions"):
        graph.invoke({"user": empty.model_dump(mode="json")})


def test_demo_split_is_seeded_and_disjoint() -> None:
    config = _config(T=0)
    graph = build_fermi_graph(KeywordTarget(), ScriptedOptimizer(replies=GOOD), config=config)
    user = make_user()
    a = graph.invoke({"user": user.model_dump(mode="json")})
    shuffled = user.model_copy(update={"opinions": list(reversed(user.opinions))})
    b = graph.invoke({"user": shuffled.model_dump(mode="json")})
    assert sorted(a["scored"][0]["opinion_ids"]) == sorted(b["scored"][0]["opinion_ids"])
    other = build_fermi_graph(
        KeywordTarget(), ScriptedOptimizer(replies=GOOD), config=_config(T=0, seed=7)
    ).invoke({"user": user.model_dump(mode="json")})
    assert other["scored"][0]["opinion_ids"] != a["scored"][0]["opinion_ids"]
    assert len(a["scored"][0]["opinion_ids"]) == 8


async def test_async_run_makes_no_blocking_calls_on_the_event_loop(tmp_path) -> None:
    """What ``langgraph dev`` enforces: no blocking I/O (the SQLite score cache) on the loop."""
    blockbuster = pytest.importorskip("blockbuster")
    graph = build_fermi_graph(
        KeywordTarget(),
        ScriptedOptimizer(replies=GOOD),
        config=_config(T=2),
        cache=tmp_path / "scores.sqlite",
    )
    inputs = {"user": make_user().model_dump(mode="json")}
    with blockbuster.blockbuster_ctx():
        state = await graph.ainvoke(inputs)
    assert len(state["curve"]) == 3
    assert state["cost"]["target_calls"] == 8 * 5


def test_builder_compiles_only_and_old_runner_paths_warn() -> None:
    """`optimize_user` and friends moved out of `graph.builder`; 0.1.0's imports still work."""
    from langchain_fermi.graph import builder, result, run

    for name, module in [
        ("optimize_user", run),
        ("default_cache_path", run),
        ("result_from_state", result),
    ]:
        with pytest.warns(DeprecationWarning, match=f"builder.{name} moved"):
            assert getattr(builder, name) is getattr(module, name)
    assert builder.__all__ == ["build_fermi_graph"]
    with pytest.raises(AttributeError, match="no_such_name"):
        builder.no_such_name  # noqa: B018
