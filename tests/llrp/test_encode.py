"""Writing tags: ``tagsweep tag encode`` against the simulated reader, whose AccessSpecs
change the simulated tags (write, read back, wrong password, locked, two tags)."""

from __future__ import annotations

import asyncio
import csv
from pathlib import Path

import pytest
from typer.testing import CliRunner

from tagsweep.cli import app
from tagsweep.commission import EncodeOptions, EncodeResult, encode_batch
from tagsweep.epc import giai96_for_asset_tag
from tagsweep.simulators.llrp import LlrpSimulator
from tagsweep.simulators.llrp.access import SimTag, TagField
from tagsweep.simulators.llrp.profiles import PROFILES

pytestmark = pytest.mark.timeout(60)
BLANK = "E28068940000500A1B2C3D4E"  # a factory EPC
TID = "E2806894200050000ABCDEF1"


async def _encode(
    field: TagField, tags: list[str], options: EncodeOptions, log: Path, profile: str = "generic"
) -> list[EncodeResult]:
    async with LlrpSimulator(port=0, tag_field=field, profile=PROFILES[profile]) as sim:
        url = f"llrp://127.0.0.1:{sim.port}?antennas=1"
        return await asyncio.to_thread(encode_batch, url, tags, options, log=log)


@pytest.mark.parametrize("profile", ["generic", "impinj-r420", "zebra-fx9600", "thingmagic-sargas"])
async def test_a_tag_is_written_and_read_back(tmp_path: Path, profile: str) -> None:
    field = TagField([SimTag(BLANK, TID)])
    log = tmp_path / "log.csv"
    [result] = await _encode(field, ["AST-000123"], EncodeOptions(), log, profile)
    expected = giai96_for_asset_tag("AST-000123")
    assert result == EncodeResult("AST-000123", BLANK, expected, TID, "written")
    assert field.tags[0].epc == expected
    rows = list(csv.DictReader(log.open(encoding="utf-8")))
    assert rows == [
        {"asset_tag": "AST-000123", "old_epc": BLANK, "new_epc": expected, "tid": TID,
         "result": "written"}
    ]  # fmt: skip


async def test_two_tags_in_the_field_are_refused(tmp_path: Path) -> None:
    field = TagField([SimTag(BLANK), SimTag("E28068940000500A1B2C3D4F")])
    [result] = await _encode(field, ["AST-000124"], EncodeOptions(), tmp_path / "log.csv")
    assert result.result.startswith("refused: 2 tags in the field")
    assert [t.epc for t in field.tags] == [BLANK, "E28068940000500A1B2C3D4F"]


async def test_a_wrong_access_password_fails_and_changes_nothing(tmp_path: Path) -> None:
    field = TagField([SimTag(BLANK, access_password=0x11223344)])
    options = EncodeOptions(access_password=0x1)
    [result] = await _encode(field, ["AST-000125"], options, tmp_path / "log.csv")
    assert result.result == "write failed: no response from tag (wrong access password?)"
    assert field.tags[0].epc == BLANK
    options = EncodeOptions(access_password=0x11223344)
    [result] = await _encode(field, ["AST-000125"], options, tmp_path / "log.csv")
    assert result.ok


async def test_a_locked_tag_refuses_and_a_lock_holds(tmp_path: Path) -> None:
    locked = TagField([SimTag(BLANK, epc_locked=True)])
    [result] = await _encode(locked, ["AST-000126"], EncodeOptions(), tmp_path / "log.csv")
    assert result.result == "write failed: tag memory locked"
    assert locked.tags[0].epc == BLANK

    field = TagField([SimTag(BLANK)])
    options = EncodeOptions(new_access_password=0xCAFEF00D, lock=True)
    [result] = await _encode(field, ["AST-000127"], options, tmp_path / "log.csv")
    assert result.ok
    tag = field.tags[0]
    assert (tag.access_password, tag.epc_locked) == (0xCAFEF00D, True)
    # re-encoding without the password: refused by the tag, EPC kept
    [again] = await _encode(field, ["AST-000128"], EncodeOptions(), tmp_path / "log.csv")
    assert not again.ok
    assert tag.epc == giai96_for_asset_tag("AST-000127")


async def test_the_cli_encodes_a_register_and_logs_formula_safe(tmp_path: Path) -> None:
    field = TagField([SimTag(BLANK, TID)])
    register = tmp_path / "register.csv"
    register.write_text("asset_tag,model\n=AST-000129,laptop\n", encoding="utf-8")
    log = tmp_path / "encode.csv"
    async with LlrpSimulator(port=0, tag_field=field) as sim:
        args = ["tag", "encode", "--reader", f"llrp://127.0.0.1:{sim.port}?antennas=1"]
        args += ["--from", str(register), "--log", str(log)]
        result = await asyncio.to_thread(CliRunner().invoke, app, args)
    assert result.exit_code == 0, result.output
    assert "=AST-000129: written" in result.output
    [row] = list(csv.DictReader(log.open(encoding="utf-8")))
    assert row["asset_tag"] == "'=AST-000129"  # a spreadsheet does not run it
    assert field.tags[0].epc == giai96_for_asset_tag("AST-000129")
