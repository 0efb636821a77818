"""Chat models, packaged model files, the shared llama.cpp runtime, retries and embeddings.

Importing this package is cheap: llama.cpp and onnxruntime load on first use.
"""

from langchain_fermi.models.chat import (
    LOCAL_MODELS,
    LocalLlamaChatModel,
    LocalModelSpec,
    Role,
    cache_dir,
    get_chat_model,
    local_model_path,
    model_id,
    openai_max_tokens,
    seeded_copy,
    to_chat_messages,
)
from langchain_fermi.models.retry import RetryPolicy

__all__ = [
    "LOCAL_MODELS",
    "LocalLlamaChatModel",
    "LocalModelSpec",
    "RetryPolicy",
    "Role",
    "cache_dir",
    "get_chat_model",
    "local_model_path",
    "model_id",
    "openai_max_tokens",
    "seeded_copy",
    "to_chat_messages",
]
