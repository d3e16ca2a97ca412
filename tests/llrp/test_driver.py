"""The LLRP driver against the simulated reader over real loopback TCP.

Every test runs the driver with ``validate=1``, so each report of this corpus is also
decoded by sllurp and any disagreement with the fast decoder is counted (and asserted
to be zero).
"""

from __future__ import annotations

import asyncio
import itertools
from collections.abc import AsyncIterator, Callable
from typing import Any

import numpy as np
import pytest
from structlog.testing import capture_logs

from tagsweep.domain import READ_DTYPE, ReadBatch, empty_reads, now_us
from tagsweep.drivers import Backoff, DriverConfigError, DriverState, open_driver
from tagsweep.drivers.llrp import LlrpDriver
from tagsweep.simulators.llrp import (
    ConnectionLog,
    Fault,
    FaultKind,
    LlrpSimulator,
    TagSource,
    random_tags,
)
from tagsweep.simulators.llrp.encoder import (
    ContentSelector,
    MessageType,
    ReaderIdentity,
    parse_clock,
)

FAST = Backoff(initial_s=0.05, cap_s=0.2)


def numbered_source(batches: int = 12, size: int = 50, pause_s: float = 0.01) -> TagSource:
    """Distinct, recognisable reads on every connection (first_seen encodes where from)."""
    calls = itertools.count()

    async def source() -> AsyncIterator[ReadBatch]:
        connection = next(calls)
        for b in range(batches):
            batch = empty_reads(size)
            idx = np.arange(size)
            batch["epc"] = [f"E2{connection:02X}{b:04X}{i:016X}".encode() for i in idx]
            batch["antenna"] = idx % 2 + 1
            batch["rssi"] = -30 - (idx % 40)
            base = 1_800_000_000_000_000 + connection * 10**9 + b * 10**6
            batch["first_seen_us"] = base + idx
            batch["last_seen_us"] = base + idx + 250
            batch["seen_count"] = idx % 5 + 1
            yield batch
            await asyncio.sleep(pause_s)

    return source


def keys_in_order(batch: ReadBatch) -> list[tuple[bytes, int]]:
    return list(zip(batch["epc"].tolist(), batch["first_seen_us"].tolist(), strict=True))


def keys(batch: ReadBatch) -> set[tuple[bytes, int]]:
    return set(keys_in_order(batch))


def llrp_url(sim: LlrpSimulator, **options: Any) -> str:
    query = {"antennas": "1,2", "keepalive_s": "0.2", "watchdog_intervals": "2", "validate": "1"}
    # numbered_source's fixed stamps (2027) are how tests recognise reads: keep them as sent
    query["max_clock_skew_s"] = str(10 * 365 * 86400)
    query["report_interval_s"] = "0.1"  # the last reads short of N come on GET_REPORT
    query.update({k: str(v) for k, v in options.items()})
    return f"llrp://127.0.0.1:{sim.port}?" + "&".join(f"{k}={v}" for k, v in query.items())


async def collect(
    driver: LlrpDriver,
    done: Callable[[ReadBatch], bool],
    timeout: float = 15.0,
) -> ReadBatch:
    """Iterate ``driver`` until ``done(all reads so far)``; then close it."""
    received: list[ReadBatch] = []

    def so_far() -> ReadBatch:
        return np.concatenate(received) if received else np.zeros(0, dtype=READ_DTYPE)

    async def consume() -> None:
        async for batch in driver:
            assert isinstance(batch, np.ndarray)
            received.append(batch)

    task = asyncio.create_task(consume(), name="consume")
    try:
        async with asyncio.timeout(timeout):
            while not done(so_far()):
                if task.done():
                    task.result()  # the iteration ended: surface why
                    raise AssertionError("driver stopped iterating")
                await asyncio.sleep(0.02)
    finally:
        await driver.close()
        await asyncio.wait_for(task, 5)
    return so_far()


def everything_from(sim: LlrpSimulator, connection: int) -> Callable[[ReadBatch], bool]:
    """Done once connection ``connection`` exhausted its source and all its reads arrived."""

    def done(got: ReadBatch) -> bool:
        if len(sim.connections) <= connection:
            return False
        log = sim.connections[connection]
        reported = log.read_count == log.observed  # none waiting in the reader for N
        return log.source_done and reported and keys(log.sent_reads()) <= keys(got)

    return done


