"""Exports of a world model's assets: the engine must find exactly the answer key.

No gateway here: the count is the world's truth written as a session file (every label
a reader could see, at its true rack; every unlabelled asset scanned at its rack), so
a disagreement can only come from the generator's answer key or the engine — the demo
test then adds the real gateway on top. With a truthful count there is no attribution
error, so the key must match for every type, location mismatches included.
"""

from __future__ import annotations

import hashlib
import json
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from tagsweep.config.engine import EngineSection
from tagsweep.domain import SESSION_FILE_COLUMNS, VarianceType
from tagsweep.engine.freeze import SourceSpec, freeze
from tagsweep.engine.run import reconcile
from tagsweep.epc import giai96_for_asset_tag
from tagsweep.simulators.demo import STORAGE_ZONE, found_truth, storage_tags
from tagsweep.simulators.world import build_world, portal_traffic, walk_through
from tagsweep.simulators.world_exports import WorldExports, generate_for_world

NOW = datetime(2026, 11, 24, 17, 0, tzinfo=UTC)


def _truthful_session(folder: Path, rows: list[dict[str, object]]) -> Path:
    """A session file and manifest as the gateway writes them, from given observations."""
    session_id = "cs-20261124T160000Z-truth"
    types = {
        "string": pa.string(),
        "timestamp[us, UTC]": pa.timestamp("us", tz="UTC"),
        "int64": pa.int64(),
        "float32": pa.float32(),
    }
    t = int(NOW.timestamp() * 1e6) - 3_600_000_000
    full = [
        {
            "session_id": session_id, "site": "DC1", "epc": None, "asset_tag": None,
            "serial": None, "first_seen": t, "last_seen": t + 1_000_000, "read_count": 3,
            "peak_rssi": None, "operator": "auditor-a", **row,
        }
        for row in rows
    ]  # fmt: skip
    table = pa.table(
        {c: pa.array([r[c] for r in full], types[k]) for c, k in SESSION_FILE_COLUMNS.items()}
    )
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / f"{session_id}.parquet"
    pq.write_table(table, path)
    manifest = {
        "session_id": session_id, "site": "DC1", "operator": "auditor-a", "scope": ["DC1"],
        "started": NOW.isoformat(), "ended": NOW.isoformat(), "row_count": table.num_rows,
        "sha256": hashlib.sha256(path.read_bytes()).hexdigest(), "gateway": "gw-test",
        "tagsweep_version": "0.1.0",
    }  # fmt: skip
    path.with_suffix(".json").write_text(json.dumps(manifest), encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def generated(
    tmp_path_factory: pytest.TempPathFactory,
) -> tuple[WorldExports, set[tuple[str, str]]]:
    base = tmp_path_factory.mktemp("world-exports")
    world = build_world(
        4, rooms=2, rows_per_room=1, racks_per_row=2, assets_per_rack=60, dead_tag_fraction=0.05
    )
    walk = walk_through(world, 4)
    traffic = portal_traffic(4, trips=10, items=10, zone=STORAGE_ZONE, first_asset_number=500_000)
    found = found_truth(walk, traffic)
    rows: list[dict[str, object]] = []
    for a in world.assets:
        if a.asset_tag not in found:
            continue
        if a.epc is None:
            rows.append({"method": "barcode", "location": a.rack, "asset_tag": a.asset_tag,
                         "reader": "scanner"})  # fmt: skip
        else:
            rows.append({"method": "rfid", "location": a.rack, "epc": a.epc,
                         "peak_rssi": -50.0, "reader": "handheld"})  # fmt: skip
    rows += [
        {"method": "rfid", "location": STORAGE_ZONE, "epc": giai96_for_asset_tag(tag),
         "peak_rssi": -60.0, "reader": "store-door"}
        for tag in storage_tags(traffic)
        if tag in found
    ]  # fmt: skip
    session = _truthful_session(base / "sessions", rows)
    exports = generate_for_world(
        base / "exports",
        world,
        found=found,
        storage_tags=storage_tags(traffic),
        storage_zone=STORAGE_ZONE,
        per_type=2,
        seed=4,
        now=NOW,
    )
    settings = EngineSection()
    specs = [SourceSpec(name, path, preset) for name, (preset, path) in exports.sources.items()]
    freeze(specs, base / "snapshot", settings)
    run = reconcile(base / "snapshot", [session, *exports.counts], settings, base / "run")
    log = pq.read_table(run.out_dir / "variances.parquet").to_pylist()
    return exports, {(str(v["variance_type"]), str(v["asset_key"])) for v in log}


def test_every_type_is_injected(generated: tuple[WorldExports, set[tuple[str, str]]]) -> None:
    exports, _ = generated
    assert {t for t, _ in exports.answer_key} == {t.value for t in VarianceType}
    assert exports.natural_missing > 0  # dead labels are missing without any injection


@pytest.mark.parametrize("kind", [t.value for t in VarianceType])
def test_engine_finds_exactly_the_key(
    generated: tuple[WorldExports, set[tuple[str, str]]], kind: str
) -> None:
    exports, logged = generated
    expected = {k for t, k in exports.answer_key if t == kind}
    found = {k for t, k in logged if t == kind}
    assert found == expected, (sorted(expected - found), sorted(found - expected))


def test_same_seed_same_key(tmp_path: Path) -> None:
    world = build_world(9, rooms=2, rows_per_room=1, racks_per_row=2, assets_per_rack=40,
                        dead_tag_fraction=0.1)  # fmt: skip
    found = {a.asset_tag for a in world.assets if a.tag_state.value != "dead"}
    one = generate_for_world(tmp_path / "a", world, found=found, per_type=1, seed=3, now=NOW)
    two = generate_for_world(tmp_path / "b", world, found=found, per_type=1, seed=3, now=NOW)
    assert one.answer_key == two.answer_key
    assert (tmp_path / "a" / "itam.csv").read_bytes() == (tmp_path / "b" / "itam.csv").read_bytes()


def test_too_small_a_world_is_refused(tmp_path: Path) -> None:
    world = build_world(9, rooms=1, rows_per_room=1, racks_per_row=1, assets_per_rack=10,
                        dead_tag_fraction=0.0)  # fmt: skip
    found = {a.asset_tag for a in world.assets}
    with pytest.raises(ValueError, match="bigger world"):
        generate_for_world(tmp_path, world, found=found, per_type=4, now=NOW)
