"""Data model: users, opinions, scored prompts, the Fermi configuration and results.

Every object that crosses a module boundary is defined here, validated with pydantic, so a bad
input fails at the edge with a message that names the user and the opinion.
"""

from langchain_fermi.types.config import (
    DEFAULT_DEMO_FRACTION,
    DEFAULT_ITERATIONS,
    DEFAULT_MEMORY_SIZE,
    DEFAULT_NUM_CANDIDATES,
    DEFAULT_NUM_NEIGHBORS,
    DEFAULT_TAU,
    FermiConfig,
)
from langchain_fermi.types.profile import (
    OPTION_LETTERS,
    Opinion,
    UserProfile,
    Variant,
    validate_choices,
    validate_user_id,
)
from langchain_fermi.types.prompts import MisalignedCase, ScoredPrompt, scored_opinion_ids
from langchain_fermi.types.result import Cost, FermiResult

__all__ = [
    "DEFAULT_DEMO_FRACTION",
    "DEFAULT_ITERATIONS",
    "DEFAULT_MEMORY_SIZE",
    "DEFAULT_NUM_CANDIDATES",
    "DEFAULT_NUM_NEIGHBORS",
    "DEFAULT_TAU",
    "OPTION_LETTERS",
    "Cost",
    "FermiConfig",
    "FermiResult",
    "MisalignedCase",
    "Opinion",
    "ScoredPrompt",
    "UserProfile",
    "Variant",
    "scored_opinion_ids",
    "validate_choices",
    "validate_user_id",
]
