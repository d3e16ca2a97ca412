"""Reproducible performance runs. Each ``bench_*.py`` prints its figure next to a
baseline measured in the same run and writes ``benchmarks/results/<area>.json``."""
