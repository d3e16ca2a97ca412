"""Seconds and peak memory of each stage of a run (``reconcile run --timings``).

A sampler thread reads the process's resident memory every 20 ms; every stage (SQL
stage, background job, output writer) records when it started and ended. A stage's
peak is the highest sample taken while it ran: stages that overlap (the count side
beside normalize, the file writers beside classify) share the process, so their peaks
are the process's, not their own. The figures go to ``timings.json`` in the run folder,
which the manifest names but does not hash (they differ between two runs of the same
inputs; every other file is byte-identical).
"""

from __future__ import annotations

import os
import resource
import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

_PAGE = os.sysconf("SC_PAGE_SIZE") if hasattr(os, "sysconf") else 4096


def resident_bytes() -> int:
    """The process's resident memory now (Linux), else its peak so far."""
    try:
        with open("/proc/self/statm", encoding="ascii") as fh:
            return int(fh.read().split()[1]) * _PAGE
    except (OSError, ValueError, IndexError):
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
        return int(peak) * (1 if sys.platform == "darwin" else 1024)


@dataclass(frozen=True, slots=True)
class StageProfile:
    name: str
    group: str
    started_s: float  # since the run started
    seconds: float
    peak_rss_bytes: int


@dataclass(slots=True)
class RunProfiler:
    """Spans of named stages and a memory sampler over the whole run."""

    interval_s: float = 0.02
    _origin: float = field(default_factory=time.perf_counter)
    _samples: list[tuple[float, int]] = field(default_factory=list)
    _spans: list[tuple[str, str, float, float]] = field(default_factory=list)
    _lock: threading.Lock = field(default_factory=threading.Lock)
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def start(self) -> None:
        self._sample()
        self._thread = threading.Thread(target=self._loop, name="reconcile-rss", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop sampling (idempotent: the run stops it, and its clean-up again)."""
        if self._thread is None:
            return
        self._stop.set()
        self._thread.join()
        self._thread = None
        self._sample()

    def _sample(self) -> None:
        with self._lock:
            self._samples.append((time.perf_counter(), resident_bytes()))

    def _loop(self) -> None:
        while not self._stop.wait(self.interval_s):
            self._sample()

    def record(self, name: str, group: str, started: float, ended: float) -> None:
        self._sample()
        with self._lock:
            self._spans.append((name, group, started, ended))

    @contextmanager
    def span(self, name: str, group: str) -> Iterator[None]:
        started = time.perf_counter()
        try:
            yield
        finally:
            self.record(name, group, started, time.perf_counter())

    def stages(self) -> list[StageProfile]:
        with self._lock:
            samples = sorted(self._samples)
            spans = sorted(self._spans, key=lambda s: s[2])
        out = []
        for name, group, started, ended in spans:
            inside = [rss for t, rss in samples if started <= t <= ended]
            before = [rss for t, rss in samples if t < started]
            peak = max([*inside, *before[-1:]], default=0)
            out.append(StageProfile(name, group, started - self._origin, ended - started, peak))
        return out

    def report(self) -> dict[str, Any]:
        """What ``timings.json`` holds: wall time, process peak, and every stage."""
        with self._lock:
            last = max((t for t, _ in self._samples), default=self._origin)
            peak = max((rss for _, rss in self._samples), default=0)
        return {
            "wall_seconds": round(last - self._origin, 3),
            "peak_rss_mb": round(peak / 2**20, 1),
            "note": "stages overlap (background jobs); a stage's peak is the process's "
            "resident memory while it ran",
            "stages": [
                {
                    "name": s.name,
                    "group": s.group,
                    "started_s": round(s.started_s, 3),
                    "seconds": round(s.seconds, 3),
                    "peak_rss_mb": round(s.peak_rss_bytes / 2**20, 1),
                }
                for s in self.stages()
            ],
        }
