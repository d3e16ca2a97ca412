"""Generating the invented fleet's exports and counts in one go (:func:`generate`):
the clean register, the injected variances with their answer key, then every source
written in turn, all from one seeded random stream."""

from __future__ import annotations

import random
from dataclasses import dataclass, field
from datetime import UTC, date, datetime, timedelta
from pathlib import Path

from tagsweep.simulators.fleet_exports.files import (
    write_count_sheet,
    write_far,
    write_intune,
    write_itam,
    write_session,
)
from tagsweep.simulators.fleet_exports.fleet import SITE, Serials, make_fleet
from tagsweep.simulators.fleet_exports.formats import write_hr_json
from tagsweep.simulators.fleet_exports.variances import inject_variances


@dataclass(slots=True)
class GeneratedExports:
    """Paths of everything written, the answer key and the run parameters."""

    directory: Path
    sources: dict[str, tuple[str, Path]]  # name → (preset, file)
    counts: list[Path]
    answer_key: set[tuple[str, str]]
    bad_rows: set[tuple[str, int]]  # (file name, line)
    as_of: date
    scope: list[str]
    injected: dict[str, int] = field(default_factory=dict)


def generate(
    out_dir: Path,
    *,
    n_assets: int = 600,
    per_type: int = 4,
    seed: int = 7,
    as_of: date = date(2026, 11, 24),
) -> GeneratedExports:
    """Write a consistent set of exports and counts with ``per_type`` injections of each
    variance type (some types in several variants) and return the answer key."""
    if n_assets < 40 * per_type:
        raise ValueError(f"n_assets must be at least {40 * per_type} for {per_type} per type")
    rng = random.Random(seed)  # noqa: S311 - reproducible test data, not a secret
    serials = Serials(rng)
    out_dir.mkdir(parents=True, exist_ok=True)
    now = datetime.combine(as_of, datetime.min.time(), tzinfo=UTC) + timedelta(hours=9)
    fleet = make_fleet(rng, serials, n_assets, now)
    variances = inject_variances(fleet, rng, serials, per_type)
    assets = fleet.assets
    register = assets + variances.duplicates
    by_email = {p.email: p for p in fleet.people}
    bad_rows: set[tuple[str, int]] = set()
    # one random stream: the sources are written in this order, always
    files: dict[str, tuple[str, Path]] = {
        "itam": ("snipeit", write_itam(out_dir, register, by_email, now, bad_rows)),
        "intune": (
            "intune",
            write_intune(out_dir, assets, variances, fleet.active_people, rng=rng, now=now),
        ),
        "finance": ("fixed_asset", write_far(out_dir, assets, variances)),
        "hr": ("hr", write_hr_json(out_dir / "hr.json", fleet.people)),
    }
    session = write_session(out_dir, register, variances, rng=rng, now=now, as_of=as_of)
    sheet_path = write_count_sheet(out_dir, assets, variances, by_email, bad_rows)
    return GeneratedExports(
        directory=out_dir,
        sources=files,
        counts=[session, sheet_path],
        answer_key=variances.key,
        bad_rows=bad_rows,
        as_of=as_of,
        scope=[SITE],
        injected=variances.injected,
    )
