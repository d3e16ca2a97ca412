"""``tagsweep sim llrp`` runs a reader a real client can inventory."""

from __future__ import annotations

import asyncio
import contextlib
import subprocess
import sys
from collections.abc import AsyncIterator

import numpy as np
from typer.testing import CliRunner

from tagsweep.cli import app
from tagsweep.domain import now_us
from tagsweep.drivers import Backoff
from tagsweep.drivers.llrp import LlrpDriver


@contextlib.asynccontextmanager
async def sim_llrp(*options: str) -> AsyncIterator[LlrpDriver]:
    """``tagsweep sim llrp --port 0 OPTIONS`` in a subprocess, and a driver on its URL."""
    proc = await asyncio.create_subprocess_exec(
        sys.executable, "-m", "tagsweep.cli", "sim", "llrp", "--port", "0", *options,
        stdout=subprocess.PIPE,
        stderr=subprocess.DEVNULL,
    )  # fmt: skip
    try:
        assert proc.stdout is not None
        url = (await asyncio.wait_for(proc.stdout.readline(), 20)).decode().strip()
        assert url.startswith(("llrp://127.0.0.1:", "llrps://127.0.0.1:"))
        driver = LlrpDriver(url + "&keepalive_s=1&validate=1", backoff=Backoff(0.05, 0.2))
        try:
            yield driver
        finally:
            await driver.close()
    finally:
        proc.terminate()
        await proc.wait()


async def test_sim_llrp_command_serves_reads_and_injects_the_fault() -> None:
    epcs: set[bytes] = set()
    options = ("--tags", "40", "--rate", "3000", "--antennas", "1,2", "--fault", "noise@2")
    async with sim_llrp(*options) as driver, asyncio.timeout(15):
        async for batch in driver:
            assert isinstance(batch, np.ndarray)
            epcs.update(batch["epc"].tolist())
            if driver.counters.reads >= 1500 and driver.counters.faults:
                break
    assert 1 < len(epcs) <= 40
    assert driver.counters.faults == {"framing": 1}


def test_sim_llrp_rejects_an_unknown_fault() -> None:
    result = CliRunner().invoke(app, ["sim", "llrp", "--fault", "meteor@3"])
    assert result.exit_code == 2
    assert "unknown fault 'meteor'" in result.output


async def test_sim_llrp_without_a_utc_clock_reads_land_on_the_wall_clock() -> None:
    newest = 0
    options = ("--tags", "20", "--rate", "2000", "--no-utc-clock")
    async with sim_llrp(*options) as driver, asyncio.timeout(15):
        async for batch in driver:
            assert isinstance(batch, np.ndarray)
            newest = max(newest, int(batch["last_seen_us"].max()))
            if driver.counters.reads >= 500:
                break
    # stamped an hour after "boot" by the reader, yet on today's clock here
    assert abs(newest - now_us()) < 10_000_000
    assert driver.counters.faults == {}


async def test_sim_llrp_as_an_r700_over_tls_with_an_unset_clock() -> None:
    """``--profile impinj-r700 --tls --clock unset``: the printed llrps:// URL pins the
    certificate, and the reads of a reader counting from 2000-01-01 land on today."""
    newest = 0
    options = ("--tags", "20", "--rate", "2000", "--profile", "impinj-r700", "--tls")
    async with sim_llrp(*options, "--clock", "unset") as driver, asyncio.timeout(20):
        async for batch in driver:
            assert isinstance(batch, np.ndarray)
            newest = max(newest, int(batch["last_seen_us"].max()))
            if driver.counters.reads >= 300:
                break
    assert driver.settings.tls
    assert abs(newest - now_us()) < 10_000_000
    assert driver.counters.clock_offset_s is not None
    assert driver.counters.clock_offset_s > 20 * 365 * 86400  # 2000 → now
    assert driver.counters.faults == {}


def test_sim_llrp_rejects_an_unknown_profile_or_clock() -> None:
    result = CliRunner().invoke(app, ["sim", "llrp", "--profile", "acme-9000"])
    assert result.exit_code == 2
    assert "unknown reader profile 'acme-9000'" in result.output
    result = CliRunner().invoke(app, ["sim", "llrp", "--clock", "tomorrow"])
    assert result.exit_code == 2
    assert "expected utc, uptime, unset or offset" in result.output
