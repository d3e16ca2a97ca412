"""The presets on exports as Snipe-IT, NetBox, ServiceNow, Intune, Jamf and SAP write
them (``tests/engine/real_exports``, sources in its SOURCES.md): every planted
disagreement is reported with both sources' values, no record is lost, and freeze and
run stay byte-reproducible."""

from __future__ import annotations

import csv
import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from tagsweep.cli import app
from tagsweep.config.engine import EngineSection
from tagsweep.engine.freeze import Snapshot, SourceSpec, freeze
from tagsweep.engine.run import RunResult, reconcile

CORPUS = Path(__file__).parent / "real_exports"
KEY: dict[str, Any] = json.loads((CORPUS / "answer_key.json").read_text(encoding="utf-8"))
SETTINGS = EngineSection.model_validate(
    # NetBox roles no count will tag are scoped out by role
    {"sources": {"netbox": {"exclude_categories": ["Patch Panel", "Cable Management"]}}}
)


def _freeze(out: Path) -> Snapshot:
    at = datetime.fromisoformat(KEY["exported_at"])
    specs = [
        SourceSpec(name, CORPUS / s["file"], s["preset"], at) for name, s in KEY["sources"].items()
    ]
    return freeze(specs, out, SETTINGS)


@pytest.fixture(scope="module")
def corpus(tmp_path_factory: pytest.TempPathFactory) -> tuple[Snapshot, RunResult, Path]:
    base = tmp_path_factory.mktemp("real")
    snapshot = _freeze(base / "snap")
    run = reconcile(base / "snap", [], SETTINGS, base / "run", debug_dir=base / "debug")
    return snapshot, run, base


def _variances(run: RunResult) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = pq.read_table(run.out_dir / "variances.parquet").to_pylist()
    return rows


def test_every_planted_disagreement_is_reported_and_nothing_else(
    corpus: tuple[Snapshot, RunResult, Path],
) -> None:
    _, run, _ = corpus
    found = sorted((v["variance_type"], v["asset_key"]) for v in _variances(run))
    assert found == sorted((t, k) for t, k, _ in KEY["variances"])


def test_each_finding_carries_both_sources_values(
    corpus: tuple[Snapshot, RunResult, Path],
) -> None:
    _, run, _ = corpus
    by = {(v["variance_type"], v["asset_key"]): v for v in _variances(run)}
    retired = by["retired_but_active", "AST-1010"]
    assert "Deactivated" in retired["expected"]
    assert "sap" in retired["source"]
    assert json.loads(retired["evidence"])["discovery_source"] == "jamf"
    stolen = by["status_condition_mismatch", "AST-1006"]
    assert "Stolen" in stolen["expected"]
    assert "intune" in stolen["found"]
    user = by["custodian_mismatch", "AST-1003"]
    assert "Ben Owens (bowens)" in user["expected"]
    assert "chloe.patel@corp.example" in user["found"]
    cost = by["source_conflict", "AST-1009"]
    assert "1929" in cost["expected"]
    assert "sap" in cost["expected"]
    assert "snipeit: 1299" in cost["found"]
    assert "servicenow: 1299" in cost["found"]
    location = by["source_conflict", "AST-2002"]
    assert "DC1/Hall A" in location["expected"]
    assert "netbox: DC1/Hall B/R07/40" in location["found"]
    lookalike = json.loads(by["probable_match", "AST-1007"]["evidence"])
    assert (lookalike["source_serial"], lookalike["register_serial"]) == (
        "5CG2O41BX1",
        "5CG2041BX1",
    )
    short = json.loads(by["probable_match", "AST-1008"]["evidence"])
    assert (short["source_asset_tag"], short["register_asset_tag"]) == ("1008", "AST-1008")


