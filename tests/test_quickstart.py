"""``fermi quickstart``: the wiring with fake models (fast) and the real offline run."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.language_models.fake_chat_models import FakeListChatModel

from langchain_fermi.cli import main
from langchain_fermi.cli.quickstart import find_example_users, quickstart
from langchain_fermi.data import load_users, split_user
from langchain_fermi.store import FermiStore

REPO = Path(__file__).resolve().parents[1]
USERS = REPO / "examples" / "data" / "users.json"


class _Count(BaseCallbackHandler):
    def __init__(self) -> None:
        self.calls = 0

    def on_chat_model_start(self, *a: Any, **kw: Any) -> None:
        self.calls += 1

    def on_llm_start(self, *a: Any, **kw: Any) -> None:
        self.calls += 1


def _fakes() -> tuple[FakeListChatModel, FakeListChatModel, _Count]:
    count = _Count()
    target = FakeListChatModel(responses=["A"])
    optimizer = FakeListChatModel(
        responses=[f"[Answer as this person would, variant {i}.]" for i in range(8)],
        callbacks=[count],
    )
    return target, optimizer, count


def test_quickstart_wiring_with_fake_models(tmp_path: Path):
    target, optimizer, count = _fakes()
    lines: list[str] = []
    store_path = tmp_path / ".fermi" / "chroma"
    report = quickstart(
        users_file=USERS, store_path=store_path, target=target, optimizer=optimizer,
        progress=False, echo=lines.append,
    )  # fmt: skip
    user = max(load_users(USERS), key=lambda u: len(u.opinions))
    optimize, test = split_user(user, n_optimize=20, n_test=None, seed=0)
    assert report.user_id == user.user_id
    assert (report.n_optimize, report.n_test) == (20, len(user.opinions) - 20)
    assert count.calls == 2 * 2  # K=2 candidates x T=2 rounds
    store = FermiStore(store_path)
    assert store.list_users() == [user.user_id]
    # only the optimization opinions are stored: the held-out questions never leak in
    assert store.get_user(user.user_id) == optimize
    assert report.prompts == len(store.get_prompts(user.user_id)) >= 2
    assert len(report.answers) == 3
    for a, o in zip(report.answers, test[:3], strict=True):
        assert a.opinion_id == o.id and a.model_answer == o.choices[0]  # the fake says "A"
        assert a.correct == (o.answer == o.choices[0])
    out = "\n".join(lines)
    assert "nearest past opinions" in out and "accuracy of each prompt" in out
    assert f"{sum(a.correct for a in report.answers)}/3 held-out answers" in out
    assert f"fermi ask --user-id {user.user_id}" in out

    # a second run reuses the finished optimization (no optimizer call) unless fresh=True
    target, optimizer, count = _fakes()
    quickstart(users_file=USERS, store_path=store_path, target=target, optimizer=optimizer,
               progress=False, echo=lambda s: None)  # fmt: skip
    assert count.calls == 0
    quickstart(users_file=USERS, store_path=store_path, target=target, optimizer=optimizer,
               progress=False, echo=lambda s: None, fresh=True, n_questions=0)  # fmt: skip
    assert count.calls == 4


def test_bad_inputs(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    with pytest.raises(FileNotFoundError, match="no such users file"):
        find_example_users(tmp_path / "none.json")
    assert find_example_users(USERS) == USERS
    code = main(["quickstart", "--data", str(USERS), "--user-id", "nobody",
                 "--store", str(tmp_path / "s")])  # fmt: skip
    assert code == 1 and "no user 'nobody' in the file" in capsys.readouterr().err


@pytest.mark.local_model
def test_quickstart_offline_with_smollm2(tmp_path: Path, monkeypatch, capsys):
    """The README's first command, as is (defaults: K=2, T=2, 3 questions), on SmolLM2."""
    pytest.importorskip("llama_cpp")
    monkeypatch.chdir(REPO)
    store = tmp_path / "chroma"
    t0 = time.perf_counter()
    code = main(["quickstart", "--store", str(store), "--no-progress"])
    seconds = time.perf_counter() - t0
    out = capsys.readouterr().out
    assert code == 0, out
    assert out.count("nearest past opinions") == 3 and "held-out answers match" in out
    users = FermiStore(store).list_users()
    assert len(users) == 1 and FermiStore(store).get_prompts(users[0])
    print(f"quickstart wall time: {seconds:.0f} s")
