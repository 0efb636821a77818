"""Every ``fermi`` failure is one ``fermi: error:`` line with a documented exit code, never a
traceback: a table of bad inputs run in-process, a few again in a subprocess, and the
conventions (``--version``, ``--json``, ``--debug``, pipes)."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from fermi_graph_fakes import KeywordTarget, ScriptedOptimizer, keyword_prompt
from fermi_graph_fakes import make_user as make_graph_user
from fermi_store_fakes import economy_and_gun_prompts, make_result, make_user, prompt

import langchain_fermi.models
from langchain_fermi.cli import main
from langchain_fermi.cli._common import (
    EXIT_CODES_HELP,
    EXIT_ERROR,
    EXIT_OK,
    UsageError,
    error_line,
)
from langchain_fermi.data import save_users
from langchain_fermi.store import FermiStore

GUN_Q = "Would you buy a gun for self defense?"


@pytest.fixture(autouse=True)
def _no_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in ("FERMI_STORE_PATH", "FERMI_CHROMA_HOST", "FERMI_CHROMA_PORT"):
        monkeypatch.delenv(var, raising=False)


@pytest.fixture(scope="module")
def paths(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """A store with alice, bob and carl (no prompts), and bad files of every kind."""
    root = tmp_path_factory.mktemp("cli_errors")
    store_path = root / "store"
    store = FermiStore(store_path)
    store.save_result(make_result("alice", economy_and_gun_prompts()), user=make_user("alice"))
    store.save_result(make_result("bob", [prompt("BOB", {"o1": 1})]), user=make_user("bob"))
    store.save_user(make_user("carl"))
    (root / "a_file.txt").write_text("not a store\n")
    (root / "garbage").mkdir()
    (root / "garbage" / "chroma.sqlite3").write_bytes(os.urandom(8192))
    (root / "folder").mkdir()
    (root / "broken.json").write_text('{"format": ', encoding="utf-8")
    (root / "not_a_dump.json").write_text('{"hello": 1}', encoding="utf-8")
    (root / "latin1.json").write_bytes('{"user": "Jos\xe9"}'.encode("latin-1"))
    dump = store.export_user("alice")
    (root / "alice.json").write_text(json.dumps(dump), encoding="utf-8")
    save_users([make_graph_user("u1")], root / "users.json")
    p = {"root": root, "store": store_path, "users": root / "users.json"}
    p |= {"file": root / "a_file.txt", "garbage": root / "garbage", "dir": root / "folder"}
    p |= {"broken": root / "broken.json", "notdump": root / "not_a_dump.json"}
    p |= {"latin1": root / "latin1.json", "dump": root / "alice.json"}
    p |= {"missing": root / "missing.json", "nostore": root / "nostore"}
    return p


def _argv(template: list[str], paths: dict[str, Path]) -> list[str]:
    return [a.format(**{k: str(v) for k, v in paths.items()}) for a in template]


def _run(capsys: pytest.CaptureFixture[str], argv: list[str]) -> tuple[int, str, str]:
    code = main(argv)
    out = capsys.readouterr()
    return code, out.out, out.err


# (id, argv with {placeholders}, exit code, fragment of the error line)
CASES: list[tuple[str, list[str], int, str]] = [
    # stores that cannot be opened
    ("store-is-a-file", ["users", "list", "--store", "{file}"], 1, "is a file, not a store folder"),
    ("garbage-sqlite", ["users", "list", "--store", "{garbage}"], 1, "cannot open the Fermi store"),
    ("garbage-ask", ["ask", "q", "--user-id", "alice", "--dry-run", "--store", "{garbage}"], 1,
     "is it a Fermi store?"),
    ("no-store-there", ["users", "list", "--store", "{nostore}"], 1, "no Fermi store at"),
    ("optimize-store-is-file", ["optimize", "--users", "{users}", "--store", "{file}"], 1,
     "is a file, not a store folder"),
    # files: missing, a directory, malformed, not UTF-8
    ("import-missing", ["users", "import", "{missing}", "--store", "{store}"], 1,
     "missing.json: no such user dump file"),
    ("import-a-directory", ["users", "import", "{dir}", "--store", "{store}"], 1,
     "is a directory, expected a user dump file"),
    ("import-broken-json", ["users", "import", "{broken}", "--store", "{store}"], 1,
     "broken.json: not JSON"),
    ("import-not-a-dump", ["users", "import", "{notdump}", "--store", "{store}"], 1,
     "not a langchain-fermi user dump"),
    ("import-not-utf8", ["users", "import", "{latin1}", "--store", "{store}"], 1,
     "latin1.json: not UTF-8 text"),
    ("import-exists", ["users", "import", "{dump}", "--store", "{store}"], 1,
     "already exists at"),
    ("optimize-users-missing", ["optimize", "--users", "{missing}", "--no-store"], 1,
     "no such users file"),
    ("optimize-users-a-directory", ["optimize", "--users", "{dir}", "--no-store"], 1,
     "is a directory, expected a users file"),
    ("quickstart-data-missing", ["quickstart", "--data", "{missing}", "--store", "{root}/qs"], 1,
     "no such users file"),
    # unknown users
    ("show-unknown", ["users", "show", "zed", "--store", "{store}"], 1, "unknown user 'zed'"),
    ("delete-unknown", ["users", "delete", "zed", "--store", "{store}"], 1, "fermi users list"),
    ("export-unknown", ["users", "export", "zed", "--store", "{store}"], 1, "unknown user 'zed'"),
    ("ask-unknown", ["ask", "q", "--user-id", "zed", "--dry-run", "--store", "{store}"], 1,
     "unknown user 'zed'"),
    ("ask-no-prompts", ["ask", "q", "--user-id", "carl", "--dry-run", "--store", "{store}"], 1,
     "pass --fallback profile"),
    ("optimize-unknown", ["optimize", "--users", "{users}", "--user-id", "zed", "--no-store"], 1,
     "no user 'zed' in"),
    # option values: the flag and the allowed range
    ("optimize-K-0", ["optimize", "--users", "{users}", "-K", "0"], 2,
     "argument -K: input should be greater than or equal to 1 (got 0)"),
    ("optimize-T-negative", ["optimize", "--users", "{users}", "-T", "-1"], 2,
     "argument --iterations/-T: input should be greater than or equal to 0"),
    ("optimize-L-0", ["optimize", "--users", "{users}", "-L", "0"], 2, "argument -L:"),
    ("optimize-patience-0", ["optimize", "--users", "{users}", "--patience", "0"], 2,
     "argument --patience:"),
    ("optimize-K-not-int", ["optimize", "--users", "{users}", "-K", "x"], 2,
     "argument -K: invalid int value: 'x'"),
    ("optimize-bad-model", ["optimize", "--users", "{users}", "--model", "bogus", "--no-store"], 2,
     "argument --model: unknown model name 'bogus'"),
    ("quickstart-K-0", ["quickstart", "-K", "0"], 2, "argument -K: input should be greater"),
    ("quickstart-n-optimize-0", ["quickstart", "--n-optimize", "0"], 2,
     "argument --n-optimize: must be at least 1 (got 0)"),
    ("bench-K-0", ["bench", "-K", "0", "--results-dir", "{root}/bench"], 2,
     "argument -K/--num-candidates: input should be greater than or equal to 1"),
    ("bench-bad-method", ["bench", "--methods", "nope", "--results-dir", "{root}/bench"], 2,
     "argument --methods: unknown method(s) ['nope']"),
    ("ask-neighbors-0", ["ask", "q", "--user-id", "alice", "--neighbors", "0"], 2,
     "argument --neighbors: must be at least 1 (got 0)"),
    ("ask-bad-strategy", ["ask", "q", "--user-id", "alice", "--strategy", "x"], 2,
     "argument --strategy: invalid choice: 'x'"),
    # argparse's own errors
    ("no-command", [], 2, "required: COMMAND"),
    ("unknown-command", ["frobnicate"], 2, "invalid choice: 'frobnicate'"),
    ("unknown-flag", ["users", "list", "--bogus"], 2, "unrecognized arguments: --bogus"),
    ("missing-argument", ["users", "show"], 2, "required: user_id"),
]  # fmt: skip


@pytest.mark.parametrize(("argv", "code", "fragment"), [c[1:] for c in CASES],
                         ids=[c[0] for c in CASES])  # fmt: skip
def test_bad_input_is_one_clear_line(
    argv: list[str], code: int, fragment: str, paths: dict[str, Path], capsys
) -> None:
    got, out, err = _run(capsys, _argv(argv, paths))
    assert got == code, err
    assert err.startswith("fermi: error: ") and err.count("\n") == 1, err
    assert fragment in err
    assert "Traceback" not in err and out == ""


def test_failures_leave_the_store_unchanged(paths: dict[str, Path]) -> None:
    """Runs after the table: none of the failures above touched the stored users."""
    store = FermiStore(paths["store"])
    assert store.list_users() == ["alice", "bob", "carl"]
    assert store.export_user("alice") == json.loads(paths["dump"].read_text(encoding="utf-8"))


def test_replace_and_byte_order_mark(paths: dict[str, Path], tmp_path: Path, capsys) -> None:
    bom = tmp_path / "alice-bom.json"
    bom.write_bytes(b"\xef\xbb\xbf" + paths["dump"].read_bytes())  # as Excel and PowerShell write
    store = str(tmp_path / "store")
    assert _run(capsys, ["users", "import", str(bom), "--store", store])[0] == EXIT_OK
    code, _, err = _run(capsys, ["users", "import", str(bom), "--store", store])
    assert code == EXIT_ERROR and "pass --replace to overwrite it" in err
    assert "replace=True" not in err
    code, out, _ = _run(capsys, ["users", "import", str(bom), "--replace", "--store", store])
    assert code == EXIT_OK and "imported user alice" in out


def test_a_damaged_user_is_reported_and_the_others_listed(
    paths: dict[str, Path], monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    real = FermiStore.snapshot

    def snapshot(self: FermiStore, user_id: str) -> Any:
        if user_id == "alice":
            raise KeyError("score")  # what an unreadable row used to raise
        return real(self, user_id)

    monkeypatch.setattr(FermiStore, "snapshot", snapshot)
    code, out, err = _run(capsys, ["users", "list", "--store", str(paths["store"])])
    assert code == EXIT_ERROR
    rows = {line.split()[0]: line for line in out.splitlines()[1:]}
    assert set(rows) == {"alice", "bob", "carl"}
    assert "DAMAGED" in rows["alice"] and "KeyError" in rows["alice"]
    assert rows["bob"].split()[1:4] == ["8", "1", "1.00"]
    assert (
        err.startswith("fermi: error: 1 user(s) cannot be read: alice") and "Traceback" not in err
    )
    code, out, _ = _run(capsys, ["users", "list", "--json", "--store", str(paths["store"])])
    data = {r["user_id"]: r for r in json.loads(out)}
    assert code == EXIT_ERROR and "error" in data["alice"] and data["bob"]["prompts"] == 1


def test_debug_shows_the_traceback(paths: dict[str, Path], capsys) -> None:
    for argv in (["--debug", "users", "list"], ["users", "list", "--debug"]):
        code, _, err = _run(capsys, [*argv, "--store", str(paths["garbage"])])
        assert code == EXIT_ERROR and "Traceback" in err
        assert err.rstrip().splitlines()[-1].startswith("fermi: error: cannot open the Fermi store")


@pytest.mark.parametrize(
    ("error", "code", "line"),
    [
        (TypeError("boom"), 1, "fermi: error: unexpected TypeError: boom (--debug shows the"),
        (KeyError("score"), 1, "fermi: error: unexpected KeyError: 'score'"),
        (KeyboardInterrupt(), 130, "fermi: interrupted"),
    ],
)
def test_unexpected_errors_and_interrupts(
    error: BaseException, code: int, line: str, paths: dict[str, Path], monkeypatch, capsys
) -> None:
    import langchain_fermi.cli.users as users_cli

    def boom(*a: Any, **kw: Any) -> Any:
        raise error

    monkeypatch.setattr(users_cli, "describe_users", boom)
    got, _, err = _run(capsys, ["users", "list", "--store", str(paths["store"])])
    assert got == code and err.startswith(line) and err.count("\n") == 1


def _validation_error() -> Exception:
    from langchain_fermi.types import FermiConfig

    try:
        FermiConfig(K=0)
    except Exception as e:
        return e
    raise AssertionError("FermiConfig(K=0) was accepted")


@pytest.mark.parametrize(
    ("error", "code", "line"),
    [
        (PermissionError(13, "Permission denied", "/x/s"), 1, "/x/s: permission denied (check "),
        (
            FileNotFoundError(2, "No such file", "a.json"),
            1,
            "a.json: no such file (check the path)",
        ),
        (UsageError("argument -K: bad"), 2, "argument -K: bad"),
        (ValueError("two\n  lines"), 1, "two lines"),
        (RuntimeError("x" * 5000), 1, "x" * 100),
        (_validation_error(), 1, "K: Input should be greater than or equal to 1"),
    ],
)
def test_error_lines(error: Exception, code: int, line: str) -> None:
    got_code, got = error_line(error)
    assert got_code == code and got.startswith(line)
    assert "\n" not in got and len(got) <= 600


def test_long_runs_say_how_to_resume_when_interrupted() -> None:
    from langchain_fermi.cli import build_parser

    args = build_parser().parse_args(["bench"])
    assert "rerun the same command" in args.on_interrupt


def test_version_and_help(capsys) -> None:
    from langchain_fermi import __version__

    code, out, _ = _run(capsys, ["--version"])
    assert code == EXIT_OK and out.strip() == f"fermi {__version__}"
    code, out, _ = _run(capsys, ["--help"])
    assert code == EXIT_OK and EXIT_CODES_HELP in out
    code, out, _ = _run(capsys, ["users", "list", "--help"])
    assert code == EXIT_OK and "--json" in out and "exit codes:" in out


def test_json_on_the_commands_that_print_data(paths: dict[str, Path], capsys) -> None:
    store = str(paths["store"])
    code, out, _ = _run(capsys, ["users", "list", "--json", "--store", store])
    rows = json.loads(out)
    assert code == 0 and [r["user_id"] for r in rows] == ["alice", "bob", "carl"]
    assert rows[0]["prompts"] == 2 and rows[0]["best_score"] == pytest.approx(0.625)
    code, out, _ = _run(capsys, ["users", "show", "alice", "--json", "--store", store])
    assert code == 0 and json.loads(out)["user"]["user_id"] == "alice"
    argv = ["ask", GUN_Q, "--user-id", "alice", "--choices", "Yes", "No", "--dry-run", "--json"]
    code, out, _ = _run(capsys, [*argv, "--explain", "--store", store])
    data = json.loads(out)
    assert code == 0 and data["selection"]["index"] == 1 and data["choices"] == ["Yes", "No"]
    assert data["messages"][0] == {"type": "system", "content": "You are a gun owner."}


@pytest.fixture
def scripted(monkeypatch: pytest.MonkeyPatch) -> None:
    """The CLI's model names resolve to scripted models."""

    def fake(name: Any = None, *, role: str = "target", **kw: Any) -> Any:
        if name is not None and not isinstance(name, str):
            return name  # a model instance is used as given, like get_chat_model does
        if name not in (None, "smollm2"):
            msg = f"unknown model name {name!r}"
            raise ValueError(msg)
        if role == "target":
            return KeywordTarget()
        return ScriptedOptimizer(replies=[f"[{keyword_prompt('t1')}]"] * 8)

    monkeypatch.setattr(langchain_fermi.models, "get_chat_model", fake)