def assert_reads_match(got: ReadBatch, sent: ReadBatch, reader_id: int) -> None:
    """Every sent read arrived once, with the values the reader sent."""
    by_key = {k: i for i, k in enumerate(keys_in_order(got))}
    assert len(by_key) == len(got), "a read arrived twice"
    rows = np.array([by_key[k] for k in keys_in_order(sent)])
    mine = got[rows]
    for name in ("epc", "antenna", "first_seen_us", "last_seen_us", "seen_count"):
        assert np.array_equal(mine[name], sent[name]), name
    assert np.array_equal(mine["rssi"], sent["rssi"])
    assert (mine["reader"] == reader_id).all()
    assert np.isnan(mine["phase"]).all()
    assert np.isnan(mine["doppler_hz"]).all()


async def test_every_read_arrives_with_its_values_and_shutdown_is_clean() -> None:
    async with LlrpSimulator(port=0, tag_source=numbered_source()) as sim:
        url = llrp_url(sim, report_n=37, tx_power=20, session=1)
        driver = LlrpDriver(url, name="dock", reader_id=5, backoff=FAST)
        states: list[DriverState] = []
        driver.add_state_listener(lambda _d, _old, new: states.append(new))
        got = await collect(driver, everything_from(sim, 0))
        log = sim.connections[0]
        await asyncio.wait_for(log.done.wait(), 5)
    assert_reads_match(got, log.sent_reads(), reader_id=5)
    assert len(got) == 12 * 50
    assert driver.counters.reads == len(got)
    assert driver.counters.faults == {}
    assert driver.counters.decode_errors == 0
    assert states[:2] == [DriverState.CONNECTING, DriverState.INVENTORYING]
    # the ROSpec from the configuration reached the reader: continuous inventory
    # (no AISpec stop trigger), reports every 37 tags, 20 dBm (table index 41), session 1
    (rospec,) = log.rospecs
    assert rospec.antennas == (1, 2)
    assert rospec.ai_stop_trigger == 0
    assert (rospec.report_trigger, rospec.report_n) == (2, 37)
    assert rospec.tx_power_index == {1: 41, 2: 41}
    assert rospec.session == {1: 1, 2: 1}
    assert rospec.search_mode == {}
    # everything the driver needs, nothing it does not (no ROSpecID, no Impinj extras)
    assert rospec.selector == ContentSelector(rospec_id=None, impinj=False)
    # reports of N = 37 reads as they fill, the rest on GET_REPORT
    assert max(len(b) for b in log.sent) == 37
    assert sum(len(b) == 37 for b in log.sent) >= 600 // 37 - 3
    # the session: capabilities, config, our own ROSpec only, then a clean goodbye
    assert log.requests[:3] == [
        MessageType.GET_READER_CAPABILITIES,
        MessageType.GET_READER_CONFIG,
        MessageType.ENABLE_EVENTS_AND_REPORTS,
    ]
    assert MessageType.DELETE_ACCESSSPEC not in log.requests
    assert log.requests[-3:] == [
        MessageType.STOP_ROSPEC,
        MessageType.DELETE_ROSPEC,
        MessageType.CLOSE_CONNECTION,
    ]
    assert log.closed_by_client
    assert driver.state is DriverState.STOPPED or driver.closing


async def test_keepalives_are_acknowledged_and_keep_an_idle_reader_healthy() -> None:
    async def idle() -> AsyncIterator[ReadBatch]:
        await asyncio.sleep(3600)
        yield empty_reads(0)

    async with LlrpSimulator(port=0, tag_source=idle) as sim:
        driver = LlrpDriver(llrp_url(sim, keepalive_s=0.1), backoff=FAST)
        states: list[DriverState] = []
        driver.add_state_listener(lambda _d, _old, new: states.append(new))
        got = await collect(
            driver, lambda _got: bool(sim.connections) and sim.connections[0].keepalive_acks >= 8
        )
    assert len(got) == 0
    assert DriverState.DEGRADED not in states
    assert driver.counters.reconnects == 0
    assert "watchdog" not in driver.counters.faults


RECONNECTING = {
    FaultKind.DROP: "connection_lost",
    FaultKind.STALL: "watchdog",
    FaultKind.MISSED_KEEPALIVES: "watchdog",
    FaultKind.CONFIG_ERROR: "connect",
    FaultKind.BUSY: "connect",
}
HANDSHAKE = {FaultKind.CONFIG_ERROR, FaultKind.BUSY}


