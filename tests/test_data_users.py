"""JSON / JSON Lines / CSV user files: round-trips, errors with file and line, the example files."""

from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest

from langchain_fermi.data import CSV_COLUMNS, load_users, save_users
from langchain_fermi.types import Opinion, UserProfile

EXAMPLES = Path(__file__).resolve().parents[1] / "examples" / "data"


def make_users() -> list[UserProfile]:
    q = "Should cities build more bike lanes, even if it means fewer parking spaces?"
    return [
        UserProfile(
            user_id="alice",
            attributes={"Age": "30-49", "Note": 'says "it depends" | often'},
            opinions=[
                Opinion(
                    id="bikes",
                    question=q,
                    choices=["Yes", "No", "Not sure"],
                    answer="Yes",
                    topic="city",
                ),
                Opinion(
                    id="pipes",
                    question="Pick one, with a comma, please",
                    choices=["a|b", "c, d", "ünïcode"],
                    answer="c, d",
                ),
            ],
        ),
        UserProfile(
            user_id="bob",
            attributes={"Age": "65+"},
            opinions=[
                Opinion(id="bikes", question=q, choices=["Yes", "No", "Not sure"], answer="No"),
            ],
        ),
        UserProfile(user_id="carol"),  # no attributes, no opinions
    ]


@pytest.mark.parametrize("suffix", [".json", ".jsonl", ".csv"])
def test_round_trip(tmp_path: Path, suffix: str) -> None:
    users = make_users()
    path = save_users(users, tmp_path / "sub" / f"users{suffix}")
    assert path.exists()
    assert load_users(path) == users


@pytest.mark.parametrize("fmt", ["json", "jsonl", "csv"])
def test_format_override(tmp_path: Path, fmt: str) -> None:
    path = tmp_path / "users.txt"
    save_users(make_users(), path, format=fmt)
    assert load_users(path, format=fmt) == make_users()
    with pytest.raises(ValueError, match=r"cannot tell the format from the extension '\.txt'"):
        load_users(path)


def test_unknown_format_name(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="unknown format 'xml'"):
        load_users(tmp_path / "u.json", format="xml")  # type: ignore[arg-type]


def test_json_accepts_users_key_and_single_user(tmp_path: Path) -> None:
    dumped = [u.model_dump() for u in make_users()]
    (tmp_path / "wrapped.json").write_text(json.dumps({"users": dumped}))
    (tmp_path / "single.json").write_text(json.dumps(dumped[0]))
    assert load_users(tmp_path / "wrapped.json") == make_users()
    assert load_users(tmp_path / "single.json") == make_users()[:1]


def test_csv_is_long_format_with_attr_columns(tmp_path: Path) -> None:
    path = save_users(make_users(), tmp_path / "u.csv")
    with path.open(newline="", encoding="utf-8") as f:
        rows = list(csv.DictReader(f))
    assert list(rows[0])[: len(CSV_COLUMNS)] == list(CSV_COLUMNS)
    assert [r["user_id"] for r in rows] == ["alice", "alice", "bob", "carol"]
    assert rows[0]["attr.Age"] == "30-49"
    assert json.loads(rows[1]["choices"]) == ["a|b", "c, d", "ünïcode"]
    assert rows[3]["opinion_id"] == "" and rows[3]["attr.Age"] == ""


