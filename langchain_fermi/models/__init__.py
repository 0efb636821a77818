"""Chat models, packaged model files, the shared llama.cpp runtime and offline embeddings.

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
    to_chat_messages,
)

__all__ = [
    "LOCAL_MODELS",
    "LocalLlamaChatModel",
    "LocalModelSpec",
    "Role",
    "cache_dir",
    "get_chat_model",
    "local_model_path",
    "model_id",
    "to_chat_messages",
]
