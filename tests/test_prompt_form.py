"""The addendum prompt form (the default): the optimizer writes a paragraph about the person
and the candidate is the profile prompt with it added; ``prompt_form="full"`` is the paper's."""

from __future__ import annotations

import pytest
from fermi_graph_fakes import KeywordTarget, ScriptedOptimizer, keyword_prompt, make_user

from langchain_fermi.evaluation.config import BenchConfig
from langchain_fermi.evaluation.planted import TRAITS, hidden_prompt
from langchain_fermi.graph import build_meta_prompt, optimize_user
from langchain_fermi.graph.estimate import estimate_cost
from langchain_fermi.graph.prompts import NOTHING_ADDED
from langchain_fermi.questions import profile_addendum, profile_prompt, profile_prompt_with
from langchain_fermi.types import FermiConfig, ScoredPrompt


def _config(**kw) -> FermiConfig:
    base = {"K": 2, "L": 3, "T": 2, "max_concurrency": 1, "retry_backoff": 0.0, "guard": False}
    return FermiConfig(**{**base, **kw})


def test_addendum_is_the_default_and_round_trips() -> None:
    user = make_user()
    assert FermiConfig().prompt_form == "addendum"
    assert BenchConfig().prompt_form == "addendum"
    text = profile_prompt_with(user, "  This person distrusts banks.  ")
    assert text.startswith(profile_prompt(user).rpartition("\n\n")[0] + "\n")
    assert text.endswith("\n\n" + profile_prompt(user).rpartition("\n\n")[2])
    assert profile_addendum(user, text) == "This person distrusts banks."
    assert profile_addendum(user, profile_prompt(user)) == ""
    assert profile_addendum(user, "Answer as a pirate.") is None
    assert profile_prompt_with(user, "   ") == profile_prompt(user)
    # the planted benchmark's hidden prompt has the same form (one helper builds both)
    assert profile_addendum(user, hidden_prompt(user, TRAITS[0])) == TRAITS[0].text


def test_loop_adds_each_reply_to_the_profile_prompt() -> None:
    user = make_user()
    replies = [f"[{keyword_prompt('t1')}]", f"[{keyword_prompt('t1', 't3')}]"]
    optimizer = ScriptedOptimizer(replies=replies)
    result = optimize_user(user, KeywordTarget(), optimizer, config=_config(K=1), progress=False)
    texts = [p.text for p in result.prompts]
    assert texts == [
        profile_prompt(user),
        profile_prompt_with(user, keyword_prompt("t1")),
        profile_prompt_with(user, keyword_prompt("t1", "t3")),
    ]
    assert result.curve == [0.375, 0.5, 0.625]  # the keywords still reach the target
    # the second meta-prompt shows paragraphs, not the profile prompt again and again
    second = optimizer.prompts[1]
    assert NOTHING_ADDED in second and keyword_prompt("t1") in second
    assert second.count("POLIDEOLOGY: Very liberal") == 1  # the personal information, once
    assert 'starts with "This person"' in second


def test_guard_checks_the_paragraph_not_the_whole_prompt() -> None:
    user = make_user()
    # "B" wrapped into the profile prompt would be a long text; the guard must still drop it
    replies = ["[B]", "[B]", f"[{keyword_prompt('t1')}]", f"[{keyword_prompt('t1')}]"]
    optimizer = ScriptedOptimizer(replies=replies)
    result = optimize_user(
        user, KeywordTarget(), optimizer, config=_config(guard=True), progress=False
    )
    assert result.dropped["option_label"] == 2  # both "B" replies
    assert result.dropped["duplicate"] == 1  # the second keyword paragraph
    assert profile_prompt_with(user, keyword_prompt("t1")) in [p.text for p in result.prompts]
    assert all(profile_addendum(user, p.text) is not None for p in result.prompts)


@pytest.mark.parametrize("variant", ["fermi", "opro"])
def test_meta_prompts_of_both_forms(variant: str) -> None:
    user = make_user()
    added = profile_prompt_with(user, "This person trusts nobody.")
    memory = [
        ScoredPrompt(text=added, score=0.5, opinion_ids=["q0"], correctness=[1.0], answers=["Yes"]),
        ScoredPrompt(
            text=profile_prompt(user),
            score=0.4,
            opinion_ids=["q0"],
            correctness=[0],
            answers=["No"],
        ),
    ]
    kw = {"user": user, "num_questions": 8}
    addendum = build_meta_prompt(variant, memory, user.opinions[:2], form="addendum", **kw)
    full = build_meta_prompt(variant, memory, user.opinions[:2], form="full", **kw)
    assert "This person trusts nobody." in addendum and NOTHING_ADDED in addendum
    assert added not in addendum and added in full
    assert "two to four sentences" in addendum and "two to four sentences" not in full
    if variant == "opro":  # still no personal information in the OPRO ablation
        assert "Northeast" not in addendum
    with pytest.raises(ValueError, match="prompt form"):
        build_meta_prompt(variant, memory, [], form="short", **kw)


def test_estimate_counts_the_profile_in_every_addendum_prompt() -> None:
    user = make_user()
    addendum = estimate_cost(user, _config(), optimizer_max_tokens=100)
    full = estimate_cost(user, _config(prompt_form="full"), optimizer_max_tokens=100)
    assert addendum.upper.target_calls == full.upper.target_calls
    # same calls; each generated prompt carries the profile prompt as well as the reply
    assert addendum.upper.target_prompt_tokens > full.upper.target_prompt_tokens


def test_bench_passes_the_form_to_both_optimizations() -> None:
    config = BenchConfig(prompt_form="full")
    assert config.fermi_config("fermi").prompt_form == "full"
    assert config.fermi_config("opro").prompt_form == "full"
    assert BenchConfig().fermi_config("opro").prompt_form == "addendum"


def test_the_benchmark_checks_what_the_optimizer_wrote() -> None:
    from langchain_fermi.evaluation.records import written_text as _written
    from langchain_fermi.graph.guard import degenerate_reason

    user = make_user()
    wrapped = profile_prompt_with(user, "C")  # long as a whole, degenerate as written
    assert degenerate_reason(wrapped, [], min_words=4) is None
    assert degenerate_reason(_written(wrapped, user), [], min_words=4) == "option_label"
    assert _written(profile_prompt(user), user) == ""  # the profile prompt: nothing written
    assert _written("Answer as a pirate.", user) == "Answer as a pirate."  # the full form