def test_optimize_json_and_the_iteration_count(
    paths: dict[str, Path], scripted: None, capsys
) -> None:
    argv = ["optimize", "--users", str(paths["users"]), "-K", "1", "-T", "2", "--no-store"]
    code, out, err = _run(capsys, [*argv, "-q", "--json"])
    (result,) = json.loads(out)  # stdout is only the JSON
    assert code == 0 and result["user_id"] == "u1" and len(result["curve"]) == 3
    assert "after 2 iteration(s)" in err  # T=2, not the curve's 3 points


def test_quickstart_json(paths: dict[str, Path], scripted: None, tmp_path: Path, capsys) -> None:
    repo = Path(__file__).resolve().parents[1]
    argv = ["quickstart", "--data", str(repo / "examples" / "data" / "users.json"), "-K", "1"]
    argv += ["-T", "1", "--questions", "1", "--no-progress", "--json"]
    argv += ["--model", "smollm2", "--optimizer-model", "smollm2", "--no-plant"]  # scripted models
    code, out, err = _run(capsys, [*argv, "--store", str(tmp_path / "s" / "chroma")])
    assert code == 0, err
    report = json.loads(out)
    assert code == 0 and len(report["answers"]) == 1 and report["prompts"] >= 1
    assert "held-out answers match" in err


