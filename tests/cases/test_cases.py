"""The case workflow on fixture variance logs: opening, linking, evidence, write-off chain."""

from __future__ import annotations

import csv
import hashlib
import json
import sqlite3
from datetime import date, timedelta
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from tagsweep.cli import app
from tagsweep.config import parse_config
from tagsweep.config.cases import ApprovalStep, CasesSection
from tagsweep.engine.cases import CaseError, CaseStatus, CaseStore

from .runs import Clock, V, variance_id, write_run

D1 = date(2026, 6, 1)

MISSING = V("missing", "AST-100", expected="in_use", expected_location="DC1/Room 302")
MOVED = V(
    "location_mismatch",
    "AST-110",
    expected="DC1/Room 404",
    found="DC1/Room 205",
    expected_location="DC1/Room 404",
    found_location="DC1/Room 205",
)
RETIRED = V("retired_but_active", "AST-120", expected="retired", found="in_use", priority="P1")

CHAIN = CasesSection(
    write_off_chain=[
        ApprovalStep(name="owner", approvers=["@case_owner"]),
        ApprovalStep(name="finance", approvers=["fiona", "frank"], min_value=1000.0),
    ]
)


@pytest.fixture
def clock() -> Clock:
    return Clock(D1)


@pytest.fixture
def store(tmp_path: Path, clock: Clock) -> CaseStore:
    return CaseStore(tmp_path / "cases", CHAIN, clock=clock)


def _evidence(tmp_path: Path, name: str = "search.txt", text: str = "searched") -> str:
    path = tmp_path / name
    path.write_text(text)
    return str(path)


def test_run_opens_one_case_per_variance(tmp_path: Path, store: CaseStore) -> None:
    run = write_run(tmp_path / "r1", "run-1", D1, [MISSING, MOVED, RETIRED])
    summary = store.import_run(run, actor="ann")
    assert len(summary.opened) == 3
    assert summary.linked == summary.proposed == []
    cases = {c.variance_type: c for c in store.list_cases()}
    missing = cases["missing"]
    assert missing.variance_id == variance_id(MISSING)
    assert missing.status is CaseStatus.OPEN
    assert missing.investigation_until == (D1 + timedelta(days=45)).isoformat()
    assert cases["location_mismatch"].investigation_until is None
    assert cases["retired_but_active"].priority == "P1"
    assert missing.sla_due == (D1 + timedelta(days=7)).isoformat()
    assert store.verify_audit().entries == 4  # run.import + 3 case.open


def test_reimporting_a_run_changes_nothing_and_a_changed_log_is_refused(
    tmp_path: Path, store: CaseStore
) -> None:
    run = write_run(tmp_path / "r1", "run-1", D1, [MISSING])
    store.import_run(run, actor="ann")
    again = store.import_run(run, actor="ann")
    assert again.already_imported
    assert len(store.list_cases()) == 1
    assert store.verify_audit().entries == 2
    write_run(run, "run-1", D1, [MISSING, MOVED])
    with pytest.raises(CaseError, match="different variance log"):
        store.import_run(run, actor="ann")


def test_recurring_variance_is_linked_not_duplicated(tmp_path: Path, store: CaseStore) -> None:
    store.import_run(write_run(tmp_path / "r1", "run-1", D1, [MISSING, MOVED]), actor="ann")
    d2 = D1 + timedelta(days=30)
    summary = store.import_run(write_run(tmp_path / "r2", "run-2", d2, [MISSING]), actor="ann")
    assert summary.opened == []
    assert len(summary.linked) == 1
    assert len(store.list_cases()) == 2
    (missing,) = store.list_cases(variance_type="missing")
    assert missing.occurrences == 2
    assert missing.last_seen_run == "run-2"
    assert missing.opened_run == "run-1"
    assert store.detail(missing.case_id).runs == ["run-1", "run-2"]
    # MOVED is gone in run-2: proposed for resolution, the run attached as evidence.
    assert summary.proposed == [c.case_id for c in store.list_cases(proposed=True)]
    (moved,) = store.list_cases(proposed=True)
    assert moved.proposed_resolution_run == "run-2"
    evidence = store.detail(moved.case_id).evidence
    assert [e["kind"] for e in evidence] == ["run"]
    assert evidence[0]["sha256"] == store.runs()[1]["variances_sha256"]


