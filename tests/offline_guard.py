"""Run Python code in a fresh process with every network call refused (socket-level)."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
from pathlib import Path

NETWORK_GUARD = textwrap.dedent(
    """
    import socket

    class NetworkBlocked(OSError):
        pass

    def _refuse(*args, **kwargs):
        raise NetworkBlocked(f"network access refused: {args[:2]!r}")

    socket.socket.connect = _refuse
    socket.socket.connect_ex = _refuse
    socket.create_connection = _refuse
    socket.getaddrinfo = _refuse
    try:
        socket.create_connection(("pypi.org", 443), timeout=1)
        raise SystemExit("the network guard does not work")
    except NetworkBlocked:
        pass
    """
)

REPO = Path(__file__).resolve().parents[1]


def run_offline(
    code: str, *, env: dict[str, str] | None = None, timeout: float = 300
) -> subprocess.CompletedProcess[str]:
    """Run ``code`` after `NETWORK_GUARD` in a new interpreter (no loaded model, no warm cache)."""
    full_env = {**os.environ, "ANONYMIZED_TELEMETRY": "False", **(env or {})}
    return subprocess.run(
        [sys.executable, "-c", NETWORK_GUARD + textwrap.dedent(code)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=full_env,
        cwd=REPO,
        check=False,
    )
