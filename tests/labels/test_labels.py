"""Labels: every rendered code is read back by an independent decoder, and what it holds
is what the count's scan rules turn into the asset or location it names."""

from __future__ import annotations

import re
import tomllib
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from typer.testing import CliRunner

from tagsweep.cli import app
from tagsweep.config import parse_config
from tagsweep.domain import ScanKind
from tagsweep.drivers.barcode import scan_rules_for
from tagsweep.drivers.scanparse import ScanContent, ScanInterpreter
from tagsweep.engine.outputs import REGISTER_COLUMNS
from tagsweep.epc import asset_tag_for_epc, decode_giai96
from tagsweep.labels.content import (
    Label,
    LabelKind,
    LabelMaker,
    LabelProblems,
    QrContent,
    giai_for_tag,
    location_paths,
)
from tagsweep.labels.pdf import render_pdf
from tagsweep.labels.source import RegisterError, read_assets
from tagsweep.labels.stock import PRESETS, make_stock
from tagsweep.labels.zpl import render_zpl, zpl_escape
from tests.labels.decode import decode_pdf

GOLDEN = Path(__file__).parent / "golden"
RACKS = ["DC1/Room 302/Rack A04", "DC1/Room 302/Rack A05", "DC1/Room 303/Rack B01"]


def assets(n: int) -> list[tuple[str, str, str]]:
    models = ["Dell Latitude 7440", "Lenovo ThinkPad T14 Gen 4", "HPE ProLiant DL380 Gen11"]
    return [(f"AST-{i:06d}", models[i % 3], RACKS[i % 3]) for i in range(1, n + 1)]


def make_labels(maker: LabelMaker, rows: list[tuple[str, str, str]]) -> list[Label]:
    problems = LabelProblems()
    out = [maker.asset(t, model=m, location=loc, problems=problems) for t, m, loc in rows]
    assert problems.skipped == []
    assert problems.warnings == []
    return [label for label in out if label is not None]


def interpret(text: str, maker: LabelMaker) -> ScanContent:
    result = ScanInterpreter(maker.rules).interpret(text.encode())
    assert isinstance(result, ScanContent), result
    return result


@pytest.mark.parametrize("preset", sorted(PRESETS))
def test_every_layout_reads_back_every_tag(preset: str, tmp_path: Path) -> None:
    stock = make_stock(preset)
    # more than a page on sheets, so the second page is read too
    rows = assets(stock.per_page + 2 if stock.per_page > 1 else 3)
    maker = LabelMaker()
    pdf = tmp_path / "labels.pdf"
    pages = render_pdf(make_labels(maker, rows), stock, pdf)
    assert pages == (len(rows) + stock.per_page - 1) // stock.per_page
    found = decode_pdf(pdf)
    want = Counter({("QRCode", t): 1 for t, _, _ in rows}) + Counter(
        {("Code128", t): 1 for t, _, _ in rows}
    )
    assert found == want
    assert interpret(rows[0][0], maker).kind is ScanKind.ASSET_TAG


@pytest.mark.parametrize("preset", ["l7160", "5160", "roll"])
def test_location_labels_set_the_location_a_scanner_reads(preset: str, tmp_path: Path) -> None:
    maker = LabelMaker()
    problems = LabelProblems()
    paths = location_paths(RACKS)
    assert paths == ["DC1/Room 302", *RACKS[:2], "DC1/Room 303", RACKS[2]]
    labels = [maker.location(p, problems=problems) for p in paths]
    assert problems.skipped == []
    pdf = tmp_path / "locations.pdf"
    render_pdf([lb for lb in labels if lb], make_stock(preset), pdf)
    found = decode_pdf(pdf)
    qr_texts = sorted(text for (fmt, text) in found if fmt == "QRCode")
    assert sorted(t for (f, t) in found if f == "Code128") == qr_texts
    assert len(qr_texts) == len(paths)
    back = sorted(interpret(t, maker).value for t in qr_texts)
    assert all(interpret(t, maker).kind is ScanKind.LOCATION for t in qr_texts)
    assert back == sorted(paths)


def test_location_labels_follow_the_configured_rules(tmp_path: Path) -> None:
    cfg = parse_config(
        tomllib.loads(
            """
        [[scanners]]
        name = "door"
        url = "socket://127.0.0.1:7000"
        location_prefix = "WH:"
        [[locations]]
        path = "DC1/Room 302/Rack A04"
        label = "RACK-A04"
        """
        )
    )
    maker = LabelMaker(
        rules=scan_rules_for(cfg.scanners, cfg.locations),
        location_labels={loc.path: loc.label for loc in cfg.locations if loc.label},
    )
    assert maker.location_payload("DC1/Room 302/Rack A04") == "RACK-A04"
    assert maker.location_payload("DC1/Room 302") == "WH:DC1/Room 302"
    no_prefix = LabelMaker(
        rules=scan_rules_for(
            parse_config(
                {"scanners": [{"name": "s", "url": "socket://127.0.0.1:1", "location_prefix": ""}]}
            ).scanners
        )
    )
    problems = LabelProblems()
    assert no_prefix.location("DC1/Room 302", problems=problems) is None
    assert "no label text reads as this location" in problems.skipped[0]