def test_no_record_is_lost(corpus: tuple[Snapshot, RunResult, Path]) -> None:
    snapshot, run, base = corpus
    records = pq.read_table(base / "debug" / "normalize.source_records.parquet").to_pylist()
    for name, expected in KEY["sources"].items():
        frozen = snapshot.source(name)
        assert frozen.rows == expected["records"], name
        assert frozen.skipped_rows == len(expected.get("footer_rows", []))
        lines = sorted(r["line"] for r in records if r["source"] == name)
        assert len(lines) == expected["records"], name  # every frozen row reached the run
        kept_out = [r for r in records if r["source"] == name and r["bad_reason"]]
        assert kept_out == [], name
    assert sorted((r.source, r.line) for r in snapshot.skipped_rows) == sorted(
        (n, line) for n, s in KEY["sources"].items() for line in s.get("footer_rows", [])
    )
    assert run.manifest["counts"]["bad_rows"] == 0
    notes = " ".join(run.manifest["warnings"])
    for name, source in KEY["sources"].items():
        for line in source.get("left_out", []):
            assert f"source {name}:" in notes
            assert str(line) in notes
    assert "line 4 (serial C02FK2LMQ6L4, last check-in 2024-02-11) is a stale enrolment" in notes
    assert "not in the translation table" not in notes  # "Ready to Deploy Deployed" is known


def test_bad_values_and_encodings(corpus: tuple[Snapshot, RunResult, Path]) -> None:
    snapshot, run, _ = corpus
    with (run.out_dir / "bad_values.csv").open(encoding="utf-8", newline="") as fh:
        rows = [
            [r["source"], int(r["line"]), r["column"], r["value"], r["reason"]]
            for r in csv.DictReader(fh)
        ]
    assert rows == KEY["bad_values"]
    # the freeze summary lists the values that will not parse (placeholders are the run's)
    assert [(v.source, v.line, v.column, v.value) for v in snapshot.bad_values] == [
        ("snipeit", 13, "Purchase Cost", "TBD")
    ]
    for name, encoding in KEY["encodings"].items():
        assert snapshot.source(name).encoding == encoding
    register = {
        r["asset_key"]: r for r in pq.read_table(run.out_dir / "register.parquet").to_pylist()
    }
    assert register["AST-1001"]["status"] == "in_use"
    assert register["AST-1001"]["model"] == "Latitude 7440"
    assert register["AST-1011"]["value"] is None  # "TBD": emptied, the record kept
    assert register["AST-1011"]["last_seen"] is None  # 0001-01-01: no date, not a bad one
    assert register["ID:netbox|105"]["hostname"] == "dc1-pdu-07a"  # no serial, no tag


def test_freeze_and_run_are_byte_reproducible(
    corpus: tuple[Snapshot, RunResult, Path], tmp_path: Path
) -> None:
    _, run, base = corpus
    _freeze(tmp_path / "snap")
    for name in KEY["sources"]:
        assert (tmp_path / "snap" / f"{name}.parquet").read_bytes() == (
            base / "snap" / f"{name}.parquet"
        ).read_bytes()
    # the same snapshot gives the same run, byte for byte
    again = reconcile(base / "snap", [], SETTINGS, tmp_path / "run")
    assert again.run_id == run.run_id
    for name in ("variances.csv", "bad_values.csv", "bad_rows.csv", "register.parquet"):
        assert (tmp_path / "run" / name).read_bytes() == (run.out_dir / name).read_bytes()


def test_freeze_prints_each_sources_role_keys_and_contribution(tmp_path: Path) -> None:
    args = ["reconcile", "freeze", "--out", str(tmp_path / "snap")]
    for name, s in KEY["sources"].items():
        args += ["--source", f"{name}:{s['preset']}={CORPUS / s['file']}"]
        args += ["--exported-at", f"{name}={KEY['exported_at']}"]
    result = CliRunner().invoke(app, args, env={"COLUMNS": "400"})
    assert result.exit_code == 0, result.output
    assert "asset_tag=Inventarnummer" in result.output
    assert "fixed_asset" in result.output
    assert "discovery" in result.output
    assert "footer/totals row" in result.output
