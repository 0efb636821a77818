"""Helpers of the scale tests: synthetic users, models on the latency stand-in, databases."""

from __future__ import annotations

from functools import partial
from typing import Any

from benchmarks.latency_server import fetch
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


def stats(base: str) -> dict[str, Any]:
    """The stand-in's counters (`LatencyServer.stats`)."""
    return fetch(base, "/stats")


def new_database(url: str, name: str) -> str:
    """Create database ``name`` on the server of ``url``; return its URL."""
    import psycopg

    with psycopg.connect(url, autocommit=True) as conn:
        conn.execute(f"DROP DATABASE IF EXISTS {name}")
        conn.execute(f"CREATE DATABASE {name}")
    return url.rsplit("/", 1)[0] + f"/{name}"
