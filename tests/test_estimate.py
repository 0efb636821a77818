"""Cost before a run (`estimate_cost`) against what scripted runs really spend, and the progress
bar that advances per scored prompt with calls and tokens so far."""

from __future__ import annotations

from typing import Any

import pytest
from fermi_graph_fakes import KeywordTarget, ScriptedOptimizer, keyword_prompt, make_user
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_openai import ChatOpenAI

import langchain_fermi
from langchain_fermi.graph import optimize_user
from langchain_fermi.graph import run as run_module
from langchain_fermi.graph.estimate import CostEstimate, estimate_cost
from langchain_fermi.models import LocalLlamaChatModel
from langchain_fermi.types import Cost, FermiConfig

B = "[{}]".format
REPLIES = [  # all different, all bracketed: nothing is dropped
    B(keyword_prompt(*topics))
    for topics in [("t1",), ("t3",), ("t1", "t3"), ("t6",), ("t1", "t3", "t6"), ("t9",)]
]


def _config(**kw: Any) -> FermiConfig:
    base = {"K": 2, "L": 3, "T": 3, "max_concurrency": 1, "retry_backoff": 0.0, "guard": False}
    return FermiConfig(**{**base, **kw})


def _run_and_estimate(n: int = 10, **kw: Any) -> tuple[Cost, CostEstimate, int]:
    user, config = make_user(n=n), _config(**kw)
    target, optimizer = KeywordTarget(), ScriptedOptimizer(replies=REPLIES)
    result = optimize_user(user, target, optimizer, config=config, progress=False)
    return (
        result.cost,
        estimate_cost(user, config, target=target, optimizer=optimizer),
        len(result.prompts),
    )


@pytest.mark.parametrize(
    "kw",
    [
        {},
        {"T": 1, "K": 3},
        {"T": 10, "max_target_calls": 20},
        {"T": 10, "max_optimizer_calls": 3},
        {"include_final_candidates": False},
    ],
)
def test_expected_calls_are_the_calls_of_a_run_that_drops_nothing(kw: dict[str, Any]) -> None:
    actual, est, prompts = _run_and_estimate(**kw)
    assert est.expected.target_calls == actual.target_calls
    assert est.expected.optimizer_calls == actual.optimizer_calls
    assert est.expected_prompts == prompts
    assert est.upper.target_calls >= actual.target_calls
    assert est.upper.optimizer_calls >= actual.optimizer_calls


@pytest.mark.parametrize("n", [10, 20])
def test_the_upper_bound_holds_with_the_guard_and_a_token_budget(n: int) -> None:
    for kw in ({"guard": True}, {"guard": True, "validation_fraction": 0.3}, {"max_tokens": 100}):
        actual, est, _ = _run_and_estimate(n=n, **kw)
        assert est.upper.target_calls >= actual.target_calls, kw
        assert est.upper.optimizer_calls >= actual.optimizer_calls, kw
        assert est.upper.total_tokens >= actual.total_tokens, kw
        if kw.get("guard"):
            assert est.validation_opinions > 0 or n == 10


def test_split_matches_the_graph() -> None:
    user = make_user(n=20)
    est = estimate_cost(user, _config(guard=True))
    assert est.scoring_opinions + est.validation_opinions + est.demo_opinions == 20
    assert est.demo_opinions == 4 and est.validation_opinions == 4
    assert est.optimizer_rounds == 3 and est.upper_prompts == 1 + 2 * 3


def test_drop_rate_lowers_only_the_expected_figures() -> None:
    user, config = make_user(), _config(T=4, K=4)
    full = estimate_cost(user, config)
    dropping = estimate_cost(user, config, drop_rate=0.5)
    assert dropping.upper == full.upper
    assert dropping.expected.optimizer_calls == full.expected.optimizer_calls == 16
    assert dropping.expected_prompts == 1 + 8 and full.expected_prompts == 1 + 16
    assert dropping.expected.target_calls < full.expected.target_calls
    with pytest.raises(ValueError, match=r"drop_rate must be between 0 and 1, got 1\.5"):
        estimate_cost(user, config, drop_rate=1.5)


