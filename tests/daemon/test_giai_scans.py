"""A scanner reading GIAI labels (GS1 Digital Link in a QR code, GS1-128 element string,
as ``tagsweep labels --company-prefix`` prints them) counts the asset tags they name."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pyarrow.parquet as pq

from tagsweep.daemon.supervisor import Gateway
from tagsweep.simulators.scanner import ScannerSimulator

from .harness import make_config, wait_until

LINES = (
    "LOC:DC1/Room 302/Rack A04",
    "]Q1https://id.gs1.org/8004/06141414",  # AST-000004
    "]C1800406141417",  # AST-000007
    "]C1800499999991",  # another company's asset: kept as its GIAI
)


async def test_giai_label_scans_count_as_asset_tags(tmp_path: Path, short_dir: Path) -> None:
    opened = asyncio.Event()

    async def script() -> AsyncIterator[str]:
        await opened.wait()
        for line in LINES:
            yield line

    async with ScannerSimulator(mode="tcp", script=script()) as scanner:
        cfg = make_config(tmp_path, short_dir, scanners=[{"name": "scanner", "url": scanner.url}])
        async with Gateway(cfg, control_socket=False) as gw:
            await gw.start_session(operator="jdoe", site="DC1")
            opened.set()
            await scanner.finished()
            await wait_until(lambda: gw.counters.scans >= len(LINES), what="every scan line")
            closed = await gw.stop_session()
    rows = {r["asset_tag"]: r for r in pq.read_table(closed.parquet).to_pylist()}
    assert set(rows) == {"AST-000004", "AST-000007", "99999991"}
    assert {r["location"] for r in rows.values()} == {"DC1/Room 302/Rack A04"}
