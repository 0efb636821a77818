"""Pew ATP loader: a synthetic wave (W99, other question keys), and the real W92 when present."""

from __future__ import annotations

import statistics
import sys
import time
from pathlib import Path

import pytest

pd = pytest.importorskip("pandas")
pyreadstat = pytest.importorskip("pyreadstat")

from langchain_fermi.data import (  # noqa: E402
    PEW_DEMOGRAPHICS,
    PewLoadReport,
    detect_wave,
    find_shared_data_dir,
    find_wave_files,
    is_nonresponse,
    load_pew_atp,
)

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
        pytest.skip(
            "real W92 data not found: pew_atp_w92/ATP_W92.sav under $FERMI_DATA_DIR or "
            "../shared/data (third-party data, never committed)"
        )
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
    # W92's own columns are each attribute's first candidate; nothing is left out.
    report = users.report
    assert report.attribute_columns == {d.name: d.columns[0] for d in PEW_DEMOGRAPHICS.values()}
    assert report.missing_attributes == {} and report.skipped_questions == []
    assert report.n_users == len(users) and report.n_opinions == 721_604
    _, meta = pyreadstat.read_sav(str(sav), metadataonly=True)
    for name, col in report.attribute_columns.items():
        labels = set(meta.variable_value_labels[col].values()) - {"Refused"}
        values = [u.attributes[name] for u in users if name in u.attributes]
        assert len(values) > 0.9 * len(users), name
        assert set(values) <= labels, name
    for o in users[0].opinions:
        assert o.answer in o.choices and "Refused" not in o.choices
    # The folder form finds the same files (no W92 file names in the loader).
    files = find_wave_files(sav.parent, meta_dir)
    assert files == (sav, meta_dir / "info.csv", meta_dir / "metadata.csv")


# --- other waves: renamed columns, odd non-answer codes, folders (issue 11, item 7) ------------

OTHER_LABELS = {
    "F_IDEO_FINAL": {1.0: "Conservative", 2.0: "Moderate", 3.0: "Liberal", 9.0: "DK/Refused"},
    "F_AGECAT_RECRUITMENT": {1.0: "18-49", 2.0: "50+", 98.0: "Don’t know", -1.0: "Refused"},
    "f_party": {1.0: "Republican", 2.0: "Democrat", 77.0: "(VOL) Don't know"},
    "F_CREGION": {1.0: "North", 2.0: "South"},
    "IDEO_CUSTOM": {1.0: "Left", 2.0: "Right"},
    "HOBBY_W7": {1.0: "Reading", 2.0: "Sports", 9.0: "Refused"},
}
OTHER_INFO = [
    # non-answers with odd codes (8, 9) and a real option coded 99
    ("HOBBY_W7", "Which hobby?", {1.0: "Reading", 2.0: "Sports", 99.0: "Other", 9.0: "Refused"}),
    ("TEA_W7", "Tea or coffee?", {1.0: "Tea", 2.0: "Coffee", 8.0: "Don't know/Refused"}),
]
OTHER_COLUMNS = [
    "QKEY",
    "WEIGHT_W7",
    "F_IDEO_FINAL",
    "F_AGECAT_RECRUITMENT",
    "f_party",
    "F_CREGION",
    "F_GENDER",  # present but without value labels
    "IDEO_CUSTOM",
    "HOBBY_W7",
    "TEA_W7",
]
OTHER_ROWS = [
    (7001.0, 1.0, 1.0, 2.0, 2.0, 1.0, 1.0, 1.0, 99.0, 1.0),
    (7002.0, 1.0, 9.0, 98.0, 77.0, 2.0, 2.0, 2.0, 9.0, 8.0),  # every non-answer code
    (7003.0, 1.0, 3.0, -1.0, 1.0, 1.0, 1.0, 1.0, 2.0, 2.0),
]