@pytest.mark.parametrize("content", [QrContent.DIGITAL_LINK, QrContent.ELEMENT_STRING])
def test_gs1_qr_codes_hold_the_giai_of_the_rfid_epc(content: QrContent, tmp_path: Path) -> None:
    maker = LabelMaker(company_prefix="0614141", qr_content=content)
    rows = assets(9)
    labels = make_labels(maker, rows)
    pdf = tmp_path / "gs1.pdf"
    render_pdf(labels, make_stock("l7163"), pdf)
    found = decode_pdf(pdf)
    qr = [text for (fmt, text) in found if fmt == "QRCode"]
    assert len(qr) == len(rows)
    for (tag, _, _), label in zip(rows, labels, strict=True):
        giai = giai_for_tag(tag, "0614141")
        assert label.qr in qr
        scanned = interpret(label.qr, maker)
        assert (scanned.kind, scanned.value) == (ScanKind.GIAI, giai)
        # the inlay's GIAI-96 EPC names the same asset
        assert label.epc is not None
        assert decode_giai96(label.epc) == ("0614141", int(giai[7:]))
        assert asset_tag_for_epc(label.epc, "giai96") == tag
    assert {t for (f, t) in found if f == "Code128"} == {t for t, _, _ in rows}


def test_a_tag_without_the_format_keeps_its_plain_qr_and_says_why() -> None:
    problems = LabelProblems()
    label = LabelMaker(company_prefix="0614141").asset("AST-12", problems=problems)
    assert label is not None
    assert label.qr == "AST-12"
    assert label.epc is None
    assert "does not follow the tag format" in problems.warnings[0]


def test_text_in_any_script_renders_and_the_codes_still_read(tmp_path: Path) -> None:
    maker = LabelMaker()
    problems = LabelProblems()
    label = maker.asset(
        "AST-000777", model="Ноутбук 笔记本", location="東京/Room 1", problems=problems
    )
    room = maker.location("東京/Room 1", problems=problems)
    assert label is not None
    assert room is not None
    assert room.code128 is None  # not Latin-1: QR only, said so
    assert any("no Code 128" in w for w in problems.warnings)
    pdf = tmp_path / "intl.pdf"
    render_pdf([label, room], make_stock("l7160"), pdf)
    assert decode_pdf(pdf) == Counter(
        {
            ("QRCode", "AST-000777"): 1,
            ("Code128", "AST-000777"): 1,
            ("QRCode", "LOC:東京/Room 1"): 1,
        }
    )


def test_custom_sheet_and_what_does_not_fit() -> None:
    stock = make_stock("l7160", grid="2x4", label="90x60", margin="10,10", pitch="95,65")
    cells = list(stock.cells())
    assert len(cells) == 8
    assert cells[0] == (10.0, 297.0 - 10.0 - 60.0)
    assert cells[1][0] == 105.0
    assert cells[2][1] == 297.0 - 10.0 - 65.0 - 60.0
    roll = make_stock("roll", label="62x29")
    assert (roll.page_w, roll.page_h, roll.per_page) == (62.0, 29.0, 1)
    with pytest.raises(ValueError, match=r"need 205\.0x.* the page is 210x297"):
        make_stock("l7160", grid="3x8", label="65x38", margin="0,10", pitch="65,38")
    with pytest.raises(ValueError, match="too small"):
        make_stock("roll", label="12x40")
    with pytest.raises(ValueError, match="unknown label stock"):
        make_stock("l9999")


def write_register(path: Path) -> None:
    """A run's register.parquet: its columns exactly (engine.outputs.REGISTER_COLUMNS)."""
    rows: dict[str, list[str | None]] = {c: [None] * 5 for c in REGISTER_COLUMNS}
    rows["asset_key"] = ["AST-000001", "AST-000002", "AST-000003", "SN:X9", "AST-000005"]
    rows["asset_tag"] = ["AST-000001", "AST-000002", "AST-000003", None, "AST-000005"]
    rows["model"] = ["Latitude 7440", "ThinkPad T14", "ProLiant DL380", "Unknown", "Latitude 5550"]
    rows["location"] = [RACKS[0], RACKS[1], RACKS[2], RACKS[0], "DC1/Room 302"]
    rows["status"] = ["deployed", "deployed", "retired", "deployed", "in_stock"]
    pq.write_table(pa.table({c: pa.array(v, pa.string()) for c, v in rows.items()}), path)


