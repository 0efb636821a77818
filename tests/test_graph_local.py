"""The whole Fermi loop on the real embedded SmolLM2 (target and optimizer): structure only.

SmolLM2-135M barely reacts to personas (PERF_NOTES.md), so no quality number is asserted.
"""

from __future__ import annotations

import pytest

from langchain_fermi.data import load_users
from langchain_fermi.graph import optimize_user
from langchain_fermi.models import get_chat_model
from langchain_fermi.types import FermiConfig

pytestmark = pytest.mark.local_model


def test_fermi_loop_on_smollm2(tmp_path) -> None:
    user = load_users("examples/data/users.json")[0]
    user = user.model_copy(update={"opinions": user.opinions[:8]})
    target = get_chat_model("smollm2", role="target")
    # short replies keep the test fast; the meta-prompt asks for one bracketed text
    optimizer = get_chat_model("smollm2", role="optimizer", max_tokens=96, seed=0)
    config = FermiConfig(K=2, L=3, T=2, max_retries=0, tie_break="likelihood")
    result = optimize_user(
        user, target, optimizer, config=config, checkpointer=tmp_path / "ck.sqlite", progress=False
    )
    assert result.user_id == user.user_id
    assert result.stop_reason == "iterations"
    assert len(result.curve) == 3  # iteration 0 + T
    assert result.curve == sorted(result.curve)  # the best score never drops
    dropped_or_scored = len(result.prompts) - 1  # every optimizer output is scored or dropped
    assert 0 <= dropped_or_scored <= 2 * 2
    assert result.cost.optimizer_calls == 4
    for p in result.prompts:
        assert len(p.correctness) == len(p.opinion_ids) == 6  # 80 % of 8 opinions
        assert p.score == sum(p.correctness) / 6
        assert [c.index for c in p.misaligned] == [i for i, c in enumerate(p.correctness) if c < 1]
        # the embedded model is scored by letter probabilities: each prompt has a likelihood
        assert p.likelihood is not None and 0.0 <= p.likelihood <= 1.0
    ranks = [(p.score, p.likelihood) for p in result.memory]
    assert ranks == sorted(ranks, reverse=True) and 1 <= len(ranks) <= 3
    assert result.memory[0].score == result.curve[-1]
    assert result.cost.target_calls == 6 * len(result.prompts)  # each prompt scored once
    assert result.cost.prompt_tokens > 0 and result.cost.wall_seconds > 0
