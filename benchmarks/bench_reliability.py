"""Reliability figures (issue 11): bad input through the API and the CLI, and storage faults.

    python -m benchmarks.bench_reliability [--saves 200] [--skip-store]

1. **Bad input.** The two bad-input corpora — `tests/test_bad_input.py` (the API: loaders, types,
   store import, personalizer) and `tests/test_cli_errors.py` (the ``fermi`` command, in-process and
   in a subprocess) — are run under pytest with a small plugin that classifies every case:
   *clear error* (the case passed: the exact error type, a message fragment, one line, no
   traceback), *silent acceptance* (nothing was raised / exit code 0 where an error was due),
   *raw traceback* (a traceback reached the user), or *unclear* (any other failure).
2. **Storage faults.** `benchmarks.bench_reliability_store`'s scenarios: two writer processes,
   a failure injected at every write of a replace, and purge with a marker scan of every file.

Prints a table and writes ``benchmarks/results/reliability.json`` (no machine paths).
"""

from __future__ import annotations

import argparse
import json
import platform
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "benchmarks" / "results" / "reliability.json"
CORPORA = {"api": "tests/test_bad_input.py", "cli": "tests/test_cli_errors.py"}


class Classifier:
    """A pytest plugin that sorts each test outcome into the reliability categories."""

    def __init__(self) -> None:
        self.cases: list[dict[str, str]] = []

    @pytest.hookimpl(hookwrapper=True)
    def pytest_runtest_makereport(self, item: pytest.Item, call: pytest.CallInfo[None]) -> Any:
        outcome = yield
        report = outcome.get_result()
        if report.when != "call" and not (report.when == "setup" and report.failed):
            return
        self.cases.append({"id": item.nodeid, "outcome": _classify(report)})


def _classify(report: pytest.TestReport) -> str:
    if report.passed:
        return "clear_error"
    if report.skipped:
        return "skipped"
    text = str(report.longrepr)
    if "DID NOT RAISE" in text or "assert 0 ==" in text:
        return "silent_acceptance"
    if "Traceback (most recent call last)" in text:
        return "raw_traceback"
    return "unclear"


def bad_input() -> dict[str, Any]:
    """Run both corpora; counts per corpus and in total."""
    out: dict[str, Any] = {}
    for name, path in CORPORA.items():
        plugin = Classifier()
        started = time.perf_counter()
        pytest.main(
            ["-q", "-p", "no:cacheprovider", "--no-header", "-o", "addopts=", path], [plugin]
        )
        counts: dict[str, int] = {}
        for case in plugin.cases:
            counts[case["outcome"]] = counts.get(case["outcome"], 0) + 1
        out[name] = {
            "corpus": path,
            "cases": len(plugin.cases),
            "counts": counts,
            "not_clear": [c["id"] for c in plugin.cases if c["outcome"] != "clear_error"],
            "seconds": round(time.perf_counter() - started, 1),
        }
    out["total"] = {
        "cases": sum(v["cases"] for v in out.values()),
        **{
            key: sum(v["counts"].get(key, 0) for v in list(out.values()))
            for key in ("clear_error", "silent_acceptance", "raw_traceback", "unclear", "skipped")
        },
    }
    return out


def storage(saves: int) -> dict[str, Any]:
    """The storage fault scenarios, each in a fresh temporary folder."""
    from benchmarks import bench_reliability_store as faults

    with tempfile.TemporaryDirectory() as tmp:
        base = Path(tmp)
        return {
            "two_writers": faults.two_writers(base / "writers", saves),
            "replace_failure": faults.replace_failure_scenario(base / "replace"),
            "purge": faults.purge_scenario(base / "purge"),
        }


def _row(label: str, value: Any) -> str:
    return f"| {label:<52} | {value!s:>10} |"


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--saves", type=int, default=200, help="saves per writer process")
    parser.add_argument("--skip-store", action="store_true", help="bad-input corpora only")
    args = parser.parse_args(argv)
    report: dict[str, Any] = {
        "benchmark": "reliability",
        "date": time.strftime("%Y-%m-%d"),
        "python": platform.python_version(),
        "bad_input": bad_input(),
    }
    if not args.skip_store:
        report["storage"] = storage(args.saves)
    total = report["bad_input"]["total"]
    lines = [
        _row("bad-input checks run (API + CLI corpora)", total["cases"]),
        _row("clear errors", total["clear_error"]),
        _row("raw tracebacks", total["raw_traceback"]),
        _row("silent acceptances", total["silent_acceptance"]),
        _row("unclear", total["unclear"]),
    ]
    if "storage" in report:
        s = report["storage"]
        lines += [
            _row("users damaged by 2 writer processes", s["two_writers"]["damaged_users"]),
            _row("failed replaces that left a mixed user", s["replace_failure"]["mixed_users"]),
            _row("marker hits on disk after delete", s["purge"]["hit_count_after_delete"]),
            _row("marker hits on disk after purge", s["purge"]["hit_count_after_purge"]),
        ]
    print("| figure | value |\n|---|---|\n" + "\n".join(lines))
    RESULTS.parent.mkdir(parents=True, exist_ok=True)
    RESULTS.write_text(json.dumps(report, indent=2, default=str) + "\n", encoding="utf-8")
    print(f"wrote {RESULTS.relative_to(ROOT)}", file=sys.stderr)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
