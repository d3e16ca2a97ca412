"""Golden register and trends on fixture runs (the scenario test runs them on the engine)."""

from __future__ import annotations

import csv
import json
from datetime import date
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from tagsweep.engine.cases import CaseStore
from tagsweep.engine.cli import golden_command, trends_command
from tagsweep.engine.golden import GoldenError, build_golden
from tagsweep.engine.trends import TrendsError, compare_runs, rate_chart_svg, write_trends

from .runs import Clock, V, write_register, write_run

ASSETS = [
    {"asset_tag": f"AST-{i}", "serial": f"S{i}", "location": "DC1/Room 1", "status": "in_use"}
    for i in range(1, 21)
]
MOVED = V("location_mismatch", "AST-2", expected_location="DC1/Room 1", found_location="DC1/R2")
NEW = V("unrecorded", "AST-99", found_location="DC1/Room 3", value=1200.0)
GONE = V("missing", "AST-3", expected_location="DC1/Room 1")


def test_golden_register_applies_accepted_corrections_with_provenance(tmp_path: Path) -> None:
    run = write_run(tmp_path / "r1", "run-1", date(2020, 1, 1), [MOVED, NEW, GONE])
    write_register(run, ASSETS)
    clock = Clock(date(2020, 1, 1))
    store = CaseStore(tmp_path / "cases", clock=clock)
    store.import_run(run, actor="ann")
    moved, new, gone = (c.case_id for c in store.list_cases())
    store.resolve(moved, "resolved", actor="bob", reason="moved", accept_found=True)
    store.attach(new, "https://itsm.example/REQ7", actor="bob")
    store.resolve(
        new, "resolved", actor="bob", reason="new hire laptop", accept_found=True,
        corrections={"status": "in_use", "custodian": "=cmd|calc"},
    )  # fmt: skip
    store.assign(gone, "olga", actor="ann")
    store.attach(gone, "https://itsm.example/SEARCH3", actor="ivan")
    clock.to(date(2030, 1, 1))
    store.resolve(gone, "written_off", actor="ivan", reason="not found")
    store.approve(gone, actor="olga")

    result = build_golden(run, store, tmp_path / "golden", actor="bob")
    table = pq.read_table(result.parquet)
    register = pq.read_table(run / "register.parquet")
    assert table.column_names[: len(register.column_names)] == register.column_names
    assert table.schema.field("value").type == register.schema.field("value").type
    rows = {r["asset_tag"]: r for r in table.to_pylist()}
    assert len(rows) == 21
    assert (rows["AST-2"]["location"], rows["AST-2"]["location_source"]) == ("DC1/R2", "count")
    assert (rows["AST-2"]["location_run"], rows["AST-2"]["location_case"]) == ("run-1", moved)
    assert (rows["AST-2"]["status_source"], rows["AST-2"]["status_case"]) == ("snipeit", None)
    assert rows["AST-3"]["status"] == "retired"
    assert (rows["AST-3"]["status_source"], rows["AST-3"]["status_case"]) == ("write_off", gone)
    added = rows["AST-99"]
    assert (added["location"], added["status"], added["value"]) == ("DC1/Room 3", "in_use", 1200.0)
    assert (added["serial_source"], added["serial_case"]) == ("count", new)
    assert added["status_source"] == "investigation"
    assert rows["AST-1"]["location_run"] == "run-1"
    assert result.added == [new]
    assert result.unapplied == []

    with result.csv.open() as handle:
        csv_rows = {r["asset_tag"]: r for r in csv.DictReader(handle)}
    assert csv_rows["AST-99"]["custodian"] == "'=cmd|calc", "formula injection escaped"
    manifest = json.loads(result.manifest.read_text())
    assert manifest["rows"] == 21
    last = list(store.audit.entries())[-1]
    assert (last.action, last.evidence_sha256) == ("register.golden", manifest["golden_sha256"])
    assert store.verify_audit().ok

    # A reopened case withdraws its correction from the next golden register.
    run2 = write_run(tmp_path / "r2", "run-2", date(2020, 2, 1), [MOVED])
    write_register(run2, ASSETS)
    store.import_run(run2, actor="ann")
    again = build_golden(run2, store, tmp_path / "golden2", actor="bob")
    rows2 = {r["asset_tag"]: r for r in pq.read_table(again.parquet).to_pylist()}
    assert rows2["AST-2"]["location"] == "DC1/Room 1"
    assert rows2["AST-3"]["status"] == "retired", "the write-off still stands"


