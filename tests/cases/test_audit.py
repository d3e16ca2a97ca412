"""The audit log detects every edit, deletion and reordering of its stored entries."""

from __future__ import annotations

import itertools
import json
import tempfile
from datetime import date
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

from tagsweep.cli import app
from tagsweep.engine.audit import AuditLog, AuditLogError, entry_hash
from tagsweep.engine.cases import CaseStore

from .runs import V, write_run


def _log_with(path: Path, n: int) -> AuditLog:
    log = AuditLog(path)
    with log.writing() as writer:
        for i in range(n):
            writer.append(
                actor=f"user{i % 3}",
                action="case.note",
                subject=f"C-{i:06d}",
                before={"status": "open"},
                after={"note": f"checked shelf {i}"},
                reason="walk-through",
                evidence_sha256="ab" * 32 if i % 2 else None,
            )
    return log


def _lines(path: Path) -> list[str]:
    return path.read_text().splitlines(keepends=True)


def test_intact_log_verifies_and_chains_each_entry_to_the_previous(tmp_path: Path) -> None:
    log = _log_with(tmp_path / "audit.jsonl", 5)
    report = log.verify()
    assert report.ok
    assert report.entries == 5
    entries = list(log.entries())
    assert [e.seq for e in entries] == [1, 2, 3, 4, 5]
    assert entries[0].prev == "0" * 64
    assert all(b.prev == a.hash for a, b in itertools.pairwise(entries))
    assert all(entry_hash(e.as_dict()) == e.hash for e in entries)
    assert report.head.hash == entries[-1].hash


def test_edited_entry_is_reported_at_its_line(tmp_path: Path) -> None:
    log = _log_with(tmp_path / "audit.jsonl", 5)
    lines = _lines(log.path)
    lines[2] = lines[2].replace('"actor": "user2"', '"actor": "mallory"')
    log.path.write_text("".join(lines))
    report = log.verify()
    assert not report.ok
    assert report.first_bad_line == 3
    assert report.first_bad_seq == 3
    assert "edited" in (report.problem or "")


def test_edit_with_recomputed_hash_breaks_the_next_link(tmp_path: Path) -> None:
    """An attacker who rehashes the edited entry is caught by the entry after it."""
    log = _log_with(tmp_path / "audit.jsonl", 5)
    lines = _lines(log.path)
    data = json.loads(lines[1])
    data["after"] = {"note": "nothing found"}
    data["hash"] = entry_hash(data)
    lines[1] = json.dumps(data) + "\n"
    log.path.write_text("".join(lines))
    report = log.verify()
    assert not report.ok
    assert report.first_bad_line == 3
    assert "prev hash" in (report.problem or "")


def test_deleted_entry_is_detected(tmp_path: Path) -> None:
    log = _log_with(tmp_path / "audit.jsonl", 5)
    lines = _lines(log.path)
    del lines[1]
    log.path.write_text("".join(lines))
    report = log.verify()
    assert not report.ok
    assert report.first_bad_line == 2
    assert report.first_bad_seq == 3
    assert "deleted" in (report.problem or "")


def test_reordered_entries_are_detected(tmp_path: Path) -> None:
    log = _log_with(tmp_path / "audit.jsonl", 5)
    lines = _lines(log.path)
    lines[1], lines[3] = lines[3], lines[1]
    log.path.write_text("".join(lines))
    report = log.verify()
    assert not report.ok
    assert report.first_bad_line == 2
    assert "reordered" in (report.problem or "")


def test_truncated_tail_is_detected_against_the_recorded_head(tmp_path: Path) -> None:
    log = _log_with(tmp_path / "audit.jsonl", 5)
    head = log.head()
    log.path.write_text("".join(_lines(log.path)[:3]))
    assert log.verify().ok, "a truncated chain is internally consistent"
    report = log.verify(head)
    assert not report.ok
    assert report.first_bad_seq == 4
    assert "deleted from the end" in (report.problem or "")


def test_rewritten_tail_is_detected_against_the_recorded_head(tmp_path: Path) -> None:
    log = _log_with(tmp_path / "audit.jsonl", 5)
    head = log.head()
    log.path.write_text("".join(_lines(log.path)[:4]))
    log.append(actor="mallory", action="case.note", subject="C-000004", after={"note": "x"})
    report = log.verify(head)
    assert not report.ok
    assert "rewritten" in (report.problem or "")


def test_garbage_and_torn_lines_are_reported(tmp_path: Path) -> None:
    log = _log_with(tmp_path / "audit.jsonl", 3)
    lines = _lines(log.path)
    log.path.write_text(lines[0] + "not json\n" + "".join(lines[1:]))
    report = log.verify()
    assert (report.ok, report.first_bad_line) == (False, 2)
    assert "JSON" in (report.problem or "")

    torn = tmp_path / "torn.jsonl"
    torn.write_text("".join(lines) + lines[0][:20])
    report = AuditLog(torn).verify()
    assert (report.ok, report.first_bad_line) == (False, 4)
    assert "incomplete" in (report.problem or "")


