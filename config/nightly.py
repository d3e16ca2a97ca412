"""Configuration of the scheduled reconciliation (the ``[engine.nightly]`` table).

``tagsweep reconcile nightly`` (what ``tagsweep-reconcile.timer`` starts) freezes the
exports named here into a new dated snapshot, reconciles every session file under the
session folder against it into a new dated run, and keeps only the newest snapshots and
runs. Relative paths are relative to the state folder (``--state-dir``, else systemd's
``$STATE_DIRECTORY``, else ``state_dir``).
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, ConfigDict, Field, field_validator


class NightlySection(BaseModel):
    """Where the nightly job finds its inputs and how much history it keeps."""

    model_config = ConfigDict(extra="forbid", frozen=True, str_strip_whitespace=True)

    #: the state folder when neither --state-dir nor $STATE_DIRECTORY names one
    state_dir: Path = Path("/var/lib/tagsweep")
    #: ``NAME[:PRESET]`` → export file the export job replaces before each run,
    #: e.g. ``"itam:snipeit" = "exports/assets.csv"`` (as ``reconcile freeze --source``)
    exports: dict[str, Path] = {}
    #: folder of session files: flat, or one sub-folder per gateway
    sessions: Path = Path("sessions")
    #: folder of manual count sheets (``*.csv``) reconciled with the sessions; optional
    count_sheets: Path | None = None
    snapshots: Path = Path("snapshots")
    runs: Path = Path("runs")
    #: how many dated snapshots and runs to keep (the oldest beyond are deleted)
    keep_snapshots: int = Field(default=14, ge=1)
    keep_runs: int = Field(default=90, ge=1)

    @field_validator("exports")
    @classmethod
    def _names(cls, value: dict[str, Path]) -> dict[str, Path]:
        for key in value:
            name, _, preset = key.partition(":")
            if not name.strip() or (":" in key and not preset.strip()):
                raise ValueError(f"{key!r}: expected NAME or NAME:PRESET")
        return value