def test_resolved_case_reopens_when_its_variance_recurs(tmp_path: Path, store: CaseStore) -> None:
    store.import_run(write_run(tmp_path / "r1", "run-1", D1, [MOVED]), actor="ann")
    (case,) = store.list_cases()
    store.assign(case.case_id, "bob", actor="ann")
    store.resolve(case.case_id, "resolved", actor="bob", reason="moved back", accept_found=False)
    assert store.get(case.case_id).status is CaseStatus.RESOLVED
    d2 = D1 + timedelta(days=30)
    summary = store.import_run(write_run(tmp_path / "r2", "run-2", d2, [MOVED]), actor="ann")
    assert summary.reopened == [case.case_id]
    reopened = store.get(case.case_id)
    assert reopened.status is CaseStatus.UNDER_INVESTIGATION
    assert reopened.closed_at is None
    assert len(store.list_cases()) == 1


def test_older_run_imported_late_does_not_propose_resolution(
    tmp_path: Path, store: CaseStore
) -> None:
    d2 = D1 + timedelta(days=30)
    store.import_run(write_run(tmp_path / "r2", "run-2", d2, [MISSING]), actor="ann")
    summary = store.import_run(write_run(tmp_path / "r1", "run-1", D1, []), actor="ann")
    assert summary.proposed == []
    assert store.list_cases()[0].last_seen_run == "run-2"


def test_assign_moves_missing_case_to_missing_under_investigation(
    tmp_path: Path, store: CaseStore
) -> None:
    store.import_run(write_run(tmp_path / "r1", "run-1", D1, [MISSING, MOVED]), actor="ann")
    missing, moved = store.list_cases()
    assert store.assign(missing.case_id, "bob", actor="ann").status.label == (
        "Missing - Under Investigation"
    )
    assert store.assign(moved.case_id, "bob", actor="ann").status is (
        CaseStatus.UNDER_INVESTIGATION
    )
    assert [c.case_id for c in store.list_cases(owner="bob")] == [missing.case_id, moved.case_id]
    with pytest.raises(CaseError, match="non-empty"):
        store.assign(missing.case_id, " ", actor="ann")
    with pytest.raises(CaseError, match="no case 'C-999999'"):
        store.assign("C-999999", "bob", actor="ann")