def write_other_wave(folder: Path, name: str = "wave7.sav") -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    pyreadstat.write_sav(
        pd.DataFrame(OTHER_ROWS, columns=OTHER_COLUMNS),
        str(folder / name),
        variable_value_labels=OTHER_LABELS,
    )
    pd.DataFrame(
        {
            "key": [k for k, _, _ in OTHER_INFO],
            "question": [q for _, q, _ in OTHER_INFO],
            "option_mapping": [repr(m) for _, _, m in OTHER_INFO],
        }
    ).to_csv(folder / "info.csv", index=False)
    return folder


def test_renamed_columns_are_found_and_the_rest_reported(tmp_path: Path) -> None:
    users = load_pew_atp(write_other_wave(tmp_path / "w7"), min_opinions=0)  # a folder
    report = users.report
    assert isinstance(report, PewLoadReport) and report.wave == "W7"
    assert report.attribute_columns == {
        "Region": "F_CREGION",
        "Age": "F_AGECAT_RECRUITMENT",
        "Political party": "f_party",  # case-insensitive
        "Political ideology": "F_IDEO_FINAL",
    }
    assert report.missing_attributes["Gender"] == "F_GENDER has no value labels"
    assert report.missing_attributes["Income"].startswith("none of F_INC_SDT1, F_INC_SDT1_FINAL")
    assert set(report.missing_attributes) == {
        "Gender",
        "Education",
        "US citizen",
        "Marital status",
        "Religion",
        "Frequency of religious attendance",
        "Income",
        "Race",
    }
    assert "attribute 'Income' left out: none of F_INC_SDT1" in report.summary()
    u1, u2, u3 = users
    assert u1.attributes == {
        "Region": "North",
        "Age": "50+",
        "Political party": "Democrat",
        "Political ideology": "Conservative",
    }
    assert u2.attributes == {"Region": "South"}  # DK/Refused, Don't know, (VOL) Don't know
    assert "Age" not in u3.attributes  # -1 "Refused"


def test_nonanswers_are_recognised_by_label_whatever_the_code(tmp_path: Path) -> None:
    users = load_pew_atp(write_other_wave(tmp_path), min_opinions=0)
    u1, u2, u3 = users
    hobby = u1.opinion("HOBBY_W7")
    assert hobby.answer == "Other"  # code 99 is a real option here
    assert hobby.choices == ["Reading", "Sports", "Other"]
    assert u1.opinion("TEA_W7").choices == ["Tea", "Coffee"]
    assert u2.opinions == []  # 9 "Refused" and 8 "Don't know/Refused" both dropped
    assert [u.user_id for u in load_pew_atp(tmp_path)] == ["7001", "7003"]
    assert [o.answer for o in u3.opinions] == ["Sports", "Coffee"]
    nonresponse = users.report.nonresponse
    assert nonresponse["HOBBY_W7"] == {9.0: "Refused"}
    assert nonresponse["TEA_W7"] == {8.0: "Don't know/Refused"}
    assert nonresponse["F_IDEO_FINAL"] == {9.0: "DK/Refused"}
    assert nonresponse["F_AGECAT_RECRUITMENT"] == {98.0: "Don’t know", -1.0: "Refused"}


def test_demographics_mapping_overrides_adds_and_removes(tmp_path: Path) -> None:
    folder = write_other_wave(tmp_path)
    users = load_pew_atp(
        folder,
        demographics={
            "POLIDEOLOGY": "IDEO_CUSTOM",  # an OpinionQA key
            "Region": None,  # left out
            "Favourite hobby": ["NO_SUCH_COLUMN", "HOBBY_W7"],  # a new attribute
        },
        min_opinions=0,
    )
    report = users.report
    assert report.attribute_columns["Political ideology"] == "IDEO_CUSTOM"
    assert report.attribute_columns["Favourite hobby"] == "HOBBY_W7"
    assert "Region" not in report.attribute_columns and "Region" not in report.missing_attributes
    assert users[0].attributes["Political ideology"] == "Left"
    assert users[2].attributes["Favourite hobby"] == "Sports"
    assert "Favourite hobby" not in users[1].attributes  # 9 "Refused"
    assert "Favourite hobby" not in users[0].attributes  # 99 has no label in the .sav
    with pytest.raises(ValueError, match=r"demographics\['Age'\]: expected a column name"):
        load_pew_atp(folder, demographics={"Age": 3})


