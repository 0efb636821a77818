"""Fixtures of the scale tests: the latency stand-in and the real local services.

Each service fixture starts the real program (`langchain_fermi.scale.local`) and stops it after;
a test is skipped only when the program is not installed at all (the reason says what to
install), never because it failed to start. Test modules load this file with
``pytest_plugins = ("scale_fixtures",)``.
"""

from __future__ import annotations

import importlib.util
import os
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from benchmarks.latency_server import running
from langchain_fermi.scale.local import local_chroma, local_postgres, local_ray, postgres_binaries


@pytest.fixture
def standin() -> Iterator[str]:
    """The latency stand-in, 50 ms per call, K=2 takes; yields its base URL."""
    with running(delay=0.05, takes=2) as base:
        yield base


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
    # Ray's single-machine mode (all on 127.0.0.1) must be set before Ray is first imported
    os.environ["RAY_ENABLE_WINDOWS_OR_OSX_CLUSTER"] = "0"
    if importlib.util.find_spec("ray") is None:
        pytest.skip("Ray is not installed (pip install 'langchain-fermi[scale]')")
    if not Path(sys.executable).with_name("ray").exists():
        pytest.skip("the ray CLI is not installed next to this Python")
    with local_ray(num_cpus=2) as address:
        yield address
