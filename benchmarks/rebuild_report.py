"""Rebuild a run's ``report.json`` and plots from the users finished so far, without any model.

A long run writes its report only when a chunk of users ends; this reads ``config.json``,
``users/*.json``, ``signal.json`` and ``planted.json`` and writes the report of the finished
users, so partial results can be read (and committed, labelled as partial) at any time.

    python -m benchmarks.rebuild_report benchmarks/results/planted-qwen15
"""

from __future__ import annotations

import json
import sys
from pathlib import Path


def rebuild(run_dir: Path) -> Path:
    """Write ``report.json`` (and plots) for the finished users of ``run_dir``."""
    from langchain_fermi.evaluation.config import BenchConfig
    from langchain_fermi.evaluation.planted import PlantedSet
    from langchain_fermi.evaluation.plots import write_plots
    from langchain_fermi.evaluation.report import build_report, format_table
    from langchain_fermi.evaluation.rundir import load_finished
    from langchain_fermi.evaluation.signal import SignalCheck

    saved = json.loads((run_dir / "config.json").read_text(encoding="utf-8"))
    config = BenchConfig.model_validate(saved["config"])
    done = load_finished(run_dir / "users", saved["fingerprint"], ())
    results = [done[k] for k in sorted(done)]
    if not results:
        msg = f"no finished user in {run_dir / 'users'}"
        raise SystemExit(msg)
    methods = [m for m in config.methods if all(m in r.methods for r in results)]
    config = config.model_copy(update={"methods": tuple(methods)})
    signal = planted = None
    if (run_dir / "signal.json").is_file():
        signal = SignalCheck.model_validate_json((run_dir / "signal.json").read_text())
    if (run_dir / "planted.json").is_file():
        data = json.loads((run_dir / "planted.json").read_text())
        planted = PlantedSet.model_validate({k: v for k, v in data.items() if k != "summary"})
    old = run_dir / "report.json"
    models = json.loads(old.read_text()) if old.is_file() else {}
    report = build_report(
        config,
        results,
        target_model=models.get("target_model", str(config.target_model)),
        optimizer_model=models.get("optimizer_model", str(config.optimizer_model)),
        signal=signal,
        planted=planted,
    )
    report.plots = [p.name for p in write_plots(report, run_dir)]
    old.write_text(report.model_dump_json(indent=1), encoding="utf-8")
    print(format_table(report))
    return old


def main(argv: list[str] | None = None) -> int:
    """Rebuild each run folder given."""
    for folder in argv if argv is not None else sys.argv[1:]:
        print(f"wrote {rebuild(Path(folder))}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
