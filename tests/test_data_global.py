"""GlobalOpinionQA: countries as users answering with their majority option."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from langchain_fermi.data import (
    country_user_id,
    find_shared_data_dir,
    load_global_opinionqa,
    majority_index,
    opinion_id_for,
)

Q1 = "Is a four-day work week a good idea?"
Q2 = "How important is it to live near family?"
RECORDS = [
    {
        "country": "Atlantis",
        "question": Q1,
        "options": ["Yes", "No", "Don't know"],
        "distribution": [0.6, 0.3, 0.1],
    },
    {
        "country": "S. Freedonia (Non-national sample)",
        "question": Q1,
        "options": ["Yes", "No", "Don't know"],
        "distribution": [0.2, 0.7, 0.1],
    },
    {
        "country": "Atlantis",
        "question": Q2,
        "options": ["Not important", 1.0, 2.0, "Very important"],
        "distribution": [0.1, 0.4, 0.4, 0.1],
    },  # tie between "1" and "2": the first listed wins
    {
        "country": "Atlantis",
        "question": "All zero?",
        "options": ["a", "b"],
        "distribution": [0.0, 0.0],
    },  # no majority: skipped
]


@pytest.fixture
def eval_json(tmp_path: Path) -> Path:
    path = tmp_path / "eval.json"
    path.write_text(json.dumps(RECORDS), encoding="utf-8")
    return path


def test_countries_become_users(eval_json: Path) -> None:
    atlantis, freedonia = load_global_opinionqa(eval_json)
    assert atlantis.user_id == "atlantis" and atlantis.attributes == {"Country": "Atlantis"}
    assert freedonia.user_id == "s-freedonia-non-national-sample"
    assert [o.answer for o in atlantis.opinions] == ["Yes", "1"]
    assert atlantis.opinions[1].choices == ["Not important", "1", "2", "Very important"]
    assert freedonia.opinions[0].answer == "No"
    # the same item has the same id in every country
    assert (
        atlantis.opinions[0].id
        == freedonia.opinions[0].id
        == opinion_id_for(Q1, ["Yes", "No", "Don't know"])
    )
    assert atlantis.opinions[0].id != atlantis.opinions[1].id


def test_filters(eval_json: Path) -> None:
    assert [u.user_id for u in load_global_opinionqa(eval_json, min_opinions=2)] == ["atlantis"]
    by_name = load_global_opinionqa(eval_json, countries=["S. Freedonia (Non-national sample)"])
    by_id = load_global_opinionqa(eval_json, countries=["s-freedonia-non-national-sample"])
    assert by_name == by_id and len(by_name) == 1
    with pytest.raises(ValueError, match=r"unknown countries \['Narnia'\]"):
        load_global_opinionqa(eval_json, countries=["Narnia"])


def test_majority_tie_break() -> None:
    assert majority_index([0.2, 0.4, 0.4]) == 1
    assert majority_index([0.5, 0.1]) == 0
    assert majority_index([0.0, 0.0]) is None


def test_slug() -> None:
    assert country_user_id("Czech Rep.") == "czech-rep"
    assert country_user_id("Côte d'Ivoire") == "c-te-d-ivoire"
    assert country_user_id("???").startswith("country-")


def test_colliding_slugs_get_suffixes(tmp_path: Path) -> None:
    recs = [{**RECORDS[0], "country": name} for name in ("Czech Rep.", "czech rep", "CZECH-REP")]
    path = tmp_path / "e.json"
    path.write_text(json.dumps(recs))
    ids = [u.user_id for u in load_global_opinionqa(path)]
    assert ids == ["czech-rep", "czech-rep-2", "czech-rep-3"]


def test_bad_records(tmp_path: Path) -> None:
    path = tmp_path / "e.json"
    path.write_text(json.dumps([{**RECORDS[0], "distribution": [0.5, 0.5]}]))
    with pytest.raises(ValueError, match="record #0: country 'Atlantis': 3 options but 2 shares"):
        load_global_opinionqa(path)
    path.write_text(json.dumps([{**RECORDS[0], "options": ["Yes", "Yes", "No"]}]))
    with pytest.raises(ValueError, match=r"country 'Atlantis', opinion 'goqa-\w+': duplicate"):
        load_global_opinionqa(path)
    path.write_text(json.dumps([{"country": "Atlantis"}]))
    with pytest.raises(ValueError, match="record #0: expected keys"):
        load_global_opinionqa(path)


@pytest.mark.real_data
def test_real_global_opinionqa() -> None:
    data = find_shared_data_dir()
    path = data / "globalopinionqa" / "eval.json" if data else None
    if path is None or not path.exists():
        pytest.skip("GlobalOpinionQA eval.json not found (set FERMI_DATA_DIR or ../shared/data)")
    users = load_global_opinionqa(path)
    assert len(users) == 130
    assert len({u.user_id for u in users}) == 130
    assert sum(len(u.opinions) for u in users) == 4_624  # 4,633 records less 9 all-zero ones
    us = next(u for u in users if u.attributes["Country"] == "United States")
    assert us.user_id == "united-states" and len(us.opinions) >= 100
