"""Shared set-up of the scale tests: the latency stand-in, users, and the real local services.

Each service fixture starts the real program (`langchain_fermi.scale.local`) and stops it after;
a test is skipped only when the program is not installed at all (the reason says what to
install), never because it failed to start.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from functools import partial
from typing import Any

import pytest

from benchmarks.latency_server import fetch, running
from langchain_fermi.scale.local import local_chroma, local_postgres, local_ray, postgres_binaries
from langchain_fermi.types import Opinion, UserProfile

CHOICES = ["Agree", "Neutral", "Disagree"]


def synthetic_users(n: int, *, opinions: int = 20, prefix: str = "u") -> list[UserProfile]:
    """``n`` distinct users with ``opinions`` three-choice opinions each (80 % are scored)."""
    users = []
    for u in range(n):
        ops = [
            Opinion(
                id=f"q{i}",
                question=f"Statement {i * 7 + u} for {prefix}{u}: do you agree?",
                choices=CHOICES,
                answer=CHOICES[(i * (u + 1)) % 3],
            )
            for i in range(opinions)
        ]
        users.append(
            UserProfile(user_id=f"{prefix}{u}", attributes={"AGE": str(20 + u)}, opinions=ops)
        )
    return users


def openai_models(base: str) -> tuple[Any, Any]:
    """Zero-argument factories of the target and optimizer `ChatOpenAI` on the stand-in."""
    from langchain_openai import ChatOpenAI

    common = {"model": "standin", "base_url": f"{base}/v1", "api_key": "x", "max_retries": 0}
    return partial(ChatOpenAI, temperature=0.0, **common), partial(
        ChatOpenAI, temperature=1.0, **common
    )


@pytest.fixture
def standin() -> Iterator[str]:
    """The latency stand-in, 50 ms per call, K=2 takes; yields its base URL."""
    with running(delay=0.05, takes=2) as base:
        yield base


def stats(base: str) -> dict[str, Any]:
    return fetch(base, "/stats")


@pytest.fixture(scope="module")
def postgres_url() -> Iterator[str]:
    if postgres_binaries() is None:
        pytest.skip("PostgreSQL is not installed (apt-get install -y postgresql)")
    with local_postgres() as url:
        yield url


@pytest.fixture(scope="module")
def chroma_server() -> Iterator[tuple[str, int]]:
    with local_chroma() as address:
        yield address


@pytest.fixture(scope="module")
def ray_address() -> Iterator[str]:
    pytest.importorskip("ray", reason="Ray is not installed (pip install 'langchain-fermi[scale]')")
    if shutil.which("ray") is None and not _venv_ray():
        pytest.skip("the ray CLI is not installed")
    with local_ray(num_cpus=2) as address:
        yield address


def _venv_ray() -> bool:
    import sys
    from pathlib import Path

    return Path(sys.executable).with_name("ray").exists()


def new_database(url: str, name: str) -> str:
    """Create database ``name`` on the server of ``url``; return its URL."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name}")
        conn.execute(f"CREATE DATABASE {name}")
    return url.rsplit("/", 1)[0] + f"/{name}"
