"""Pew ATP loader: a synthetic wave (W99, other question keys), and the real W92 when present."""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import pytest

pd = pytest.importorskip("pandas")
pyreadstat = pytest.importorskip("pyreadstat")

from langchain_fermi.data import PEW_DEMOGRAPHICS, detect_wave, find_shared_data_dir, load_pew_atp  # noqa: E402

NAN = float("nan")

# Our own invented items, laid out like OpinionQA's info.csv for W92.
INFO = [
    (
        "PETS_W99",
        "Which pet would you rather have?",
        {1.0: "A dog", 2.0: "A cat", 3.0: "No pet", 99.0: "Refused"},
    ),
    (
        "COMMUTE_W99",
        "How do you usually get to work?",
        {2.0: "Public transit", 1.0: "Car", 3.0: "Bike or walk", 99.0: "Refused"},
    ),  # unsorted codes
    (
        "FORM_B_W99",
        "Asked of form B only: do you like rainy days?",
        {1.0: "Yes", 2.0: "No", 99.0: "Refused"},
    ),
    ("NOT_IN_SAV_W99", "A question this wave did not ask", {1.0: "Yes", 2.0: "No"}),
]

SAV_LABELS = {  # the .sav's own labels: different typography, like 9 of W92's questions
    "PETS_W99": {1.0: "a DOG", 2.0: "a CAT", 3.0: "no pet", 99.0: "Refused"},
    "F_AGECAT": {1.0: "18-29", 2.0: "30-49", 3.0: "50-64", 4.0: "65+", 99.0: "Refused"},
    "F_CREGION": {1.0: "Northeast", 2.0: "Midwest", 3.0: "South", 4.0: "West"},
    "F_IDEO": {1.0: "Very conservative", 3.0: "Moderate", 5.0: "Very liberal", 99.0: "Refused"},
}

ROWS = [  # QKEY, WEIGHT_W99, F_AGECAT, F_CREGION, F_IDEO, PETS, COMMUTE, FORM_B
    (5001.0, 1.2, 1.0, 4.0, 5.0, 1.0, 2.0, 1.0),
    (5002.0, 0.8, 99.0, 3.0, 1.0, 99.0, 1.0, NAN),  # refused age and pets, form A
    (5003.0, NAN, 2.0, 1.0, 3.0, 2.0, 3.0, 2.0),  # not a W99 respondent
    (5004.0, 1.0, 4.0, 2.0, 99.0, 3.0, 99.0, NAN),  # only one answer left
    (5005.0, 0.5, 3.0, 1.0, 3.0, 2.0, 3.0, NAN),
]


def write_wave(
    folder: Path, name: str = "ATP W99.sav", rows: list[tuple] = ROWS
) -> tuple[Path, Path]:
    cols = [
        "QKEY",
        "WEIGHT_W99",
        "F_AGECAT",
        "F_CREGION",
        "F_IDEO",
        "PETS_W99",
        "COMMUTE_W99",
        "FORM_B_W99",
    ]
    sav = folder / name
    pyreadstat.write_sav(
        pd.DataFrame(rows, columns=cols), str(sav), variable_value_labels=SAV_LABELS
    )
    info = folder / "info.csv"
    pd.DataFrame(
        {
            "key": [k for k, _, _ in INFO],
            "option_mapping": [repr(m) for _, _, m in INFO],
            "question": [q for _, q, _ in INFO],
            "references": [repr(list(m.values())) for _, _, m in INFO],
        }
    ).to_csv(info)
    return sav, info


@pytest.fixture
def wave(tmp_path: Path) -> tuple[Path, Path]:
    return write_wave(tmp_path)


def test_synthetic_wave_loads(wave: tuple[Path, Path]) -> None:
    users = load_pew_atp(*wave)
    assert [u.user_id for u in users] == ["5001", "5002", "5004", "5005"]  # 5003: no weight
    u1 = users[0]
    assert u1.attributes == {"Age": "18-29", "Region": "West", "Political ideology": "Very liberal"}
    assert [o.id for o in u1.opinions] == ["PETS_W99", "COMMUTE_W99", "FORM_B_W99"]
    pets, commute, form_b = u1.opinions
    assert pets.answer == "A dog"  # info.csv's label, not the .sav's "a DOG"
    assert pets.choices == ["A dog", "A cat", "No pet"]  # Refused is not a choice
    assert pets.question == "Which pet would you rather have?"
    assert commute.choices == ["Public transit", "Car", "Bike or walk"]  # the mapping's order
    assert commute.answer == "Public transit"
    assert form_b.answer == "Yes"


def test_refused_and_not_asked_are_dropped(wave: tuple[Path, Path]) -> None:
    users = {u.user_id: u for u in load_pew_atp(*wave)}
    u2 = users["5002"]
    assert [o.id for o in u2.opinions] == ["COMMUTE_W99"]  # pets refused, form B not asked
    assert "Age" not in u2.attributes  # demographic Refused left out
    assert u2.attributes == {"Region": "South", "Political ideology": "Very conservative"}
    assert "Political ideology" not in users["5004"].attributes
    assert all(o.answer != "Refused" for u in users.values() for o in u.opinions)


