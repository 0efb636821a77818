"""The README tables `benchmarks.report_tables` prints from a run's report."""

from __future__ import annotations

from typing import Any

from benchmarks.report_tables import restarts_table


def _user(
    uid: str, accs: dict[str, float], scores: list[float] | None, kept: int
) -> dict[str, Any]:
    fermi: dict[str, Any] = {"restart": kept}
    if scores is not None:
        fermi["search_scores"] = scores
    return {
        "user_id": uid,
        "methods": {m: {"accuracy": a} for m, a in accs.items()},
        "optimization": {"fermi": fermi},
    }


def test_restarts_table_lists_each_search_and_skips_missing_methods() -> None:
    accs = {"profile": 0.4, "fermi_rop_first_search": 0.5, "fermi_rop": 0.7, "hidden_prompt": 1.0}
    report = {
        "users": [
            _user("b-pessimist", accs, [0.75, 0.5, 0.25], 0),
            _user("a-optimist", {**accs, "fermi_rop": 0.9}, [0.5, 1.0, 0.75], 1),
        ]
    }
    lines = restarts_table(report).splitlines()
    assert lines[0].endswith("| profile | 1 search | restarts | hidden |")  # no OPRO column
    assert lines[2] == "| a-optimist | 1 | 0.50, 1.00, 0.75 | 0.40 | 0.50 | 0.90 | 1.00 |"
    assert lines[3].startswith("| b-pessimist | 0 | 0.75, 0.50, 0.25 |")


def test_restarts_table_is_empty_without_restarts() -> None:
    report = {"users": [_user("a", {"profile": 0.5}, None, 0)]}
    assert restarts_table(report) == ""