@pytest.mark.parametrize("kind", list(RECONNECTING), ids=str)
async def test_connection_faults_recover_without_losing_reads_sent_after_reconnect(
    kind: FaultKind,
) -> None:
    fault = Fault(kind, after_reports=0 if kind in HANDSHAKE else 3)
    async with LlrpSimulator(port=0, tag_source=numbered_source(), faults=[fault]) as sim:
        with capture_logs() as logs:
            driver = LlrpDriver(llrp_url(sim), name="portal", reader_id=2, backoff=FAST)
            got = await collect(driver, everything_from(sim, 1))
    assert sim.connections[0].faults == [kind]
    assert sim.connections[1].faults == []
    assert_reads_match(got, sim.connections[1].sent_reads(), reader_id=2)
    assert driver.counters.reconnects >= 1
    assert driver.counters.faults.get(RECONNECTING[kind], 0) >= 1
    assert not {"validation_mismatch", "sllurp_decode_failed"} & set(driver.counters.faults)
    lost = [e for e in logs if e["event"] == "reader_lost"]
    assert lost, "the fault was not logged"
    assert {"state": "down"} in [{"state": e.get("state")} for e in logs]


async def test_a_reader_held_by_another_client_is_a_clear_error_then_retried() -> None:
    """An LLRP reader takes one client; the second gets a failed ConnectionAttemptEvent.
    sllurp alone would wait for ever: the driver says why at once and tries again."""
    async with LlrpSimulator(
        port=0, tag_source=numbered_source(), faults=[Fault(FaultKind.BUSY, connection=0)]
    ) as sim:
        with capture_logs() as logs:
            url = llrp_url(sim, connect_timeout_s=30)
            driver = LlrpDriver(url, name="portal", reader_id=2, backoff=FAST)
            started = asyncio.get_running_loop().time()
            got = await collect(driver, everything_from(sim, 1))
            took = asyncio.get_running_loop().time() - started
    assert sim.connections[0].faults == [FaultKind.BUSY]
    assert sim.connections[0].reports == 0
    assert_reads_match(got, sim.connections[1].sent_reads(), reader_id=2)
    lost = [e for e in logs if e["event"] == "reader_lost"]
    assert "refused the session" in lost[0]["error"]
    assert "another client is connected" in lost[0]["error"]
    assert took < 15  # not the 30 s connect timeout


IN_STREAM = {
    FaultKind.GARBAGE: ("decode", 1),
    FaultKind.NOISE: ("framing", 1),
    FaultKind.ABSURD_LENGTH: ("framing", 1),
    FaultKind.WRONG_LENGTH: ("framing", 1),
    FaultKind.VENDOR: ("unknown_parameter", 50),
    FaultKind.VENDOR_MALFORMED: ("malformed_parameter", 50),
}


@pytest.mark.parametrize("validate", [1, 0], ids=["validated", "joined-decode"])
@pytest.mark.parametrize("kind", list(IN_STREAM), ids=str)
async def test_bad_frames_cost_only_themselves(kind: FaultKind, validate: int) -> None:
    async with LlrpSimulator(
        port=0, tag_source=numbered_source(), faults=[Fault(kind, after_reports=4)]
    ) as sim:
        with capture_logs() as logs:
            url = llrp_url(sim, report_n=50, validate=validate)
            driver = LlrpDriver(url, reader_id=1, backoff=FAST)
            got = await collect(driver, everything_from(sim, 0))
    assert sim.connections[0].faults == [kind]
    assert len(sim.connections) == 1
    assert_reads_match(got, sim.connections[0].sent_reads(), reader_id=1)
    assert len(got) == 12 * 50
    assert driver.counters.reconnects == 0
    fault_kind, count = IN_STREAM[kind]
    assert "validation_mismatch" not in driver.counters.faults
    if fault_kind == "unknown_parameter":
        # well-formed vendor parameters nothing uses: skipped and counted, no fault
        assert driver.counters.skipped_parameters == count
        assert driver.counters.faults == {}
        assert driver.counters.decode_errors == 0
        said = [e for e in logs if e["event"] == "llrp_vendor_parameter_skipped"]
        assert len(said) == 1  # once per kind of parameter, not once per tag
        assert "vendor=" in said[0]["detail"]
        return
    assert driver.counters.faults.get(fault_kind) == count
    assert driver.counters.skipped_parameters == 0
    decode_error = fault_kind in {"decode", "framing", "malformed_parameter"}
    assert driver.counters.decode_errors == (1 if decode_error else 0)
    problems = [e for e in logs if e["event"] == "llrp_stream_problem"]
    assert [p["kind"] for p in problems if p["kind"] == fault_kind], "not logged"
    assert "stream offset" in problems[0]["detail"]