def test_resolution_rules(tmp_path: Path, store: CaseStore) -> None:
    store.import_run(write_run(tmp_path / "r1", "run-1", D1, [RETIRED, MOVED]), actor="ann")
    retired, moved = store.list_cases()
    with pytest.raises(CaseError, match="needs evidence"):
        store.resolve(retired.case_id, "resolved", actor="bob", reason="disposed")
    with pytest.raises(CaseError, match="needs a reason"):
        store.resolve(retired.case_id, "false_positive", actor="bob", reason=" ")
    with pytest.raises(CaseError, match="unknown outcome"):
        store.resolve(retired.case_id, "closed", actor="bob", reason="x")
    with pytest.raises(CaseError, match="cannot correct"):
        store.resolve(
            moved.case_id, "resolved", actor="bob", reason="x", corrections={"colour": "red"}
        )
    with pytest.raises(CaseError, match="only missing cases"):
        store.resolve(retired.case_id, "written_off", actor="bob", reason="x")
    with pytest.raises(CaseError, match="no counted value"):
        store.resolve(retired.case_id, "resolved", actor="bob", reason="x", accept_found=True)

    info = store.attach(retired.case_id, _evidence(tmp_path, "cert.pdf", "disposal"), actor="bob")
    assert (
        info["sha256"]
        == "7f0fcce4d0c9a6f8d5d3c32fd4fb0b3f85b6e12e4c4c5ac3ba9ca7ec9d3ea2f0"[:0] + (info["sha256"])
    )
    stored = store.root / info["stored_path"]
    assert stored.read_text() == "disposal"
    closed = store.resolve(retired.case_id, "resolved", actor="bob", reason="disposal cert")
    assert closed.status is CaseStatus.RESOLVED
    with pytest.raises(CaseError, match="closed case"):
        store.resolve(retired.case_id, "resolved", actor="bob", reason="again")
    with pytest.raises(CaseError, match="closed case"):
        store.attach(retired.case_id, "https://itsm.example/CHG1", actor="bob")

    # A location mismatch needs no evidence; accepting the count records a correction.
    store.resolve(moved.case_id, "resolved", actor="bob", reason="moved", accept_found=True)
    (corr,) = store.detail(moved.case_id).corrections
    assert (corr["field"], corr["before"], corr["after"], corr["origin"]) == (
        "location",
        "DC1/Room 404",
        "DC1/Room 205",
        "count",
    )
    actions = [e.action for e in store.audit.entries()]
    assert actions[-2:] == ["register.correct", "case.resolved"]
    assert store.verify_audit().ok


def test_attach_hashes_files_and_accepts_urls(tmp_path: Path, store: CaseStore) -> None:
    store.import_run(write_run(tmp_path / "r1", "run-1", D1, [MISSING]), actor="ann")
    (case,) = store.list_cases()
    path = _evidence(tmp_path, "photo.jpg", "serial plate")
    info = store.attach(case.case_id, path, actor="bob", note="serial plate photo")
    assert info["sha256"] == hashlib.sha256(b"serial plate").hexdigest()
    url = store.attach(case.case_id, "https://itsm.example/INC42", actor="bob")
    assert (url["kind"], url["sha256"]) == ("url", None)
    entries = list(store.audit.entries())
    assert entries[-2].evidence_sha256 == info["sha256"]
    with pytest.raises(CaseError, match="does not exist"):
        store.attach(case.case_id, str(tmp_path / "nope.pdf"), actor="bob")


def _missing_case_ready_for_write_off(
    tmp_path: Path, store: CaseStore, value: float = 1500.0
) -> str:
    item = V("missing", "AST-200", expected_location="DC1/Room 302", value=value)
    store.import_run(write_run(tmp_path / "r1", "run-1", D1, [item]), actor="ann")
    (case,) = store.list_cases()
    store.assign(case.case_id, "olga", actor="ann")
    store.attach(case.case_id, _evidence(tmp_path), actor="ivan")
    return case.case_id


def test_write_off_waits_for_the_investigation_window(
    tmp_path: Path, store: CaseStore, clock: Clock
) -> None:
    case_id = _missing_case_ready_for_write_off(tmp_path, store)
    until = date.fromisoformat(store.get(case_id).investigation_until or "")
    assert until == D1 + timedelta(days=45)
    clock.to(until - timedelta(days=1))
    with pytest.raises(CaseError, match="investigation window until"):
        store.resolve(case_id, "written_off", actor="ivan", reason="gone")
    clock.to(until)
    case = store.resolve(case_id, "written_off", actor="ivan", reason="gone")
    assert case.status is CaseStatus.WRITE_OFF_REQUESTED


