"""Bad input through the API (issue 11, items 4 and 7): one table, one clear error per case.

Each case names the exact exception type and a fragment of its one-line message; none may be a
pydantic dump or a bare ``IndexError`` / ``KeyError`` / ``UnicodeDecodeError``. A user saved in a
store before the corpus is byte-identical in an export afterwards: no bad input reaches it.
The CLI and the store have their own tables (tests/test_cli_*.py, tests/test_store*.py).
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any, NamedTuple

import pytest
from fermi_store_fakes import KeywordEmbeddings
from pydantic import ValidationError

from langchain_fermi.data import (
    find_wave_files,
    load_global_opinionqa,
    load_pew_atp,
    load_users,
    split_user,
)
from langchain_fermi.personalizer import FermiPersonalizer
from langchain_fermi.questions import format_question
from langchain_fermi.store import FermiStore
from langchain_fermi.store.dump import load_dump
from langchain_fermi.types import Opinion, ScoredPrompt, UserProfile, validate_user_id

NAN, INF = math.nan, math.inf
CHOICES_27 = [f"option {i}" for i in range(27)]


def opinion(**kw: Any) -> dict[str, Any]:
    return {"id": "q1", "question": "Own a car?", "choices": ["Yes", "No"], "answer": "No", **kw}


def prompt(**kw: Any) -> dict[str, Any]:
    base = {"text": "p", "score": 0.5, "opinion_ids": ["q1"], "correctness": [1.0]}
    return {**base, "answers": ["No"], **kw}


def dump(user: Any = None, prompts: list[Any] | None = None, **kw: Any) -> dict[str, Any]:
    data = {"format": "langchain-fermi.user/1", "prompts": prompts or [], "summary": None, **kw}
    if user is not None:
        data["user"] = user
    return data


# --- files written per case -----------------------------------------------------------------------

CSV_HEAD = "user_id,opinion_id,question,choices,answer\n"
CSV_OK = "alice,q1,Own a car?,Yes|No,No\n"


def write(name: str, content: str | bytes) -> Callable[[Path], Path]:
    def make(folder: Path) -> Path:
        path = folder / name
        if isinstance(content, bytes):
            path.write_bytes(content)
        else:
            path.write_text(content, encoding="utf-8")
        return path

    return make


def users_json(*users: dict[str, Any]) -> str:
    return json.dumps(list(users))


def pew_folder(mapping: str, n_sav: int = 1, info: bool = True) -> Callable[[Path], Path]:
    """A folder with ``n_sav`` tiny .sav files and an info.csv holding one question."""

    def make(folder: Path) -> Path:
        pd = pytest.importorskip("pandas")
        pyreadstat = pytest.importorskip("pyreadstat")
        rows = pd.DataFrame({"QKEY": [1.0], "WEIGHT_W5": [1.0], "Q_W5": [1.0]})
        for i in range(n_sav):
            pyreadstat.write_sav(rows, str(folder / f"w5_{i}.sav"))
        if info:
            info_df = pd.DataFrame(
                {"key": ["Q_W5"], "question": ["Q?"], "option_mapping": [mapping]}
            )
            info_df.to_csv(folder / "info.csv", index=False)
        return folder

    return make


def folder_named(parent: Path, name: str) -> Path:
    (parent / name).mkdir()
    return parent / name


def global_json(options: list[Any], dist: list[Any]) -> Callable[[Path], Path]:
    record = {"country": "Atlantis", "question": "Q?", "options": options, "distribution": dist}
    return write("eval.json", json.dumps([record]))


class Case(NamedTuple):
    id: str
    run: Callable[[Path], Any]  # called with a fresh folder
    error: type[BaseException]
    fragment: str


def load(make: Callable[[Path], Path], **kw: Any) -> Callable[[Path], Any]:
    return lambda folder: load_users(make(folder), **kw)


def pew(make: Callable[[Path], Path], **kw: Any) -> Callable[[Path], Any]:
    return lambda folder: load_pew_atp(make(folder), **kw)


CASES = [
    # -- user ids ----------------------------------------------------------------------------------
    Case(
        "user id with a trailing newline",
        lambda _: validate_user_id("alice\n"),
        ValueError,
        "unsafe user id 'alice\\n': leading or trailing whitespace (it would be another user",
    ),
    Case(
        "user id with a leading space",
        lambda _: validate_user_id(" alice"),
        ValueError,
        "leading or trailing whitespace",
    ),
    Case(
        "user id with a NUL",
        lambda _: validate_user_id("al\x00ice"),
        ValueError,
        "control character '\\x00'",
    ),
    Case(
        "user id with an escape",
        lambda _: validate_user_id("al\x1b[31mice"),
        ValueError,
        "control character '\\x1b'",
    ),
    Case("empty user id", lambda _: validate_user_id(""), ValueError, "must be a non-empty string"),
    Case(
        "boolean user id",
        lambda _: validate_user_id(True),
        ValueError,
        "must be a string or an integer, got bool True",
    ),
    Case("path in user id", lambda _: validate_user_id("../etc"), ValueError, "unsafe user id"),
    # -- profiles and opinions ---------------------------------------------------------------------
    Case(
        "attribute that is a list",
        lambda _: UserProfile(user_id="alice", attributes={"Age": ["30", "49"]}),
        ValidationError,
        "user 'alice': attribute 'Age' must be text, got list",
    ),
    Case(
        "attribute with an empty name",
        lambda _: UserProfile(user_id="alice", attributes={" ": "x"}),
        ValidationError,
        "attribute name ' ' must be non-empty text",
    ),
    Case(
        "27 choices",
        lambda _: UserProfile(user_id="alice", opinions=[opinion(choices=CHOICES_27)]),
        ValidationError,
        "user 'alice', opinion 'q1': at most 26 choices, got 27",
    ),
    Case(
        "a None choice",
        lambda _: Opinion(**opinion(choices=["Yes", None])),
        ValidationError,
        "opinion 'q1': choice 2 is None, not text",
    ),
    Case(
        "choices as one string",
        lambda _: Opinion(**opinion(choices="Yes|No")),
        ValidationError,
        "choices must be a list of option texts, got str",
    ),
    # -- questions at inference --------------------------------------------------------------------
    Case(
        "format_question with 27 choices",
        lambda _: format_question("Q?", CHOICES_27),
        ValueError,
        "question 'Q?': at most 26 choices, got 27",
    ),
    Case(
        "format_question with a None choice",
        lambda _: format_question("Q?", ["Yes", None]),
        ValueError,
        "choice 2 is None, not text",
    ),
    # -- scores ------------------------------------------------------------------------------------
    Case(
        "NaN prompt score",
        lambda _: ScoredPrompt(**prompt(score=NAN)),
        ValidationError,
        "score must be finite numbers, got nan",
    ),
    Case(
        "infinite prompt score",
        lambda _: ScoredPrompt(**prompt(score=INF)),
        ValidationError,
        "score must be finite numbers, got inf",
    ),
    Case(
        "NaN correctness",
        lambda _: ScoredPrompt(**prompt(correctness=[NAN])),
        ValidationError,
        "correctness must be finite numbers, got nan",
    ),
    # -- exports / dumps ---------------------------------------------------------------------------
    Case(
        "export without a user",
        lambda _: load_dump(dump()),
        ValueError,
        "user dump has no 'user' object (got NoneType)",
    ),
    Case(
        "export whose user is a string",
        lambda _: load_dump(dump(user="alice")),
        ValueError,
        "user dump has no 'user' object (got str)",
    ),
    Case(
        "export with a NaN score",
        lambda _: load_dump(dump({"user_id": "bob"}, [prompt(score=NAN)])),
        ValueError,
        "user dump of 'bob', prompt #0: score must be finite numbers, got nan",
    ),
    Case(
        "export with an unsafe user id",
        lambda _: load_dump(dump({"user_id": "bob\n"})),
        ValueError,
        "user dump: unsafe user id 'bob\\n'",
    ),
    Case(
        "not an export",
        lambda _: load_dump([1, 2]),
        ValueError,
        "not a langchain-fermi user dump (format 'list'",
    ),
    # -- user files --------------------------------------------------------------------------------
    Case(
        "JSON user id with a newline",
        load(write("u.json", users_json({"user_id": "alice\n"}))),
        ValueError,
        "u.json, user #0: unsafe user id 'alice\\n': leading or trailing whitespace",
    ),
    Case(
        "JSON syntax error",
        load(write("u.json", '[{"user_id": "alice",}]')),
        ValueError,
        "u.json:1:22: invalid JSON: Expecting property name",
    ),
    Case(
        "JSON Lines syntax error",
        load(write("u.jsonl", '{"user_id": "a"}\n{"user_id": \n')),
        ValueError,
        "u.jsonl:2:13: invalid JSON: Expecting value",
    ),
    Case(
        "JSON None choice",
        load(
            write(
                "u.json", users_json({"user_id": "a", "opinions": [opinion(choices=["Y", None])]})
            )
        ),
        ValueError,
        "user 'a', opinion 'q1': choice 2 is None, not text",
    ),
    Case(
        "JSON attribute that is an object",
        load(write("u.json", users_json({"user_id": "a", "attributes": {"Age": {"min": 30}}}))),
        ValueError,
        "user #0: user 'a': attribute 'Age' must be text, got dict",
    ),
    Case(
        "JSON in Latin-1",
        load(
            write(
                "u.json", '[{"user_id": "a", "attributes": {"City": "Zürich"}}]'.encode("latin-1")
            )
        ),
        ValueError,
        "u.json:1:44: not UTF-8 text (byte 0xfc at offset 43",
    ),
    Case(
        "CSV in Latin-1",
        load(write("u.csv", (CSV_HEAD + "b,q1,Café?,Oui|Non,Oui\n").encode("latin-1"))),
        ValueError,
        "u.csv:2:9: not UTF-8 text (byte 0xe9 at offset 51",
    ),
    Case(
        "CSV quote never closed",
        load(write("u.csv", CSV_HEAD + CSV_OK + 'bob,q1,"Own a car?,Yes|No,No\n' + CSV_OK)),
        ValueError,
        "u.csv:3: a quoted cell that starts on this line is never closed",
    ),
    Case(
        "CSV text after a closing quote",
        load(write("u.csv", CSV_HEAD + CSV_OK + 'bob,q1,"Own"a car?,Yes|No,No\n')),
        ValueError,
        "u.csv:3: bad CSV quoting: ',' expected after '\"'",
    ),
    Case(
        "CSV quote that swallows rows",
        load(
            write("u.csv", CSV_HEAD + 'bob,q1,"Car?,Yes|No,No\nbob,q2,Bus?,Yes|No,No\nx",A|B,A\n')
        ),
        ValueError,
        "u.csv:2: unbalanced quote: a quoted cell opened on this line runs to line 4",
    ),
    Case(
        "CSV with 27 choices",
        load(write("u.csv", CSV_HEAD + f"bob,q1,Q?,{'|'.join(CHOICES_27)},option 0\n")),
        ValueError,
        "u.csv, line 2: user 'bob', opinion 'q1': at most 26 choices, got 27",
    ),
    Case(
        "CSV JSON choices with a null",
        load(write("u.csv", CSV_HEAD + 'bob,q1,Q?,"[""Yes"", null]",Yes\n')),
        ValueError,
        "choices must be a JSON list of strings",
    ),
    Case(
        "CSV user id with a control character",
        load(write("u.csv", CSV_HEAD + "bo\x07b,q1,Q?,Yes|No,Yes\n")),
        ValueError,
        "u.csv, line 2: user 'bo\\x07b', opinion 'q1': unsafe user id 'bo\\x07b': control char",
    ),
    Case("empty CSV", load(write("u.csv", "")), ValueError, "u.csv: empty CSV file"),
    Case(
        "unknown extension",
        load(write("u.txt", "")),
        ValueError,
        "cannot tell the format from the extension '.txt'",
    ),
    Case("a folder as the file", lambda d: load_users(d), ValueError, "cannot tell the format"),
    Case(
        "a folder named .json",
        lambda d: load_users(folder_named(d, "x.json")),
        IsADirectoryError,
        "Is a directory",
    ),
    Case(
        "a missing file",
        lambda d: load_users(d / "nope.json"),
        FileNotFoundError,
        "No such file or directory",
    ),
    # -- GlobalOpinionQA ---------------------------------------------------------------------------
    Case(
        "GlobalOpinionQA null option",
        lambda d: load_global_opinionqa(global_json(["Yes", None], [0.5, 0.5])(d)),
        ValueError,
        "record #0: country 'Atlantis': options must be texts or numbers, got ['Yes', None]",
    ),
    Case(
        "GlobalOpinionQA infinite share",
        lambda d: load_global_opinionqa(global_json(["Yes", "No"], [0.5, INF])(d)),
        ValueError,
        "the distribution must hold finite numbers",
    ),
    Case(
        "GlobalOpinionQA syntax error",
        lambda d: load_global_opinionqa(write("eval.json", "[{]")(d)),
        ValueError,
        "eval.json:1:3: invalid JSON",
    ),
    # -- Pew waves (item 7) ------------------------------------------------------------------------
    Case(
        "Pew demographics column that is a number",
        pew(pew_folder("{1.0: 'Yes', 2.0: 'No'}"), demographics={"Age": 3}),
        ValueError,
        "demographics['Age']: expected a column name or a list of them, got 3",
    ),
    Case(
        "Pew demographics that is a list",
        pew(pew_folder("{1.0: 'Yes', 2.0: 'No'}"), demographics=["F_AGECAT"]),
        ValueError,
        "demographics must map attribute names to columns, got list",
    ),
    Case(
        "Pew folder with two .sav files",
        pew(pew_folder("{1.0: 'Yes', 2.0: 'No'}", n_sav=2)),
        ValueError,
        "expected exactly one .sav file in the folder, found ['w5_0.sav', 'w5_1.sav']",
    ),
    Case(
        "Pew folder without info.csv",
        pew(pew_folder("{1.0: 'Yes', 2.0: 'No'}", info=False)),
        FileNotFoundError,
        "info.csv: no OpinionQA info.csv for the wave w5_0.sav",
    ),
    Case(
        "Pew question with only non-answers",
        pew(pew_folder("{1.0: 'Refused', 8.0: \"Don't know\"}")),
        ValueError,
        "question 'Q_W5': option_mapping has no option besides non-answers",
    ),
    Case(
        "Pew option_mapping with text codes",
        pew(pew_folder("{'a': 'Yes', 'b': 'No'}")),
        ValueError,
        "option_mapping codes must be numbers, got ['a', 'b']",
    ),
    Case(
        "Pew .sav that is not SPSS",
        lambda d: load_pew_atp(write("x.sav", b"garbage")(d), write("info.csv", "key\n")(d)),
        ValueError,
        "x.sav: not a readable SPSS .sav file",
    ),
    Case(
        "Pew .sav that does not exist",
        lambda d: find_wave_files(d / "nope.sav"),
        FileNotFoundError,
        "nope.sav: no such .sav file or folder",
    ),
    Case(
        "Pew wave name",
        pew(pew_folder("{1.0: 'Yes', 2.0: 'No'}"), wave="ninety"),
        ValueError,
        "wave must look like 'W92' or 92, got 'ninety'",
    ),
    # -- splits ------------------------------------------------------------------------------------
    Case(
        "negative split size",
        lambda _: split_user(UserProfile(user_id="a"), n_optimize=-1),
        ValueError,
        "user 'a': n_optimize and n_test must be >= 0",
    ),
]


@pytest.fixture(scope="module")
def saved(tmp_path_factory: pytest.TempPathFactory) -> tuple[FermiStore, str]:
    """A store holding one user, and that user's export before any bad input."""
    store = FermiStore(tmp_path_factory.mktemp("store") / "chroma", embeddings=KeywordEmbeddings())
    user = UserProfile(user_id="alice", attributes={"Age": "30-49"}, opinions=[opinion()])
    store.save_user(user)
    store.save_prompts("alice", [ScoredPrompt(**prompt(text="Answer as alice."))])
    return store, json.dumps(store.export_user("alice"), sort_keys=True)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_bad_input_is_one_clear_error(case: Case, tmp_path: Path) -> None:
    with pytest.raises(BaseException) as err:
        case.run(tmp_path)
    assert type(err.value) is case.error, f"{type(err.value).__name__}: {err.value}"
    text = str(err.value)
    if isinstance(err.value, ValidationError):
        text = " ".join(e["msg"] for e in err.value.errors())  # pydantic's own API: the messages
    else:  # our boundary: one readable line, never a pydantic dump
        assert "\n" not in text and "pydantic" not in text and "validation error" not in text
    assert case.fragment in text


