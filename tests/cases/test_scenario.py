"""Three successive counts through the real engine: cases opened, worked, approved,
resolved by a later count, golden registers as baselines, and the audit chain verified.

The register and the counts are generated here so every variance is known in advance:

* AST-000005 (book value 2500) is never found again: missing → investigated → write-off
  requested → signed by its owner and by finance → retired in the next golden register.
* AST-000011 is missing in count 1 and back in count 2: its case is proposed for
  resolution with run 2 as evidence, then resolved without further attachments.
* AST-000007 sits in the wrong room: the count is accepted as the new location.
* AST-000009 is retired in the register but in use: corrected with evidence.
* AST-000099 is unrecorded: registered from the count.
* Count 3 runs against golden register 2; it shows only a new location mismatch
  (AST-000012 found in Room 2).
"""

from __future__ import annotations

import csv
import json
from collections.abc import Iterable
from datetime import date, timedelta
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from tagsweep.cli import app
from tagsweep.config import load_config
from tagsweep.engine.cases import CaseError, CaseStatus, CaseStore
from tagsweep.engine.freeze import SourceSpec, freeze
from tagsweep.engine.trends import compare_runs
from tagsweep.simulators.fleet_exports import generate

from .runs import Clock

RUN_DATES = (date(2025, 9, 10), date(2025, 10, 10), date(2025, 11, 10))
CONFIG = """
[engine]
scope = ["DC1"]

[engine.cases]
store = "casework"
investigation_days = 45
default_owner = "asset-team"

[[engine.cases.write_off_chain]]
name = "owner"
approvers = ["@case_owner"]

[[engine.cases.write_off_chain]]
name = "finance"
approvers = ["fiona"]
min_value = 1000
"""


def tag(i: int) -> str:
    return f"AST-{i:06d}"


def _register(path: Path) -> None:
    rows = [
        {
            "asset_tag": tag(i),
            "serial": f"5CG{i:07d}",
            "manufacturer": "HP",
            "model": "EliteBook 840 G9",
            "location": f"DC1/Room {1 + i % 2}",
            "status": "retired" if i == 9 else "in_use",
            "value": 2500.0 if i == 5 else 900.0,
            "last_seen": "2025-09-01T08:00:00Z",
        }
        for i in range(1, 21)
    ]
    pq.write_table(pa.Table.from_pylist(rows), path)


def _count(path: Path, when: date, absent: Iterable[int], moved: dict[int, str]) -> Path:
    """A manual count sheet: every asset not ``absent``, in its room unless ``moved``."""
    skip = set(absent)
    with path.open("w", newline="") as handle:
        out = csv.writer(handle)
        out.writerow(["location", "asset_tag", "serial", "last_seen"])
        seen = f"{when.isoformat()}T10:00:00Z"
        for i in range(1, 21):
            if i not in skip:
                room = moved.get(i, f"DC1/Room {1 + i % 2}")
                out.writerow([room, tag(i), f"5CG{i:07d}", seen])
        out.writerow(["DC1/Room 2", tag(99), "5CG0000099", seen])
    return path


def _variances(run: Path) -> dict[tuple[str, str | None], dict[str, object]]:
    rows = pq.read_table(run / "variances.parquet").to_pylist()
    return {(str(r["variance_type"]), r["asset_tag"]): r for r in rows}


