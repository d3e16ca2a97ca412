"""Fixture runs: variance logs with exactly the columns of the variance log contract.

Used where a test needs full control over which variances a run shows; the scenario test
drives the real engine instead.
"""

from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from tagsweep.domain import VARIANCE_LOG_COLUMNS

_TYPES = {
    "string": pa.string(),
    "date32": pa.date32(),
    "float64": pa.float64(),
    "bool": pa.bool_(),
}
SCHEMA = pa.schema([(name, _TYPES[kind]) for name, kind in VARIANCE_LOG_COLUMNS.items()])


@dataclass(frozen=True)
class V:
    """A variance to put in a fixture run."""

    variance_type: str
    asset_tag: str
    expected: str | None = None
    found: str | None = None
    expected_location: str | None = None
    found_location: str | None = None
    value: float | None = 800.0
    source: str = "snipeit"
    priority: str = "P3"


def variance_id(v: V) -> str:
    return hashlib.sha256(f"{v.variance_type}|{v.asset_tag}".encode()).hexdigest()[:16]


def write_run(folder: Path, run_id: str, run_date: date, variances: list[V]) -> Path:
    """A run folder with ``variances.parquet`` and ``manifest.json``."""
    folder.mkdir(parents=True, exist_ok=True)
    rows: list[dict[str, Any]] = [
        {
            "variance_id": variance_id(v),
            "run_id": run_id,
            "variance_type": v.variance_type,
            "priority": v.priority,
            "sla_due": run_date + timedelta(days=7),
            "asset_key": v.asset_tag,
            "asset_tag": v.asset_tag,
            "serial": f"SN-{v.asset_tag}",
            "epc": None,
            "manufacturer": "Dell",
            "model": "Latitude 7440",
            "expected": v.expected,
            "found": v.found,
            "expected_location": v.expected_location,
            "found_location": v.found_location,
            "source": v.source,
            "session_id": "cs-1",
            "value": v.value,
            "high_value": bool(v.value and v.value >= 5000),
            "high_risk": False,
            "detail": f"{v.variance_type} for {v.asset_tag}",
            "evidence": json.dumps({"asset_tag": v.asset_tag}),
        }
        for v in variances
    ]
    pq.write_table(pa.Table.from_pylist(rows, schema=SCHEMA), folder / "variances.parquet")
    (folder / "manifest.json").write_text(
        json.dumps({"run_id": run_id, "run_date": run_date.isoformat()})
    )
    return folder


REGISTER_FIELDS = (
    "asset_tag",
    "serial",
    "manufacturer",
    "model",
    "location",
    "status",
    "custodian",
)


def write_register(folder: Path, assets: list[dict[str, Any]], source: str = "snipeit") -> Path:
    """A ``register.parquet`` with the data fields and a ``<field>_source`` per field."""
    rows = []
    for asset in assets:
        row: dict[str, Any] = {f: asset.get(f) for f in REGISTER_FIELDS}
        row["value"] = float(asset.get("value", 800.0))
        for f in (*REGISTER_FIELDS, "value"):
            row[f + "_source"] = source
        rows.append(row)
    schema = pa.schema(
        [(f, pa.string()) for f in REGISTER_FIELDS]
        + [("value", pa.float64())]
        + [(f + "_source", pa.string()) for f in (*REGISTER_FIELDS, "value")]
    )
    path = folder / "register.parquet"
    pq.write_table(pa.Table.from_pylist(rows, schema=schema), path)
    return path


class Clock:
    """The time a case store signs its entries with, moved by the test (never backwards:
    ``audit verify`` refuses entries that go back in time)."""

    def __init__(self, start: date) -> None:
        self.now = datetime(start.year, start.month, start.day, 9, tzinfo=UTC)

    def __call__(self) -> datetime:
        return self.now

    def to(self, day: date) -> None:
        target = datetime(day.year, day.month, day.day, 9, tzinfo=UTC)
        if target < self.now:
            raise ValueError(f"the clock does not go back ({self.now} -> {target})")
        self.now = target
