"""The barcode driver over a real pty (/dev/pts/N) and a real TCP socket, fed by the
scanner simulator: scans arrive once and parsed, labels switch the location context,
noise and unplugs are counted and survived."""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterable, AsyncIterator, Mapping
from typing import Any, Literal

import pytest
from structlog.testing import capture_logs

from tagsweep.config.schema import LocationSection, ScannerSection
from tagsweep.domain import BarcodeScan, Location, ScanKind
from tagsweep.drivers import Backoff, DriverConfigError, DriverState, open_driver
from tagsweep.drivers.barcode import BarcodeDriver, scanner_options
from tagsweep.simulators.scanner import Noise, ScanLine, ScannerSimulator, Script
from tests.barcode.scans import GLN_ROOM, GS, OPTIONS, examples, wrong_check_digit
from tests.conftest import free_port

Mode = Literal["pty", "tcp"]
MODES: list[Mode] = ["pty", "tcp"]
FAST = Backoff(initial_s=0.02, cap_s=0.1)


class Collector:
    """Consumes a driver in a task, recording every event and state change."""

    def __init__(self, driver: BarcodeDriver) -> None:
        self.driver = driver
        self.scans: list[BarcodeScan] = []
        self.states: list[DriverState] = []
        driver.add_state_listener(lambda _d, _old, new: self.states.append(new))
        self._task: asyncio.Task[None] | None = None

    async def _run(self) -> None:
        async for event in self.driver:
            assert isinstance(event, BarcodeScan)
            self.scans.append(event)

    async def wait_for(self, n: int, timeout: float = 15.0) -> list[BarcodeScan]:
        """The first ``n`` scans, as soon as they are read (mid-script)."""
        async with asyncio.timeout(timeout):
            while len(self.scans) < n:
                await asyncio.sleep(0.01)
        return self.scans

    async def until_end(self, timeout: float = 15.0) -> list[BarcodeScan]:
        """Every scan of the script: :func:`scanner` ends each script with
        :data:`END_OF_SCRIPT`, and a scan stream keeps its order, so once that one is
        read anything extra (a duplicate) has been read too. The timeout is a hang guard."""
        async with asyncio.timeout(timeout):
            while not any(s.value == END_OF_SCRIPT for s in self.scans):
                await asyncio.sleep(0.01)
        end = next(i for i, s in enumerate(self.scans) if s.value == END_OF_SCRIPT)
        assert end == len(self.scans) - 1, "scans after the end of the script"
        return self.scans[:end]

    async def __aenter__(self) -> Collector:
        self._task = asyncio.create_task(self._run(), name="collector")
        return self

    async def __aexit__(self, *exc: object) -> None:
        await self.driver.close()
        assert self._task is not None
        async with asyncio.timeout(5):
            await self._task


#: The last scan of every script :func:`scanner` plays (an asset tag nothing else uses).
END_OF_SCRIPT = "END-99999"


def _with_end(script: Script) -> Script:
    if isinstance(script, AsyncIterable):

        async def ended() -> AsyncIterator[str | bytes | ScanLine]:
            async for item in script:
                yield item
            yield END_OF_SCRIPT

        return ended()
    return [*script, END_OF_SCRIPT]


@contextlib.asynccontextmanager
async def scanner(
    mode: Mode,
    script: Script,
    noise: Noise | None = None,
    options: Mapping[str, Any] = OPTIONS,
    query: str = "",
    **sim: Any,
) -> AsyncIterator[tuple[ScannerSimulator, Collector]]:
    async with ScannerSimulator(mode=mode, script=_with_end(script), noise=noise, **sim) as device:
        driver = open_driver(
            device.url + query, name="handheld-1", reader_id=3, backoff=FAST, options=options
        )
        assert isinstance(driver, BarcodeDriver)
        async with Collector(driver) as collector:
            yield device, collector


@pytest.mark.parametrize("mode", MODES)
async def test_every_scripted_scan_arrives_once_parsed(mode: Mode) -> None:
    expected = examples()
    async with scanner(mode, [e.line for e in expected]) as (device, collector):
        scans = await collector.until_end()
        await device.finished()
    assert len(scans) == len(expected)
    for scan, want in zip(scans, expected, strict=True):
        assert (scan.kind, scan.value, scan.symbology, scan.fields) == (
            want.kind,
            want.value,
            want.symbology,
            want.fields,
        ), want.line
        assert scan.reader == "handheld-1"
        assert scan.timestamp_us > 0
    assert [s.timestamp_us for s in scans] == sorted(s.timestamp_us for s in scans)
    counters = collector.driver.counters
    # the script's scans and its end
    assert (counters.reads, counters.decode_errors, counters.reconnects) == (
        len(expected) + 1,
        0,
        0,
    )
    assert collector.states[:2] == [DriverState.CONNECTING, DriverState.INVENTORYING]
    assert collector.states[-1] is DriverState.STOPPED


