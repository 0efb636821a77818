"""Throw-away local services for the scale engine: PostgreSQL, a Chroma server, a Ray head.

Each is a context manager that starts the real program on 127.0.0.1 on a free port, in a fresh
temporary folder, waits until it answers, yields how to reach it, and stops it (and only it)
afterwards. Tests and `benchmarks/bench_scale.py` use them; ``scripts/services.sh`` starts the
same three in the background for a shell (``python -m langchain_fermi.scale.local start``).

* PostgreSQL: Debian's ``postgresql`` package (``initdb`` / ``pg_ctl``), run as the
  ``postgres`` user when we are root (PostgreSQL refuses to run as root), trust auth on
  127.0.0.1 only, ``fsync=off`` (test data).
* Chroma: ``chroma run`` (chromadb's CLI).
* Ray: ``ray start --head --num-cpus N`` in its own process group; stopping signals that group,
  so no other Ray on the machine is touched (``ray stop`` would stop every one).
"""

from __future__ import annotations

import argparse
import contextlib
import glob
import json
import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

__all__ = [
    "ServiceError",
    "free_port",
    "local_chroma",
    "local_postgres",
    "local_ray",
    "postgres_binaries",
    "stop_process_group",
]


class ServiceError(RuntimeError):
    """A local service could not be started (the message says why and where its log is)."""


