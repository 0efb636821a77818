"""The bench seeds a local optimizer per user: what a user is sampled does not depend on the
users optimized before it in the same process (so two runs that differ in one setting draw the
same samples until their meta-prompts differ)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from langchain_core.embeddings import DeterministicFakeEmbedding
from test_bench import USERS, ScriptedTarget, _config

from langchain_fermi.evaluation.runner import run_benchmark
from langchain_fermi.models import get_chat_model, seeded_copy

pytestmark = pytest.mark.local_model


def _bob_prompts(tmp_path: Path, name: str, users: list, **kw: object) -> list[str]:
    pytest.importorskip("llama_cpp", reason="the local model needs langchain-fermi[local]")
    config = _config(
        tmp_path,
        run_name=name,
        methods="profile,fermi_best",
        K=2,
        L=3,
        T=1,
        bracket_fallback="reply",  # SmolLM2 rarely writes the brackets
        **kw,
    )
    optimizer = get_chat_model("smollm2", role="optimizer", max_tokens=40)
    run_benchmark(
        config,
        users=users,
        target=ScriptedTarget(log=[]),
        optimizer=optimizer,
        embeddings=DeterministicFakeEmbedding(size=16),
        progress=False,
        console=None,
    )
    bob = json.loads((tmp_path / name / "users" / "bob.json").read_text())
    return [p["text"] for p in bob["optimization"]["fermi"]["memory"]]


def test_a_users_samples_do_not_depend_on_the_users_before_it(tmp_path: Path) -> None:
    after_alice = _bob_prompts(tmp_path, "alice-then-bob", USERS[:2])
    alone = _bob_prompts(tmp_path, "bob-alone", [USERS[1]])
    assert len(after_alice) > 1  # the optimizer's prompts were scored, not only the profile's
    assert after_alice == alone
    # another optimizer seed is another draw for the same user and split
    other = _bob_prompts(tmp_path, "bob-seed-7", [USERS[1]], optimizer_seed=7)
    assert other[0] == alone[0]  # the profile prompt
    assert other[1:] != alone[1:]


def test_seeded_copy_seeds_local_models_only() -> None:
    pytest.importorskip("llama_cpp", reason="the local model needs langchain-fermi[local]")
    local = get_chat_model("smollm2", role="optimizer")
    assert seeded_copy(local, 7).seed == 7 and local.seed is None  # a copy; weights shared
    remote = ScriptedTarget(log=[])
    assert seeded_copy(remote, 7) is remote
