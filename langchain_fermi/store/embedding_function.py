"""`PackagedMiniLM`: the offline MiniLM as a registered Chroma embedding function.

`FermiStore` embeds with LangChain `Embeddings` itself and never needs this; it is for users who
open a Chroma collection directly and want the same offline model. It lives in ``store/`` because
only the store touches Chroma.
"""

from __future__ import annotations

from typing import Any

from chromadb.api.types import Documents, EmbeddingFunction, Space
from chromadb.api.types import Embeddings as ChromaEmbeddings
from chromadb.utils.embedding_functions import register_embedding_function

from langchain_fermi.models.embeddings import DEFAULT_BATCH_SIZE, embed_texts

__all__ = ["PackagedMiniLM"]


@register_embedding_function
class PackagedMiniLM(EmbeddingFunction[Documents]):
    """Chroma embedding function over the same offline MiniLM, registered for persisted collections.

    Its config is empty (the model's path is resolved when it is rebuilt), so a collection created
    with it reopens on another machine with ``client.get_collection(name)`` and no
    ``embedding_function`` argument, once ``langchain_fermi.store.embedding_function`` has been
    imported.

    Example:
        >>> col = client.create_collection("opinions", embedding_function=PackagedMiniLM())
    """

    def __init__(self, batch_size: int = DEFAULT_BATCH_SIZE) -> None:
        self.batch_size = batch_size

    def __call__(self, input: Documents) -> ChromaEmbeddings:
        return list(embed_texts(list(input), self.batch_size))

    @staticmethod
    def name() -> str:
        return "langchain_fermi_minilm_int8"

    def get_config(self) -> dict[str, Any]:
        return {}

    @staticmethod
    def build_from_config(config: dict[str, Any]) -> PackagedMiniLM:
        return PackagedMiniLM()

    def default_space(self) -> Space:
        return "cosine"

    def supported_spaces(self) -> list[Space]:
        return ["cosine", "ip", "l2"]
