"""Kill-and-resume with a SQLite checkpointer: the same result, and no prompt scored twice."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest
from fermi_graph_fakes import KeywordTarget, ScriptedOptimizer, keyword_prompt, make_user
from langgraph.checkpoint.sqlite import SqliteSaver

from langchain_fermi.errors import LLMCallError
from langchain_fermi.graph import default_cache_path, optimize_user
from langchain_fermi.types import FermiConfig

B = "[{}]".format
REPLIES = [
    B(keyword_prompt("t1")),
    B(keyword_prompt("t3")),
    B(keyword_prompt("t1", "t3")),
    B(keyword_prompt("t6")),
    B(keyword_prompt("t1", "t3", "t6")),
    B(keyword_prompt("t9", extra="BOOM")),  # the target can be made to fail on it
    B(keyword_prompt("t1", "t3", "t6", "t9")),
    B(keyword_prompt("t8")),
]
CONFIG = FermiConfig(K=2, L=3, T=4, max_concurrency=1, max_retries=1, retry_backoff=0.0)


def _uninterrupted():
    target, optimizer = KeywordTarget(), ScriptedOptimizer(replies=REPLIES)
    result = optimize_user(make_user(), target, optimizer, config=CONFIG, progress=False)
    return result, target


def _same(a, b) -> None:
    assert [(p.text, p.score) for p in a.memory] == [(p.text, p.score) for p in b.memory]
    assert [p.text for p in a.prompts] == [p.text for p in b.prompts]
    assert a.curve == b.curve
    assert a.stop_reason == b.stop_reason == "iterations"


def test_optimizer_failure_after_iteration_2_resumes_without_rescoring(tmp_path: Path) -> None:
    reference, ref_target = _uninterrupted()
    ckpt = tmp_path / "fermi.sqlite"
    target = KeywordTarget()
    optimizer = ScriptedOptimizer(replies=REPLIES, fail_from=4)  # iteration 3's calls fail
    with pytest.raises(LLMCallError, match="optimizer is down"):
        optimize_user(
            make_user(), target, optimizer, config=CONFIG, checkpointer=ckpt, progress=False
        )
    assert target.calls == 8 * 5  # iterations 0-2: the initial prompt + 2 x K prompts
    assert default_cache_path(ckpt).exists()  # the score cache lives next to the checkpoint

    optimizer.fail_from = None  # the optimizer is back: resume from the same thread
    resumed = optimize_user(
        make_user(), target, optimizer, config=CONFIG, checkpointer=ckpt, progress=False
    )
    _same(resumed, reference)
    assert target.calls == ref_target.calls  # nothing was scored twice
    assert resumed.cost.target_calls == reference.cost.target_calls


def test_target_failure_mid_iteration_reuses_the_persisted_scores(tmp_path: Path) -> None:
    reference, ref_target = _uninterrupted()
    ckpt = tmp_path / "fermi.sqlite"
    target = KeywordTarget(failing=True)  # fails on the BOOM prompt: iteration 3, candidate 2
    optimizer = ScriptedOptimizer(replies=REPLIES)
    with pytest.raises(LLMCallError, match="target is down"):
        optimize_user(
            make_user(), target, optimizer, config=CONFIG, checkpointer=ckpt, progress=False
        )
    before = target.calls
    assert before == 8 * 6  # iterations 0-2 and candidate 1 of iteration 3

    # A new process: fresh models and score cache object; the checkpoint already holds
    # iteration 3's candidates, so the optimizer script goes on after them.
    target2 = KeywordTarget()
    optimizer2 = ScriptedOptimizer(replies=REPLIES[6:])
    resumed = optimize_user(
        make_user(), target2, optimizer2, config=CONFIG, checkpointer=ckpt, progress=False
    )
    _same(resumed, reference)
    assert before + target2.calls == ref_target.calls  # candidate 1 came from the disk cache
    assert resumed.cost.cache_hits >= 8


def test_keyboard_interrupt_then_resume(tmp_path: Path) -> None:
    reference, ref_target = _uninterrupted()
    ckpt = tmp_path / "fermi.sqlite"
    target = KeywordTarget()
    optimizer = ScriptedOptimizer(replies=REPLIES, fail_from=6, interrupt=True)
    with pytest.raises(KeyboardInterrupt):
        optimize_user(
            make_user(), target, optimizer, config=CONFIG, checkpointer=ckpt, progress=False
        )
    optimizer.fail_from = None
    resumed = optimize_user(
        make_user(), target, optimizer, config=CONFIG, checkpointer=ckpt, progress=False
    )
    _same(resumed, reference)
    assert target.calls == ref_target.calls


def test_a_finished_thread_returns_its_final_state_without_model_calls(tmp_path: Path) -> None:
    ckpt = tmp_path / "fermi.sqlite"
    target, optimizer = KeywordTarget(), ScriptedOptimizer(replies=REPLIES)
    first = optimize_user(
        make_user(), target, optimizer, config=CONFIG, checkpointer=ckpt, progress=False
    )
    calls, attempts = target.calls, optimizer.attempts
    again = optimize_user(
        make_user(), target, optimizer, config=CONFIG, checkpointer=ckpt, progress=False
    )
    assert again == first
    assert (target.calls, optimizer.attempts) == (calls, attempts)


def test_new_inputs_on_an_old_thread_start_a_clean_run(tmp_path: Path) -> None:
    ckpt = tmp_path / "fermi.sqlite"
    optimize_user(
        make_user(), KeywordTarget(), ScriptedOptimizer(replies=REPLIES),
        config=CONFIG, checkpointer=ckpt, progress=False,
    )  # fmt: skip
    fewer = make_user(n=9)  # new opinions, same user id (the default thread id)
    small = CONFIG.model_copy(update={"iterations": 1})
    result = optimize_user(
        fewer, KeywordTarget(), ScriptedOptimizer(replies=REPLIES),
        config=small, checkpointer=ckpt, progress=False,
    )  # fmt: skip
    assert len(result.curve) == 2  # not appended to the old run's 5 points
    assert len(result.prompts) == 3
    assert {len(p.opinion_ids) for p in result.prompts} == {7}  # 80 % of 9, rounded


def test_an_existing_sqlite_saver_gets_its_cache_next_to_the_db(tmp_path: Path) -> None:
    db = tmp_path / "ck.db"
    conn = sqlite3.connect(str(db), check_same_thread=False)
    try:
        result = optimize_user(
            make_user(), KeywordTarget(), ScriptedOptimizer(replies=REPLIES),
            config=CONFIG.model_copy(update={"iterations": 1}),
            checkpointer=SqliteSaver(conn), thread_id="custom-thread", progress=False,
        )  # fmt: skip
        saver = SqliteSaver(conn)
        thread = {"configurable": {"thread_id": "custom-thread"}}
        assert saver.get_tuple(thread) is not None
    finally:
        conn.close()
    assert (tmp_path / "ck.scores.sqlite").exists()
    assert len(result.curve) == 2
