"""The example users shipped with the package (the same file as ``examples/data/users.json`` in
the repository), so ``fermi quickstart`` and the README's snippets work from an installed wheel.

Example:
    >>> from langchain_fermi.data.examples import load_example_users
    >>> [u.user_id for u in load_example_users()][:1]
    ['maya-chen']
"""

from __future__ import annotations

from pathlib import Path

from langchain_fermi.types import UserProfile

__all__ = ["EXAMPLE_USERS_FILE", "load_example_users"]

EXAMPLE_USERS_FILE = Path(__file__).with_name("users.json")
"""The quickstart's users: profile attributes and multiple-choice opinions."""


def load_example_users() -> list[UserProfile]:
    """The example users as `UserProfile` objects."""
    from langchain_fermi.data import load_users

    return load_users(EXAMPLE_USERS_FILE)