def test_append_refuses_to_extend_a_damaged_tail(tmp_path: Path) -> None:
    log = _log_with(tmp_path / "audit.jsonl", 2)
    lines = _lines(log.path)
    log.path.write_text(lines[0] + lines[1].replace("checked", "ignored"))
    with pytest.raises(AuditLogError, match="does not match its hash"):
        log.append(actor="ann", action="case.note", subject="C-1")
    log.path.write_text("".join(lines) + '{"seq": 3')
    with pytest.raises(AuditLogError, match="damaged"):
        log.append(actor="ann", action="case.note", subject="C-1")


def test_append_needs_an_actor(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="actor"):
        AuditLog(tmp_path / "a.jsonl").append(actor=" ", action="x", subject="y")


def test_cli_verify_reports_the_first_tampered_entry(tmp_path: Path) -> None:
    log = _log_with(tmp_path / "audit.jsonl", 4)
    runner = CliRunner()
    ok = runner.invoke(app, ["audit", "verify", "--log", str(log.path)])
    assert ok.exit_code == 0, ok.output
    assert "OK 4 entries" in ok.output
    lines = _lines(log.path)
    lines[3] = lines[3].replace("shelf 3", "shelf 9")
    log.path.write_text("".join(lines))
    bad = runner.invoke(app, ["audit", "verify", "--log", str(log.path)])
    assert bad.exit_code == 1
    assert "TAMPERED at line 4 (entry seq 4)" in bad.output
    missing = runner.invoke(app, ["audit", "verify", "--log", str(tmp_path / "nope.jsonl")])
    assert missing.exit_code == 2
    assert "does not exist" in missing.output


def test_cli_verify_of_a_store_checks_chain_head_and_evidence(tmp_path: Path) -> None:
    store = CaseStore(tmp_path / "cases")
    run = write_run(tmp_path / "r1", "run-1", date(2026, 1, 5), [V("missing", "AST-1")])
    store.import_run(run, actor="ann")
    proof = tmp_path / "proof.txt"
    proof.write_text("loaner log")
    info = store.attach("C-000001", str(proof), actor="bob")
    runner = CliRunner()
    args = ["audit", "verify", "--store", str(store.root)]
    ok = runner.invoke(app, args)
    assert ok.exit_code == 0, ok.output
    assert "OK 3 entries" in ok.output

    (store.root / info["stored_path"]).write_text("loaner log (edited)")
    bad = runner.invoke(app, args)
    assert bad.exit_code == 1
    assert "EVIDENCE C-000001" in bad.output
    assert "changed after it was attached" in bad.output
    (store.root / info["stored_path"]).write_text("loaner log")

    lines = _lines(store.audit.path)
    store.audit.path.write_text("".join(lines[:-1]))
    cut = runner.invoke(app, args)
    assert cut.exit_code == 1
    assert "deleted from the end" in cut.output


@settings(max_examples=40, deadline=None)
@given(
    n=st.integers(min_value=2, max_value=8),
    data=st.data(),
)
def test_any_single_tampering_is_detected(n: int, data: st.DataObject) -> None:
    """Property: editing any field of any entry, deleting any entry but the last, or
    swapping any two entries is caught, at or before the damaged line."""
    with tempfile.TemporaryDirectory() as tmp:
        log = _log_with(Path(tmp) / "audit.jsonl", n)
        head = log.head()
        lines = _lines(log.path)
        kind = data.draw(st.sampled_from(["edit", "delete", "swap"]))
        if kind == "edit":
            index = data.draw(st.integers(0, n - 1))
            entry = json.loads(lines[index])
            name = data.draw(st.sampled_from(sorted(entry)))
            value = data.draw(st.text(max_size=5))
            entry[name] = value if value != entry[name] else value + "x"
            lines[index] = json.dumps(entry) + "\n"
            damaged = index + 1
        elif kind == "delete":
            index = data.draw(st.integers(0, n - 1))
            del lines[index]
            damaged = index + 1
        else:
            i, j = sorted(data.draw(st.lists(st.integers(0, n - 1), min_size=2, max_size=2,
                                             unique=True)))  # fmt: skip
            lines[i], lines[j] = lines[j], lines[i]
            damaged = i + 1
        log.path.write_text("".join(lines))
        report = log.verify(head)
        assert not report.ok, (kind, lines)
        if report.first_bad_line is not None:
            assert report.first_bad_line <= damaged + 1
