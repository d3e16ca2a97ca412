"""Phones as scanners through the real gateway (no reader, no scanner configured): scans
posted as the camera page posts them become the session's barcode observations with
device and operator, location labels set each phone's location, a re-sent scan is
acknowledged and never counted twice, and frames are decoded on the gateway."""

from __future__ import annotations

import asyncio
import io
from pathlib import Path
from typing import Any

import aiohttp
import pyarrow.parquet as pq
import pypdfium2 as pdfium
import pytest
from PIL import Image

from tagsweep.config import parse_config
from tagsweep.daemon.liveview.feed import attach_live_view
from tagsweep.daemon.supervisor import Gateway
from tagsweep.epc import asset_tag_for_giai
from tagsweep.labels.content import LabelMaker, LabelProblems
from tagsweep.labels.pdf import render_pdf
from tagsweep.labels.stock import make_stock
from tests.conftest import free_port, wait_for_port
from tests.liveview.harness import config_data

RACK_A = "DC1/Room 302/Rack A04"
RACK_B = "DC1/Room 302/Rack A05"


def write_register(path: Path) -> Path:
    rows = [
        ("AST-000001", "Latitude 7440", RACK_A),
        ("AST-000002", "ThinkPad T14", RACK_A),
        ("AST-000003", "ProLiant DL380", RACK_B),
        ("AST-000004", "OptiPlex 7010", RACK_B),
        ("AST-000005", "PowerEdge R760", RACK_B),
    ]
    path.write_text(
        "asset_tag,model,location\n" + "".join(f"{t},{m},{loc}\n" for t, m, loc in rows)
    )
    return path


def phones_gateway(tmp: Path, sock_dir: Path, port: int) -> Gateway:
    data = config_data(tmp, sock_dir)  # no readers, no scanners: phones only
    data["web"] = {"enabled": True, "listen": f"127.0.0.1:{port}"}
    return Gateway(parse_config(data))


def scan(n: int, text: str, **extra: Any) -> dict[str, Any]:
    return {"id": f"scan-{n:08d}", "text": text, **extra}


async def post(http: aiohttp.ClientSession, url: str, body: dict[str, Any]) -> Any:
    async with http.post(url, json=body) as response:
        assert response.status == 200, await response.text()
        return await response.json()


def label_png(texts: list[str]) -> bytes:
    """A photo-like PNG of rendered labels (our own renderer, rasterised by PDFium)."""
    maker = LabelMaker()
    problems = LabelProblems()
    labels = [maker.asset(t, problems=problems) for t in texts]
    pdf = Path(__file__).parent / "_frame.pdf"
    try:
        render_pdf([lb for lb in labels if lb], make_stock("l7163"), pdf)
        doc = pdfium.PdfDocument(str(pdf))
        image = doc[0].render(scale=150 / 72).to_pil().crop((0, 0, 1240, 500))
        doc.close()
    finally:
        pdf.unlink(missing_ok=True)
    out = io.BytesIO()
    image.save(out, format="PNG")
    return out.getvalue()


async def test_phones_count_a_session_with_device_and_operator(
    tmp_path: Path, short_dir: Path
) -> None:
    register = write_register(tmp_path / "register.csv")
    port = free_port()
    gw = phones_gateway(tmp_path, short_dir, port)
    attach_live_view(gw)
    base = f"http://127.0.0.1:{port}"
    async with gw, aiohttp.ClientSession() as http:
        await asyncio.to_thread(wait_for_port, port)
        # before any session: scans are held (the page keeps them), not dropped
        held = await post(
            http,
            f"{base}/api/scans",
            {"device": "phone-a", "operator": "alice", "scans": [scan(1, "AST-000001")]},
        )
        assert held["results"][0]["status"] == "held"
        session = await gw.start_session(
            operator="lead", scope=["DC1/Room 302"], expected=str(register)
        )
        sid = session.session_id
        a = await post(
            http,
            f"{base}/api/scans",
            {
                "device": "phone-a",
                "operator": "alice",
                "session_id": sid,
                "scans": [
                    scan(2, f"LOC:{RACK_A}", format="QRCode"),
                    scan(1, "AST-000001", format="QRCode"),
                    scan(3, "AST-000002", format="Code128"),
                ],
            },
        )
        assert [r["status"] for r in a["results"]] == ["location", "counted", "counted"]
        assert a["location"] == RACK_A
        assert a["results"][1]["asset"]["model"] == "Latitude 7440"
        b = await post(
            http,
            f"{base}/api/scans",
            {
                "device": "phone-b",
                "operator": "bob",
                "scans": [
                    scan(10, f"LOC:{RACK_B}"),
                    scan(11, "AST-000003"),
                    # a GS1 Digital Link label: the GIAI names AST-000004
                    scan(12, "https://id.gs1.org/8004/06141414", format="QRCode"),
                    scan(13, "hello world"),
                    scan(14, "AST-000099"),
                ],
            },
        )
        statuses = [r["status"] for r in b["results"]]
        assert statuses == ["location", "counted", "counted", "unrecognised", "counted"]
        assert b["results"][2]["value"] == "AST-000004"
        assert b["results"][4]["asset"] is None  # not in the register
        # phone A's answer was lost: it sends the same scans again
        again = await post(
            http,
            f"{base}/api/scans",
            {
                "device": "phone-a",
                "operator": "alice",
                "scans": [scan(1, "AST-000001"), scan(3, "AST-000002")],
            },
        )
        assert [r["status"] for r in again["results"]] == ["duplicate", "duplicate"]
        # bad scans are answered one by one, the good ones in the batch still count
        mixed = await post(
            http,
            f"{base}/api/scans",
            {
                "device": "phone-a",
                "operator": "alice",
                "scans": [{"id": "x", "text": "AST-000005"}, scan(4, "AST-000005"), "junk"],
            },
        )
        assert [r["status"] for r in mixed["results"]] == ["rejected", "counted", "rejected"]
        assert "id 'x'" in mixed["results"][0]["reason"]
        # requests that are not the page's
        async with http.post(f"{base}/api/scans", data=b"{}") as r:
            assert r.status == 415
        async with http.post(
            f"{base}/api/scans",
            json={"device": "phone-a", "operator": "alice", "scans": []},
            headers={"Origin": "https://evil.example"},
        ) as r:
            assert r.status == 403
        async with http.post(
            f"{base}/api/scans", json={"device": "a b;c", "operator": "x", "scans": []}
        ) as r:
            assert r.status == 400
            assert "device" in (await r.json())["error"]

        snap = gw.live.progress(sid) if gw.live else {}
        assert snap["totals"]["seen"] == 5
        assert snap["totals"]["not_yet_seen"] == 0
        phones = {
            p["device"]: p for p in (await (await http.get(f"{base}/api/phones")).json())["phones"]
        }
        assert phones["phone-a"]["operator"] == "alice"
        assert phones["phone-b"]["location"] == RACK_B

        closed = await gw.stop_session()
    rows = {r["asset_tag"]: r for r in pq.read_table(closed.parquet).to_pylist() if r["asset_tag"]}
    assert set(rows) == {f"AST-00000{i}" for i in range(1, 6)} | {"AST-000099"}
    assert rows["AST-000001"]["read_count"] == 1  # sent twice, counted once
    assert (rows["AST-000001"]["reader"], rows["AST-000001"]["operator"]) == (
        "phone:phone-a",
        "alice",
    )
    assert rows["AST-000001"]["location"] == RACK_A
    assert (rows["AST-000004"]["reader"], rows["AST-000004"]["operator"]) == (
        "phone:phone-b",
        "bob",
    )
    assert rows["AST-000004"]["location"] == RACK_B
    assert rows["AST-000005"]["location"] == RACK_A  # phone A's own location, not B's
    assert {r["method"] for r in rows.values()} == {"barcode"}