def test_write_off_approval_chain(tmp_path: Path, store: CaseStore, clock: Clock) -> None:
    case_id = _missing_case_ready_for_write_off(tmp_path, store)
    late = date(2030, 1, 1)
    clock.to(late)
    with pytest.raises(CaseError, match="approving their own request"):
        store.resolve(case_id, "written_off", actor="olga", reason="gone")
    store.resolve(case_id, "written_off", actor="ivan", reason="not found in 45 days")
    assert store.detail(case_id).pending_steps == ["owner", "finance"]
    with pytest.raises(CaseError, match="cannot approve it"):
        store.approve(case_id, actor="ivan")
    with pytest.raises(CaseError, match="must be signed by olga"):
        store.approve(case_id, actor="fiona")
    store.approve(case_id, actor="olga")
    assert store.get(case_id).status is CaseStatus.WRITE_OFF_REQUESTED
    assert store.detail(case_id).pending_steps == ["finance"]
    with pytest.raises(CaseError, match="fiona, frank"):
        store.approve(case_id, actor="olga")
    done = store.approve(case_id, actor="frank", reason="book value written down")
    assert done.status is CaseStatus.WRITTEN_OFF
    detail = store.detail(case_id)
    assert [(a["step"], a["approver"], a["decision"]) for a in detail.approvals] == [
        ("owner", "olga", "approved"),
        ("finance", "frank", "approved"),
    ]
    assert [(c["field"], c["after"], c["origin"]) for c in detail.corrections] == [
        ("status", "retired", "write_off")
    ]
    with pytest.raises(CaseError, match="no write-off request"):
        store.approve(case_id, actor="fiona")
    assert store.verify_audit().ok


def test_cheap_asset_skips_finance_and_rejection_returns_to_investigation(
    tmp_path: Path, store: CaseStore, clock: Clock
) -> None:
    case_id = _missing_case_ready_for_write_off(tmp_path, store, value=300.0)
    late = date(2030, 1, 1)
    clock.to(late)
    store.resolve(case_id, "written_off", actor="ivan", reason="gone")
    assert store.detail(case_id).pending_steps == ["owner"]
    with pytest.raises(CaseError, match="needs a reason"):
        store.approve(case_id, actor="olga", reject=True)
    back = store.approve(case_id, actor="olga", reject=True, reason="check the repair vendor")
    assert back.status is CaseStatus.MISSING_UNDER_INVESTIGATION
    clock.to(late)
    store.resolve(case_id, "written_off", actor="ivan", reason="vendor has nothing")
    assert store.detail(case_id).pending_steps == ["owner"], "a new request starts over"
    assert store.approve(case_id, actor="olga").status is CaseStatus.WRITTEN_OFF


def test_write_off_of_an_unowned_case_is_refused(
    tmp_path: Path, store: CaseStore, clock: Clock
) -> None:
    item = V("missing", "AST-201", expected_location="DC1/Room 302")
    store.import_run(write_run(tmp_path / "r1", "run-1", D1, [item]), actor="ann")
    store.attach("C-000001", _evidence(tmp_path), actor="ivan")
    clock.to(date(2030, 1, 1))
    with pytest.raises(CaseError, match="has no owner; assign it first"):
        store.resolve("C-000001", "written_off", actor="ivan", reason="x")


def test_write_off_stops_when_a_later_count_finds_the_asset(
    tmp_path: Path, store: CaseStore, clock: Clock
) -> None:
    case_id = _missing_case_ready_for_write_off(tmp_path, store)
    clock.to(date(2030, 1, 1))
    store.resolve(case_id, "written_off", actor="ivan", reason="gone")
    store.import_run(write_run(tmp_path / "r2", "run-2", D1 + timedelta(days=50), []), actor="ann")
    with pytest.raises(CaseError, match="no longer shows this variance"):
        store.approve(case_id, actor="olga")
    store.approve(case_id, actor="olga", reject=True, reason="found in run-2")
    assert store.resolve(case_id, "resolved", actor="olga", reason="found").status is (
        CaseStatus.RESOLVED
    )


