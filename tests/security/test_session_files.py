"""Tampered session files: a count the gateway did not produce must not be counted.

Defended: between the gateway and ``reconcile run`` session files travel through
shared folders and copies, so the engine verifies each ``<id>.parquet`` against its
manifest ``<id>.json`` before counting it (``engine.session_check``):

* a missing or inconsistent manifest (hash, row count, session id) is an error;
* ``--allow-unverified`` counts an unproven file anyway, and the run manifest and the
  report say so, file by file;
* the gateway signs each manifest with its own Ed25519 key (created mode 0600 on first
  use, ``tagsweep.signing``); with the gateways' public keys in
  ``[engine.trusted_gateways]``, an edit of the Parquet file *and* its manifest (hash
  updated to match) is caught, and so is a manifest signed by any other key.

How it is checked: real session files written by the gateway's own writer
(``daemon.sessions.write_session_file``), edited the way a person would edit them, and
run through ``reconcile`` and the ``reconcile run`` command.
"""

from __future__ import annotations

import hashlib
import json
import os
import stat
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from tagsweep import signing
from tagsweep.cli import app
from tagsweep.config.engine import EngineSection
from tagsweep.daemon.sessions import SESSION_FILE_SCHEMA, SessionError, write_session_file
from tagsweep.domain import CountSession, Location
from tagsweep.engine.freeze import SourceSpec, freeze
from tagsweep.engine.run import RunError, reconcile

REGISTER = """\
asset_tag,serial,location,status
AST-000001,SN0001,Room 1,in_use
AST-000002,SN0002,Room 1,in_use
"""
T0 = 1_795_000_000_000_000


def _snapshot(tmp_path: Path) -> Path:
    (tmp_path / "register.csv").write_text(REGISTER, encoding="utf-8")
    freeze([SourceSpec("itam", tmp_path / "register.csv")], tmp_path / "snap", EngineSection())
    return tmp_path / "snap"


def _session(tmp_path: Path, key: Path | None, tags: tuple[str, ...] = ("AST-000001",)) -> Path:
    """A session file as the gateway writes it (signed with ``key`` when given)."""
    rows = [
        {"session_id": "cs-1", "site": "DC1", "method": "barcode", "location": "Room 1",
         "asset_tag": tag, "first_seen": T0, "last_seen": T0, "read_count": 1,
         "reader": "sc1", "operator": "jdoe"}
        for tag in tags
    ]  # fmt: skip
    table = pa.Table.from_pylist(rows, schema=SESSION_FILE_SCHEMA)
    session = CountSession("cs-1", "DC1", "jdoe", (Location("Room 1"),), T0, T0 + 60_000_000)
    closed = write_session_file(
        table, session, session_dir=tmp_path / "sessions", gateway="gw-1", signing_key=key
    )
    return closed.parquet


def _edit(parquet: Path, *, also_manifest: bool) -> None:
    """Add an asset to the count, as someone with write access to the folder would;
    with ``also_manifest`` the manifest's hash and row count are updated to match."""
    table = pq.read_table(parquet)
    extra = table.slice(0, 1).to_pylist()
    extra[0]["asset_tag"] = "AST-000002"
    edited = pa.concat_tables([table, pa.Table.from_pylist(extra, schema=table.schema)])
    parquet.chmod(0o644)
    pq.write_table(edited, parquet)
    if also_manifest:
        manifest = parquet.with_suffix(".json")
        data = json.loads(manifest.read_text())
        data["sha256"] = hashlib.sha256(parquet.read_bytes()).hexdigest()
        data["row_count"] = edited.num_rows
        manifest.chmod(0o644)
        manifest.write_text(json.dumps(data, indent=2))


def _trusting(key: Path) -> EngineSection:
    public = signing.public_key_text(signing.load_or_create_key(key).public_key())
    return EngineSection.model_validate({"trusted_gateways": {"gw-1": public}})


def test_missing_manifest_is_an_error_unless_allowed_and_then_recorded(tmp_path: Path) -> None:
    snap = _snapshot(tmp_path)
    parquet = _session(tmp_path, None)
    parquet.with_suffix(".json").unlink()
    with pytest.raises(RunError, match=r"no manifest cs-1\.json.*--allow-unverified"):
        reconcile(snap, [parquet], EngineSection(), tmp_path / "run")
    result = CliRunner().invoke(
        app, ["reconcile", "run", "--snapshot", str(snap), "--count", str(parquet),
              "--out", str(tmp_path / "run-cli")],
    )  # fmt: skip
    assert result.exit_code == 1
    assert "no manifest" in result.output

    run = reconcile(snap, [parquet], EngineSection(), tmp_path / "run2", allow_unverified=True)
    counted = run.manifest["inputs"]["counts"][0]
    assert counted["integrity"] == "unverified"
    assert "no manifest" in counted["unverified_reason"]
    assert run.manifest["inputs"]["allow_unverified"] is True
    assert any("UNVERIFIED" in w and "cs-1.parquet" in w for w in run.manifest["warnings"])
    assert "cs-1.parquet is counted UNVERIFIED" in (run.out_dir / "report.md").read_text()


