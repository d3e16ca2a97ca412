"""``tagsweep sim …``: run the simulators by hand (readers, scanners, exports)."""

from __future__ import annotations

import typer

sim_app = typer.Typer(
    help="Run simulated readers, scanners and systems of record (for tests, demos, trials).",
    no_args_is_help=True,
)
