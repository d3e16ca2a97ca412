"""DuckDB connections that can reach only the files of the job at hand.

Every identifier and literal the engine puts into SQL is quoted (``stages.ident`` and
``stages.lit``) or bound; this is the second wall, for the day one slips through. A
connection from :func:`connect` has external access disabled, with exactly the files
(``read``) and folders (``dirs``) of the freeze or run allowed, and its configuration
locked, so SQL that an export smuggled in could neither read a system file nor write
one, nor switch the restriction off again. DuckDB's own spill folder stays allowed.
"""

from __future__ import annotations

from collections.abc import Iterable
from pathlib import Path

import duckdb

from tagsweep.engine.stages import lit


def _paths(paths: Iterable[Path]) -> str:
    return "[" + ", ".join(lit(str(Path(p).absolute())) for p in paths) + "]"


def connect(
    *,
    read: Iterable[Path] = (),
    dirs: Iterable[Path] = (),
    memory_limit: str | None = None,
    threads: int | None = None,
    preserve_insertion_order: bool = True,
) -> duckdb.DuckDBPyConnection:
    """An in-memory connection allowed to open only the files ``read`` and anything
    under ``dirs``; UTC, no progress bar; the configuration cannot be changed after.

    The settings are global, so every ``cursor()`` of the connection has them too."""
    con = duckdb.connect()
    try:
        con.execute("SET GLOBAL TimeZone = 'UTC'")
        con.execute("SET enable_progress_bar = false")
        if not preserve_insertion_order:
            con.execute("SET preserve_insertion_order = false")
        if memory_limit:
            con.execute(f"SET memory_limit = {lit(memory_limit)}")
        if threads:
            con.execute(f"SET threads = {int(threads)}")
        con.execute(f"SET allowed_paths = {_paths(read)}")
        con.execute(f"SET allowed_directories = {_paths(dirs)}")
        con.execute("SET enable_external_access = false")
        con.execute("SET lock_configuration = true")
    except BaseException:
        con.close()
        raise
    return con