def test_same_person_cannot_sign_two_steps(tmp_path: Path) -> None:
    settings = CasesSection(
        write_off_chain=[
            ApprovalStep(name="manager", approvers=["mia", "max"]),
            ApprovalStep(name="finance", approvers=["mia", "fiona"]),
        ]
    )
    clock = Clock(D1)
    store = CaseStore(tmp_path / "cases", settings, clock=clock)
    case_id = _missing_case_ready_for_write_off(tmp_path, store)
    clock.to(date(2030, 1, 1))
    store.resolve(case_id, "written_off", actor="ivan", reason="gone")
    store.approve(case_id, actor="mia")
    with pytest.raises(CaseError, match="already signed"):
        store.approve(case_id, actor="mia")
    assert store.approve(case_id, actor="fiona").status is CaseStatus.WRITTEN_OFF


def test_list_filters_and_export(tmp_path: Path, store: CaseStore) -> None:
    formula = V("location_mismatch", "=HYPERLINK(1)", found_location="DC1/R2")
    store.import_run(
        write_run(tmp_path / "r1", "run-1", D1, [MISSING, MOVED, RETIRED, formula]), actor="ann"
    )
    assert len(store.list_cases(overdue=True, today=D1)) == 0
    assert len(store.list_cases(overdue=True, today=D1 + timedelta(days=8))) == 4
    assert [c.asset_key for c in store.list_cases(variance_type="retired_but_active")] == [
        "AST-120"
    ]
    with pytest.raises(CaseError, match="unknown variance type"):
        store.list_cases(variance_type="lost")
    with pytest.raises(CaseError, match="unknown status"):
        store.list_cases(status="done")
    out = store.export(tmp_path / "cases.csv")
    rows = list(csv.DictReader(out.open()))
    assert len(rows) == 4
    assert {r["asset_key"] for r in rows} >= {"'=HYPERLINK(1)", "AST-100"}
    lines = store.export(tmp_path / "cases.jsonl", "jsonl").read_text().splitlines()
    assert json.loads(lines[0])["status_label"] == "Open"
    with pytest.raises(CaseError, match="expected csv or jsonl"):
        store.export(tmp_path / "cases.xml", "xml")


def test_bad_variance_logs_are_refused_with_the_reason(tmp_path: Path, store: CaseStore) -> None:
    with pytest.raises(CaseError, match=r"no variances\.parquet"):
        store.import_run(tmp_path, actor="ann")
    run = write_run(tmp_path / "r1", "run-1", D1, [MISSING])
    table = pq.read_table(run / "variances.parquet").drop_columns(["priority"])
    pq.write_table(table, run / "variances.parquet")
    with pytest.raises(CaseError, match=r"missing column.*priority"):
        store.import_run(run, actor="ann")
    run = write_run(tmp_path / "r2", "run-2", D1, [MISSING, MISSING])
    with pytest.raises(CaseError, match="repeats"):
        store.import_run(run, actor="ann")
    run = write_run(tmp_path / "r3", "run-3", D1, [V("lost", "AST-1")])
    with pytest.raises(CaseError, match="unknown type 'lost'"):
        store.import_run(run, actor="ann")
    assert store.list_cases() == []
    assert store.verify_audit().entries == 0, "refused imports leave no trace"