def test_scoring_method_follows_the_target_model() -> None:
    user, config = make_user(), _config()
    local = LocalLlamaChatModel(model_path="never-loaded.gguf")
    openai = ChatOpenAI(model="m", api_key="x")  # type: ignore[arg-type]
    other = FakeListChatModel(responses=["A"])
    methods = {
        m: estimate_cost(user, config, target=t).scoring_method
        for m, t in (("logits", local), ("logprobs", openai), ("parse", other))
    }
    assert methods == {"logits": "logits", "logprobs": "logprobs", "parse": "parse"}
    logits = estimate_cost(user, config, target=local)
    assert logits.expected.target_completion_tokens == 0  # letter logits: nothing generated
    parse = estimate_cost(user, config, target=other)
    assert parse.upper.target_completion_tokens == 8 * parse.upper.target_calls


def test_optimizer_reply_limit_bounds_the_upper_tokens() -> None:
    user, config = make_user(), _config()
    short = estimate_cost(
        user, config, optimizer=LocalLlamaChatModel(model_path="x", max_tokens=64)
    )
    long = estimate_cost(user, config, optimizer_max_tokens=1024)
    assert short.upper.optimizer_completion_tokens == 64 * short.upper.optimizer_calls
    assert long.upper.optimizer_completion_tokens == 1024 * long.upper.optimizer_calls
    assert short.expected == long.expected  # the expected run does not depend on the limit


def test_money_summary_and_report_show_estimate_next_to_actual() -> None:
    actual, _, _ = _run_and_estimate()
    est = estimate_cost(
        make_user(), _config(), price_per_1k_prompt=0.5, price_per_1k_completion=2.0
    )
    upper = est.upper
    assert est.money(upper) == pytest.approx(
        (upper.prompt_tokens * 0.5 + upper.completion_tokens * 2.0) / 1000
    )
    summary = est.summary(actual)
    assert summary["actual"]["target_calls"] == actual.target_calls
    assert summary["expected"]["money"] == pytest.approx(est.money(est.expected))
    assert summary["upper"]["optimizer_calls"] == upper.optimizer_calls
    report = est.report(actual)
    header = report.splitlines()[1].split()
    assert header == ["expected", "upper", "bound", "actual"]
    calls = next(line for line in report.splitlines() if line.startswith("target calls"))
    assert calls.split()[-1] == f"{actual.target_calls:,}"
    assert "money" in report
    assert estimate_cost(make_user(), _config()).money(upper) is None
    assert "money" not in estimate_cost(make_user(), _config()).report()


def test_estimate_cost_is_exported_at_the_top_level() -> None:
    assert langchain_fermi.estimate_cost is estimate_cost
    assert "estimate_cost" in langchain_fermi.__all__


class _Bar:
    """Records what `optimize_user` does to its tqdm bar."""

    def __init__(self, total: int) -> None:
        self.total, self.n, self.postfix = total, 0, ""
        self.closed = False

    def update(self, k: int = 1) -> None:
        self.n += k

    def set_postfix_str(self, text: str, refresh: bool = True) -> None:
        self.postfix = text
        self.postfixes = [*getattr(self, "postfixes", []), text]

    def refresh(self) -> None:
        pass

    def close(self) -> None:
        self.closed = True


def test_progress_advances_per_scored_prompt_with_calls_and_tokens(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    bars: list[_Bar] = []

    def fake_bar(enabled: bool, total: int, user_id: str) -> _Bar:
        bars.append(_Bar(total))
        return bars[-1]

    monkeypatch.setattr(run_module, "_progress_bar", fake_bar)
    replies = [REPLIES[0], REPLIES[0], REPLIES[1], "no brackets"]  # a duplicate, one unparseable
    result = optimize_user(
        make_user(), KeywordTarget(), ScriptedOptimizer(replies=replies), config=_config(T=2)
    )
    (bar,) = bars
    assert bar.closed
    assert len(bar.postfixes) == bar.n == len(result.prompts) == 3  # profile + 2 new prompts
    assert bar.total == bar.n  # the 2 dropped replies were never going to be scored
    first, last = bar.postfixes[0], bar.postfixes[-1]
    assert first.startswith("it 0 best 0.375 calls 8 tokens 88")  # 8 calls x 11 tokens
    calls = result.cost.target_calls + result.cost.optimizer_calls
    assert f"calls {calls} " in last and last.startswith("it 2 ")