@pytest.mark.parametrize(
    ("choices", "fragment"),
    [
        (CHOICES_27, "at most 26 choices, got 27"),
        (["Yes", None], "choice 2 is None, not text"),
        ("Yes|No", "choices must be a list of option texts, got str"),
    ],
)
def test_personalizer_rejects_bad_choices(
    saved: tuple[FermiStore, str], choices: object, fragment: str
) -> None:
    store, before = saved
    question = {"question": "Own a car?", "choices": choices, "user_id": "alice"}
    with pytest.raises(ValueError) as err:
        FermiPersonalizer(store).invoke(question)
    assert type(err.value) is ValueError and fragment in str(err.value)
    assert json.dumps(store.export_user("alice"), sort_keys=True) == before


@pytest.mark.parametrize(
    "data",
    [
        dump(),
        dump({"user_id": "alice", "attributes": {"Age": ["x"]}}),
        dump({"user_id": "alice"}, [prompt(score=NAN)]),
        dump({"user_id": "alice\n"}),
    ],
    ids=["no user", "bad attribute", "NaN score", "newline id"],
)
def test_bad_imports_leave_the_saved_user_byte_identical(
    saved: tuple[FermiStore, str], data: dict[str, Any]
) -> None:
    store, before = saved
    with pytest.raises(ValueError):
        store.import_user(data, replace=True)
    assert json.dumps(store.export_user("alice"), sort_keys=True) == before
    assert store.list_users() == ["alice"]


# --- sensible results: accepted, with the obvious meaning ---------------------------------------


def test_null_attributes_are_dropped_not_stored_as_text() -> None:
    u = UserProfile(user_id="a", attributes={"Age": None, "Income": NAN, "Kids": 0})
    assert u.attributes == {"Kids": "0"}


@pytest.mark.parametrize("encoding", ["utf-8-sig", "utf-16"])
@pytest.mark.parametrize("suffix", [".json", ".jsonl", ".csv"])
def test_files_with_a_byte_order_mark_are_read(tmp_path: Path, encoding: str, suffix: str) -> None:
    content = {
        ".json": users_json({"user_id": "a", "opinions": [opinion()]}),
        ".jsonl": json.dumps({"user_id": "a", "opinions": [opinion()]}) + "\n",
        ".csv": CSV_HEAD + "a,q1,Own a car?,Yes|No,No\n",
    }[suffix]
    path = tmp_path / f"u{suffix}"
    path.write_bytes(content.encode(encoding))
    (user,) = load_users(path)
    assert user.user_id == "a" and user.opinions[0].answer == "No"


def test_case_count() -> None:
    assert len(CASES) >= 30