def test_golden_needs_a_register(tmp_path: Path) -> None:
    run = write_run(tmp_path / "r1", "run-1", date(2020, 1, 1), [MOVED])
    with pytest.raises(GoldenError, match=r"no register\.parquet"):
        build_golden(run, CaseStore(tmp_path / "cases"), tmp_path / "g", actor="bob")


def _three_runs(tmp_path: Path) -> list[Path]:
    """Three monthly runs over a register of 25 assets."""
    assets = [*ASSETS, *({"asset_tag": f"AST-{i}", "serial": f"S{i}"} for i in range(21, 26))]
    moved3 = V("location_mismatch", "AST-4", found_location="DC1/R2", source="snipeit,intune")
    runs = [
        write_run(tmp_path / "r1", "run-1", date(2026, 1, 5), [MOVED, GONE, NEW]),
        write_run(tmp_path / "r2", "run-2", date(2026, 2, 5), [MOVED, GONE, moved3]),
        write_run(tmp_path / "r3", "run-3", date(2026, 3, 5), [GONE]),
    ]
    for run in runs:
        write_register(run, assets)
    return runs


def test_trends_over_three_runs(tmp_path: Path) -> None:
    r1, r2, r3 = _three_runs(tmp_path)
    trends = compare_runs([r3, r1, r2])
    assert [p.run_id for p in trends.points] == ["run-1", "run-2", "run-3"]
    assert [p.rate for p in trends.points] == [3 / 25, 3 / 25, 1 / 25]
    assert [p.band for p in trends.points] == ["needs attention", "needs attention", "strong"]
    assert trends.points[1].by_type == {"location_mismatch": 2, "missing": 1}
    assert trends.by_location[0] == {
        "variance_type": "missing",
        "location": "DC1/Room 1",
        "runs": 3,
        "variances": 3,
    }
    assert {"variance_type": "location_mismatch", "location": "DC1/R2", "runs": 2,
            "variances": 3} in trends.by_location  # fmt: skip
    by_source = {(r["variance_type"], r["source"]): r["runs"] for r in trends.by_source}
    assert by_source == {("missing", "snipeit"): 3, ("location_mismatch", "snipeit"): 2}
    offenders = [(o["asset_key"], o["runs"], o["types"]) for o in trends.repeat_offenders]
    assert offenders == [("AST-3", 3, "missing"), ("AST-2", 2, "location_mismatch")]

    paths = write_trends(trends, tmp_path / "trends")
    page = paths["html"].read_text()
    assert page.count("<svg") == 1
    assert page.count("<circle") == 3
    assert "Repeat offenders" in page
    assert "| AST-3 | 3 |" in paths["md"].read_text()
    assert json.loads(paths["json"].read_text())["runs"][2]["band"] == "strong"


def test_trends_chart_escapes_and_handles_unknown_rates(tmp_path: Path) -> None:
    run = write_run(tmp_path / "r1", "run-<b>", date(2026, 1, 5), [GONE])
    trends = compare_runs([run])
    assert trends.points[0].rate is None
    assert trends.points[0].band == "unknown"
    svg = rate_chart_svg(trends.points)
    assert "<circle" not in svg
    assert "<b>" not in svg


def test_trends_errors(tmp_path: Path) -> None:
    with pytest.raises(TrendsError, match="at least one"):
        compare_runs([])
    with pytest.raises(TrendsError, match=r"no variances\.parquet"):
        compare_runs([tmp_path])
    run = write_run(tmp_path / "r1", "run-1", date(2026, 1, 5), [GONE])
    with pytest.raises(TrendsError, match="given twice"):
        compare_runs([run, run])


def test_reconcile_commands(tmp_path: Path) -> None:
    import typer

    app = typer.Typer()
    app.command("trends")(trends_command)
    app.command("golden")(golden_command)
    runs = _three_runs(tmp_path)
    runner = CliRunner()
    out = runner.invoke(app, ["trends", *map(str, runs), "--out", str(tmp_path / "t")])
    assert out.exit_code == 0, out.output
    assert "2026-03-05 run-3: 1 variances, rate 4.0% (strong)" in out.output
    assert (tmp_path / "t" / "trends.html").is_file()
    bad = runner.invoke(app, ["trends", str(tmp_path)])
    assert bad.exit_code == 1
    assert "no variances.parquet" in bad.output

    store = tmp_path / "cases"
    CaseStore(store).import_run(runs[0], actor="ann")
    args = ["golden", "--run", str(runs[0]), "--out", str(tmp_path / "g"), "--store", str(store)]
    out = runner.invoke(app, [*args, "--actor", "bob"])
    assert out.exit_code == 0, out.output
    assert "25 assets, 0 corrections applied" in out.output
