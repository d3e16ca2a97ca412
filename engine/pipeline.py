"""The order of a run's stages, and the work that overlaps them.

normalize → match → classify run one after the other on the run's connection; what does
not depend on the stage in between runs beside it on its own cursor: the count side
(observations) while the register is built, matches.parquet while classify runs,
register.parquet and the corrections while the variance log is written. Each output
file is hashed for the manifest as soon as it is written.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future, ThreadPoolExecutor
from pathlib import Path

import duckdb

from tagsweep.engine import classify, match, normalize
from tagsweep.engine.outputs import (
    write_corrections,
    write_matches,
    write_register,
    write_variance_log,
)
from tagsweep.engine.profiling import RunProfiler
from tagsweep.engine.snapshot import BadRow
from tagsweep.engine.stages import RunContext, StageRunner
from tagsweep.hashing import sha256_file


class Background:
    """Work that overlaps the stages: a stage that only needs the lookup tables, and
    the output files whose table is final (the register once normalize is done, the
    matches once match is). Each job runs on its own cursor in a worker thread, and the
    files it writes are hashed there for the manifest; ``wait`` re-raises a failure."""

    def __init__(
        self,
        con: duckdb.DuckDBPyConnection,
        out_dir: Path,
        timings: dict[str, float],
        profiler: RunProfiler,
    ) -> None:
        self.con = con
        self.out_dir = out_dir
        self.timings = timings
        self.profiler = profiler
        self.hashes: dict[str, str] = {}
        self._pool = ThreadPoolExecutor(max_workers=2, thread_name_prefix="reconcile")
        self._pending: list[Future[None]] = []

    def cursor(self) -> duckdb.DuckDBPyConnection:
        return self.con.cursor()  # the connection's (locked) settings are global

    def hash_files(self, *files: str) -> None:
        for rel in files:
            self.hashes[rel] = sha256_file(self.out_dir / rel)

    def submit(self, job: Callable[[duckdb.DuckDBPyConnection], object]) -> Future[None]:
        def run() -> None:
            cur = self.cursor()
            try:
                job(cur)
            finally:
                cur.close()

        future = self._pool.submit(run)
        self._pending.append(future)
        return future

    def write(
        self, name: str, write: Callable[[duckdb.DuckDBPyConnection, Path], object], *files: str
    ) -> None:
        """Write (and hash) output files in the background; ``out:<name>`` is its time."""

        def job(cur: duckdb.DuckDBPyConnection) -> None:
            started = time.perf_counter()
            write(cur, self.out_dir)
            self.hash_files(*files)
            ended = time.perf_counter()
            self.timings[f"out:{name}"] = ended - started
            self.profiler.record(f"out:{name}", "outputs", started, ended)

        self.submit(job)

    def wait(self) -> None:
        pending, self._pending = self._pending, []
        for future in pending:
            future.result()

    def close(self) -> None:
        """Wait for every job (also after a failure: no thread outlives the run)."""
        self._pool.shutdown(wait=True, cancel_futures=True)


def run_stages(ctx: RunContext, runner: StageRunner, background: Background) -> list[BadRow]:
    """normalize → match → classify, with what does not depend on the stage in between
    run alongside: the count side (observations) needs only the lookup tables and the
    HR people, so it is computed while the register is built; matches.parquet is
    written while classifying runs, register.parquet while the variance log is.

    Returns the count rows kept out. The normalized count rows are dropped once the
    matches are built (every later step reads the matches): at ten million reads they
    are gigabytes the classification would otherwise have to spill around."""
    normalize_stages = normalize.stages(ctx)
    match_stages = match.stages(ctx)
    people = [s for s in normalize_stages if s.name in normalize.COUNT_SIDE_NEEDS]
    runner.run(people)
    side = StageRunner(
        runner.con,
        debug_dir=runner.debug_dir,
        timings=runner.timings,
        on_stage=runner.on_stage,
        profiler=runner.profiler,
    )

    def observations(cur: duckdb.DuckDBPyConnection) -> None:
        side.con = cur
        side.run(match_stages[:1])

    count_side = background.submit(observations)
    runner.run([s for s in normalize_stages if s not in people])
    count_side.result()
    runner.run(match_stages[1:])
    background.write("matches", write_matches, "matches.parquet")
    con = runner.con
    bad = [
        BadRow("count", str(file), int(line), str(reason))
        for file, line, reason in con.execute(
            "SELECT file, line, bad_reason FROM observations_all WHERE bad_reason IS NOT NULL "
            "ORDER BY file, line"
        ).fetchall()
    ]
    con.execute("DROP VIEW observed_items")
    con.execute("DROP TABLE observations_all")
    runner.run(classify.stages(ctx))
    # Last: written while the variance log is (mostly one thread of Arrow encoding
    # each), it fills the core the stages' own parallel queries would compete for.
    background.write("register", write_register, "register.parquet")
    return bad


def write_outputs(
    con: duckdb.DuckDBPyConnection, out_dir: Path, register_source: str, background: Background
) -> dict[str, int]:
    """The corrections in the background while this connection writes the variance
    log; each file is hashed for the manifest as soon as it is written."""
    timings = background.timings
    corrections: dict[str, int] = {}

    def write(cur: duckdb.DuckDBPyConnection, out: Path) -> None:
        corrections.update(write_corrections(cur, out, register_source))
        background.hash_files(
            *sorted(p.relative_to(out).as_posix() for p in out.glob("corrections/*"))
        )

    background.write("corrections", write)
    started = time.perf_counter()
    write_variance_log(con, out_dir)
    ended = time.perf_counter()
    timings["out:variance_log"] = ended - started
    background.profiler.record("out:variance_log", "outputs", started, ended)
    background.submit(
        lambda _cur: background.hash_files("variances.parquet", "variances.csv", "variances.jsonl")
    )
    background.wait()
    return corrections