def test_min_opinions_max_users_user_ids(wave: tuple[Path, Path]) -> None:
    assert [u.user_id for u in load_pew_atp(*wave, min_opinions=2)] == ["5001", "5005"]
    assert [u.user_id for u in load_pew_atp(*wave, min_opinions=3)] == ["5001"]
    assert [u.user_id for u in load_pew_atp(*wave, max_users=2)] == ["5001", "5002"]
    picked = load_pew_atp(*wave, user_ids=[5005, "5002", "5003", "9999"])
    assert [u.user_id for u in picked] == ["5002", "5005"]  # 5003 is not a respondent


def test_metadata_csv_limits_attributes(tmp_path: Path, wave: tuple[Path, Path]) -> None:
    meta = tmp_path / "metadata.csv"
    pd.DataFrame({"key": ["AGE", "CREGION"], "options": ["[]", "[]"]}).to_csv(meta)
    users = load_pew_atp(*wave, meta)
    assert set(users[0].attributes) == {"Age", "Region"}


def test_wave_detection(tmp_path: Path) -> None:
    sav, info = write_wave(tmp_path, name="panel.sav")  # no wave in the name: from WEIGHT_W99
    assert [u.user_id for u in load_pew_atp(sav, info)][:1] == ["5001"]
    assert detect_wave("ATP W99.sav", ["QKEY", "WEIGHT_W98", "WEIGHT_W99"]) == "W99"
    with pytest.raises(ValueError, match="cannot tell the wave"):
        detect_wave("panel.sav", ["QKEY", "WEIGHT_W98", "WEIGHT_W99"])
    with pytest.raises(ValueError, match="no 'WEIGHT_W92' column"):
        load_pew_atp(sav, info, wave=92)
    with pytest.raises(ValueError, match="wave must look like 'W92'"):
        load_pew_atp(sav, info, wave="wave ninety")


def test_unknown_answer_code_names_user_and_question(tmp_path: Path) -> None:
    rows = [*ROWS[:1], (5006.0, 1.0, 1.0, 1.0, 1.0, 7.0, 1.0, 1.0)]
    sav, info = write_wave(tmp_path, rows=rows)
    with pytest.raises(ValueError, match=r"user '5006', opinion 'PETS_W99': answer code 7\.0"):
        load_pew_atp(sav, info)


def test_bad_info_csv(tmp_path: Path, wave: tuple[Path, Path]) -> None:
    sav, _ = wave
    bad = tmp_path / "bad.csv"
    pd.DataFrame(
        {"key": ["PETS_W99"], "question": ["Pets?"], "option_mapping": ["{1.0: 'Dog', 2.0: 'Dog'}"]}
    ).to_csv(bad)
    with pytest.raises(ValueError, match=r"question 'PETS_W99': duplicate choices \['Dog'\]"):
        load_pew_atp(sav, bad)
    pd.DataFrame(
        {"key": ["PETS_W99"], "question": ["Pets?"], "option_mapping": ["not a dict"]}
    ).to_csv(bad)
    with pytest.raises(ValueError, match="option_mapping is not a Python dict literal"):
        load_pew_atp(sav, bad)
    pd.DataFrame({"key": ["PETS_W99"], "question": ["Pets?"]}).to_csv(bad)
    with pytest.raises(ValueError, match=r"missing column\(s\) \['option_mapping'\]"):
        load_pew_atp(sav, bad)


def test_missing_extra_says_what_to_install(
    monkeypatch: pytest.MonkeyPatch, wave: tuple[Path, Path]
) -> None:
    monkeypatch.setitem(sys.modules, "pyreadstat", None)  # makes `import pyreadstat` fail
    with pytest.raises(ImportError, match=r"pip install 'langchain-fermi\[data\]'"):
        load_pew_atp(*wave)


# --- the real W92 -----------------------------------------------------------------------------


@pytest.mark.real_data
def test_real_w92_loads_fast() -> None:
    data = find_shared_data_dir()
    sav = data / "pew_atp_w92" / "ATP_W92.sav" if data else None
    if sav is None or not sav.exists():
        pytest.skip("real W92 data not found (set FERMI_DATA_DIR or provide ../shared/data)")
    meta_dir = data / "opinionqa_meta" / "American_Trends_Panel_W92"
    start = time.perf_counter()
    users = load_pew_atp(sav, meta_dir / "info.csv", meta_dir / "metadata.csv")
    seconds = time.perf_counter() - start
    print(
        f"\nW92: {len(users)} users, {sum(len(u.opinions) for u in users)} opinions "
        f"in {seconds:.2f} s"
    )
    assert len(users) == 10_221
    assert seconds < 30
    counts = [len(u.opinions) for u in users]
    assert 70 <= statistics.median(counts) <= 72 and min(counts) >= 1
    _, meta = pyreadstat.read_sav(str(sav), metadataonly=True)
    names = {name: col for name, col in PEW_DEMOGRAPHICS.values()}
    for name, col in names.items():
        labels = set(meta.variable_value_labels[col].values()) - {"Refused"}
        values = [u.attributes[name] for u in users if name in u.attributes]
        assert len(values) > 0.9 * len(users), name
        assert set(values) <= labels, name
    for o in users[0].opinions:
        assert o.answer in o.choices and "Refused" not in o.choices
