"""`benchmarks.compare_planted`: two planted runs compared on the users they share."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from benchmarks.compare_planted import main


def _run(
    folder: Path,
    fermi: dict[str, float],
    profile: float = 0.5,
    training: dict[str, float] | None = None,
) -> Path:
    users = folder / "users"
    users.mkdir(parents=True)
    for uid, acc in fermi.items():
        methods = {
            "profile": {"accuracy": profile},
            "hidden_prompt": {"accuracy": 1.0},
            "fermi_rop": {"accuracy": acc},
            "opro": {"accuracy": 0.5},
        }
        user = {"user_id": uid, "methods": methods}
        if training:
            user["optimization"] = {"fermi": {"best_score": training[uid]}}
        (users / f"{uid}.json").write_text(json.dumps(user))
    return folder


def test_compares_shared_users_by_trait_and_subset(tmp_path: Path, capsys) -> None:
    a = _run(tmp_path / "a", {"u1-optimist": 0.75, "u2-pessimist": 0.5, "u3-pessimist": 0.5})
    b = _run(tmp_path / "b", {"u1-optimist": 1.0, "u2-pessimist": 0.75, "u4-pessimist": 1.0})
    out = tmp_path / "cmp.json"
    args = ["--exclude", "u1-optimist", "--control", "opro", "--out", str(out)]
    assert main([str(a), str(b), *args]) == 0
    report = json.loads(out.read_text())
    assert report["run_a"] == "a" and str(tmp_path) not in out.read_text()
    groups = report["groups"]
    assert groups["all"]["users"] == 2  # u3 and u4 are in one run only
    assert groups["all"]["b_minus_a"]["mean"] == pytest.approx(0.25)
    assert groups["all"]["gap_a"]["recovered"] == pytest.approx(0.25)  # 0.125 of a 0.5 gap
    assert groups["all"]["gap_b"]["recovered"] == pytest.approx(0.75)
    assert groups["pessimist"]["users"] == 1 and groups["not excluded"]["users"] == 1
    assert groups["control: opro"]["b_minus_a"]["mean"] == 0.0  # same in both runs
    assert "| optimist | 1 |" in capsys.readouterr().out


def test_reads_the_users_of_the_report_when_there_is_one(tmp_path: Path) -> None:
    a = _run(tmp_path / "a", {"u1-optimist": 0.75, "u2-optimist": 0.5})
    b = _run(tmp_path / "b", {"u1-optimist": 1.0, "u2-optimist": 1.0})
    finished = json.loads((b / "users" / "u1-optimist.json").read_text())
    (b / "report.json").write_text(json.dumps({"users": [finished]}))  # u2 came after it
    out = tmp_path / "cmp.json"
    assert main([str(a), str(b), "--out", str(out)]) == 0
    assert json.loads(out.read_text())["groups"]["all"]["users"] == 1


def test_refuses_runs_on_different_users(tmp_path: Path) -> None:
    a = _run(tmp_path / "a", {"u1-optimist": 0.75})
    b = _run(tmp_path / "b", {"u1-optimist": 0.75}, profile=0.25)
    with pytest.raises(ValueError, match="profile differs"):
        main([str(a), str(b)])


def test_pool_averages_draws_per_user(tmp_path: Path, capsys) -> None:
    from benchmarks.pool_planted import main as pool_main

    a = _run(tmp_path / "a", {"u1-optimist": 0.75, "u2-pessimist": 0.5, "u3-pessimist": 1.0})
    b = _run(tmp_path / "b", {"u1-optimist": 1.0, "u2-pessimist": 1.0})
    out = tmp_path / "pool.json"
    assert pool_main([str(a), str(b), "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert report["runs"] == ["a", "b"] and str(tmp_path) not in out.read_text()
    assert report["users"] == 2  # u3 is in one draw only
    assert report["per_run"]["a"]["gap_recovered"]["recovered"] == pytest.approx(0.25)
    assert report["per_run"]["b"]["gap_recovered"]["recovered"] == pytest.approx(1.0)
    pooled = report["pooled"]
    assert pooled["accuracy"] == pytest.approx(0.8125)  # (0.875 + 0.75) / 2
    assert pooled["gap_recovered"]["recovered"] == pytest.approx(0.625)
    assert pooled["minus_opro"]["mean"] == pytest.approx(0.3125)
    assert report["draw_spread"] == {"mean": 0.375, "max": 0.5, "users_moving_over_0.2": 2}
    traits = report["by_trait"]
    assert traits["optimist"]["users"] == 1 and traits["optimist"]["accuracy"] == 0.875
    assert traits["pessimist"]["gap_recovered"]["recovered"] == pytest.approx(0.5)
    assert "**mean of the draws**" in capsys.readouterr().out
    c = _run(tmp_path / "c", {"u1-optimist": 0.75}, profile=0.25)
    with pytest.raises(SystemExit):  # not draws of the same users: a usage error
        pool_main([str(a), str(c)])


def test_pool_keeps_the_draw_with_the_best_training_score(tmp_path: Path, capsys) -> None:
    from benchmarks.pool_planted import main as pool_main

    train_a = {"u1-optimist": 0.9, "u2-pessimist": 0.5}
    a = _run(tmp_path / "a", {"u1-optimist": 0.75, "u2-pessimist": 0.5}, training=train_a)
    train_b = {"u1-optimist": 0.8, "u2-pessimist": 0.5}  # u2: a tie, so the mean of both
    b = _run(tmp_path / "b", {"u1-optimist": 1.0, "u2-pessimist": 1.0}, training=train_b)
    out = tmp_path / "pool.json"
    assert pool_main([str(a), str(b), "--out", str(out)]) == 0
    best = json.loads(out.read_text())["best_by_training"]
    assert best["accuracy"] == pytest.approx(0.75)  # u1 from a (0.75), u2 (0.5 + 1.0) / 2
    assert best["minus_pooled"]["mean"] == pytest.approx(-0.0625)  # pooled: 0.875, 0.75
    assert "restarts, post hoc" in capsys.readouterr().out
    c = _run(tmp_path / "c", {"u1-optimist": 0.75, "u2-pessimist": 0.5})  # no training scores
    assert pool_main([str(a), str(c), "--out", str(out)]) == 0
    assert "best_by_training" not in json.loads(out.read_text())


def test_compares_two_methods_of_two_runs(tmp_path: Path, capsys) -> None:
    a = _run(tmp_path / "a", {"u1-optimist": 0.75, "u2-pessimist": 0.5})
    b = _run(tmp_path / "b", {"u1-optimist": 1.0, "u2-pessimist": 0.75})
    out = tmp_path / "cmp.json"
    assert main([str(a), str(b), "--method-a", "opro", "--out", str(out)]) == 0
    report = json.loads(out.read_text())
    assert (report["method_a"], report["method_b"], report["method"]) == ("opro", "fermi_rop", None)
    everyone = report["groups"]["all"]
    assert everyone["a"] == 0.5 and everyone["b"] == 0.875  # run A's OPRO, run B's Fermi+RoP
    assert everyone["b_minus_a"]["mean"] == pytest.approx(0.375)
    assert "A = a opro, B = b fermi_rop" in capsys.readouterr().out
