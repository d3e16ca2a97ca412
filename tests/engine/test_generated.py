"""The whole engine against generated exports with a known answer key.

The generator (``simulators/fleet_exports/``) injects every variance type of the seed
method into otherwise consistent Snipe-IT, Intune, fixed-asset (XLSX) and HR (JSON)
exports plus an RFID session file and a manual count sheet; the engine must find
exactly the injected variances: recall and precision 100 % per type.
"""

from __future__ import annotations

import csv
import json
from dataclasses import dataclass
from datetime import date
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest

from tagsweep.config.engine import EngineSection
from tagsweep.domain import VarianceType
from tagsweep.engine.freeze import SourceSpec, freeze
from tagsweep.engine.run import RunResult, reconcile
from tagsweep.simulators.fleet_exports import GeneratedExports, generate


@dataclass
class World:
    exports: GeneratedExports
    run: RunResult
    debug: Path


@pytest.fixture(scope="module")
def world(tmp_path_factory: pytest.TempPathFactory) -> World:
    base = tmp_path_factory.mktemp("generated")
    exports = generate(base / "exports", n_assets=600, per_type=4, seed=11)
    settings = EngineSection()
    freeze(
        [SourceSpec(name, path, preset) for name, (preset, path) in exports.sources.items()],
        base / "snapshot",
        settings,
    )
    run = reconcile(
        base / "snapshot", exports.counts, settings, base / "run", debug_dir=base / "debug"
    )
    return World(exports, run, base / "debug")


def _log(run: RunResult) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = pq.read_table(run.out_dir / "variances.parquet").to_pylist()
    return rows


def test_every_variance_type_is_injected(world: World) -> None:
    assert {t for t, _ in world.exports.answer_key} == {t.value for t in VarianceType}


@pytest.mark.parametrize("variance_type", [t.value for t in VarianceType])
def test_recall_and_precision_are_perfect_per_type(world: World, variance_type: str) -> None:
    expected = {k for t, k in world.exports.answer_key if t == variance_type}
    found = {str(r["asset_key"]) for r in _log(world.run) if r["variance_type"] == variance_type}
    true_positives = expected & found
    recall = len(true_positives) / len(expected)
    precision = len(true_positives) / len(found) if found else 0.0
    assert (recall, precision) == (1.0, 1.0), (sorted(expected - found), sorted(found - expected))


def test_bad_rows_are_reported_with_file_and_line_and_kept_out(world: World) -> None:
    with (world.run.out_dir / "bad_rows.csv").open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    assert {(r["file"], int(r["line"])) for r in rows} == world.exports.bad_rows
    assert world.run.manifest["counts"]["bad_rows"] == len(world.exports.bad_rows)
    reasons = " ".join(r["reason"] for r in rows)
    assert "placeholder serial" in reasons
    assert "TOO MANY COLUMNS" in reasons
    assert "location is empty" in reasons
    register = pq.read_table(world.run.out_dir / "register.parquet")
    assert "AST-999999" not in register.column("asset_key").to_pylist()


def test_register_has_provenance_per_field(world: World) -> None:
    register = {
        r["asset_key"]: r for r in pq.read_table(world.run.out_dir / "register.parquet").to_pylist()
    }
    asset = register["AST-000002"]
    assert asset["asset_tag_source"] == "itam"
    assert asset["value_source"] == "finance"  # fixed-asset register is the source of truth
    assert asset["status"] in {"in_use", "in_stock"}
    assert asset["manufacturer"] in {"Dell", "HP", "Lenovo", "Apple"}
    assert asset["last_seen_source"] in {"itam", "intune"}
    assert "finance" in asset["sources"]


def test_matching_tiers_and_record_links(world: World) -> None:
    matches = pq.read_table(world.run.out_dir / "matches.parquet").to_pylist()
    tiers = {(m["tier"], m["match_status"]) for m in matches}
    assert ("asset_tag", "confirmed") in tiers
    assert ("lookalike_serial", "probable") in tiers
    assert ("asset_tag", "identity_conflict") in tiers
    links = (
        duckdb.connect()
        .execute(f"SELECT DISTINCT link_tier FROM '{world.debug}/normalize.record_links.parquet'")
        .fetchall()
    )
    # Intune devices with a BIOS placeholder serial are linked through their MAC
    assert {r[0] for r in links} >= {"register", "asset_tag", "serial", "mac"}


def test_priorities_and_business_day_sla(world: World) -> None:
    log = _log(world.run)
    assert world.run.as_of == date(2026, 11, 24)
    for row in log:
        if row["variance_type"] in {"retired_but_active", "duplicate_record"}:
            assert row["priority"] == "P1"
        if row["high_value"] or row["high_risk"]:
            assert row["priority"] == "P1"
            assert row["sla_due"] == date(2026, 11, 25)
        elif row["priority"] != "P1":
            assert row["sla_due"] == date(2026, 12, 1)
    servers = [r for r in log if r["high_risk"]]
    assert servers, "generated servers are high risk (category Servers)"


def test_evidence_names_sources_and_sessions(world: World) -> None:
    log = _log(world.run)
    location = next(r for r in log if r["variance_type"] == "location_mismatch")
    assert str(location["session_id"]).startswith("cs-")
    assert location["expected_location"] != location["found_location"]
    retired = next(r for r in log if r["variance_type"] == "retired_but_active")
    evidence = json.loads(str(retired["evidence"]))
    assert "finance" in evidence["retired_in"]
    conflict = [r for r in log if r["variance_type"] == "source_conflict"]
    assert any("intune" in str(r["source"]) for r in conflict)


def test_corrections_per_source(world: World) -> None:
    folder = world.run.out_dir / "corrections"
    names = sorted(p.name for p in folder.iterdir())
    assert "itam.csv" in names
    with (folder / "itam.csv").open(encoding="utf-8", newline="") as fh:
        rows = list(csv.DictReader(fh))
    actions = {(r["variance_type"], r["action"]) for r in rows}
    assert ("location_mismatch", "update") in actions
    assert ("unrecorded", "create") in actions
    assert ("duplicate_record", "retire") in actions
    moved = next(r for r in rows if r["variance_type"] == "location_mismatch")
    assert moved["proposed_value"].startswith("DC1/Room")


def test_manifest_hashes_every_output(world: World) -> None:
    manifest = json.loads((world.run.out_dir / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["run_id"] == world.run.run_id
    assert {"variances.csv", "variances.parquet", "variances.jsonl", "register.parquet",
            "matches.parquet", "report.md", "report.html"} <= set(manifest["outputs"])  # fmt: skip
    assert manifest["inputs"]["baseline"]["kind"] == "snapshot"
    assert len(manifest["inputs"]["counts"]) == 2
    assert manifest["scope"] == ["DC1"]
    assert manifest["counts"]["by_type"]["missing"] == 8


def test_report_html_is_self_contained_with_bands(world: World) -> None:
    html = (world.run.out_dir / "report.html").read_text(encoding="utf-8")
    assert html.count("<svg") >= 4
    assert "http://" not in html.replace('xmlns="http://www.w3.org/2000/svg"', "")
    assert "https://" not in html
    assert "5 %" in html
    assert "15 %" in html
    assert "<script" not in html
