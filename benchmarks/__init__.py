"""Benchmark scripts: ``python -m benchmarks.opinionqa`` (results under ``benchmarks/results/``)."""