async def test_burst_of_20k_reads_arrives_complete() -> None:
    # after the first report of N = 500 (batch 10 of 12): the source is still running
    fault = Fault(FaultKind.BURST, after_reports=1, burst_reads=20_000)
    async with LlrpSimulator(port=0, tag_source=numbered_source(), faults=[fault]) as sim:
        driver = LlrpDriver(llrp_url(sim, report_n=500, validate=0), backoff=FAST)
        got = await collect(driver, everything_from(sim, 0))
    sent = sim.connections[0].sent_reads()
    assert len(sent) == 12 * 50 + 20_000
    assert len(got) == len(sent)
    # burst reads reuse EPCs: compare as multisets of full rows (reader id aside)
    got["reader"] = 0
    assert np.isnan(got["phase"]).all()
    got["phase"] = sent["phase"] = 0  # NaN != NaN would hide equality below
    got["doppler_hz"] = sent["doppler_hz"] = 0
    everything = list(READ_DTYPE.names or ())
    assert np.array_equal(np.sort(got, order=everything), np.sort(sent, order=everything))
    assert driver.counters.faults == {}


async def test_a_slow_consumer_pushes_back_on_the_reader_without_losing_reads() -> None:
    fault = Fault(FaultKind.BURST, after_reports=0, burst_reads=30_000)
    source = numbered_source(batches=2, size=10)
    async with LlrpSimulator(port=0, tag_source=source, faults=[fault]) as sim:
        url = llrp_url(sim, report_n=1000, max_pending_reads=1000, validate=0)
        driver = LlrpDriver(url, backoff=FAST)
        received = 0
        backlog = 0
        async with asyncio.timeout(30):
            async for batch in driver:
                assert isinstance(batch, np.ndarray)
                received += len(batch)
                backlog = max(backlog, driver.backlog_reads)
                await asyncio.sleep(0.01)  # a consumer much slower than the burst
                if received >= 30_020:
                    break
        await driver.close()
    assert received == sim.connections[0].read_count == 30_020
    # the thread stopped reading while the backlog exceeded the bound (plus what one
    # socket read of up to 64 KiB can hold), instead of buffering the whole burst
    assert 1000 < backlog < 1000 + 2 * 65536 // 43
    assert driver.counters.faults == {}


async def test_impinj_phase_rssi_and_doppler_arrive() -> None:
    source = random_tags(30, 3000, antennas=(1, 2), impinj=True, limit=600, seed=4)
    async with LlrpSimulator(port=0, tag_source=source) as sim:
        driver = LlrpDriver(llrp_url(sim, impinj=1, search_mode=2), backoff=FAST)
        got = await collect(driver, everything_from(sim, 0))
    sent = sim.connections[0].sent_reads()
    log = sim.connections[0]
    assert log.requests[0] == MessageType.CUSTOM_MESSAGE  # IMPINJ_ENABLE_EXTENSIONS
    assert log.rospecs[0].selector.impinj
    assert log.rospecs[0].search_mode == {1: 2, 2: 2}  # dual target
    assert len(got) == len(sent) == 600
    order_got = np.argsort(got, order=["first_seen_us", "epc", "antenna"], kind="stable")
    order_sent = np.argsort(sent, order=["first_seen_us", "epc", "antenna"], kind="stable")
    g, s = got[order_got], sent[order_sent]
    assert np.allclose(g["phase"], s["phase"], atol=1e-6)
    assert np.array_equal(g["doppler_hz"], s["doppler_hz"])
    assert np.array_equal(g["rssi"], s["rssi"])
    assert driver.counters.faults == {}


async def test_unreachable_reader_backs_off_and_counts() -> None:
    async with LlrpSimulator(port=0) as sim:
        port = sim.port
    driver = LlrpDriver(f"llrp://127.0.0.1:{port}?connect_timeout_s=1", backoff=FAST)
    states: list[DriverState] = []
    driver.add_state_listener(lambda _d, _old, new: states.append(new))

    async def consume() -> None:
        async for _ in driver:
            pass

    task = asyncio.create_task(consume())
    async with asyncio.timeout(10):
        while driver.counters.reconnects < 3:
            await asyncio.sleep(0.02)
    await driver.close()
    await asyncio.wait_for(task, 5)
    assert driver.counters.faults["connect"] >= 3
    assert DriverState.DOWN in states
    assert "cannot connect" in (driver.last_error or "")