def test_three_counts_from_variance_to_golden_register(tmp_path: Path) -> None:
    conf = tmp_path / "tagsweep.toml"
    conf.write_text(CONFIG)
    settings = load_config(conf).engine
    runner = CliRunner()

    def cli(*args: str, actor: str | None = None, code: int = 0) -> str:
        who = ["--actor", actor] if actor else []
        result = runner.invoke(app, [*args, "--config", str(conf), *who])
        assert result.exit_code == code, result.output
        return result.output

    def reconcile_run(baseline: Path, count: Path, out: Path, when: date) -> None:
        cli("reconcile", "run", "--snapshot", str(baseline), "--count", str(count),
            "--out", str(out), "--as-of", when.isoformat())  # fmt: skip

    store = CaseStore(tmp_path / "casework", settings.cases)

    def case_of(vtype: str, i: int) -> str:
        (case,) = [c for c in store.list_cases(variance_type=vtype) if c.asset_tag == tag(i)]
        return case.case_id

    # -- count 1 against the register ---------------------------------------------------
    _register(tmp_path / "register0.parquet")
    count1 = _count(tmp_path / "count1.csv", RUN_DATES[0], absent=[5, 11], moved={7: "DC1/Room 1"})
    run1 = tmp_path / "run1"
    reconcile_run(tmp_path / "register0.parquet", count1, run1, RUN_DATES[0])
    found = _variances(run1)
    expected = {
        ("missing", tag(5)),
        ("missing", tag(11)),
        ("location_mismatch", tag(7)),
        ("retired_but_active", tag(9)),
        ("unrecorded", tag(99)),
    }
    assert expected <= set(found), sorted(found)

    # Opened on the count date (the signed time of the opening entries), so that the
    # 45-day investigation window has passed when the write-off is requested below.
    clock = Clock(RUN_DATES[0])
    opened = CaseStore(tmp_path / "casework", settings.cases, clock=clock).import_run(
        run1, actor="ann"
    )
    assert (len(opened.opened), len(opened.linked)) == (len(found), 0)
    assert "already imported" in cli("cases", "open", "--run", str(run1), actor="ann")
    assert len(store.list_cases()) == len(found)
    missing5, missing11 = case_of("missing", 5), case_of("missing", 11)
    moved7, retired9 = case_of("location_mismatch", 7), case_of("retired_but_active", 9)
    new99 = case_of("unrecorded", 99)
    assert store.get(missing5).owner == "asset-team"
    assert (
        store.get(missing5).investigation_until == (RUN_DATES[0] + timedelta(days=45)).isoformat()
    )
    assert store.get(retired9).priority == "P1"

    # -- working the cases of run 1 -----------------------------------------------------
    assert "Missing - Under Investigation" in cli("cases", "assign", missing5, "olga", actor="ann")
    cli("cases", "note", missing5, "not with the repair vendor", actor="olga")
    search = tmp_path / "search-AST-000005.txt"
    search.write_text("Searched Room 1 and 2, loaner log, offboarding list: not found.")
    cli("cases", "attach", missing5, str(search), actor="ivan")
    early = CaseStore(tmp_path / "casework", settings.cases, clock=clock)
    clock.to(RUN_DATES[0] + timedelta(10))
    with pytest.raises(CaseError, match="investigation window"):
        early.resolve(missing5, "written_off", actor="ivan", reason="gone")

    cli("cases", "assign", moved7, "bob", actor="ann")
    cli("cases", "resolve", moved7, "--reason", "moved with the team", "--accept-found",
        actor="bob")  # fmt: skip
    assert "needs evidence" in cli(
        "cases", "resolve", retired9, "--reason", "in use", "--set", "status=in_use",
        actor="bob", code=1,
    )  # fmt: skip
    cli("cases", "attach", retired9, "https://itsm.example/CHG0042", actor="bob")
    cli("cases", "resolve", retired9, "--reason", "disposal was cancelled",
        "--set", "status=in_use", actor="bob")  # fmt: skip
    cli("cases", "attach", new99, "https://itsm.example/REQ0099", actor="bob")
    cli("cases", "resolve", new99, "--reason", "received, never registered",
        "--accept-found", "--set", "status=in_use", actor="bob")  # fmt: skip
    cli("cases", "assign", missing11, "olga", actor="ann")
    for case_id in (moved7, retired9, new99):
        assert store.get(case_id).status is CaseStatus.RESOLVED

    golden1 = tmp_path / "golden1"
    assert "21 assets, 4 corrections applied, 1 assets added" in cli(
        "reconcile", "golden", "--run", str(run1), "--out", str(golden1), actor="bob"
    )
    rows = {r["asset_tag"]: r for r in pq.read_table(golden1 / "golden.parquet").to_pylist()}
    assert (rows[tag(7)]["location"], rows[tag(7)]["location_case"]) == ("DC1/Room 1", moved7)
    assert (rows[tag(9)]["status"], rows[tag(9)]["status_case"]) == ("in_use", retired9)
    assert (rows[tag(99)]["location"], rows[tag(99)]["status"]) == ("DC1/Room 2", "in_use")

    # -- count 2 against golden register 1 ----------------------------------------------
    count2 = _count(tmp_path / "count2.csv", RUN_DATES[1], absent=[5], moved={7: "DC1/Room 1"})
    run2 = tmp_path / "run2"
    reconcile_run(golden1 / "golden.parquet", count2, run2, RUN_DATES[1])
    # The run anchors the case audit log's head outside the store.
    anchor = json.loads((run2 / "manifest.json").read_text())["audit_anchor"]
    head = store.recorded_head()
    assert (anchor["seq"], anchor["hash"]) == (head.seq, head.hash)
    assert head.seq > 0
    assert f"seq {anchor['seq']} sha256 {anchor['hash']}" in (run2 / "report.md").read_text()
    found2 = _variances(run2)
    assert ("missing", tag(5)) in found2
    assert not {k for k in found2 if k[1] in (tag(7), tag(9), tag(99), tag(11))}, sorted(found2)
    out = cli("cases", "open", "--run", str(run2), actor="ann")
    run2_id = json.loads((run2 / "manifest.json").read_text())["run_id"]
    assert store.get(missing5).occurrences == 2, out
    assert store.get(missing11).proposed_resolution_run == run2_id
    assert len(store.list_cases()) == len(found) + len(set(found2) - set(found))
    proposal = store.detail(missing11).evidence
    assert [(e["kind"], e["ref"]) for e in proposal] == [("run", str(run2))]
    cli("cases", "resolve", missing11, "--reason", "found in count 2", actor="olga")
    assert store.get(missing11).status is CaseStatus.RESOLVED

    # write-off of the high-value laptop: owner, then finance; never the requester
    assert "Write-off Requested" in cli(
        "cases", "resolve", missing5, "--outcome", "written_off", "--reason",
        "not found after the 45-day search", actor="ivan",
    )  # fmt: skip
    assert "cannot approve" in cli("cases", "approve", missing5, actor="ivan", code=1)
    assert "awaiting: finance" in cli("cases", "approve", missing5, actor="olga")
    assert "must be signed by fiona" in cli("cases", "approve", missing5, actor="olga", code=1)
    assert "Written Off" in cli("cases", "approve", missing5, actor="fiona")

    golden2 = tmp_path / "golden2"
    cli("reconcile", "golden", "--run", str(run2), "--out", str(golden2), actor="bob")
    rows = {r["asset_tag"]: r for r in pq.read_table(golden2 / "golden.parquet").to_pylist()}
    assert (rows[tag(5)]["status"], rows[tag(5)]["status_case"]) == ("retired", missing5)

    # -- count 3 against golden register 2 ----------------------------------------------
    count3 = _count(tmp_path / "count3.csv", RUN_DATES[2], absent=[5], moved={7: "DC1/Room 1",
                    12: "DC1/Room 2"})  # fmt: skip
    run3 = tmp_path / "run3"
    reconcile_run(golden2 / "golden.parquet", count3, run3, RUN_DATES[2])
    found3 = _variances(run3)
    assert ("location_mismatch", tag(12)) in found3
    assert not {k for k in found3 if k[1] == tag(5)}, "a written-off asset is not missing"
    before = {c.case_id: c.status for c in store.list_cases()}
    assert "1 opened" in cli("cases", "open", "--run", str(run3), actor="ann")
    after = {c.case_id: c.status for c in store.list_cases()}
    assert {k: v for k, v in after.items() if k in before} == before, "closed cases stay closed"
    assert store.get(missing5).status is CaseStatus.WRITTEN_OFF

    # -- the record ---------------------------------------------------------------------
    assert "OK" in cli("audit", "verify", "--anchor", str(run2))
    story = [e.action for e in store.audit.entries() if e.subject == missing5]
    assert story == [
        "case.open",
        "case.assign",
        "case.note",
        "case.attach",
        "case.link",
        "case.request_write_off",
        "case.approve",
        "case.approve",
        "case.written_off",
    ]
    result = runner.invoke(
        app, ["reconcile", "trends", str(run3), str(run1), str(run2), "--out", str(tmp_path / "t")]
    )
    assert result.exit_code == 0, result.output
    out = result.output
    assert out.index("2025-09-10") < out.index("2025-10-10") < out.index("2025-11-10")
    trends = compare_runs([run1, run2, run3])
    reported = [json.loads((r / "manifest.json").read_text())["counts"] for r in (run1, run2, run3)]
    rates = [p.rate or 0.0 for p in trends.points]
    assert rates == [c["variance_rate_percent"] / 100 for c in reported]
    assert rates[0] > rates[1] > 0
    assert rates[2] > 0
    offenders = {o["asset_key"]: o["runs"] for o in trends.repeat_offenders}
    assert any(tag(5) in str(key) and runs == 2 for key, runs in offenders.items()), offenders
    assert (tmp_path / "t" / "trends.html").read_text().count("<circle") == 3