async def test_frames_are_decoded_on_the_gateway(tmp_path: Path, short_dir: Path) -> None:
    port = free_port()
    gw = phones_gateway(tmp_path, short_dir, port)
    attach_live_view(gw)
    base = f"http://127.0.0.1:{port}"
    png = label_png(["AST-000001", "AST-000002"])
    async with gw, aiohttp.ClientSession() as http:
        await asyncio.to_thread(wait_for_port, port)
        async with http.post(
            f"{base}/api/decode", data=png, headers={"Content-Type": "image/png"}
        ) as r:
            assert r.status == 200, await r.text()
            codes = (await r.json())["codes"]
        assert {c["text"] for c in codes} == {"AST-000001", "AST-000002"}
        assert {c["format"] for c in codes} <= {"QRCode", "Code128"}  # each text once
        async with http.post(
            f"{base}/api/decode", data=b"not an image", headers={"Content-Type": "image/jpeg"}
        ) as r:
            assert r.status == 400
            assert "not an image" in (await r.json())["error"]
        async with http.post(
            f"{base}/api/decode", data=png, headers={"Content-Type": "text/plain"}
        ) as r:
            assert r.status == 415


async def test_camera_endpoints_keep_the_token_rules(
    tmp_path: Path, short_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("TAGSWEEP_TEST_WEB_TOKEN", "phone-token")
    port = free_port()
    data = config_data(tmp_path, short_dir)
    data["web"] = {
        "enabled": True,
        "listen": f"127.0.0.1:{port}",
        "token_env": "TAGSWEEP_TEST_WEB_TOKEN",
    }
    gw = Gateway(parse_config(data))
    attach_live_view(gw)
    base = f"http://127.0.0.1:{port}"
    body = {"device": "phone-a", "operator": "alice", "scans": [scan(1, "AST-000001")]}
    huge = io.BytesIO()
    Image.new("L", (5000, 4000)).save(huge, format="PNG")
    async with gw, aiohttp.ClientSession() as http:
        await asyncio.to_thread(wait_for_port, port)
        async with http.post(f"{base}/api/scans", json=body) as r:
            assert r.status == 401
        async with http.get(f"{base}/scan") as r:
            assert r.status == 401
        auth = {"Authorization": "Bearer phone-token"}
        async with http.post(f"{base}/api/scans", json=body, headers=auth) as r:
            assert r.status == 200
            assert (await r.json())["results"][0]["status"] == "held"
        async with http.post(
            f"{base}/api/decode",
            data=huge.getvalue(),
            headers={**auth, "Content-Type": "image/png"},
        ) as r:
            assert r.status == 400
            assert "5000x4000 pixels" in (await r.json())["error"]


def test_giai_names_the_asset_tag_under_the_convention() -> None:
    assert asset_tag_for_giai("06141414") == "AST-000004"
    assert asset_tag_for_giai("0614141000004") is None  # leading zero: not a GIAI-96 ref
    assert asset_tag_for_giai("99999994") is None  # another company
    assert asset_tag_for_giai("0614141ABC") is None