@pytest.mark.parametrize(
    ("url", "message"),
    [
        ("llrp://reader?antennas=1,x", "antennas='1,x' must be comma-separated integers"),
        ("llrp://reader?tx_power=99", "tx_power='99' must be between 0 and 40"),
        ("llrp://reader?keepalive=5", "unknown LLRP option(s) keepalive"),
        ("llrp://?antennas=1", "no reader host"),
        ("llrp://reader?decoder=magic", "decoder must be 'fast' or 'sllurp'"),
    ],
)
def test_bad_options_are_config_errors_naming_the_option(url: str, message: str) -> None:
    with pytest.raises(DriverConfigError) as err:
        open_driver(url)
    assert message in str(err.value)
    assert url in str(err.value) or "no reader host" in message


def test_options_from_configuration_and_url() -> None:
    driver = open_driver(
        "llrp://10.0.0.5?antennas=1,3&watchdog_intervals=4",
        options={"keepalive_s": 2.5, "watchdog_intervals": 9, "tx_power_dbm": 27.5},
    )
    assert isinstance(driver, LlrpDriver)
    settings = driver.settings
    assert (settings.host, settings.port) == ("10.0.0.5", 5084)
    assert settings.antennas == (1, 3)
    assert settings.keepalive_s == 2.5
    assert settings.watchdog_intervals == 4  # the URL wins
    assert settings.tx_power_dbm == 27.5
    config = settings.sllurp_config()
    assert config.keepalive_interval == 2500
    assert config.tx_power_dbm == {1: 27.5, 3: 27.5}
    assert config.report_every_n_tags is None  # never stop inventory to report


def test_connection_log_counts() -> None:
    log = ConnectionLog(0, "peer")
    assert log.read_count == 0
    assert len(log.sent_reads()) == 0


async def test_a_reader_without_a_utc_clock_gets_its_uptime_stamps_on_the_wall_clock() -> None:
    """Such a reader stamps reads in microseconds since it booted: the driver anchors
    them to the receive time, keeping their spacing exactly (validated against sllurp)."""

    async def stamped_now() -> AsyncIterator[ReadBatch]:
        for b in range(6):
            batch = empty_reads(20)
            batch["epc"] = [f"E280{b:04X}{i:016X}".encode() for i in range(20)]
            batch["antenna"] = 1
            batch["rssi"] = -50.0
            batch["first_seen_us"] = now_us() - 200_000 + np.arange(20) * 1_000
            batch["last_seen_us"] = batch["first_seen_us"] + 500
            batch["seen_count"] = 1
            yield batch
            await asyncio.sleep(0.02)

    booted = now_us() - 86_400_000_000  # up for a day
    identity = ReaderIdentity(booted_us=booted)
    async with LlrpSimulator(port=0, tag_source=stamped_now, identity=identity) as sim:
        driver = LlrpDriver(llrp_url(sim), reader_id=1, backoff=FAST)
        got = await collect(driver, lambda got: len(got) >= 120)
    sent = sim.connections[0].sent_reads()
    assert len(got) == len(sent) == 120
    assert got["epc"].tolist() == sent["epc"].tolist()
    # per report one offset (spacing kept to the microsecond); the newest stamp is put
    # at the receive time, so reads are late by at most their age when sent (here
    # 180-200 ms) plus the network, never early, and the offset only ever tightens
    error = (got["first_seen_us"] - sent["first_seen_us"]).reshape(6, 20)
    assert (error == error[:, :1]).all()
    assert (np.diff(error[:, 0]) <= 0).all()
    assert ((error >= 0) & (error < 1_000_000)).all()
    assert (got["last_seen_us"] - got["first_seen_us"] == 500).all()
    assert not {"validation_mismatch", "sllurp_decode_failed"} & set(driver.counters.faults)


async def stamped_now(batches: int = 6, size: int = 20) -> AsyncIterator[ReadBatch]:
    """Reads stamped at the moment they are produced (true wall-clock time)."""
    for b in range(batches):
        batch = empty_reads(size)
        batch["epc"] = [f"E281{b:04X}{i:016X}".encode() for i in range(size)]
        batch["antenna"] = 1
        batch["rssi"] = -50.0
        batch["first_seen_us"] = now_us() - 200_000 + np.arange(size) * 1_000
        batch["last_seen_us"] = batch["first_seen_us"] + 500
        batch["seen_count"] = 1
        yield batch
        await asyncio.sleep(0.02)


