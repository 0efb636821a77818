"""Helpers for tests that start a local server process (`langgraph dev`) on 127.0.0.1."""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import time
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
