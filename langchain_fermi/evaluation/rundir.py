"""The run directory: its fingerprint, its ``config.json`` and one file per finished user.

A run is resumable because each finished user is written atomically to ``users/<user_id>.json``
and ``config.json`` records the fingerprint of the settings that change results: a rerun with the
same fingerprint skips finished users, one with another fingerprint is refused.
"""

from __future__ import annotations

import hashlib
import json
import logging
import os
import shutil
from collections.abc import Sequence
from pathlib import Path

from langchain_fermi.evaluation.config import BenchConfig
from langchain_fermi.evaluation.schema import UserResult

__all__ = [
    "check_run_dir",
    "config_fingerprint",
    "load_finished",
    "save_user_result",
    "write_atomic",
]

logger = logging.getLogger(__name__)

# Settings that do not change any user's numbers: changing them keeps finished users valid.
_NEUTRAL_FIELDS = frozenset(
    {
        "run_name",
        "results_dir",
        "data_dir",
        "naive_probe",
        "max_users",
        "methods",
        "max_total_calls",
        "jobs",
        "bootstrap_samples",
    }
)


# Settings added after runs were committed, with the value those runs used: at that value they
# stay out of the hash, so the earlier runs' fingerprints (and finished users) stay valid.
_LATER_FIELDS = {
    "meta_prompt_style": "figure8",
    "max_failures_shown": 10,
    "tie_break": "order",
    "optimizer_seed": None,
    "restarts": 1,
}


def config_fingerprint(config: BenchConfig, target_id: str, optimizer_id: str | None) -> str:
    """Hash of every setting that changes a user's results, models included."""
    data = config.model_dump(mode="json", exclude=set(_NEUTRAL_FIELDS))
    for name, old in _LATER_FIELDS.items():
        if data.get(name) == old:
            del data[name]
    data["target_model_id"] = target_id
    data["optimizer_model_id"] = optimizer_id
    raw = json.dumps(data, sort_keys=True)
    return hashlib.sha256(raw.encode()).hexdigest()[:16]


def write_atomic(path: Path, text: str) -> None:
    """Write via a temporary file and a rename: a reader never sees half a file."""
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def save_user_result(users_dir: Path, result: UserResult) -> Path:
    """Write ``users/<user_id>.json`` atomically (an interrupted write leaves no half file)."""
    users_dir.mkdir(parents=True, exist_ok=True)
    path = users_dir / f"{result.user_id}.json"
    write_atomic(path, result.model_dump_json(indent=1))
    return path


def load_finished(
    users_dir: Path, fingerprint: str, methods: Sequence[str]
) -> dict[str, UserResult]:
    """Finished users of an earlier run with the same fingerprint that cover ``methods``."""
    done: dict[str, UserResult] = {}
    if not users_dir.is_dir():
        return done
    for path in sorted(users_dir.glob("*.json")):
        try:
            result = UserResult.model_validate_json(path.read_text(encoding="utf-8"))
        except ValueError as e:
            logger.warning("ignoring unreadable result %s: %s", path, e)
            continue
        if result.fingerprint != fingerprint:
            continue
        if all(m in result.methods for m in methods):
            done[result.user_id] = result
    return done


def check_run_dir(config: BenchConfig, fingerprint: str, fresh: bool) -> None:
    """Refuse a run directory made with other settings; record this run's settings in it."""
    run_dir = config.run_dir
    cfg_file = run_dir / "config.json"
    earlier_methods: list[str] = []
    if fresh and run_dir.exists():
        for sub in ("users", "cache"):
            shutil.rmtree(run_dir / sub, ignore_errors=True)
        for name in ("config.json", "report.json"):
            (run_dir / name).unlink(missing_ok=True)
    elif cfg_file.is_file():
        old = json.loads(cfg_file.read_text(encoding="utf-8"))
        earlier_methods = list(old.get("config", {}).get("methods") or [])
        if old.get("fingerprint") != fingerprint:
            changed = sorted(
                k
                for k, v in config.model_dump(mode="json").items()
                if k not in _NEUTRAL_FIELDS and old.get("config", {}).get(k) != v
            )
            msg = (
                f"run {config.run_name!r} in {run_dir} was made with other settings "
                f"({', '.join(changed) or 'models'}); use another run name or --fresh"
            )
            raise ValueError(msg)
    run_dir.mkdir(parents=True, exist_ok=True)
    recorded = config.model_dump(mode="json")
    # a resume with fewer methods (say, topping up one) must not drop the run's others
    recorded["methods"] = earlier_methods + [
        m for m in recorded["methods"] if m not in earlier_methods
    ]
    payload = {"fingerprint": fingerprint, "config": recorded}
    write_atomic(cfg_file, json.dumps(payload, indent=1))
