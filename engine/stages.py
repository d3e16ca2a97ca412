"""Named SQL stages and the runner that materialises them.

Following Splink, the pipeline is a list of named SQL steps over DuckDB. Each step
becomes a table of the same name, so a reviewer can stop after any step and look at
exactly what it produced (``tagsweep reconcile run --debug-dir``) instead of reading a
monolithic query; tests exercise stages one at a time.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path

import duckdb

from tagsweep.config.engine import EngineSection
from tagsweep.engine.profiling import RunProfiler
from tagsweep.sql import ident, lit

#: Rows per Parquet row group in the files the engine writes. DuckDB scans one row group
#: per thread, so a million-row file written as one row group is read by one core.
PARQUET_ROW_GROUP_ROWS = 122_880

__all__ = [
    "PARQUET_ROW_GROUP_ROWS",
    "RunContext",
    "SourceInput",
    "Stage",
    "StageRunner",
    "ident",
    "lit",
]


@dataclass(frozen=True, slots=True)
class Stage:
    """One named step: ``CREATE TABLE <name> AS <sql>``; ``group`` is the method step."""

    name: str
    group: str
    sql: str
    doc: str = ""
    #: False: a view (a cheap projection read once); still written by ``--debug-dir``
    materialize: bool = True


@dataclass(frozen=True, slots=True)
class SourceInput:
    """One frozen source as the SQL sees it."""

    name: str
    role: str
    preset: str
    file: str  # the original export's file name, for bad-row reports
    path: Path  # the frozen Parquet (or a baseline register)
    columns: dict[str, list[str] | str]
    #: SQL relation with every column as text plus ``_line``
    relation: str


@dataclass(slots=True)
class RunContext:
    """Everything the SQL of a run depends on, fixed before the first stage runs."""

    settings: EngineSection
    as_of: date
    run_id: str
    scope: list[str]
    sla_routine: date
    sla_urgent: date
    sources: list[SourceInput] = field(default_factory=list)
    #: whether the run has a count; without one the sources are reconciled against
    #: each other only (nothing can be missing from a count that did not happen)
    counted: bool = True


@dataclass(slots=True)
class StageRunner:
    """Runs stages in order on one connection; optionally writes each to Parquet."""

    con: duckdb.DuckDBPyConnection
    debug_dir: Path | None = None
    timings: dict[str, float] = field(default_factory=dict)
    on_stage: Callable[[Stage], None] | None = None
    profiler: RunProfiler | None = None

    def run(self, stages: Sequence[Stage]) -> None:
        for stage in stages:
            self.run_one(stage)

    def run_one(self, stage: Stage) -> None:
        if self.on_stage is not None:
            self.on_stage(stage)
        start = time.perf_counter()
        try:
            kind = "TABLE" if stage.materialize else "VIEW"
            self.con.execute(f"CREATE OR REPLACE {kind} {ident(stage.name)} AS {stage.sql}")
        except duckdb.Error as exc:
            raise RuntimeError(f"stage {stage.group}/{stage.name} failed: {exc}") from exc
        ended = time.perf_counter()
        self.timings[stage.name] = ended - start
        if self.profiler is not None:
            self.profiler.record(stage.name, stage.group, start, ended)
        if self.debug_dir is not None:
            self.debug_dir.mkdir(parents=True, exist_ok=True)
            target = self.debug_dir / f"{stage.group}.{stage.name}.parquet"
            self.con.execute(f"COPY {ident(stage.name)} TO {lit(str(target))} (FORMAT PARQUET)")
