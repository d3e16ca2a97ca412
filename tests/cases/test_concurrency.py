"""Concurrent ``tagsweep`` processes neither corrupt the case store nor fork the audit chain,
and the chain they leave is signed entry by entry by each process's own key."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from datetime import date
from pathlib import Path

from tagsweep.config.cases import CasesSection
from tagsweep.engine.cases import CaseStore

from .keys import Keys
from .runs import V, write_run

TAGSWEEP = str(Path(sys.executable).with_name("tagsweep"))

A = V("missing", "AST-1", expected_location="DC1/Room 1")
B = V("location_mismatch", "AST-2", expected_location="DC1/Room 1", found_location="DC1/Room 2")
C = V("custodian_mismatch", "AST-3", expected="jdoe", found="msmith")


def test_concurrent_cli_invocations_keep_store_and_chain_intact(tmp_path: Path) -> None:
    store_dir = tmp_path / "cases"
    people = ["ann", "eve", *(f"w{i}" for i in range(5)), "o0", "o1"]
    keys = Keys(tmp_path / "keys", people)
    conf = tmp_path / "tagsweep.toml"
    conf.write_text(f'[engine.cases]\nstore = "cases"\nallowed_signers = "{keys.allowed}"\n')
    store = CaseStore(
        store_dir, CasesSection(allowed_signers=keys.allowed), signer=keys.signer("ann")
    )
    store.import_run(write_run(tmp_path / "r1", "run-1", date(2026, 5, 1), [A, B, C]))
    run2 = write_run(tmp_path / "r2", "run-2", date(2026, 6, 1), [A, B])
    env = {k: v for k, v in os.environ.items() if k not in ("SSH_AUTH_SOCK", "TAGSWEEP_ACTOR")}

    def signed(who: str, *args: str) -> list[str]:
        return [*args, "--config", str(conf), "--key", str(keys.paths[who]), "--actor", who]

    commands = [
        signed(f"w{i}", "cases", "note", f"C-00000{1 + i % 3}", f"note {i}") for i in range(5)
    ]
    evidence = tmp_path / "evidence.txt"
    evidence.write_text("loaner log, page 3")
    commands.append(signed("eve", "cases", "attach", "C-000001", str(evidence)))
    # The same run imported twice at once: exactly one import may win.
    commands += [signed(f"o{i}", "cases", "open", "--run", str(run2)) for i in range(2)]

    procs = [
        subprocess.Popen(
            [TAGSWEEP, *args], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
        for args in commands
    ]
    results = [
        (args, *p.communicate(timeout=60), p.returncode)
        for args, p in zip(commands, procs, strict=True)
    ]
    for args, _out, err, code in results:
        assert code == 0, f"{args}: {err}"
    imports = [out for args, out, _err, _code in results if args[1] == "open"]
    assert sum("already imported" in out for out in imports) == 1
    assert sum("2 linked" in out and "1 proposed" in out for out in imports) == 1

    # The store: every change landed once, nothing lost, nothing doubled.
    with sqlite3.connect(store.db_path) as conn:
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        notes = sorted(r[0] for r in conn.execute("SELECT text FROM notes"))
        assert notes == sorted(f"note {i}" for i in range(5))
        assert conn.execute("SELECT COUNT(*) FROM evidence WHERE kind = 'file'").fetchone()[0] == 1
        assert conn.execute("SELECT COUNT(*) FROM runs").fetchone()[0] == 2
    assert store.get("C-000001").occurrences == 2
    assert store.get("C-000003").proposed_resolution_run == "run-2"

    # The chain: one entry per change, strictly sequential, verified end to end.
    report = store.verify_audit()
    assert report.ok, report.describe()
    checked = store.check_audit()
    assert checked.ok, checked.describe()
    assert checked.signatures.signed == report.entries
    # run-1: import + 3 opens; 5 notes; 1 attachment; run-2: import + 2 links + 1 proposal
    assert report.entries == 4 + 5 + 1 + 4
    entries = list(store.audit.entries())
    assert [e.seq for e in entries] == list(range(1, report.entries + 1))
    assert sorted(e.actor for e in entries if e.action == "case.note") == sorted(
        f"w{i}" for i in range(5)
    )
    assert store.recorded_head() == report.head