@pytest.mark.parametrize("mode", MODES)
async def test_location_labels_switch_the_location_context(mode: Mode) -> None:
    script: list[str | bytes | ScanLine] = [
        "LOC:DC1/Room 301",
        "IT-00001",
        "SN:ABC123",
        f"]C1414{GLN_ROOM}",
        "]C18004095060001ASSET1",
        "R302-A04",
        "IT-00002",
        "IT-00003",
    ]
    async with scanner(mode, script) as (_device, collector):
        scans = await collector.until_end()
    # What the daemon does with the stream: a location scan sets the context, the
    # other scans are observations at the current context.
    context: Location | None = None
    observed: list[tuple[str, str]] = []
    for scan in scans:
        if scan.kind is ScanKind.LOCATION:
            context = Location(scan.value)
        else:
            assert context is not None
            observed.append((scan.value, context.path))
    assert observed == [
        ("IT-00001", "DC1/Room 301"),
        ("ABC123", "DC1/Room 301"),
        ("095060001ASSET1", "DC1/Room 302"),
        ("IT-00002", "DC1/Room 302/Rack A04"),
        ("IT-00003", "DC1/Room 302/Rack A04"),
    ]


@pytest.mark.parametrize("mode", MODES)
async def test_noise_and_unplugs_lose_no_scan_and_count_every_fault(mode: Mode) -> None:
    lines = [e.line for e in examples()]
    script: list[str | bytes | ScanLine] = [*lines, *lines, *lines]
    noise = Noise(
        garbage=1.5, split=0.3, terminators=True, disconnect=0.03, truncate=0.03, seed=11,
        downtime_s=0.05,
    )  # fmt: skip
    async with scanner(mode, script, noise) as (device, collector):
        scans = await collector.until_end(timeout=30)
        await device.finished()
    assert [(s.kind, s.value) for s in scans] == [(e.kind, e.value) for e in examples() * 3]
    counters = collector.driver.counters
    assert device.garbage_lines > 50
    assert device.disconnects > 0
    assert device.split_writes > 0
    assert counters.faults.get("partial_line", 0) == device.truncated
    assert counters.decode_errors == device.garbage_lines + device.truncated
    assert counters.reconnects >= device.disconnects
    assert counters.reads == len(script) + 1  # and the end of the script


async def test_ten_thousand_garbage_lines_over_a_pty() -> None:
    script: list[str | bytes | ScanLine] = [f"IT-{i:05d}" for i in range(400)]
    noise = Noise(garbage=25, garbage_bytes=40, terminators=True, seed=5)
    with capture_logs() as logs:
        async with scanner("pty", script, noise) as (device, collector):
            scans = await collector.until_end(timeout=45)
            await device.finished()
    assert device.garbage_lines >= 10_000
    assert [s.value for s in scans] == [f"IT-{i:05d}" for i in range(400)]
    counters = collector.driver.counters
    assert counters.decode_errors == device.garbage_lines
    assert set(counters.faults) <= {"garbage", "encoding"}
    # a flood is logged as a sample plus counts of what was left out, not 10,000 lines
    rejected = [e for e in logs if e["event"] == "scan_rejected"]
    assert 20 <= len(rejected) <= 200
    assert len(rejected) + sum(e["suppressed"] for e in rejected) <= counters.decode_errors


async def test_wrong_check_digit_is_counted_logged_and_the_next_scan_read() -> None:
    bad = f"]C101{wrong_check_digit('0950600013435')}21X{GS}"
    with capture_logs() as logs:
        async with scanner("pty", [bad, "IT-00077"]) as (_device, collector):
            scans = await collector.until_end()
    assert [s.value for s in scans] == ["IT-00077"]
    assert collector.driver.counters.faults == {"check_digit": 1}
    assert collector.driver.counters.decode_errors == 1
    rejected = [e for e in logs if e["event"] == "scan_rejected"]
    assert len(rejected) == 1
    assert rejected[0]["reason"] == "check_digit"
    assert "AI (01)" in rejected[0]["detail"]
    assert rejected[0]["raw"].endswith("21X\\x1d")  # raw bytes escaped, GS visible
    assert rejected[0]["log_level"] == "warning"


async def test_overlong_line_is_dropped_and_the_next_line_read() -> None:
    script: list[str | bytes | ScanLine] = [b"A" * 20_000, "IT-00078"]
    options = {**OPTIONS, "max_line_bytes": 256}
    async with scanner("tcp", script, options=options) as (_device, collector):
        scans = await collector.until_end()
    assert [s.value for s in scans] == ["IT-00078"]
    assert collector.driver.counters.faults == {"overlong": 1}