def test_where_selects_rows(tmp_path: Path) -> None:
    reg = tmp_path / "register.parquet"
    write_register(reg)
    tags = [r.asset_tag for r in read_assets(reg, ["location=DC1/Room 302"])]
    assert tags == ["AST-000001", "AST-000002", None, "AST-000005"]
    assert [r.asset_tag for r in read_assets(tmp_path, ["model=latitude*"])] == [
        "AST-000001",
        "AST-000005",
    ]
    assert [r.asset_tag for r in read_assets(reg, ["status!=retired", "location=*A0?"])] == [
        "AST-000001",
        "AST-000002",
        None,
    ]
    with pytest.raises(RegisterError, match="has no column 'colour'"):
        read_assets(reg, ["colour=red"])
    with pytest.raises(RegisterError, match="expected FIELD=VALUE"):
        read_assets(reg, ["location"])


def test_cli_asset_and_location_labels_from_a_run_register(tmp_path: Path) -> None:
    reg = tmp_path / "register.parquet"
    write_register(reg)
    runner = CliRunner()
    out = tmp_path / "assets.pdf"
    result = runner.invoke(
        app, ["labels", str(reg), "--out", str(out), "--where", "status!=retired"]
    )
    assert result.exit_code == 0, result.output
    assert "3 asset label(s)" in result.stdout
    assert "row 4: no asset tag" in result.stderr
    assert {t for (_, t) in decode_pdf(out)} == {"AST-000001", "AST-000002", "AST-000005"}
    locs = tmp_path / "racks.pdf"
    result = runner.invoke(
        app, ["labels", str(reg), "--locations", "--out", str(locs), "--stock", "5163"]
    )
    assert result.exit_code == 0, result.output
    assert {t for (_, t) in decode_pdf(locs)} == {f"LOC:{p}" for p in location_paths(RACKS)}
    bad = runner.invoke(app, ["labels", str(reg), "--qr", "dl", "--out", str(out)])
    assert bad.exit_code == 2
    assert "--qr dl needs --company-prefix" in bad.stderr


def test_cli_reads_a_spreadsheet_csv(tmp_path: Path) -> None:
    csv = tmp_path / "assets.csv"
    csv.write_text("Asset_Tag,Model\nAST-000010,Dell OptiPlex 7010\nAST-000011,\n")
    out = tmp_path / "labels.pdf"
    result = CliRunner().invoke(app, ["labels", str(csv), "--out", str(out), "--stock", "roll"])
    assert result.exit_code == 0, result.output
    assert decode_pdf(out) == Counter(
        {(f, t): 1 for f in ("QRCode", "Code128") for t in ("AST-000010", "AST-000011")}
    )


# -- ZPL ---------------------------------------------------------------------------------


def zpl_fields(zpl: str, command: str) -> list[str]:
    """Field data following ``command`` in each format, with ^FH escapes undone."""
    pattern = re.escape(command) + r"[^\^]*(?:\^FH_)?\^FD(.*?)\^FS"
    return [
        re.sub(r"_([0-9A-F]{2})", lambda m: chr(int(m.group(1), 16)), match.group(1))
        for match in re.finditer(pattern, zpl)
    ]


def test_zpl_golden_file_with_rfid_inlays() -> None:
    maker = LabelMaker(company_prefix="0614141", qr_content=QrContent.DIGITAL_LINK)
    labels = make_labels(maker, assets(3))
    problems = LabelProblems()
    rack = maker.location("DC1/Room 302/Rack A04", problems=problems)
    assert rack is not None
    zpl = render_zpl([*labels, rack], width_mm=57, height_mm=32, dpi=203, rfid=True)
    golden = GOLDEN / "roll_57x32_203dpi_rfid.zpl"
    assert zpl == golden.read_text(encoding="utf-8")
    assert zpl.count("^XA") == zpl.count("^XZ") == 4
    # the inlay's EPC, the QR code and the Code 128 name the same asset
    epcs = zpl_fields(zpl, "^RFW,H,,,A")
    assert [asset_tag_for_epc(e, "giai96") for e in epcs] == [t for t, _, _ in assets(3)]
    qr = zpl_fields(zpl, "^BQN,2,")
    assert [interpret(q.removeprefix("MA,"), maker).value for q in qr[:3]] == [
        giai_for_tag(t, "0614141") for t, _, _ in assets(3)
    ]
    assert interpret(qr[3].removeprefix("MA,"), maker).value == "DC1/Room 302/Rack A04"
    assert zpl_fields(zpl, "^BCN,") == [*(t for t, _, _ in assets(3)), rack.qr]


def test_zpl_escapes_control_characters_of_the_language() -> None:
    assert zpl_escape("A^B~C_D") == "A_5EB_7EC_5FD"
    label = Label(LabelKind.ASSET, "X^1", "X^1", "X^1")
    zpl = render_zpl([label], width_mm=57, height_mm=32)
    assert "^FDX^1" not in zpl
    assert zpl_fields(zpl, "^BCN,") == ["X^1"]
    with pytest.raises(ValueError, match="no GIAI-96 EPC"):
        render_zpl([label], width_mm=57, height_mm=32, rfid=True)
