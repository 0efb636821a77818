"""``fermi optimize``: options, output, resume through --checkpoint, and a run on SmolLM2."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from fermi_graph_fakes import KeywordTarget, ScriptedOptimizer, keyword_prompt, make_user

import langchain_fermi.models
from langchain_fermi.cli import build_parser, main
from langchain_fermi.cli.optimize import config_from_args
from langchain_fermi.data import load_users, save_users

REPLIES = [f"[{keyword_prompt('t1')}]", f"[{keyword_prompt('t1', 't3')}]"]


@pytest.fixture
def users_file(tmp_path: Path) -> Path:
    path = tmp_path / "users.json"
    save_users([make_user("u1"), make_user("u2")], path)
    return path


@pytest.fixture
def scripted(monkeypatch: pytest.MonkeyPatch) -> dict[str, object]:
    """Route the CLI's model names to scripted models (the CLI resolves names at run time)."""
    made: dict[str, object] = {}

    def fake_get_chat_model(name=None, *, role="target", **kw):
        model = KeywordTarget() if role == "target" else ScriptedOptimizer(replies=REPLIES)
        made[role] = model
        return model

    monkeypatch.setattr(langchain_fermi.models, "get_chat_model", fake_get_chat_model)
    return made


def test_options_map_to_the_config() -> None:
    argv = ["optimize", "--users", "u.json", "-K", "3", "-L", "4", "--iterations", "5"]
    argv += ["--variant", "opro", "--seed", "7", "--patience", "2", "--max-target-calls", "99"]
    argv += ["--bracket-fallback", "reply", "--tie-break", "likelihood"]
    args = build_parser().parse_args(argv)
    config = config_from_args(args)
    assert (config.num_candidates, config.memory_size, config.iterations) == (3, 4, 5)
    assert (config.variant, config.seed, config.patience) == ("opro", 7, 2)
    assert (config.max_target_calls, config.bracket_fallback) == (99, "reply")
    assert config.tie_break == "likelihood"
    defaults = config_from_args(build_parser().parse_args(["optimize", "--users", "u.json"]))
    assert (defaults.num_candidates, defaults.memory_size, defaults.iterations) == (4, 5, 10)
    assert defaults.tie_break == "order"


def test_unknown_user_id_is_an_error(users_file: Path, capsys: pytest.CaptureFixture) -> None:
    code = main(["optimize", "--users", str(users_file), "--user-id", "carol", "--no-store"])
    assert code == 1  # a runtime error (the file's content), not a usage error
    assert "no user 'carol'" in capsys.readouterr().err