def test_metadata_csv_in_the_info_folder_is_used(tmp_path: Path) -> None:
    folder = write_other_wave(tmp_path)
    pd.DataFrame({"key": ["AGE"]}).to_csv(folder / "metadata.csv", index=False)
    users = load_pew_atp(folder)
    assert users.report.metadata_csv == folder / "metadata.csv"
    assert list(users.report.attribute_columns) == ["Age"] and not users.report.missing_attributes


def test_wave_files_from_folders(tmp_path: Path) -> None:
    (tmp_path / "sav").mkdir()
    sav, info = write_wave(tmp_path / "sav")
    meta = tmp_path / "meta"
    meta.mkdir()
    info.rename(meta / "info.csv")
    files = find_wave_files(tmp_path / "sav", meta)
    assert files == (sav, meta / "info.csv", None)
    assert len(load_pew_atp(tmp_path / "sav", meta)) == 4
    with pytest.raises(FileNotFoundError, match=r"no OpinionQA info\.csv for the wave"):
        load_pew_atp(tmp_path / "sav")
    (tmp_path / "sav" / "other.sav").write_bytes(b"")
    with pytest.raises(ValueError, match=r"expected exactly one \.sav file in the folder, found"):
        find_wave_files(tmp_path / "sav", meta)
    with pytest.raises(FileNotFoundError, match=r"no such \.sav file or folder"):
        find_wave_files(tmp_path / "nowhere", meta)


def test_unreadable_files_name_the_file(tmp_path: Path, wave: tuple[Path, Path]) -> None:
    sav, info = wave
    garbage = tmp_path / "garbage.sav"
    garbage.write_bytes(b"not an spss file at all")
    with pytest.raises(ValueError, match=r"garbage\.sav: not a readable SPSS \.sav file"):
        load_pew_atp(garbage, info)
    info.write_bytes(b"\xef\xbb\xbf" + info.read_bytes())  # a BOM (Excel)
    assert len(load_pew_atp(sav, info)) == 4
    info.write_bytes(info.read_bytes()[3:].replace(b"Which pet", b"Which p\xe9t"))
    with pytest.raises(ValueError, match=r"info\.csv:\d+:\d+: not UTF-8 text \(byte 0xe9"):
        load_pew_atp(sav, info)


@pytest.mark.parametrize(
    ("label", "expected"),
    [
        ("Refused", True),
        ("DK/Ref", True),
        ("DK/Refused/No lean", True),
        ("Don’t know", True),
        ("(VOL) Don't know", True),
        ("Refused either F_IDEO or F_PARTYSUM_FINAL", True),
        ("Prefer not to say", True),
        ("Not sure", False),  # an offered option
        ("No lean", False),
        ("Other", False),
    ],
)
def test_is_nonresponse(label: str, expected: bool) -> None:
    assert is_nonresponse(label) is expected


def test_bench_takes_the_waves_folder(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """`fermi bench --wave-dir/--wave-meta`: another wave's folders, no W92 names needed."""
    from langchain_fermi.cli.bench import add_arguments, config_from_args
    from langchain_fermi.evaluation.datasets import load_bench_users

    folder = tmp_path / "some_wave"
    folder.mkdir()
    write_wave(folder)
    parser = add_arguments(__import__("argparse").ArgumentParser())
    args = parser.parse_args(
        [
            *("--data-dir", str(tmp_path), "--wave-dir", str(folder)),
            *("--wave-meta", str(folder), "--n-optimize", "2", "--n-test", "1"),
        ]
    )
    config = config_from_args(args)
    assert config.wave_dir == folder
    with caplog.at_level("INFO"):
        users = load_bench_users(config)
    assert [u.user_id for u in users] == ["5001"]  # the one respondent with 3 answers
    assert any("ATP W99.sav (W99)" in r.getMessage() for r in caplog.records)  # load report shown
