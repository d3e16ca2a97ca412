"""Signed audit entries with real ssh-keygen keys: who did it, provably.

The insider cases come from the way the unsigned log was beaten: a requester approving
her own write-off under two names, a forged ``--actor``, an edited entry, the whole chain
rewritten with fresh hashes, and the store edited behind the log's back.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import time
from collections.abc import Iterator, Sequence
from datetime import UTC, date, timedelta
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tagsweep.cli import app
from tagsweep.config.cases import ApprovalStep, CasesSection
from tagsweep.engine.allowed_signers import find_signer
from tagsweep.engine.audit import AuditLogError, AuditWriter, entry_hash, signed_message
from tagsweep.engine.audit_anchor import load_anchor, write_anchor
from tagsweep.engine.cases import CaseError, CaseStatus, CaseStore
from tagsweep.engine.sshsig import AgentSigner, KeyFileSigner, SignatureError

from .keys import Keys, make_key, ssh_keygen_verify
from .runs import Clock, V, write_run

D1 = date(2026, 3, 2)
PEOPLE = ["ann", "ivan", "olga", "fiona", "audrey"]
LAPTOP = V("missing", "AST-500", expected_location="DC1/Room 302", value=1500.0)


class World:
    """A case store and the people who work it, each with their own key."""

    def __init__(self, tmp: Path, keys: Keys | None = None) -> None:
        self.tmp = tmp
        self.keys = keys or Keys(tmp / "keys", PEOPLE)
        self.clock = Clock(D1)
        self.root = tmp / "cases"
        self.settings = CasesSection(
            allowed_signers=self.keys.allowed,
            requesters=["ivan"],
            auditors=["audrey"],
            write_off_chain=[
                ApprovalStep(name="owner", approvers=["@case_owner"]),
                ApprovalStep(name="finance", approvers=["fiona"], min_value=1000.0),
            ],
        )

    def as_(self, name: str, signer: Any = None) -> CaseStore:
        return CaseStore(
            self.root, self.settings, signer=signer or self.keys.signer(name), clock=self.clock
        )

    def reader(self) -> CaseStore:
        return CaseStore(self.root, self.settings, create=False)

    def open_case(self, run_date: date = D1) -> str:
        run = write_run(self.tmp / "r1", "run-1", run_date, [LAPTOP])
        self.as_("ann").import_run(run)
        self.as_("ann").assign("C-000001", "olga")
        self.as_("ivan").attach("C-000001", "https://itsm.example/SEARCH-500", note="searched")
        return "C-000001"

    def request(self) -> str:
        case_id = self.open_case()
        self.clock.to(D1 + timedelta(days=46))
        self.as_("ivan").resolve(case_id, "written_off", reason="not found after 45 days")
        return case_id

    def write_off(self) -> str:
        case_id = self.request()
        self.as_("olga").approve(case_id)
        self.as_("fiona").approve(case_id, reason="book value written down")
        return case_id

    def forge(
        self,
        key: str | KeyFileSigner,
        *,
        sql: Sequence[tuple[str, tuple[Any, ...]]] = (),
        **entry: Any,
    ) -> int:
        """An insider with write access to the store folder and one key appends an entry
        and edits the store to match, bypassing every check the commands make."""
        store = self.reader()
        signer = self.keys.signer(key) if isinstance(key, str) else key
        with store.audit.writing(signer=signer, clock=self.clock) as writer:
            seq = writer.append(**entry).seq
            head = writer.head
        with sqlite3.connect(store.db_path) as conn:
            conn.execute(
                "INSERT OR REPLACE INTO meta VALUES ('audit_head', ?)",
                (json.dumps([head.seq, head.hash]),),
            )
            for statement, params in sql:
                conn.execute(statement, params)
        return seq

    def check(self, *anchors: Path) -> Any:
        return self.reader().check_audit([load_anchor(a) for a in anchors])


@pytest.fixture
def world(tmp_path: Path) -> World:
    return World(tmp_path)


def _entries(world: World) -> list[Any]:
    return list(world.reader().audit.entries())


def test_a_write_off_by_three_people_verifies_also_with_ssh_keygen(world: World) -> None:
    case_id = world.write_off()
    store = world.reader()
    assert store.get(case_id).status is CaseStatus.WRITTEN_OFF
    result = world.check()
    assert result.ok, result.describe()
    entries = _entries(world)
    assert result.signatures.signed == len(entries)
    assert result.signatures.unsigned == 0
    assert {e.actor for e in entries} == {"ann", "ivan", "olga", "fiona"}
    # Every signature verifies with the stock OpenSSH tool, for the principal recorded.
    for entry in entries:
        when = entry.when.astimezone(UTC).strftime("%Y%m%d%H%M%S")
        done = ssh_keygen_verify(
            world.keys.allowed, entry.actor, signed_message(entry.as_dict()), entry.sig,
            when, world.tmp / "v",
        )  # fmt: skip
        assert done.returncode == 0, (entry.seq, done.stdout, done.stderr)
        assert f'Good "tagsweep-audit" signature for {entry.actor}' in done.stdout
    # ... and an edited message does not.
    bad = ssh_keygen_verify(
        world.keys.allowed, entries[-1].actor, signed_message(entries[-1].as_dict()) + b" ",
        entries[-1].sig, "20260501000000", world.tmp / "v",
    )  # fmt: skip
    assert bad.returncode != 0


def test_self_approval_is_refused_and_a_forged_one_is_named(world: World) -> None:
    case_id = world.request()
    with pytest.raises(CaseError, match="requested this write-off and cannot approve it"):
        world.as_("ivan").approve(case_id)
    seq = world.forge(
        "ivan", actor="ivan", action="case.approve", subject=case_id,
        after={"step": "owner", "request": 1},
        sql=[("INSERT INTO approvals (case_id, request, step, approver, decision, ts) "
              "VALUES (?, 1, 'owner', 'ivan', 'approved', 'x')", (case_id,))],
    )  # fmt: skip
    result = world.check()
    assert not result.ok
    assert result.first.seq == seq
    assert "self-approval" in result.first.problem
    assert f"FAILED at entry seq {seq} [{case_id}]" in result.describe()


def test_unknown_key_is_refused_and_its_entry_named(world: World, tmp_path: Path) -> None:
    case_id = world.open_case()
    mallory = KeyFileSigner(make_key(tmp_path / "elsewhere", "mallory"))
    with pytest.raises(CaseError, match=r"refused: key SHA256:\S+ is not in .*unknown signer"):
        world.as_("mallory", signer=mallory).note(case_id, "nothing to see")
    seq = world.forge(mallory, actor="mallory", action="case.note", subject=case_id)
    first = world.check().first
    assert (first.seq, "unknown signer" in first.problem) == (seq, True)


def test_wrong_role_is_refused_and_its_entry_named(world: World) -> None:
    case_id = world.open_case()
    world.clock.to(D1 + timedelta(days=46))
    with pytest.raises(CaseError, match="olga may not request write-offs"):
        world.as_("olga").resolve(case_id, "written_off", reason="gone")
    world.as_("ivan").resolve(case_id, "written_off", reason="gone")
    with pytest.raises(
        CaseError, match="step 'owner' of the write-off chain must be signed by olga"
    ):
        world.as_("fiona").approve(case_id)
    seq = world.forge(
        "fiona", actor="fiona", action="case.approve", subject=case_id,
        after={"step": "owner", "request": 1},
        sql=[("INSERT INTO approvals (case_id, request, step, approver, decision, ts) "
              "VALUES (?, 1, 'owner', 'fiona', 'approved', 'x')", (case_id,))],
    )  # fmt: skip
    first = world.check().first
    assert first.seq == seq
    assert "may not sign step 'owner' (allowed: olga)" in first.problem


def test_forged_actor_is_refused_and_its_entry_named(world: World) -> None:
    case_id = world.open_case()
    with pytest.raises(CaseError, match="--actor olga does not match the signing key"):
        world.as_("ivan").note(case_id, "checked", actor="olga")
    assert world.as_("ivan").note(case_id, "checked", actor="ivan").case_id == case_id
    seq = world.forge("ivan", actor="olga", action="case.note", subject=case_id)
    first = world.check().first
    assert first.seq == seq
    assert "records actor 'olga' but was signed by ivan's key" in first.problem


def _rewrite(world: World, edit: Any, *, resign: bool) -> None:
    """Rewrite the log with ``edit`` applied to each entry and every hash recomputed (and,
    with ``resign``, every signature remade with its actor's key); point the store at the
    new head: what anyone who can write the store folder (and holds keys) can do."""
    store = world.reader()
    prev = "0" * 64
    lines = []
    for entry in store.audit.entries():
        data = entry.as_dict()
        edit(data)
        data["prev"] = prev
        if resign:
            data["sig"] = world.keys.signer(data["actor"]).sign(
                signed_message(data), "tagsweep-audit"
            )
        data["hash"] = entry_hash(data)
        prev = data["hash"]
        lines.append(json.dumps(data, ensure_ascii=False) + "\n")
    store.audit.path.write_text("".join(lines))
    with sqlite3.connect(store.db_path) as conn:
        conn.execute(
            "INSERT OR REPLACE INTO meta VALUES ('audit_head', ?)",
            (json.dumps([len(lines), prev]),),
        )


def test_an_edited_entry_is_named_even_with_the_hashes_recomputed(world: World) -> None:
    world.write_off()
    target = next(e.seq for e in _entries(world) if e.action == "case.approve")

    def edit(data: dict[str, Any]) -> None:
        if data["seq"] == target:
            data["reason"] = "approved by phone"

    _rewrite(world, edit, resign=False)
    result = world.check()
    assert world.reader().verify_audit().ok, "the hash chain alone is fooled"
    assert result.first.seq == target
    assert "bad signature: the signature does not match the signed content" in (
        result.first.problem
    )


def test_a_chain_rewritten_end_to_end_is_caught_by_the_anchor(world: World) -> None:
    world.write_off()
    head = world.reader().verify_audit().head
    anchor = write_anchor(head, world.root / "audit.jsonl", world.tmp / "kept" / "anchor.json")

    def edit(data: dict[str, Any]) -> None:
        if data["action"] == "case.attach":
            data["after"]["note"] = "searched everywhere"

    _rewrite(world, edit, resign=True)  # worst case: every key at hand
    assert world.check().ok, "signatures and replay alone cannot tell"
    result = world.check(anchor)
    assert not result.ok
    assert result.first.seq == head.seq
    assert "not the one anchored in" in result.first.problem
    assert "rewritten" in result.first.problem


def test_a_store_edited_without_the_log_is_caught_by_the_replay(world: World) -> None:
    case_id = world.write_off()
    with sqlite3.connect(world.root / "cases.sqlite") as conn:
        conn.execute("UPDATE approvals SET approver = 'ann' WHERE step = 'finance'")
        conn.execute("UPDATE cases SET owner = 'ann' WHERE case_id = ?", (case_id,))
    result = world.check()
    assert not result.ok
    problems = [f.describe() for f in result.findings]
    assert any("owner is 'ann' in the store but 'olga' in the log" in p for p in problems)
    assert any("approvals in the store" in p and "'ann'" in p for p in problems)
    assert all(f.case_id == case_id for f in result.findings)


def test_investigation_window_runs_from_the_signed_opening(world: World) -> None:
    # The run says it counted long ago (an earlier --as-of); the window still starts at
    # the signed time of the opening entry.
    run = write_run(world.tmp / "r0", "run-0", date(2020, 1, 1), [LAPTOP])
    world.as_("ann").import_run(run)
    case_id = "C-000001"
    assert world.reader().get(case_id).investigation_until == str(D1 + timedelta(days=45))
    world.as_("ann").assign(case_id, "olga")
    world.as_("ivan").attach(case_id, "https://itsm.example/S")
    world.clock.to(D1 + timedelta(days=10))
    with pytest.raises(CaseError, match="still in its investigation window"):
        world.as_("ivan").resolve(case_id, "written_off", reason="gone")
    seq = world.forge(
        "ivan", actor="ivan", action="case.request_write_off", subject=case_id,
        after={"status": "write_off_requested", "write_off_requested_by": "ivan",
               "write_off_request": 1, "resolution_reason": "gone"},
        sql=[("UPDATE cases SET status = 'write_off_requested', write_off_requested_by = "
              "'ivan', write_off_request = 1, resolution_reason = 'gone'", ())],
    )  # fmt: skip
    first = world.check().first
    assert first.seq == seq
    assert "inside the investigation window" in first.problem


def test_rotated_key_stays_valid_for_what_it_signed(tmp_path: Path) -> None:
    keys = Keys(tmp_path / "keys", [p for p in PEOPLE if p != "fiona"])
    old, new = make_key(tmp_path / "keys", "fiona-2025"), make_key(tmp_path / "keys", "fiona")
    cut = (D1 + timedelta(days=20)).strftime("%Y%m%d")
    keys.add(f'fiona valid-before="{cut}Z" {(tmp_path / "keys" / "fiona-2025.pub").read_text()}')
    keys.add(f'fiona valid-after="{cut}Z" {(tmp_path / "keys" / "fiona.pub").read_text()}')
    world = World(tmp_path, keys)
    case_id = world.open_case()
    world.as_("fiona", signer=KeyFileSigner(old)).note(case_id, "asked the vendor")
    world.clock.to(D1 + timedelta(days=46))
    world.as_("ivan").resolve(case_id, "written_off", reason="gone")
    world.as_("olga").approve(case_id)
    with pytest.raises(CaseError, match="was not valid at"):
        world.as_("fiona", signer=KeyFileSigner(old)).approve(case_id)
    world.as_("fiona", signer=KeyFileSigner(new)).approve(case_id)
    result = world.check()
    assert result.ok, result.describe()
    note = next(e for e in _entries(world) if e.action == "case.note")
    msg = signed_message(note.as_dict())
    then = note.when.strftime("%Y%m%d%H%M%S")
    assert ssh_keygen_verify(keys.allowed, "fiona", msg, note.sig, then, tmp_path).returncode == 0
    later = (D1 + timedelta(days=30)).strftime("%Y%m%d%H%M%S")
    assert ssh_keygen_verify(keys.allowed, "fiona", msg, note.sig, later, tmp_path).returncode


def test_an_unsigned_log_is_sealed_once_by_an_auditor(world: World) -> None:
    legacy = CaseStore(world.root, CasesSection(), clock=world.clock)
    legacy.import_run(write_run(world.tmp / "r1", "run-1", D1, [LAPTOP]), actor="ann")
    legacy.assign("C-000001", "olga", actor="ann")
    unsigned = len(_entries(world))
    unsealed = world.check()
    assert unsealed.first.seq == 1
    assert "no audit.seal by an auditor" in unsealed.first.problem
    with pytest.raises(CaseError, match="an auditor seals them once"):
        world.as_("ivan").note("C-000001", "checked")
    with pytest.raises(CaseError, match="olga may not seal the audit log"):
        world.as_("olga").seal()
    seq = world.as_("audrey").seal()
    assert seq == unsigned + 1
    with pytest.raises(CaseError, match="already signed"):
        world.as_("audrey").seal()
    world.as_("ivan").note("C-000001", "checked")
    result = world.check()
    assert result.ok, result.describe()
    assert (result.signatures.unsigned, result.signatures.sealed_at) == (unsigned, seq)
    # After the seal, an unsigned entry cannot be added, neither by the store nor the log.
    with pytest.raises(AuditLogError, match="an unsigned entry would break it"):
        legacy.note("C-000001", "unsigned again", actor="ann")


@pytest.fixture
def agent(tmp_path: Path) -> Iterator[str]:
    """A real ssh-agent of our own on a socket in tmp_path (stopped afterwards)."""
    sock = str(tmp_path / "agent.sock")
    proc = subprocess.Popen(["ssh-agent", "-D", "-a", sock], stdout=subprocess.DEVNULL)
    try:
        # Wait until the agent answers (`ssh-add -l`: 1 = no keys yet, 2 = no agent there
        # yet); the deadline is only a hang guard.
        deadline = time.monotonic() + 30
        env = {**os.environ, "SSH_AUTH_SOCK": sock}
        listing = ["ssh-add", "-l"]
        while subprocess.run(listing, env=env, capture_output=True, check=False).returncode == 2:
            assert proc.poll() is None, "ssh-agent exited"
            assert time.monotonic() < deadline, "ssh-agent did not answer"
            time.sleep(0.01)
        yield sock
    finally:
        proc.terminate()
        proc.wait(timeout=30)


def test_signing_with_ssh_agent(world: World, agent: str, monkeypatch: pytest.MonkeyPatch) -> None:
    env = {**os.environ, "SSH_AUTH_SOCK": agent}
    subprocess.run(["ssh-add", "-q", str(world.keys.paths["ivan"])], env=env, check=True)
    monkeypatch.setenv("SSH_AUTH_SOCK", agent)
    case_id = world.open_case()
    signers = world.reader().signers
    signer = find_signer(None, signers)
    assert isinstance(signer, AgentSigner)
    assert world.as_("ivan", signer=signer).note(case_id, "signed by the agent")
    entry = _entries(world)[-1]
    assert entry.actor == "ivan"
    assert entry.sig
    assert world.check().ok
    # the .pub of a key in the agent names it too; a key the agent lacks is refused
    assert isinstance(find_signer(world.keys.folder / "ivan.pub", signers), AgentSigner)
    with pytest.raises(SignatureError, match="ssh-agent refused to sign"):
        world.as_("olga", signer=find_signer(world.keys.folder / "olga.pub", signers)).note(
            case_id, "not in the agent"
        )


def test_cli_signs_with_the_key_and_checks_anchors(world: World, monkeypatch: Any) -> None:
    monkeypatch.delenv("SSH_AUTH_SOCK", raising=False)
    monkeypatch.delenv("TAGSWEEP_ACTOR", raising=False)
    conf = world.tmp / "tagsweep.toml"
    conf.write_text(
        '[engine.cases]\nstore = "cases"\nallowed_signers = "keys/allowed_signers"\n'
        'requesters = ["ivan"]\nauditors = ["audrey"]\n'
    )
    world.open_case()
    runner = CliRunner()

    def cli(*args: str, code: int = 0) -> str:
        result = runner.invoke(app, [*args, "--config", str(conf)])
        assert result.exit_code == code, result.output
        return result.output

    ivan = str(world.keys.paths["ivan"])
    assert "C-000001" in cli("cases", "note", "C-000001", "called the vendor", "--key", ivan)
    assert world.reader().detail("C-000001").notes[-1]["actor"] == "ivan"
    out = cli("cases", "note", "C-000001", "x", "--key", ivan, "--actor", "olga", code=1)
    assert "--actor olga does not match the signing key" in out
    assert "load your SSH key into ssh-agent" in cli("cases", "note", "C-000001", "x", code=1)
    anchor = world.tmp / "anchor.json"
    assert "wrote" in cli("audit", "anchor", "--out", str(anchor))
    assert "OK" in cli("audit", "verify", "--anchor", str(anchor))
    extracted = cli("audit", "extract", "1", "--out", str(world.tmp / "x"))
    assert "ssh-keygen -Y verify" in extracted
    msg = (world.tmp / "x" / "entry-1.msg").read_bytes()
    sig = (world.tmp / "x" / "entry-1.sig").read_text()
    when = extracted.rsplit("-Overify-time=", 1)[1].split()[0]
    assert ssh_keygen_verify(world.keys.allowed, "ann", msg, sig, when, world.tmp).returncode == 0
    # the log loses its tail: the anchor no longer holds
    lines = (world.root / "audit.jsonl").read_text().splitlines(keepends=True)
    (world.root / "audit.jsonl").write_text("".join(lines[:-1]))
    assert "the log has no entry seq" in cli("audit", "verify", "--log",
                                             str(world.root / "audit.jsonl"), "--anchor",
                                             str(anchor), code=1)  # fmt: skip


def test_anchor_published_as_a_retained_mqtt_message(world: World, mosquitto: Any) -> None:
    import paho.mqtt.subscribe as subscribe

    world.write_off()
    conf = world.tmp / "tagsweep.toml"
    conf.write_text('[engine.cases]\nstore = "cases"\nallowed_signers = "keys/allowed_signers"\n')
    url = f"mqtt://{mosquitto.host}:{mosquitto.port}/tagsweep/audit/head"
    result = CliRunner().invoke(app, ["audit", "anchor", "--publish", url, "--config", str(conf)])
    assert result.exit_code == 0, result.output
    # A later subscriber (an auditor's machine) still gets the head: it is retained.
    # paho's subscribe helper carries no type annotations
    message = subscribe.simple(  # type: ignore[no-untyped-call]
        "tagsweep/audit/head", hostname=mosquitto.host, port=mosquitto.port, retained=True
    )
    assert message.retain
    kept = world.tmp / "from-mqtt.json"
    kept.write_bytes(message.payload)
    assert json.loads(kept.read_text())["seq"] == world.reader().recorded_head().seq
    assert world.check(kept).ok


def test_entries_cannot_be_backdated(world: World) -> None:
    case_id = world.open_case()
    world.clock.now -= timedelta(minutes=1)  # a machine slightly behind: accepted
    world.as_("ivan").note(case_id, "a minute behind")
    world.clock.now -= timedelta(days=2)
    with pytest.raises(AuditLogError, match=r"clock .* is behind the last audit entry"):
        world.as_("ivan").note(case_id, "backdated")
    assert world.check().ok
    # written past the writer's check (an insider's own tool): named by verify
    store = world.reader()
    head = store.audit.head()
    with store.audit.locked(), store.audit.path.open("ab") as out:
        writer = AuditWriter(out, head, signer=world.keys.signer("ivan"),
                             sealed=True, clock=world.clock)  # fmt: skip
        seq = writer.append(actor="ivan", action="case.note", subject=case_id).seq
    with sqlite3.connect(store.db_path) as conn:
        conn.execute(
            "INSERT OR REPLACE INTO meta VALUES ('audit_head', ?)",
            (json.dumps([writer.head.seq, writer.head.hash]),),
        )
    first = world.check().first
    assert first.seq == seq
    assert "entries cannot be backdated" in first.problem