def free_port() -> int:
    """A TCP port on 127.0.0.1 that nothing listens on right now."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _wait(ready: Callable[[], bool], alive: Callable[[], bool], timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not ready():
        if not alive():
            msg = f"{what} exited while starting"
            raise ServiceError(msg)
        if time.monotonic() > deadline:
            msg = f"{what} did not answer within {timeout:.0f} s"
            raise ServiceError(msg)
        time.sleep(0.2)


def _group_members(pgid: int) -> list[int]:
    """Live (not zombie) processes of a process group, read from /proc."""
    members = []
    for stat in glob.glob("/proc/[0-9]*/stat"):
        try:
            fields = Path(stat).read_text().rsplit(")", 1)[1].split()
        except OSError:
            continue
        if fields[0] != "Z" and int(fields[2]) == pgid:
            members.append(int(stat.split("/")[2]))
    return members


def _group_alive(pgid: int) -> bool:
    if Path("/proc/self/stat").exists():
        return bool(_group_members(pgid))
    try:  # pragma: no cover - no /proc: a zombie counts as alive here
        os.killpg(pgid, 0)
    except ProcessLookupError:
        return False
    return True


def stop_process_group(pgid: int, *, grace: float = 15.0) -> None:
    """SIGTERM a process group we started, then SIGKILL whatever is left after ``grace`` s."""
    for sig, wait in ((signal.SIGTERM, grace), (signal.SIGKILL, 5.0)):
        with contextlib.suppress(ProcessLookupError):
            os.killpg(pgid, sig)
        deadline = time.monotonic() + wait
        while _group_alive(pgid) and time.monotonic() < deadline:
            time.sleep(0.2)
        if not _group_alive(pgid):
            return


def _cli(name: str) -> str | None:
    return shutil.which(name, path=str(Path(sys.executable).parent)) or shutil.which(name)


# ------------------------------------------------------------------------------ PostgreSQL


def postgres_binaries() -> Path | None:
    """The folder with ``initdb`` and ``pg_ctl`` (PATH first, then Debian's layout), or None."""
    found = shutil.which("pg_ctl")
    if found and shutil.which("initdb"):
        return Path(found).resolve().parent
    for folder in sorted(glob.glob("/usr/lib/postgresql/*/bin"), reverse=True):
        if Path(folder, "initdb").exists() and Path(folder, "pg_ctl").exists():
            return Path(folder)
    return None


def _as_postgres(cmd: list[str]) -> list[str]:
    """PostgreSQL will not run as root: run it as the ``postgres`` user then."""
    if os.geteuid() != 0:
        return cmd
    runuser = shutil.which("runuser")
    if runuser is None:  # pragma: no cover - Debian always has it
        msg = "running as root and no runuser to start PostgreSQL as the postgres user"
        raise ServiceError(msg)
    return [runuser, "-u", "postgres", "--", *cmd]


def _run(cmd: list[str], log: Path) -> None:
    with log.open("a") as out:
        done = subprocess.run(cmd, stdout=out, stderr=subprocess.STDOUT, check=False)
    if done.returncode != 0:
        msg = f"{Path(cmd[0]).name} failed ({done.returncode}): {log.read_text()[-1500:]}"
        raise ServiceError(msg)


@contextlib.contextmanager
def local_postgres(*, port: int | None = None) -> Iterator[str]:
    """A fresh PostgreSQL cluster on 127.0.0.1; yields its URL (``postgresql://...``).

    Raises:
        ServiceError: PostgreSQL is not installed (``apt-get install postgresql``) or did not
            start.
    """
    bindir = postgres_binaries()
    if bindir is None:
        msg = "PostgreSQL is not installed: apt-get install -y postgresql (Debian)"
        raise ServiceError(msg)
    root = Path(tempfile.mkdtemp(prefix="fermi-pg-"))
    data, log = root / "data", root / "postgres.log"
    log.touch()
    if os.geteuid() == 0:
        shutil.chown(root, "postgres")
        shutil.chown(log, "postgres")
    port = port or free_port()
    initdb = [str(bindir / "initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"]
    _run(_as_postgres([*initdb, "--no-sync"]), log)
    options = (
        f"-p {port} -k {root} -c listen_addresses=127.0.0.1 -c fsync=off -c max_connections=200"
    )
    pg_ctl = str(bindir / "pg_ctl")
    _run(_as_postgres([pg_ctl, "-D", str(data), "-o", options, "-l", str(log), "-w", "start"]), log)
    try:
        yield f"postgresql://postgres@127.0.0.1:{port}/postgres"
    finally:
        with contextlib.suppress(ServiceError):
            _run(_as_postgres([pg_ctl, "-D", str(data), "-m", "fast", "-w", "stop"]), log)
        shutil.rmtree(root, ignore_errors=True)


# ------------------------------------------------------------------------------ Chroma


def _http_ok(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except OSError:
        return False


@contextlib.contextmanager
def local_chroma(*, port: int | None = None, timeout: float = 60) -> Iterator[tuple[str, int]]:
    """``chroma run`` on 127.0.0.1 with a fresh database; yields ``(host, port)``."""
    cli = _cli("chroma")
    if cli is None:
        msg = "the chroma CLI is not installed (pip install chromadb)"
        raise ServiceError(msg)
    root = Path(tempfile.mkdtemp(prefix="fermi-chroma-"))
    port = port or free_port()
    log = (root / "chroma.log").open("w")
    cmd = [cli, "run", "--path", str(root / "db"), "--host", "127.0.0.1", "--port", str(port)]
    env = {**os.environ, "ANONYMIZED_TELEMETRY": "False"}
    proc = subprocess.Popen(
        cmd, stdout=log, stderr=subprocess.STDOUT, env=env, start_new_session=True
    )
    try:
        url = f"http://127.0.0.1:{port}/api/v2/heartbeat"
        _wait(lambda: _http_ok(url), lambda: proc.poll() is None, timeout, "chroma run")
        yield "127.0.0.1", port
    finally:
        stop_process_group(proc.pid)
        proc.wait()
        log.close()
        shutil.rmtree(root, ignore_errors=True)


# ------------------------------------------------------------------------------ Ray


_RAY_LOOPBACK = "RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"


@contextlib.contextmanager
def local_ray(
    *, num_cpus: int = 2, object_store_mb: int = 256, timeout: float = 90
) -> Iterator[str]:
    """A Ray head node on 127.0.0.1 (``ray start --head``); yields its address ``host:port``.

    The node runs in its own process group, stopped on exit. Usage statistics are off. Sets
    ``RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER=0`` in this process (Ray's single-machine mode, all on
    127.0.0.1), which a driver here needs before importing Ray.
    """
    cli = _cli("ray")
    if cli is None:
        msg = "Ray is not installed: pip install 'langchain-fermi[scale]'"
        raise ServiceError(msg)
    root = Path(tempfile.mkdtemp(prefix="fermi-ray-", dir="/tmp"))  # socket paths must be short
    port = free_port()
    cmd = [
        cli, "start", "--head", "--node-ip-address=127.0.0.1", f"--port={port}",
        f"--num-cpus={num_cpus}", "--num-gpus=0", "--include-dashboard=false",
        "--disable-usage-stats", f"--temp-dir={root}",
        f"--object-store-memory={object_store_mb * 1024 * 1024}",
        f"--ray-client-server-port={free_port()}",
    ]  # fmt: skip
    # Single-machine mode: every Ray process binds and registers 127.0.0.1 (by default Ray
    # swaps a loopback --node-ip-address for the machine's routable address). The drivers of
    # this process need it too, before Ray is imported.
    os.environ[_RAY_LOOPBACK] = "0"
    env = {**os.environ, "RAY_USAGE_STATS_ENABLED": "0", "RAY_DISABLE_DOCKER_CPU_WARNING": "1"}
    log = root / "ray-start.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            cmd, stdout=out, stderr=subprocess.STDOUT, env=env, start_new_session=True
        )
    pgid = proc.pid
    try:
        try:
            code = proc.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            code = -1
        if code != 0:
            msg = f"ray start failed ({code}): {log.read_text()[-2000:]}"
            raise ServiceError(msg)
        yield f"127.0.0.1:{port}"
    finally:
        stop_process_group(pgid)
        shutil.rmtree(root, ignore_errors=True)


# ------------------------------------------------------------------------------ shell entry


def _serve_forever(args: argparse.Namespace) -> int:
    """Start the services, write their addresses as shell exports, wait for SIGTERM."""
    stack = contextlib.ExitStack()
    stop = {"now": False}
    signal.signal(signal.SIGTERM, lambda *_: stop.update(now=True))
    with stack:
        env: dict[str, Any] = {}
        if "postgres" in args.services:
            env["FERMI_PG_URL"] = stack.enter_context(local_postgres())
        if "chroma" in args.services:
            host, port = stack.enter_context(local_chroma())
            env["FERMI_CHROMA_HOST"], env["FERMI_CHROMA_PORT"] = host, port
        if "ray" in args.services:
            env["RAY_ADDRESS"] = stack.enter_context(local_ray(num_cpus=args.num_cpus))
        lines = [f"export {k}={json.dumps(str(v))}" for k, v in env.items()]
        Path(args.env_file).write_text("\n".join(lines) + "\n")
        print("\n".join(lines), flush=True)
        with contextlib.suppress(KeyboardInterrupt):
            while not stop["now"]:
                time.sleep(0.5)
    Path(args.env_file).unlink(missing_ok=True)
    return 0


def main(argv: list[str] | None = None) -> int:
    """``python -m langchain_fermi.scale.local serve --env-file F [postgres chroma ray]``."""
    parser = argparse.ArgumentParser(description="Local PostgreSQL / Chroma / Ray for Fermi.")
    parser.add_argument("command", choices=["serve"])
    parser.add_argument("services", nargs="*", default=["postgres", "chroma", "ray"])
    parser.add_argument("--env-file", required=True, help="where to write the shell exports")
    parser.add_argument("--num-cpus", type=int, default=2)
    args = parser.parse_intermixed_args(argv)
    unknown = sorted(set(args.services) - {"postgres", "chroma", "ray"})
    if unknown:
        parser.error(f"unknown service(s) {unknown}; choose from postgres, chroma, ray")
    return _serve_forever(args)


if __name__ == "__main__":
    raise SystemExit(main())
