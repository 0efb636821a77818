"""Redact survey text from learned prompts in an existing benchmark run's JSON files.

Runs made before `langchain_fermi.evaluation.redact` existed may hold prompts in which the
optimizer copied a survey question. This rewrites ``users/*.json`` and ``report.json`` in place,
redacting every string under a ``best_prompt`` or ``text`` key against all OpinionQA questions
of the wave (the data stays evaluation-only: nothing from it is written).

    python -m benchmarks.redact_results benchmarks/results/<run> [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import csv
import json
from pathlib import Path
from typing import Any

from langchain_fermi.data import find_shared_data_dir
from langchain_fermi.evaluation.redact import redact_survey_text


def _walk(node: Any, questions: list[str]) -> int:
    changed = 0
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("best_prompt", "text") and isinstance(value, str):
                new = redact_survey_text(value, questions)
                if new != value:
                    node[key] = new
                    changed += 1
            else:
                changed += _walk(value, questions)
    elif isinstance(node, list):
        changed += sum(_walk(item, questions) for item in node)
    return changed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--data-dir", type=Path, default=None)
    args = parser.parse_args()
    data = args.data_dir or find_shared_data_dir()
    if data is None:
        raise SystemExit("no evaluation data found: pass --data-dir")
    info = data / "opinionqa_meta" / "American_Trends_Panel_W92" / "info.csv"
    with info.open(newline="") as f:
        questions = [row["question"] for row in csv.DictReader(f)]
    files = [*sorted((args.run_dir / "users").glob("*.json")), args.run_dir / "report.json"]
    for path in files:
        if not path.is_file():
            continue
        doc = json.loads(path.read_text())
        n = _walk(doc, questions)
        if n:
            path.write_text(json.dumps(doc, indent=1, ensure_ascii=False) + "\n")
            print(f"{path}: {n} prompt(s) redacted")


if __name__ == "__main__":
    main()
