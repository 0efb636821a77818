"""Redact survey text and respondents' profiles from learned prompts in an existing run's JSON.

Runs made before `langchain_fermi.evaluation.redact` existed may hold prompts in which the
optimizer copied a survey question, and runs made before `redact_profile` was applied hold the
profile prompt's attribute lines (a real respondent's region, age, income, ... next to their id).
This rewrites ``users/*.json`` and ``report.json`` in place: every string under a
``best_prompt`` or ``text`` key is redacted against all OpinionQA questions of the wave, and
its profile block (the attribute lines after the profile prompt's first line) is replaced by
the marker (the data stays evaluation-only: nothing from it is written). Prose the optimizer
wrote about the person is left as it is.

    python -m benchmarks.redact_results benchmarks/results/<run> [--data-dir DIR]
"""

from __future__ import annotations

import argparse
import csv
import json
import re
from pathlib import Path
from typing import Any

from langchain_fermi.data import find_shared_data_dir
from langchain_fermi.data.pew_columns import PEW_DEMOGRAPHICS
from langchain_fermi.evaluation.redact import PROFILE_REDACTED, redact_survey_text
from langchain_fermi.questions import PROFILE_PROMPT

HEAD = PROFILE_PROMPT.partition("{profile}")[0]  # the profile prompt's first line
_KEYS = "|".join(re.escape(d.name) for d in PEW_DEMOGRAPHICS.values())
_PROFILE_BLOCK = re.compile(re.escape(HEAD) + rf"(?:(?:{_KEYS}): [^\n]*(?:\n|$))+")


_INLINE = re.compile(rf"\b({_KEYS}): (?:[^,\n]|,\d)*?(?=,\s|\n|\.\s|\.$|$)")


def redact_profile_block(text: str) -> str:
    """``text`` with the profile prompt's attribute lines replaced by the marker, and any other
    ``Attribute: value`` (an optimizer's one-line copy of the profile) by ``Attribute: ...``."""
    return _INLINE.sub(r"\1: ...", _PROFILE_BLOCK.sub(HEAD + PROFILE_REDACTED + "\n", text))


def _walk(node: Any, questions: list[str]) -> int:
    changed = 0
    if isinstance(node, dict):
        for key, value in node.items():
            if key in ("best_prompt", "text") and isinstance(value, str):
                new = redact_survey_text(redact_profile_block(value), questions)
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