async def test_consecutive_garbage_degrades_and_a_good_scan_recovers() -> None:
    script: Script = [*[b"\x00\x01junk"] * 4, "IT-00079"]
    options = {**OPTIONS, "degraded_after": 3}
    async with scanner("pty", script, options=options) as (_device, collector):
        await collector.until_end()
    states = collector.states
    assert DriverState.DEGRADED in states
    assert states[states.index(DriverState.DEGRADED) + 1] is DriverState.INVENTORYING
    assert collector.driver.counters.faults == {"garbage": 4}


@pytest.mark.parametrize("mode", MODES)
async def test_unplug_goes_down_reconnects_and_reads_on(mode: Mode) -> None:
    operator: asyncio.Queue[str | None] = asyncio.Queue()

    async def live() -> AsyncIterator[str]:
        while (line := await operator.get()) is not None:
            yield line

    async with scanner(mode, live()) as (device, collector):
        for line in ("IT-00001", "IT-00002"):
            operator.put_nowait(line)
        await collector.wait_for(2)
        await device.unplug(downtime_s=0.3)
        async with asyncio.timeout(10):
            while DriverState.DOWN not in collector.states or (
                collector.states[-1] is not DriverState.INVENTORYING
            ):
                await asyncio.sleep(0.01)
        assert collector.driver.counters.reconnects >= 1
        assert collector.driver.last_error is not None
        operator.put_nowait("IT-00003")  # the scanner is back: read on the new connection
        operator.put_nowait(None)
        scans = await collector.until_end()
        await device.finished()
    assert [s.value for s in scans] == ["IT-00001", "IT-00002", "IT-00003"]
    assert device.disconnects == 1


async def test_unreachable_scanner_is_down_with_the_reason_and_closes_promptly() -> None:
    driver = open_driver(f"socket://127.0.0.1:{free_port()}", name="gone", backoff=FAST)
    assert isinstance(driver, BarcodeDriver)
    async with Collector(driver) as collector:
        async with asyncio.timeout(10):
            while driver.counters.reconnects < 2:
                await asyncio.sleep(0.01)
        assert driver.state in (DriverState.DOWN, DriverState.CONNECTING)
        assert "cannot open scanner" in (driver.last_error or "")
    assert collector.scans == []
    assert collector.states[-1] is DriverState.STOPPED


async def test_url_options_win_over_configured_options() -> None:
    options = {**OPTIONS, "terminator": "CR"}
    script: list[str | bytes | ScanLine] = ["IT-00005", "IT-00006"]
    async with scanner(
        "tcp", script, options=options, query="?terminator=TAB", terminator="TAB"
    ) as (_device, collector):
        scans = await collector.until_end()
    assert [s.value for s in scans] == ["IT-00005", "IT-00006"]


async def test_options_from_the_configuration_sections() -> None:
    section = ScannerSection(name="door", url="socket://127.0.0.1:1", terminator="LF")
    locations = [
        LocationSection(path="DC1/Room 302", gln=GLN_ROOM),
        LocationSection(path="DC1/Room 302/Rack A04", label="R302-A04"),
    ]
    options = scanner_options(section, locations)
    assert options["locations"] == {"R302-A04": "DC1/Room 302/Rack A04"}
    assert options["gln_locations"] == {GLN_ROOM: "DC1/Room 302"}
    script: list[str | bytes | ScanLine] = [f"]C1414{GLN_ROOM}", "R302-A04", "IT-1234"]
    async with scanner("tcp", script, options=options, terminator="LF") as (_d, collector):
        scans = await collector.until_end()
    assert [(s.kind, s.value) for s in scans] == [
        (ScanKind.LOCATION, "DC1/Room 302"),
        (ScanKind.LOCATION, "DC1/Room 302/Rack A04"),
        (ScanKind.ASSET_TAG, "IT-1234"),
    ]


@pytest.mark.parametrize(
    ("url", "options", "message"),
    [
        ("serial://ttyACM0", {}, "absolute device path"),
        ("serial:///dev/ttyACM0?parity=Q", {}, "bad serial parameter"),
        ("socket://127.0.0.1", {}, "socket://HOST:PORT"),
        ("socket://127.0.0.1:1", {"serial_pattern": "(["}, "serial_pattern"),
        ("socket://127.0.0.1:1?terminator=\\xZZ", {}, "scanner s1.*bad escape"),
        ("socket://127.0.0.1:1", {"max_line_bytes": 4}, "max_line_bytes"),
    ],
)
def test_configuration_errors_name_what_is_wrong(
    url: str, options: dict[str, Any], message: str
) -> None:
    with pytest.raises(DriverConfigError, match=message):
        open_driver(url, name="s1", options=options)


def test_registry_serves_every_scanner_scheme() -> None:
    for url in ("serial:///dev/ttyACM0", "socket://127.0.0.1:7000", "rfc2217://127.0.0.1:7000"):
        assert isinstance(open_driver(url), BarcodeDriver)
