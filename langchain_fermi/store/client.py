"""Where a `FermiStore` lives: an embedded Chroma folder or a Chroma server, from arguments or env.

Explicit arguments win over the environment; contradictory combinations fail up front, before
any connection is made, with a message that names both settings.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

__all__ = ["default_store_path", "make_client", "resolve_target"]


def default_store_path() -> Path:
    """``$FERMI_STORE_PATH``, else ``$XDG_DATA_HOME/langchain-fermi/chroma``
    (``~/.local/share/langchain-fermi/chroma``)."""
    env = os.environ.get("FERMI_STORE_PATH")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base).expanduser() / "langchain-fermi" / "chroma"


def make_client(path: str | os.PathLike[str] | None, host: str | None, port: int | None) -> Any:
    """A Chroma ``HttpClient`` when ``host`` is set, else a ``PersistentClient`` (telemetry off)."""
    import chromadb
    from chromadb.config import Settings

    settings = Settings(anonymized_telemetry=False)
    if host is not None:
        return chromadb.HttpClient(host=host, port=int(port or 8000), settings=settings)
    where = Path(path) if path is not None else default_store_path()
    where.mkdir(parents=True, exist_ok=True)
    return chromadb.PersistentClient(path=str(where), settings=settings)


def resolve_target(
    path: str | os.PathLike[str] | None, client: Any, host: str | None, port: int | None
) -> tuple[str | os.PathLike[str] | None, str | None, int | None]:
    """Check the arguments, then fill in the environment's ``FERMI_CHROMA_HOST/PORT``.

    Returns:
        ``(path, host, port)``; all None means the default embedded path.

    Raises:
        ValueError: Contradictory arguments or environment.
    """
    if client is not None and (path is not None or host is not None or port is not None):
        msg = "pass either client= or path=/host=/port=, not both"
        raise ValueError(msg)
    if path is not None and (host is not None or port is not None):
        msg = f"pass either path= ({path!s}) for an embedded store or host=/port= for a server"
        raise ValueError(msg)
    if port is not None and host is None:
        msg = f"port={port} given without host="
        raise ValueError(msg)
    if client is not None or path is not None or host is not None:
        return path, host, port
    env_host, env_port = os.environ.get("FERMI_CHROMA_HOST"), os.environ.get("FERMI_CHROMA_PORT")
    if env_host and os.environ.get("FERMI_STORE_PATH"):
        msg = "both FERMI_CHROMA_HOST and FERMI_STORE_PATH are set: unset one of them"
        raise ValueError(msg)
    if env_port and not env_host:
        msg = f"FERMI_CHROMA_PORT={env_port} is set without FERMI_CHROMA_HOST"
        raise ValueError(msg)
    if env_host:
        return None, env_host, int(env_port) if env_port else None
    return None, None, None