def test_store_refuses_changes_when_the_log_lost_entries(tmp_path: Path, store: CaseStore) -> None:
    store.import_run(write_run(tmp_path / "r1", "run-1", D1, [MISSING, MOVED]), actor="ann")
    lines = store.audit.path.read_text().splitlines(keepends=True)
    store.audit.path.write_text("".join(lines[:-1]))
    report = store.verify_audit()
    assert not report.ok
    assert "deleted from the end" in (report.problem or "")
    with pytest.raises(CaseError, match="recorded seq 3"):
        store.note("C-000001", "checked", actor="bob")
    with sqlite3.connect(store.db_path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM notes").fetchone()[0] == 0


def test_config_section_and_errors(tmp_path: Path) -> None:
    config = parse_config(
        {
            "engine": {
                "cases": {
                    "investigation_days": 30,
                    "owners": {"missing": "asset-team"},
                    "write_off_chain": [{"name": "owner", "approvers": ["@case_owner"]}],
                }
            }
        }
    )
    assert config.engine.cases.investigation_days == 30
    for bad, message in (
        ({"investigation_days": 90}, "less than or equal to 60"),
        ({"owners": {"lost": "x"}}, "unknown variance type"),
        ({"write_off_chain": [{"name": "a", "approvers": ["x"]}] * 2}, "unique"),
    ):
        with pytest.raises(Exception, match=message) as info:
            parse_config({"engine": {"cases": bad}}, file="t.toml")
        assert "engine.cases" in str(info.value)


def test_cli_walkthrough_with_config(tmp_path: Path) -> None:
    conf = tmp_path / "tagsweep.toml"
    conf.write_text(
        '[engine.cases]\nstore = "casework"\ninvestigation_days = 30\n'
        '[engine.cases.owners]\nmissing = "olga"\n'
    )
    laptop = V("missing", "AST-300", expected_location="DC1/Room 302", value=2400.0)
    run = write_run(tmp_path / "r1", "run-1", date(2020, 1, 1), [laptop, MOVED])
    runner = CliRunner()

    def cli(*args: str, actor: str | None = "ann", code: int = 0) -> str:
        who = ["--actor", actor] if actor else []
        result = runner.invoke(app, [*args, "--config", str(conf), *who])
        assert result.exit_code == code, result.output
        return result.output

    # Opened on 2020-01-01 (the signed time of the opening entries): the investigation
    # window has long passed when the commands below run.
    settings = parse_config({"engine": {"cases": {"investigation_days": 30}}}).engine.cases
    CaseStore(tmp_path / "casework", settings.model_copy(update={"owners": {"missing": "olga"}}),
              clock=Clock(date(2020, 1, 1))).import_run(run, actor="ann")  # fmt: skip
    assert "already imported" in cli("cases", "open", "--run", str(run))
    assert (tmp_path / "casework" / "cases.sqlite").is_file()
    listing = runner.invoke(app, ["cases", "list", "--json", "--config", str(conf)])
    cases = [json.loads(line) for line in listing.output.splitlines()]
    assert [(c["case_id"], c["owner"]) for c in cases] == [("C-000001", "olga"), ("C-000002", None)]
    assert "Under Investigation" in cli("cases", "assign", "C-000002", "bob")
    cli("cases", "note", "C-000001", "checked the repair vendor", actor="olga")
    assert "sha256" in cli("cases", "attach", "C-000001", _evidence(tmp_path), actor="ivan")
    assert "needs evidence" not in cli(
        "cases", "resolve", "C-000002", "--reason", "moved", "--accept-found", actor="bob"
    )
    out = cli(
        "cases", "resolve", "C-000001", "--outcome", "written_off", "--reason", "gone", actor="ivan"
    )
    assert "Write-off Requested" in out
    assert "awaiting: finance" in cli("cases", "approve", "C-000001", actor="olga")
    err = cli("cases", "approve", "C-000001", actor="olga", code=1)
    assert "must be signed by finance" in err
    assert "Written Off" in cli("cases", "approve", "C-000001", actor="finance")
    shown = runner.invoke(app, ["cases", "show", "C-000001", "--json", "--config", str(conf)])
    detail = json.loads(shown.output)
    assert detail["notes"][0]["text"] == "checked the repair vendor"
    assert [a["approver"] for a in detail["approvals"]] == ["olga", "finance"]
    assert "OK" in cli("audit", "verify", actor=None)
    assert "wrote" in cli("cases", "export", str(tmp_path / "out.csv"), actor=None)
    assert "no case 'C-9'" in cli("cases", "show", "C-9", actor=None, code=1)
    typo = runner.invoke(app, ["cases", "list", "--store", str(tmp_path / "casewrok")])
    assert typo.exit_code == 1
    assert "no case store at" in typo.output
    assert not (tmp_path / "casewrok").exists()
