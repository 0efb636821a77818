"""A tiny benchmark on two real Pew ATP W92 respondents with the embedded SmolLM2 model."""

from __future__ import annotations

import argparse
import json
import os
from pathlib import Path

import pytest

from langchain_fermi.cli.bench import add_arguments, config_from_args

DATA = Path(
    os.environ.get("FERMI_DATA_DIR")
    or Path(__file__).resolve().parents[1].parent / "shared" / "data"
)
W92 = DATA / "pew_atp_w92"


def _strip_prompts(user: dict) -> dict:
    """The per-user JSON without the learned prompts (which may quote what the optimizer saw)."""
    for rec in user["optimization"].values():
        rec["best_prompt"] = ""
        rec["memory"] = []
        rec["served"] = []
    return user


@pytest.mark.real_data
@pytest.mark.local_model
@pytest.mark.timeout(1800)
def test_tiny_real_benchmark(tmp_path: Path) -> None:
    if not W92.is_dir():
        pytest.skip(f"W92 data not found at {W92} (set FERMI_DATA_DIR)")
    pytest.importorskip("llama_cpp", reason="the local model needs langchain-fermi[local]")
    pytest.importorskip("pyreadstat", reason="the W92 loader needs langchain-fermi[data]")
    from langchain_fermi.data import load_pew_atp
    from langchain_fermi.evaluation.runner import run_benchmark

    args = add_arguments(argparse.ArgumentParser()).parse_args(
        [
            "--data-dir",
            str(DATA),
            "--max-users",
            "2",
            "--n-optimize",
            "5",
            "--n-test",
            "3",
            "-K",
            "1",
            "-L",
            "2",
            "-T",
            "1",
            "--naive-probe",
            "2",
            "--results-dir",
            str(tmp_path),
            "--run-name",
            "tiny",
            "--bootstrap-samples",
            "100",
        ]
    )
    config = config_from_args(args)
    report = run_benchmark(config, progress=False, console=None)

    assert report.n_users == 2 and report.leak_free and not report.failed_users
    assert {m.method for m in report.methods} == set(config.methods)
    for m in report.methods:
        assert 0.0 <= m.ci_low <= m.accuracy <= m.ci_high <= 1.0 and m.n_questions == 6
    assert set(report.curves) == {"fermi", "opro"}
    assert report.naive_call_seconds is not None and report.naive_call_seconds > 0
    # The real target (logit scoring) spent calls; the naive loop would have spent at least as many.
    total = next(c for c in report.costs if c.method == "total")
    assert 0 < total.actual.target_calls <= total.naive.target_calls
    # No question or option text from the survey is written outside the learned prompts.
    meta = DATA / "opinionqa_meta" / "American_Trends_Panel_W92"
    users = load_pew_atp(
        next(W92.glob("*.sav")), meta / "info.csv", user_ids=[r.user_id for r in report.users]
    )
    texts = {o.question for u in users for o in u.opinions}
    for path in (tmp_path / "tiny" / "users").glob("*.json"):
        body = json.dumps(_strip_prompts(json.loads(path.read_text())))
        assert not [t for t in texts if t in body], path
