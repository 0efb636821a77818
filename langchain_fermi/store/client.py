"""Where a `FermiStore` lives: an embedded Chroma folder or a Chroma server, from arguments or env.

Explicit arguments win over the environment; contradictory combinations fail up front, before
any connection is made, with a message that names both settings.
"""

from __future__ import annotations

import os
import shutil
import tempfile
from pathlib import Path
from typing import Any

__all__ = [
    "default_store_path",
    "fresh_persistent_client",
    "is_writable",
    "make_client",
    "read_only_copy",
    "resolve_target",
]


def default_store_path() -> Path:
    """``$FERMI_STORE_PATH``, else ``$XDG_DATA_HOME/langchain-fermi/chroma``
    (``~/.local/share/langchain-fermi/chroma``)."""
    env = os.environ.get("FERMI_STORE_PATH")
    if env:
        return Path(env).expanduser()
    base = os.environ.get("XDG_DATA_HOME") or str(Path.home() / ".local" / "share")
    return Path(base).expanduser() / "langchain-fermi" / "chroma"


def make_client(host: str, port: int | None) -> Any:
    """A Chroma ``HttpClient`` (telemetry off)."""
    import chromadb
    from chromadb.config import Settings

    settings = Settings(anonymized_telemetry=False)
    return chromadb.HttpClient(host=host, port=int(port or 8000), settings=settings)


def fresh_persistent_client(path: Path) -> Any:
    """A ``PersistentClient`` on a new Chroma ``System`` (its own Rust bindings and HNSW caches).

    ``chromadb.PersistentClient`` shares one ``System`` per folder and process, and that system
    loads each collection's vector index once and then only applies this process's own writes
    to it: rows another process wrote afterwards are missing from it ("Error getting embedding"),
    and saving that stale index would drop them from disk. A new system replays what the folder
    holds now. It becomes the one later ``PersistentClient(path)`` calls of this process share.
    """
    from chromadb.api import ServerAPI
    from chromadb.api.client import Client
    from chromadb.config import Settings, System
    from chromadb.telemetry.product import ProductTelemetryClient

    settings = Settings(anonymized_telemetry=False, is_persistent=True, persist_directory=str(path))
    system = System(settings)
    # chromadb resolves these abstract types to the configured implementations
    system.instance(ProductTelemetryClient)  # type: ignore[type-abstract]
    system.instance(ServerAPI)  # type: ignore[type-abstract]
    system.start()
    return Client.from_system(system)


def is_writable(path: Path) -> bool:
    """Whether this process can write the store folder (and its database file, if any)."""
    db = path / "chroma.sqlite3"
    return os.access(path, os.W_OK | os.X_OK) and (not db.exists() or os.access(db, os.W_OK))


def read_only_copy(path: Path) -> Path:
    """Copy a store folder this process cannot write into a new temporary folder.

    Chroma's embedded client writes to its folder on open (migrations, log bookkeeping), so a
    read-only folder is read through a copy: a snapshot as of now, costing one copy of the
    folder (opening and listing a 4.7 MB store: 30 ms read-only, 5 ms otherwise; see
    ``benchmarks/results/reliability_store.json``). The copy is deleted when the store is.

    Raises:
        FileNotFoundError: ``path`` holds no Chroma database.
    """
    if not (path / "chroma.sqlite3").is_file():
        msg = f"no Fermi store at {path} (no chroma.sqlite3 there) and the folder is not writable"
        raise FileNotFoundError(msg)
    tmp = Path(tempfile.mkdtemp(prefix="fermi-readonly-"))
    copy = tmp / "chroma"
    shutil.copytree(path, copy, ignore=shutil.ignore_patterns("fermi-write.*"))
    for root, dirs, files in os.walk(copy):  # the copy is ours: make it writable for Chroma
        for name in (*dirs, *files):
            os.chmod(os.path.join(root, name), 0o700 if name in dirs else 0o600)
    os.chmod(copy, 0o700)
    return copy


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
