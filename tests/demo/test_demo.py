"""The demo, smaller: world → LLRP/scanner simulators → real gateway → engine → cases.

One run of ``run_demo`` (200 assets in 4 racks, a door portal, a paper spot check) is
checked against the world model's ground truth (what the readers could physically see,
where each asset really is, which door passes happened) and against the answer key of
the generated exports. The only variances allowed beyond the key are location
mismatches that the count itself caused, and each of those must be an asset the
session file really put at another rack than the world did.
"""

from __future__ import annotations

import io
import json
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from rich.console import Console
from typer.testing import CliRunner

from tagsweep.cli import app
from tagsweep.domain import VarianceType
from tagsweep.simulators.demo import DemoOptions, DemoResult, print_summary, run_demo
from tests.conftest import MosquittoBroker


@pytest.fixture(scope="module")
def demo(tmp_path_factory: pytest.TempPathFactory) -> DemoResult:
    out = tmp_path_factory.mktemp("demo") / "out"
    options = DemoOptions(
        out=out,
        assets=200,
        racks=4,
        speed=10.0,
        per_type=2,
        dead_labels=0.05,
        mqtt_probe=None,
    )
    return run_demo(options, Console(file=io.StringIO(), width=100))


def _session_rows(demo: DemoResult) -> list[dict[str, object]]:
    rows: list[dict[str, object]] = pq.read_table(demo.session.parquet).to_pylist()
    return rows


def _logged(demo: DemoResult, kind: str) -> set[str]:
    return {str(v["asset_key"]) for v in demo.variances if v["variance_type"] == kind}


def _key(demo: DemoResult, kind: str) -> set[str]:
    return {k for t, k in demo.exports.answer_key if t == kind}


def test_session_file_holds_every_label_the_readers_could_see(demo: DemoResult) -> None:
    rows = _session_rows(demo)
    rfid = {str(r["epc"]) for r in rows if r["method"] == "rfid"}
    portal = {e.decode() for e in set(demo.traffic.reads["epc"].tolist())}
    assert rfid == demo.walk.read_epcs | portal
    dead = {a.epc for a in demo.world.assets if a.tag_state.value == "dead"}
    assert dead
    assert not dead & rfid  # a dead label is never counted
    barcode = {str(r["asset_tag"]): r["location"] for r in rows if r["method"] == "barcode"}
    untagged = {a.asset_tag: a.rack for a in demo.world.assets if a.epc is None}
    assert barcode == untagged  # scanned at the rack whose label was scanned before


def test_the_engine_verified_the_gateways_signature(demo: DemoResult) -> None:
    session = demo.manifest["inputs"]["counts"][0]
    assert (session["integrity"], session["gateway"]) == ("signed", "demo-gw")


def test_locations_and_portal_passes_against_the_truth(demo: DemoResult) -> None:
    assert demo.located == len(demo.walk.read_epcs)
    assert demo.location_accuracy >= 0.9
    storage = {str(r["location"]) for r in _session_rows(demo) if r["reader"] == "store-door"}
    assert storage == {"DC1/Storage 1"}
    score = demo.portal_score
    assert score.true_passes >= 4
    assert score.direction_accuracy >= 0.8, score
    assert score.spurious <= 1, score


def test_found_and_missing_match_the_truth(demo: DemoResult) -> None:
    counts = demo.manifest["counts"]
    # Found (confirmed): every register asset whose label was read or barcode scanned,
    # except those the spot check wrote down with another serial (identity conflicts,
    # never confirmed); the injected unrecorded ones are found but have no record.
    in_register = demo.exports.found - _key(demo, "unrecorded")
    assert counts["found"] == len(in_register - _key(demo, "identity_conflict"))
    assert _logged(demo, "missing") == _key(demo, "missing")
    dead = {a.asset_tag for a in demo.world.assets if a.tag_state.value == "dead"}
    assert dead - _key(demo, "probable_match") <= _logged(demo, "missing")
    assert _logged(demo, "unrecorded") == _key(demo, "unrecorded")


def test_every_variance_type_matches_the_answer_key(demo: DemoResult) -> None:
    assert {str(v["variance_type"]) for v in demo.variances} == {t.value for t in VarianceType}
    for kind in (t.value for t in VarianceType if t.value != "location_mismatch"):
        assert _logged(demo, kind) == _key(demo, kind), kind


def test_location_mismatches_beyond_the_key_are_the_counts_own_errors(demo: DemoResult) -> None:
    logged = _logged(demo, "location_mismatch")
    assert _key(demo, "location_mismatch") <= logged
    by_epc = {a.epc: a for a in demo.world.assets if a.epc}
    misplaced = {
        by_epc[str(r["epc"])].asset_tag
        for r in _session_rows(demo)
        if r["method"] == "rfid"
        and str(r["epc"]) in by_epc
        and r["location"] != by_epc[str(r["epc"])].rack
    }
    recorded = demo.exports.register_locations
    assert logged - _key(demo, "location_mismatch") == {t for t in misplaced if t in recorded}


def test_report_cases_and_summary(demo: DemoResult) -> None:
    html = demo.report.read_text(encoding="utf-8")
    assert demo.run_id in html
    assert demo.cases_opened == len(demo.variances) > 0
    manifest = json.loads((demo.run_dir / "manifest.json").read_text(encoding="utf-8"))
    assert manifest["run_id"] == demo.run_id
    console = Console(record=True, width=120)
    print_summary(demo, console)
    text = console.export_text()
    assert str(demo.report) in text
    assert f"found {demo.manifest['counts']['found']:,}" in text
    assert "MQTT: no broker" in text
    # The demo's cases are signed with its throwaway key, and verify as an auditor would.
    assert "audit verify --config" in text
    verified = CliRunner().invoke(
        app, ["audit", "verify", "--config", str(demo.out_dir / "cases.toml")]
    )
    assert verified.exit_code == 0, verified.output
    assert f"{demo.cases_opened + 1} signed, 0 unsigned" in verified.output


def test_refuses_a_folder_that_is_not_empty(tmp_path: Path) -> None:
    (tmp_path / "old.txt").write_text("x")
    with pytest.raises(ValueError, match="not empty"):
        run_demo(DemoOptions(out=tmp_path), Console(file=io.StringIO()))


def test_publishes_to_a_broker_that_answers_and_says_where(
    tmp_path: Path, mosquitto: MosquittoBroker
) -> None:
    where = f"{mosquitto.host}:{mosquitto.port}"
    options = DemoOptions(
        out=tmp_path / "out", assets=100, racks=2, speed=20.0, per_type=1, mqtt_probe=where
    )
    result = run_demo(options, Console(file=io.StringIO()))
    assert result.mqtt == where
    # every event of the count reached the broker (PUBACK), none is left behind
    assert result.mqtt_published > result.session.row_count
    assert result.mqtt_unsent == 0
    console = Console(record=True, width=160)
    print_summary(result, console)
    assert f"published to mqtt://{where} under tagsweep/DC1/demo-gw/#" in console.export_text()