def test_optimize_prints_memory_writes_json_and_resumes(
    users_file: Path, tmp_path: Path, scripted: dict, capsys: pytest.CaptureFixture
) -> None:
    out, ckpt = tmp_path / "out" / "result.json", tmp_path / "ck.sqlite"
    argv = ["optimize", "--users", str(users_file), "--user-id", "u1", "-K", "1", "-L", "2"]
    argv += ["-T", "2", "--checkpoint", str(ckpt), "--out", str(out), "--no-store", "-q"]
    argv += ["--prompt-form", "full"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    # -T 2: two iterations after the initial prompt's (the curve has 3 points)
    assert "user u1: best 0.625 after 2 iteration(s), stopped by iterations" in printed
    lines = [ln.strip() for ln in printed.splitlines() if ln.startswith("  0.")]
    assert lines == [f"0.625  {keyword_prompt('t1', 't3')}", f"0.500  {keyword_prompt('t1')}"]
    results = json.loads(out.read_text())
    assert [r["user_id"] for r in results] == ["u1"]
    assert [p["score"] for p in results[0]["memory"]] == [0.625, 0.5]
    assert (tmp_path / "ck.scores.sqlite").exists()
    first_target = scripted["target"]
    assert first_target.calls == 3 * 8

    # Again with the same checkpoint: the finished thread is returned, nothing is recomputed.
    assert main(argv) == 0
    assert "user u1: best 0.625" in capsys.readouterr().out
    assert scripted["target"] is not first_target and scripted["target"].calls == 0


def test_restarts_run_and_say_which_search_was_kept(
    users_file: Path, tmp_path: Path, scripted: dict, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "result.json"
    argv = ["optimize", "--users", str(users_file), "--user-id", "u1", "-K", "1", "-T", "1"]
    argv += ["--restarts", "2", "--out", str(out), "--no-store", "-q", "--prompt-form", "full"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    # The scripted optimizer answers each search in turn (as a sampling model would differ):
    # search 0 gets the t1 prompt (0.500), search 1 the t1+t3 one (0.625), which is kept.
    assert "kept restart 1 of 2 (best: 0.500, 0.625)" in printed
    assert "user u1: best 0.625" in printed
    saved = json.loads(out.read_text())[0]
    assert saved["config"]["restarts"] == 2 and len(saved["searches"]) == 2
    assert saved["cost"]["optimizer_calls"] == 2  # K x T per search
    assert main([*argv, "--restarts", "0"]) == 2  # a usage error, naming the option
    assert "--restarts" in capsys.readouterr().err


def test_optimize_saves_to_the_store(users_file: Path, tmp_path: Path, scripted: dict) -> None:
    pytest.importorskip("langchain_fermi.store")
    from langchain_fermi.store import FermiStore

    store = tmp_path / "store"
    argv = ["optimize", "--users", str(users_file), "-K", "1", "-T", "1", "--store", str(store)]
    assert main([*argv, "-q"]) == 0
    fs = FermiStore(store)
    assert sorted(fs.list_users()) == ["u1", "u2"]


@pytest.mark.local_model
def test_optimize_on_smollm2(tmp_path: Path, capsys: pytest.CaptureFixture) -> None:
    user = load_users("examples/data/users.json")[0]
    users = tmp_path / "users.json"
    save_users([user.model_copy(update={"opinions": user.opinions[:5]})], users)
    out = tmp_path / "result.json"
    argv = ["optimize", "--users", str(users), "-T", "1", "-K", "1", "--out", str(out)]
    assert main([*argv, "--no-store", "--checkpoint", str(tmp_path / "ck.sqlite")]) == 0
    printed = capsys.readouterr().out
    assert f"user {user.user_id}: best" in printed
    (result,) = json.loads(out.read_text())
    assert len(result["curve"]) == 2
    assert result["cost"]["target_calls"] >= 4  # the initial prompt on 4 scoring opinions
    assert result["cost"]["optimizer_calls"] == 1
    scores = [p["score"] for p in result["memory"]]
    assert scores == sorted(scores, reverse=True)


def test_estimate_prints_calls_tokens_and_money_without_calling_a_model(
    users_file: Path, scripted: dict, capsys: pytest.CaptureFixture
) -> None:
    argv = ["optimize", "--users", str(users_file), "-K", "2", "-T", "3", "--estimate"]
    argv += ["--price-per-1k-prompt", "0.15", "--price-per-1k-completion", "0.6"]
    assert main(argv) == 0
    printed = capsys.readouterr().out
    assert printed.count("cost estimate for") == 2  # one table per user
    assert "expected   upper bound" in printed and "money" in printed
    calls = [ln for ln in printed.splitlines() if ln.startswith("optimizer calls")]
    assert calls and all(ln.split()[-2:] == ["6", "6"] for ln in calls)  # K x T
    assert scripted["target"].calls == 0 and scripted["optimizer"].attempts == 0

    assert main([*argv, "--json", "--user-id", "u2"]) == 0
    (summary,) = json.loads(capsys.readouterr().out)
    assert summary["user_id"] == "u2" and summary["upper"]["optimizer_calls"] == 6
    assert summary["expected"]["money"] > 0 and "actual" not in summary


def test_a_run_shows_the_estimate_next_to_the_actual_cost(
    users_file: Path, scripted: dict, capsys: pytest.CaptureFixture
) -> None:
    argv = ["optimize", "--users", str(users_file), "--user-id", "u1", "-K", "1", "-T", "2"]
    assert main([*argv, "--no-store", "-q"]) == 0
    printed = capsys.readouterr().out
    assert "expected   upper bound        actual" in printed
    row = next(ln for ln in printed.splitlines() if ln.startswith("target calls"))
    assert row.split()[-1] == str(scripted["target"].calls)


def test_a_negative_price_is_a_usage_error(users_file: Path, capsys: pytest.CaptureFixture) -> None:
    argv = ["optimize", "--users", str(users_file), "--estimate", "--price-per-1k-prompt", "-1"]
    assert main(argv) == 2
    assert "argument --price-per-1k-prompt: must be >= 0, got -1.0" in capsys.readouterr().err