@pytest.mark.parametrize(
    ("clock", "skew_s"),
    [("unset", None), ("offset=-3h", -3 * 3600.0), ("offset=+26h", 26 * 3600.0)],
)
async def test_a_reader_with_a_wrong_clock_gets_its_reads_on_the_wall_clock(
    clock: str, skew_s: float | None
) -> None:
    """A reader whose UTC clock was never set (it counts from 2000-01-01, as R420 and
    Intermec readers do after losing power without NTP) or is hours off (an FX9500 was)
    stamps reads where no session window is: the driver re-anchors that connection's
    stamps to the receive time, says so once, and exports the offset."""
    start = now_us()
    identity = parse_clock(clock, start)
    async with LlrpSimulator(port=0, tag_source=stamped_now, identity=identity) as sim:
        with capture_logs() as logs:
            driver = LlrpDriver(llrp_url(sim, max_clock_skew_s=5), reader_id=1, backoff=FAST)
            got = await collect(driver, lambda got: len(got) >= 120)
    sent = sim.connections[0].sent_reads()
    assert len(got) == len(sent) == 120
    assert got["epc"].tolist() == sent["epc"].tolist()
    error = got["first_seen_us"] - sent["first_seen_us"]  # sent: the true time
    assert ((error >= 0) & (error < 2_000_000)).all(), error
    assert (got["last_seen_us"] - got["first_seen_us"] == 500).all()
    skews = [e for e in logs if e["event"] == "reader_clock_skew"]
    assert len(skews) == 1
    expected = -identity.clock_offset_us / 1e6
    if skew_s is not None:
        assert expected == pytest.approx(-skew_s)
    assert skews[0]["offset_s"] == pytest.approx(expected, abs=2)
    assert driver.counters.clock_offset_s == pytest.approx(expected, abs=2)
    assert not {"validation_mismatch", "sllurp_decode_failed"} & set(driver.counters.faults)


async def test_a_reader_with_a_right_clock_keeps_its_stamps() -> None:
    async with LlrpSimulator(port=0, tag_source=stamped_now) as sim:
        with capture_logs() as logs:
            driver = LlrpDriver(llrp_url(sim, max_clock_skew_s=5), reader_id=1, backoff=FAST)
            got = await collect(driver, lambda got: len(got) >= 120)
    sent = sim.connections[0].sent_reads()
    assert got["first_seen_us"].tolist() == sent["first_seen_us"].tolist()
    assert not [e for e in logs if e["event"] == "reader_clock_skew"]
    assert driver.counters.clock_offset_s == 0.0


async def test_another_client_knocking_leaves_the_session_running() -> None:
    """When somebody else tries to connect, the reader tells the client in session
    ("Another connection attempted"): said in the log, and reading goes on."""
    async with LlrpSimulator(
        port=0, tag_source=numbered_source(), faults=[Fault(FaultKind.INTRUDER, after_reports=3)]
    ) as sim:
        with capture_logs() as logs:
            driver = LlrpDriver(llrp_url(sim), reader_id=1, backoff=FAST)
            got = await collect(driver, everything_from(sim, 0))
    assert sim.connections[0].faults == [FaultKind.INTRUDER]
    assert len(sim.connections) == 1
    assert driver.counters.reconnects == 0
    assert_reads_match(got, sim.connections[0].sent_reads(), reader_id=1)
    knocks = [e for e in logs if e["event"] == "llrp_another_client_knocked"]
    assert len(knocks) == 1


async def test_impinj_options_on_another_vendors_reader_say_so() -> None:
    zebra = ReaderIdentity(manufacturer=10642)  # IANA enterprise number of Zebra
    async with LlrpSimulator(port=0, tag_source=numbered_source(), identity=zebra) as sim:
        with capture_logs() as logs:
            driver = LlrpDriver(llrp_url(sim, impinj=1), reader_id=1, backoff=FAST)
            with pytest.raises(TimeoutError):
                await collect(driver, lambda got: len(got) > 0, timeout=1.5)
    lost = [e for e in logs if e["event"] == "reader_lost"]
    assert lost
    assert "is the reader an Impinj?" in lost[0]["error"]
    assert driver.counters.reads == 0
