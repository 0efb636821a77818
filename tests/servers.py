"""Helpers for tests that start a local server process (`langgraph dev`) on 127.0.0.1."""

from __future__ import annotations

import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
LANGGRAPH_CONFIG = ROOT / "graphs" / "langgraph.json"


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextmanager
def langgraph_dev(tmp_path: Path, env: dict[str, str], *, timeout: float = 90) -> Iterator[str]:
    """Run ``langgraph dev`` for ``graphs/langgraph.json`` on a free port; yield its URL.

    The server runs in its own process group, which is killed on exit; its log goes to
    ``tmp_path/server.log`` and is shown when it dies early.
    """
    httpx = pytest.importorskip("httpx")
    pytest.importorskip("langgraph_api")
    exe = shutil.which("langgraph", path=str(Path(sys.executable).parent))
    if exe is None:
        pytest.skip("langgraph-cli[inmem] is not installed")
    port = free_port()
    full_env = {
        **os.environ,
        "LANGGRAPH_CLI_NO_ANALYTICS": "1",
        "LANGSMITH_TRACING": "false",
        **env,
    }
    log_path = tmp_path / "server.log"
    log = log_path.open("w")
    cmd = [exe, "dev", "--config", str(LANGGRAPH_CONFIG.relative_to(ROOT)), "--no-browser"]
    proc = subprocess.Popen(
        [*cmd, "--no-reload", "--port", str(port)],
        cwd=ROOT,
        env=full_env,
        stdout=log,
        stderr=subprocess.STDOUT,
        start_new_session=True,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                pytest.fail(f"langgraph dev exited: {log_path.read_text()[-2000:]}")
            try:
                if httpx.get(f"{url}/ok", timeout=2).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"langgraph dev did not answer GET /ok within {timeout:.0f} s")
            time.sleep(0.5)
        yield url
    finally:
        os.killpg(proc.pid, signal.SIGTERM)
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            os.killpg(proc.pid, signal.SIGKILL)
            proc.wait(timeout=15)
        log.close()


@contextmanager
def llama_cpp_server(log_dir: Path, *, timeout: float = 120) -> Iterator[str]:
    """Run ``python -m llama_cpp.server`` with the embedded SmolLM2 (alias ``smollm2``,
    ``--logits_all true``) on a free port; yield its ``/v1`` base URL once it lists the model."""
    from langchain_fermi.models.files import local_model_path
    from langchain_fermi.models.llama_runtime import default_threads

    port = free_port()
    threads = str(default_threads())
    cmd = [
        sys.executable, "-m", "llama_cpp.server",
        "--model", str(local_model_path("smollm2")), "--model_alias", "smollm2",
        "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "2048",
        "--n_threads", threads, "--n_threads_batch", threads, "--logits_all", "true",
    ]  # fmt: skip
    log_path = log_dir / "server.log"
    log = log_path.open("w")  # a file, not a pipe: llama.cpp logs a lot and would block
    proc = subprocess.Popen(cmd, stdout=log, stderr=subprocess.STDOUT)
    base = f"http://127.0.0.1:{port}/v1"
    try:
        deadline = time.monotonic() + timeout
        while True:
            if proc.poll() is not None:
                pytest.fail(f"llama_cpp.server exited: {log_path.read_text()[-2000:]}")
            try:
                with urllib.request.urlopen(f"{base}/models", timeout=2) as r:
                    if json.load(r)["data"]:
                        break
            except OSError:
                pass
            if time.monotonic() > deadline:
                pytest.fail(f"llama_cpp.server did not answer /v1/models within {timeout:.0f} s")
            time.sleep(0.5)
        yield base
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
