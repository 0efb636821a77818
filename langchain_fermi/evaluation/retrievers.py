"""Retrievers over one user's optimization opinions: BM25 (lexical) and dense (MiniLM).

Both serve the few-shot baselines (the user's most similar past opinions go in the prompt) and
the dense one also serves Retrieval-of-Prompt (the Ñ nearest scored opinions pick the prompt).
They only ever index the optimization opinions, so a test answer cannot reach any prompt.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence

import numpy as np
from langchain_core.embeddings import Embeddings

from langchain_fermi.types import Opinion

__all__ = ["Bm25Retriever", "CachedEmbedder", "DenseRetriever", "tokenize"]

_WORD_RE = re.compile(r"[a-z0-9]+")


def tokenize(text: str) -> list[str]:
    """Lower-case word tokens, the BM25 vocabulary."""
    return _WORD_RE.findall(text.lower())


def _check_k(k: int) -> None:
    if k < 1:
        msg = f"k must be >= 1, got {k!r}"
        raise ValueError(msg)


class Bm25Retriever:
    """BM25 (Okapi) over the opinions' question texts, via ``rank_bm25``.

    Example:
        >>> Bm25Retriever(user_opinions).top_k("How much do you trust scientists?", 3)
    """

    def __init__(self, opinions: Sequence[Opinion]) -> None:
        try:
            from rank_bm25 import BM25Okapi
        except ImportError as e:
            msg = "the BM25 baseline needs rank-bm25: pip install 'langchain-fermi[bench]'"
            raise ImportError(msg) from e
        if not opinions:
            msg = "Bm25Retriever needs at least one opinion to index"
            raise ValueError(msg)
        self.opinions = list(opinions)
        # An empty token list makes BM25Okapi divide by zero; a placeholder ranks it last.
        corpus = [tokenize(o.question) or ["_"] for o in self.opinions]
        self._bm25 = BM25Okapi(corpus)

    def top_k(self, query: str, k: int) -> list[Opinion]:
        """The ``k`` opinions most similar to ``query`` (ties: the earlier opinion)."""
        _check_k(k)
        scores = self._bm25.get_scores(tokenize(query))
        order = sorted(range(len(self.opinions)), key=lambda i: (-scores[i], i))
        return [self.opinions[i] for i in order[:k]]


class CachedEmbedder:
    """Wraps an `Embeddings` with a text -> unit vector cache shared by every user of a run.

    OpinionQA users answer largely the same questions, so each question is embedded once per
    run instead of once per user. Thread-safe (users may be evaluated in parallel).
    """

    def __init__(self, embeddings: Embeddings) -> None:
        self.embeddings = embeddings
        self._cache: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-normalised vectors, one row per text."""
        with self._lock:
            missing = list(dict.fromkeys(t for t in texts if t not in self._cache))
        if missing:
            vectors = np.asarray(self.embeddings.embed_documents(missing), dtype=np.float32)
            norms = np.linalg.norm(vectors, axis=1, keepdims=True)
            vectors = vectors / np.clip(norms, 1e-12, None)
            with self._lock:
                self._cache.update(zip(missing, vectors, strict=True))
        with self._lock:
            if not texts:
                return np.zeros((0, 0), dtype=np.float32)
            return np.stack([self._cache[t] for t in texts])


class DenseRetriever:
    """Cosine nearest neighbours of a query among the opinions' questions.

    Example:
        >>> DenseRetriever(CachedEmbedder(MiniLMEmbeddings()), opinions).top_k_many(["..."], 3)
    """

    def __init__(self, embedder: CachedEmbedder, opinions: Sequence[Opinion]) -> None:
        if not opinions:
            msg = "DenseRetriever needs at least one opinion to index"
            raise ValueError(msg)
        self.embedder = embedder
        self.opinions = list(opinions)
        self._matrix = embedder.embed([o.question for o in self.opinions])

    def top_k_many(self, queries: Sequence[str], k: int) -> list[list[Opinion]]:
        """The ``k`` nearest opinions of each query (ties: the earlier opinion)."""
        _check_k(k)
        if not queries:
            return []
        sims = self.embedder.embed(list(queries)) @ self._matrix.T
        out: list[list[Opinion]] = []
        for row in sims:
            order = sorted(range(len(self.opinions)), key=lambda i: (-float(row[i]), i))
            out.append([self.opinions[i] for i in order[:k]])
        return out

    def top_k(self, query: str, k: int) -> list[Opinion]:
        """The ``k`` nearest opinions of one query."""
        return self.top_k_many([query], k)[0]