def test_inconsistent_manifest_is_refused_even_when_unverified_is_allowed(
    tmp_path: Path,
) -> None:
    snap = _snapshot(tmp_path)
    parquet = _session(tmp_path, None)
    _edit(parquet, also_manifest=False)
    with pytest.raises(RunError, match="differs from its manifest"):
        reconcile(snap, [parquet], EngineSection(), tmp_path / "run", allow_unverified=True)

    manifest = parquet.with_suffix(".json")
    data = json.loads(manifest.read_text())
    data["sha256"] = hashlib.sha256(parquet.read_bytes()).hexdigest()  # rows still say 1
    manifest.chmod(0o644)
    manifest.write_text(json.dumps(data))
    with pytest.raises(RunError, match=r"2 rows, but its manifest cs-1\.json says 1"):
        reconcile(snap, [parquet], EngineSection(), tmp_path / "run", allow_unverified=True)
    manifest.write_text("{")
    with pytest.raises(RunError, match="not JSON at line 1, column 2"):
        reconcile(snap, [parquet], EngineSection(), tmp_path / "run")


def test_consistent_edit_of_parquet_and_manifest_is_caught_by_the_signature(
    tmp_path: Path,
) -> None:
    snap = _snapshot(tmp_path)
    key = tmp_path / "state" / "session-signing.key"
    key.parent.mkdir()
    parquet = _session(tmp_path, key)
    settings = _trusting(key)

    genuine = reconcile(snap, [parquet], settings, tmp_path / "genuine")
    assert genuine.manifest["inputs"]["counts"][0]["integrity"] == "signed"
    assert genuine.manifest["inputs"]["counts"][0]["gateway"] == "gw-1"

    _edit(parquet, also_manifest=True)
    # Without keys, hashes alone cannot tell: the pair is consistent.
    assert (
        reconcile(snap, [parquet], EngineSection(), tmp_path / "hashes-only").manifest["inputs"][
            "counts"
        ][0]["integrity"]
        == "sha256"
    )
    with pytest.raises(RunError, match="changed after the gateway signed it"):
        reconcile(snap, [parquet], settings, tmp_path / "run")
    # ... and no flag turns an edited signed manifest into a count
    with pytest.raises(RunError, match="changed after the gateway signed it"):
        reconcile(snap, [parquet], settings, tmp_path / "run", allow_unverified=True)


def test_manifest_re_signed_with_another_key_is_not_trusted(tmp_path: Path) -> None:
    snap = _snapshot(tmp_path)
    (tmp_path / "gw").mkdir()
    (tmp_path / "forger").mkdir()
    settings = _trusting(tmp_path / "gw" / "key")
    parquet = _session(tmp_path, tmp_path / "forger" / "key")
    with pytest.raises(RunError, match="not a trusted key for this gateway"):
        reconcile(snap, [parquet], settings, tmp_path / "run")
    unsigned = _session(tmp_path, None)
    with pytest.raises(RunError, match="the manifest is not signed"):
        reconcile(snap, [unsigned], settings, tmp_path / "run")
    run = reconcile(snap, [unsigned], settings, tmp_path / "run2", allow_unverified=True)
    assert run.manifest["inputs"]["counts"][0]["integrity"] == "unverified"


def test_signing_key_is_private_to_its_owner(tmp_path: Path) -> None:
    key = tmp_path / "session-signing.key"
    _session(tmp_path, key)
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    before = key.read_bytes()
    _session(tmp_path, key)  # the same key is used again, not replaced
    assert key.read_bytes() == before
    os.chmod(key, 0o644)
    with pytest.raises(SessionError, match=r"accessible to others \(mode 644\); chmod 600"):
        _session(tmp_path, key)


def test_trusted_gateway_keys_are_checked_when_the_config_loads() -> None:
    with pytest.raises(ValueError, match="32 bytes in base64"):
        EngineSection.model_validate({"trusted_gateways": {"gw-1": "ed25519:AAAA"}})
    with pytest.raises(ValueError, match="ed25519:<base64>"):
        EngineSection.model_validate({"trusted_gateways": {"gw-1": ["ssh-ed25519 AAAA"]}})


def test_session_key_command_prints_the_line_for_the_engine_config(tmp_path: Path) -> None:
    config = tmp_path / "gateway.toml"
    config.write_text(
        f'[gateway]\nid = "gw-1"\n[store]\npath = "{tmp_path / "state" / "gateway.duckdb"}"\n',
        encoding="utf-8",
    )
    result = CliRunner().invoke(app, ["session", "key", "--config", str(config)])
    assert result.exit_code == 0, result.output
    gateway, _, public = result.output.strip().partition(" = ")
    key = tmp_path / "state" / "session-signing.key"
    assert stat.S_IMODE(key.stat().st_mode) == 0o600
    expected = signing.public_key_text(signing.load_or_create_key(key).public_key())
    assert (gateway, public) == ('"gw-1"', f'"{expected}"')
    settings = EngineSection.model_validate({"trusted_gateways": {"gw-1": expected}})
    assert settings.trusted_gateways == {"gw-1": [expected]}