def test_three_counts_of_generated_exports(tmp_path: Path) -> None:
    """The export generator's world (every variance type injected, with an answer key),
    counted three times against one frozen snapshot: every variance gets exactly one
    case, a write-off goes through the chain, an asset found in count 2 has its case
    proposed for resolution and resolved, and a case closed without fixing the source
    reopens when the variance recurs."""
    exports = generate(tmp_path / "exports", n_assets=200, per_type=2, seed=5,
                       as_of=date(2025, 6, 2))  # fmt: skip
    conf = tmp_path / "tagsweep.toml"
    conf.write_text(CONFIG.replace('scope = ["DC1"]', f"scope = {json.dumps(exports.scope)}"))
    settings = load_config(conf).engine
    freeze(
        [SourceSpec(name, path, preset) for name, (preset, path) in exports.sources.items()],
        tmp_path / "snapshot",
        settings,
    )
    runner = CliRunner()

    def cli(*args: str, actor: str | None = None, code: int = 0) -> str:
        who = ["--actor", actor] if actor else []
        result = runner.invoke(app, [*args, "--config", str(conf), *who])
        assert result.exit_code == code, result.output
        return result.output

    def reconcile_run(counts: list[Path], out: Path, when: date | None = None) -> None:
        args = ["reconcile", "run", "--snapshot", str(tmp_path / "snapshot"), "--out", str(out)]
        for count in counts:
            args += ["--count", str(count)]
        cli(*args, *(["--as-of", when.isoformat()] if when else []))

    store = CaseStore(tmp_path / "casework", settings.cases)

    # -- count 1: one case per variance, every injected variance covered ----------------
    run1 = tmp_path / "run1"
    reconcile_run(exports.counts, run1)
    log1 = pq.read_table(run1 / "variances.parquet").to_pylist()
    # Opened well in the past (the signed time of the opening entries): the write-off
    # below comes after the investigation window.
    past = CaseStore(tmp_path / "casework", settings.cases, clock=Clock(date(2024, 1, 2)))
    assert len(past.import_run(run1, actor="ann").opened) == len(log1)
    cases = store.list_cases()
    assert len(cases) == len(log1)
    assert exports.answer_key <= {(c.variance_type, c.asset_key) for c in cases}
    as_of = date.fromisoformat(json.loads((run1 / "manifest.json").read_text())["as_of"])

    missing = sorted(
        (c for c in cases if c.variance_type == "missing"), key=lambda c: c.value or 0.0
    )
    assert len(missing) >= 2
    found_later, gone = missing[0], missing[-1]
    moved = store.list_cases(variance_type="location_mismatch")[0]

    # -- working cases: a write-off through the chain, a location accepted --------------
    cli("cases", "assign", gone.case_id, "olga", actor="ann")
    cli("cases", "attach", gone.case_id, "https://itsm.example/SEARCH1", actor="ivan")
    cli("cases", "resolve", gone.case_id, "--outcome", "written_off", "--reason",
        "not found after the search", actor="ivan")  # fmt: skip
    steps = ["owner", "finance"] if (gone.value or 0) >= 1000 else ["owner"]
    assert store.detail(gone.case_id).pending_steps == steps
    for approver in ("olga", "fiona")[: len(steps)]:
        cli("cases", "approve", gone.case_id, actor=approver)
    assert store.get(gone.case_id).status is CaseStatus.WRITTEN_OFF
    cli("cases", "assign", found_later.case_id, "olga", actor="ann")
    cli("cases", "resolve", moved.case_id, "--reason", "moved", "--accept-found", actor="bob")

    # -- count 2: the same count plus one missing asset found on a shelf ----------------
    sheet = next(p for p in exports.counts if p.suffix == ".csv")
    with sheet.open(newline="") as handle:
        rows = list(csv.DictReader(handle))
    rows.append(
        {
            "location": found_later.expected_location or "",
            "asset_tag": found_later.asset_tag or "",
            "serial": found_later.serial or "",
            "custodian": "",
            "condition": "",
            "operator": "auditor-c",
        }
    )
    sheet2 = tmp_path / "count_sheet_2.csv"
    with sheet2.open("w", newline="") as handle:
        writer = csv.DictWriter(handle, fieldnames=list(rows[0]))
        writer.writeheader()
        writer.writerows(rows)
    counts2 = [p for p in exports.counts if p != sheet] + [sheet2]
    run2 = tmp_path / "run2"
    reconcile_run(counts2, run2, as_of + timedelta(days=1))
    log2 = {r["variance_id"] for r in pq.read_table(run2 / "variances.parquet").to_pylist()}
    assert found_later.variance_id not in log2
    assert gone.variance_id in log2, "the sources still list the written-off asset"
    out = cli("cases", "open", "--run", str(run2), actor="ann")
    assert "0 opened" in out
    assert "1 reopened" in out
    run2_id = json.loads((run2 / "manifest.json").read_text())["run_id"]
    assert store.get(found_later.case_id).proposed_resolution_run == run2_id
    assert store.get(moved.case_id).status is CaseStatus.UNDER_INVESTIGATION, (
        "closed without fixing the source: the recurrence reopens it"
    )
    gone_now = store.get(gone.case_id)
    assert (gone_now.status, gone_now.occurrences) == (CaseStatus.WRITTEN_OFF, 2)
    cli("cases", "resolve", found_later.case_id, "--reason", "found in count 2", actor="olga")

    # -- count 3: nothing changes; cases are linked, nothing new, nothing reopened -------
    run3 = tmp_path / "run3"
    reconcile_run(counts2, run3, as_of + timedelta(days=2))
    out = cli("cases", "open", "--run", str(run3), actor="ann")
    assert "0 opened" in out
    assert "0 reopened" in out
    assert "0 proposed" in out
    assert store.get(found_later.case_id).status is CaseStatus.RESOLVED
    assert len(store.list_cases()) == len(log1)

    golden = tmp_path / "golden"
    cli("reconcile", "golden", "--run", str(run3), "--out", str(golden), actor="bob")
    rows3 = {r["asset_key"]: r for r in pq.read_table(golden / "golden.parquet").to_pylist()}
    assert (rows3[gone.asset_key]["status"], rows3[gone.asset_key]["status_case"]) == (
        "retired",
        gone.case_id,
    )
    assert "OK" in cli("audit", "verify")
