"""Retrievers over one user's optimization opinions for the few-shot baselines, and the run's
embedding cache.

BM25 (lexical) and dense (MiniLM) retrievers put the user's most similar past opinions in the
few-shot prompts. They only ever index the optimization opinions, so a test answer cannot reach
any prompt. Retrieval-of-Prompt does not use them: the benchmark selects Fermi's prompts through
the served path (a `FermiStore` and `FermiPersonalizer`), embedding with `CachedEmbedder`.
"""

from __future__ import annotations

import re
import threading
from collections.abc import Sequence

import numpy as np
from langchain_core.embeddings import Embeddings

from langchain_fermi.models.embeddings import normalise_rows
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


class CachedEmbedder(Embeddings):
    """An `Embeddings` with a text -> unit vector cache shared by every user of a run.

    OpinionQA users answer largely the same questions, so each question is embedded once per
    run instead of once per user. It is also the run's `FermiStore` embeddings, so the served
    selection embeds through the same cache. Thread-safe (users may be evaluated in parallel).
    """

    def __init__(self, embeddings: Embeddings) -> None:
        self.embeddings = embeddings
        self._docs: dict[str, np.ndarray] = {}
        self._queries: dict[str, np.ndarray] = {}
        self._lock = threading.Lock()

    def embed(self, texts: Sequence[str]) -> np.ndarray:
        """Unit-normalised document vectors, one row per text."""
        with self._lock:
            missing = list(dict.fromkeys(t for t in texts if t not in self._docs))
        if missing:
            vectors = normalise_rows(self.embeddings.embed_documents(missing))
            with self._lock:
                self._docs.update(zip(missing, vectors, strict=True))
        with self._lock:
            if not texts:
                return np.zeros((0, 0), dtype=np.float32)
            return np.stack([self._docs[t] for t in texts])

    def embed_documents(self, texts: list[str]) -> list[list[float]]:
        """`Embeddings` API: the cached unit vectors as lists."""
        return self.embed(texts).tolist() if texts else []

    def embed_query(self, text: str) -> list[float]:
        """`Embeddings` API: the wrapped model's query embedding (cached, unit length)."""
        with self._lock:
            vec = self._queries.get(text)
        if vec is None:
            vec = normalise_rows(self.embeddings.embed_query(text))[0]
            with self._lock:
                self._queries[text] = vec
        return vec.tolist()


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