class _ClosedPipe(io.StringIO):
    def write(self, s: str) -> int:
        raise BrokenPipeError(32, "Broken pipe")


def test_a_closed_pipe_is_quiet(paths: dict[str, Path], monkeypatch, capsys) -> None:
    monkeypatch.setattr(sys, "stdout", _ClosedPipe())
    code = main(["users", "show", "alice", "--json", "--store", str(paths["store"])])
    assert code == EXIT_ERROR
    assert capsys.readouterr().err == ""


# --------------------------------------------------------------------------- subprocess


def _fermi(*argv: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "langchain_fermi", *argv],
        cwd=cwd, capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip


SUBPROCESS_CASES = [
    (["users", "list", "--store", "{file}"], 1, "is a file, not a store folder"),
    (["users", "list", "--store", "{garbage}"], 1, "cannot open the Fermi store"),
    (["users", "import", "{broken}", "--store", "{store}"], 1, "not JSON"),
    (["optimize", "--users", "{users}", "-K", "0"], 2, "argument -K"),
    (["users", "show"], 2, "required: user_id"),
]


@pytest.mark.parametrize(("argv", "code", "fragment"), SUBPROCESS_CASES)
def test_in_a_subprocess(argv: list[str], code: int, fragment: str, paths: dict[str, Path]):
    proc = _fermi(*_argv(argv, paths), cwd=paths["root"])
    assert proc.returncode == code, proc.stderr
    assert proc.stderr.startswith("fermi: error: ") and fragment in proc.stderr
    assert "Traceback" not in proc.stderr


def test_subprocess_version_and_closed_pipe(paths: dict[str, Path]) -> None:
    from langchain_fermi import __version__

    proc = _fermi("--version", cwd=paths["root"])
    assert proc.returncode == EXIT_OK and proc.stdout.strip() == f"fermi {__version__}"
    # `fermi users show alice --json | head -0`: the reader is gone before the first write
    argv = [sys.executable, "-m", "langchain_fermi", "users", "show", "alice", "--json"]
    with subprocess.Popen(
        [*argv, "--store", str(paths["store"])],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, cwd=paths["root"],
    ) as p:  # fmt: skip
        assert p.stdout is not None and p.stderr is not None
        p.stdout.close()
        err = p.stderr.read().decode()
        code = p.wait(timeout=300)
    assert "Traceback" not in err and "BrokenPipeError" not in err
    assert code == EXIT_ERROR  # like Python's own exit code on EPIPE