def write_csv(path: Path, header: list[str], *rows: list[str]) -> Path:
    with path.open("w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(header)
        w.writerows(rows)
    return path


HEADER = ["user_id", "opinion_id", "question", "choices", "answer", "topic", "attr.Age"]


def test_csv_pipe_choices_and_non_adjacent_rows(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "u.csv",
        HEADER,
        ["u1", "q1", "Cats or dogs?", "Cats | Dogs|Neither", "Dogs", "pets", "18-29"],
        ["u2", "q1", "Cats or dogs?", "Cats|Dogs|Neither", "Cats", "", ""],
        ["u1", "q2", "Tea?", '["Yes", "No"]', "No", "", ""],
    )
    u1, u2 = load_users(path)
    assert u1.user_id == "u1" and [o.id for o in u1.opinions] == ["q1", "q2"]
    assert u1.opinions[0].choices == ["Cats", "Dogs", "Neither"]
    assert u1.opinions[0].topic == "pets" and u1.opinions[1].topic is None
    assert u1.attributes == {"Age": "18-29"} and u2.attributes == {}


@pytest.mark.parametrize(
    ("row", "expected"),
    [
        (
            ["u1", "q2", "Tea?", "Yes|No", "Maybe", "", ""],
            "line 3: user 'u1', opinion 'q2': answer 'Maybe' is not one of the choices",
        ),
        (
            ["u1", "q2", "Tea?", "Yes", "Yes", "", ""],
            "line 3: user 'u1', opinion 'q2': needs at least 2 choices, got 1",
        ),
        (
            ["u1", "q2", "Tea?", "Yes|No|Yes", "Yes", "", ""],
            "line 3: user 'u1', opinion 'q2': duplicate choices ['Yes']",
        ),
        (
            ["u1", "q2", "", "Yes|No", "Yes", "", ""],
            "line 3: user 'u1', opinion 'q2': empty question",
        ),
        (
            ["u1", "q1", "Tea?", "Yes|No", "Yes", "", ""],
            "line 3: user 'u1': duplicate opinion id 'q1' (first on line 2)",
        ),
        (
            ["u1", "q2", "Tea?", '["Yes", "No"', "Yes", "", ""],
            "line 3: user 'u1', opinion 'q2': choices look like a JSON list but do not parse",
        ),
        (
            ["u1", "q2", "Tea?", "Yes|No", "Yes", "", "65+"],
            "line 3: user 'u1': attribute 'Age' is '65+' here but '18-29' on line 2",
        ),
        (
            ["../x", "q2", "Tea?", "Yes|No", "Yes", "", ""],
            "line 3: user '../x', opinion 'q2': unsafe user id '../x'",
        ),
        (
            ["a b", "q2", "Tea?", "Yes|No", "Yes", "", ""],
            "line 3: user 'a b', opinion 'q2': unsafe user id 'a b'",
        ),
        (
            ["", "q2", "Tea?", "Yes|No", "Yes", "", ""],
            "line 3: user '', opinion 'q2': user id must be a non-empty string",
        ),
    ],
)
def test_csv_errors_name_line_user_and_opinion(
    tmp_path: Path, row: list[str], expected: str
) -> None:
    path = write_csv(
        tmp_path / "u.csv", HEADER, ["u1", "q1", "Cats?", "Yes|No", "Yes", "", "18-29"], row
    )
    with pytest.raises(ValueError) as err:
        load_users(path)
    assert str(err.value).startswith(str(path))
    assert expected in str(err.value)


def test_csv_line_numbers_count_multiline_cells(tmp_path: Path) -> None:
    path = write_csv(
        tmp_path / "u.csv",
        HEADER,
        ["u1", "q1", "A question\nover two lines?", "Yes|No", "Yes", "", ""],
        ["u1", "q2", "Tea?", "Yes|No", "Maybe", "", ""],
    )
    with pytest.raises(ValueError, match="line 4: user 'u1', opinion 'q2'"):
        load_users(path)


def test_csv_header_problems(tmp_path: Path) -> None:
    missing = write_csv(tmp_path / "m.csv", ["user_id", "question", "choices", "answer"])
    with pytest.raises(ValueError, match=r"missing CSV column\(s\) \['opinion_id'\]"):
        load_users(missing)
    typo = write_csv(tmp_path / "t.csv", [*HEADER, "atr.Income"])
    with pytest.raises(ValueError, match=r"unknown CSV column\(s\) \['atr.Income'\]"):
        load_users(typo)


def dump(path: Path, users: list[dict]) -> Path:
    path.write_text(json.dumps(users), encoding="utf-8")
    return path


GOOD = {"id": "q1", "question": "Tea?", "choices": ["Yes", "No"], "answer": "Yes"}


@pytest.mark.parametrize(
    ("bad_user", "expected"),
    [
        (
            {"user_id": "bob", "opinions": [{**GOOD, "answer": "Maybe"}]},
            "user #1: user 'bob', opinion 'q1': answer 'Maybe' is not one of the choices",
        ),
        (
            {"user_id": "bob", "opinions": [{**GOOD, "choices": ["Yes"]}]},
            "user #1: user 'bob', opinion 'q1': needs at least 2 choices",
        ),
        (
            {"user_id": "bob", "opinions": [{**GOOD, "choices": ["Yes", "Yes", "No"]}]},
            "user #1: user 'bob', opinion 'q1': duplicate choices ['Yes']",
        ),
        (
            {"user_id": "bob", "opinions": [{**GOOD, "question": ""}]},
            "user #1: user 'bob', opinion 'q1': empty question",
        ),
        (
            {"user_id": "bob", "opinions": [GOOD, GOOD]},
            "user #1: user 'bob': duplicate opinion id 'q1'",
        ),
        ({"user_id": "../x", "opinions": [GOOD]}, "user #1: unsafe user id '../x'"),
        ({"user_id": "a b", "opinions": [GOOD]}, "user #1: unsafe user id 'a b'"),
        ({"user_id": "", "opinions": [GOOD]}, "user #1: user id must be a non-empty string"),
        (
            {"user_id": "bob", "opinons": [GOOD]},
            "user #1: user 'bob': unknown user field(s) ['opinons']",
        ),
        (
            {"user_id": "bob", "opinions": [{**GOOD, "answr": "Yes"}]},
            "user #1: user 'bob', opinion 'q1': unknown opinion field(s) ['answr']",
        ),
        (
            {"user_id": "bob", "opinions": [{k: v for k, v in GOOD.items() if k != "answer"}]},
            "user #1: user 'bob', opinion 'q1': answer: Field required",
        ),
        ({"user_id": "alice"}, "duplicate user id 'alice'"),
    ],
)
def test_json_errors_name_user_and_opinion(tmp_path: Path, bad_user: dict, expected: str) -> None:
    path = dump(tmp_path / "u.json", [{"user_id": "alice", "opinions": [GOOD]}, bad_user])
    with pytest.raises(ValueError) as err:
        load_users(path)
    assert str(err.value).startswith(str(path))
    assert expected in str(err.value)


def test_jsonl_errors_give_the_line(tmp_path: Path) -> None:
    path = tmp_path / "u.jsonl"
    lines = [
        json.dumps({"user_id": "alice", "opinions": [GOOD]}),
        "",
        json.dumps({"user_id": "bob", "opinions": [{**GOOD, "answer": "No way"}]}),
    ]
    path.write_text("\n".join(lines) + "\n")
    with pytest.raises(ValueError, match="line 3: user 'bob', opinion 'q1': answer 'No way'"):
        load_users(path)
    path.write_text(lines[0] + "\n{not json\n")
    with pytest.raises(ValueError, match=r"u\.jsonl:2:2: invalid JSON: Expecting property name"):
        load_users(path)


def test_json_top_level_must_be_users(tmp_path: Path) -> None:
    (tmp_path / "u.json").write_text('{"people": []}')
    with pytest.raises(ValueError, match="expected a list of users"):
        load_users(tmp_path / "u.json")
    (tmp_path / "u.json").write_text('["alice"]')
    with pytest.raises(ValueError, match="user #0: expected a JSON object for a user, got str"):
        load_users(tmp_path / "u.json")


def test_save_rejects_duplicate_users(tmp_path: Path) -> None:
    u = make_users()[0]
    with pytest.raises(ValueError, match="duplicate user id 'alice'"):
        save_users([u, u], tmp_path / "u.json")


# --- the example files ------------------------------------------------------------------------


def test_example_users_json_shape() -> None:
    users = load_users(EXAMPLES / "users.json")
    assert [u.user_id for u in users] == [
        "maya-chen",
        "walter-briggs",
        "dana-ortiz",
        "grace-okafor",
    ]
    for u in users:
        assert 26 <= len(u.opinions) <= 30, u.user_id
        assert {"Age", "Political ideology", "Religion"} <= set(u.attributes)
        for o in u.opinions:
            assert 3 <= len(o.choices) <= 5 and o.topic
    topics = {o.topic for u in users for o in u.opinions}
    assert {"climate", "guns", "economy", "tech", "religion", "family"} <= topics
    # distinct personas: any two users disagree on a good share of the questions they share
    for i, a in enumerate(users):
        for b in users[i + 1 :]:
            shared = {o.id for o in a.opinions} & {o.id for o in b.opinions}
            differ = sum(a.opinion(q).answer != b.opinion(q).answer for q in shared)
            assert differ >= len(shared) // 4, (a.user_id, b.user_id)


def test_example_users_are_consistent_with_personas() -> None:
    users = {u.user_id: u for u in load_users(EXAMPLES / "users.json")}
    assert users["maya-chen"].opinion("climate_priority").answer == "Top priority"
    assert users["walter-briggs"].opinion("guns_laws").answer == "Made less strict"
    assert users["grace-okafor"].opinion("rel_importance").answer == "Very important"
    assert users["dana-ortiz"].attributes["Political ideology"] == "Moderate"


def test_example_csv_matches_json() -> None:
    assert load_users(EXAMPLES / "users.csv") == load_users(EXAMPLES / "users.json")


# --- byte-order marks, encodings and syntax errors (issue 11, item 4) ----------------------------


@pytest.mark.parametrize("suffix", [".json", ".jsonl", ".csv"])
@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16"])  # Excel: UTF-8 BOM, "Unicode text"
def test_files_with_a_byte_order_mark_load(tmp_path: Path, suffix: str, encoding: str) -> None:
    users = make_users()
    plain = save_users(users, tmp_path / f"plain{suffix}")
    marked = tmp_path / f"marked{suffix}"
    marked.write_bytes(plain.read_text(encoding="utf-8").encode(encoding))
    assert marked.read_bytes()[:2] in (b"\xef\xbb", b"\xff\xfe", b"\xfe\xff")
    assert load_users(marked) == users


@pytest.mark.parametrize("suffix", [".json", ".jsonl", ".csv"])
def test_encoding_errors_name_file_line_and_offset(tmp_path: Path, suffix: str) -> None:
    plain = save_users(make_users(), tmp_path / f"plain{suffix}")
    text = plain.read_text(encoding="utf-8")
    latin = tmp_path / f"latin1{suffix}"
    latin.write_bytes(text.encode("latin-1", errors="replace"))  # "ü" -> a lone 0xfc byte
    offset = latin.read_bytes().index(b"\xfc")
    line = latin.read_bytes()[:offset].count(b"\n") + 1
    with pytest.raises(ValueError) as err:
        load_users(latin)
    message = str(err.value)
    assert message.startswith(f"{latin}:{line}:")
    assert f"not UTF-8 text (byte 0xfc at offset {offset}" in message
    assert "save the file as UTF-8" in message


def test_json_syntax_error_names_file_line_and_column(tmp_path: Path) -> None:
    path = tmp_path / "u.json"
    path.write_text('[\n  {"user_id": "alice",\n   "opinions": [}\n]\n')
    with pytest.raises(ValueError, match=r"u\.json:3:17: invalid JSON: Expecting value"):
        load_users(path)


FIVE_COLUMNS = "user_id,opinion_id,question,choices,answer\n"


@pytest.mark.parametrize(
    ("body", "expected"),
    [
        # a quote never closed: the file ends inside it
        (
            'alice,q1,Car?,Yes|No,Yes\nbob,q1,"Car?,Yes|No,No\nbob,q2,Bus?,Yes|No,No\n',
            ":3: a quoted",
        ),
        # a quote closed much later swallows whole rows into one cell
        (
            'alice,q1,"Car?,Yes|No,Yes\nbob,q1,Bus?,Yes|No,No\nbob,q2,x",Yes|No,No\n',
            ":2: unbalanced",
        ),
        # text after a closing quote
        ('alice,q1,Car?,Yes|No,Yes\nbob,q1,"Car"?,Yes|No,No\n', ":3: bad CSV quoting"),
    ],
)
def test_broken_csv_quote_is_reported_where_it_is(tmp_path: Path, body: str, expected: str) -> None:
    path = tmp_path / "u.csv"
    path.write_text(FIVE_COLUMNS + body)
    with pytest.raises(ValueError) as err:
        load_users(path)
    assert f"u.csv{expected}" in str(err.value)


def test_empty_csv_names_the_header(tmp_path: Path) -> None:
    path = tmp_path / "u.csv"
    path.write_text("")
    with pytest.raises(ValueError, match=r"empty CSV file; the header needs \['user_id'"):
        load_users(path)


def test_null_attributes_are_dropped_in_json(tmp_path: Path) -> None:
    path = tmp_path / "u.json"
    path.write_text(json.dumps([{"user_id": "alice", "attributes": {"Age": None, "X": "1"}}]))
    assert load_users(path)[0].attributes == {"X": "1"}


def test_user_id_with_trailing_newline_is_rejected_in_json(tmp_path: Path) -> None:
    path = tmp_path / "u.json"
    path.write_text(json.dumps([{"user_id": "alice"}, {"user_id": "alice\n"}]))
    with pytest.raises(
        ValueError, match=r"user #1: unsafe user id 'alice\\n': leading or trailing"
    ):
        load_users(path)
