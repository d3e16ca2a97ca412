"""The scheduled reconciliation: freeze, run, keep a bounded history.

What ``tagsweep reconcile nightly`` (started by ``tagsweep-reconcile.timer``) does, in
order: freeze the exports of ``[engine.nightly.exports]`` into a new snapshot
``snapshots/<UTC time>`` (a snapshot is never overwritten, so each night gets its own),
reconcile every session file under ``sessions/`` (flat or one folder per gateway) and
the count sheets of ``count_sheets`` against it into ``runs/<same time>``, then delete
the oldest dated snapshots and runs beyond ``keep_snapshots`` / ``keep_runs``. Only
folders named like a stamp are ever deleted.
"""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from tagsweep.engine.freeze import FreezeError, SourceSpec, freeze

if TYPE_CHECKING:
    from tagsweep.config.engine import EngineSection
    from tagsweep.engine.run import RunResult
    from tagsweep.engine.stages import Stage

#: ``20261124T023000Z``, with ``-2``, ``-3``… when two jobs start in the same second
STAMP = re.compile(r"^\d{8}T\d{6}Z(-\d+)?$")


class NightlyError(Exception):
    """The scheduled run cannot start (nothing configured, an export is missing)."""


@dataclass(slots=True)
class NightlyResult:
    snapshot: Path | None = None
    run: RunResult | None = None
    run_dir: Path | None = None
    counts: list[Path] = field(default_factory=list)
    removed: list[Path] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)


def _within(state_dir: Path, path: Path) -> Path:
    return path if path.is_absolute() else state_dir / path


def new_dated_dir(parent: Path, now: datetime) -> Path:
    """A folder under ``parent`` named by ``now`` (UTC) that does not exist yet."""
    base = now.astimezone(UTC).strftime("%Y%m%dT%H%M%SZ")
    candidate, n = parent / base, 1
    while candidate.exists():
        n += 1
        candidate = parent / f"{base}-{n}"
    return candidate


def _stamp_key(path: Path) -> tuple[str, int]:
    stamp, _, n = path.name.partition("-")
    return stamp, int(n or 1)


def prune(parent: Path, keep: int) -> list[Path]:
    """Delete the oldest stamp-named folders of ``parent`` beyond the newest ``keep``."""
    if not parent.is_dir():
        return []
    dated = sorted(
        (p for p in parent.iterdir() if p.is_dir() and STAMP.match(p.name)), key=_stamp_key
    )
    doomed = dated[: max(0, len(dated) - keep)]
    for path in doomed:
        shutil.rmtree(path)
    return doomed


def count_files(sessions: Path, sheets: Path | None) -> list[Path]:
    """Every closed session file under ``sessions`` (any depth: flat, or one folder per
    gateway) and every ``.csv`` count sheet in ``sheets``, sorted for a reproducible run.
    Hidden files (a session file being written is ``.<id>.parquet.tmp``) are skipped."""
    found: list[Path] = []
    if sessions.is_dir():
        found.extend(
            p
            for p in sessions.rglob("*.parquet")
            if p.is_file() and not any(part.startswith(".") for part in p.parts[-2:])
        )
    if sheets is not None and sheets.is_dir():
        found.extend(p for p in sheets.glob("*.csv") if p.is_file())
    return sorted(found)


def run_nightly(
    settings: EngineSection,
    state_dir: Path,
    *,
    now: datetime | None = None,
    on_stage: Callable[[Stage], None] | None = None,
    memory_limit: str | None = None,
    audit_log: Path | None = None,
) -> NightlyResult:
    """Freeze, reconcile and prune as described in the module docstring; ``audit_log``
    (the case store's) has its head recorded in the run's manifest and report."""
    from tagsweep.engine.run import reconcile

    nightly = settings.nightly
    now = now or datetime.now(UTC)
    if not nightly.exports:
        raise NightlyError(
            "no exports to freeze: list them in [engine.nightly.exports], e.g. "
            '"itam:snipeit" = "exports/assets.csv"'
        )
    specs = []
    for key, path in sorted(nightly.exports.items()):
        name, _, preset = key.partition(":")
        file = _within(state_dir, path)
        if not file.is_file():
            raise NightlyError(
                f"[engine.nightly.exports] {key!r}: {file} does not exist (has the export job run?)"
            )
        specs.append(SourceSpec(name.strip(), file, preset.strip() or None))
    result = NightlyResult()
    sheets = _within(state_dir, nightly.count_sheets) if nightly.count_sheets else None
    result.counts = count_files(_within(state_dir, nightly.sessions), sheets)
    if not result.counts:
        result.warnings.append(
            f"no session files under {_within(state_dir, nightly.sessions)}: nothing counted, "
            "nothing reconciled"
        )
        return result
    snapshots = _within(state_dir, nightly.snapshots)
    snapshots.mkdir(parents=True, exist_ok=True)
    snapshot = new_dated_dir(snapshots, now)
    try:
        frozen = freeze(specs, snapshot, settings)
    except (FreezeError, OSError):
        shutil.rmtree(snapshot, ignore_errors=True)  # no half snapshot to prune later
        raise
    result.snapshot = snapshot
    result.warnings.extend(frozen.warnings)
    runs = _within(state_dir, nightly.runs)
    runs.mkdir(parents=True, exist_ok=True)
    result.run_dir = new_dated_dir(runs, now)
    result.run = reconcile(
        snapshot,
        result.counts,
        settings,
        result.run_dir,
        on_stage=on_stage,
        memory_limit=memory_limit,
        audit_log=audit_log,
    )
    result.removed = prune(snapshots, nightly.keep_snapshots) + prune(runs, nightly.keep_runs)
    return result
