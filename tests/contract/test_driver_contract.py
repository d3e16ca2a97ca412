"""The contract every driver passes (python-can's back-to-back suite, for readers)."""

from __future__ import annotations

import asyncio

import numpy as np
import pytest

from tagsweep.domain import READ_DTYPE, BarcodeScan
from tagsweep.drivers import Driver, DriverConfigError, DriverState, open_driver
from tests.contract.harnesses import HARNESSES, Harness


@pytest.fixture(params=HARNESSES, ids=[h.name for h in HARNESSES])
def harness(request: pytest.FixtureRequest) -> Harness:
    return request.param  # type: ignore[no-any-return]


async def _first_events(driver: Driver, n: int, timeout: float = 10.0) -> list[object]:
    events: list[object] = []
    async with asyncio.timeout(timeout):
        async for event in driver:
            events.append(event)
            if len(events) >= n:
                break
    return events


async def test_delivers_typed_events(harness: Harness) -> None:
    async with harness.device() as url:
        driver = open_driver(url, name="contract", reader_id=7)
        assert driver.state is DriverState.STOPPED
        states: list[DriverState] = []
        driver.add_state_listener(lambda _d, _old, new: states.append(new))
        events = await _first_events(driver, 2)
        assert states[-1] is DriverState.INVENTORYING
        await driver.close()
    assert states[:2] == [DriverState.CONNECTING, DriverState.INVENTORYING]
    for event in events:
        if harness.kind == "rfid":
            assert isinstance(event, np.ndarray)
            assert event.dtype == READ_DTYPE
            assert len(event) > 0
            assert (event["reader"] == 7).all()
        else:
            assert isinstance(event, BarcodeScan)
            assert event.reader == "contract"
    assert driver.counters.reads > 0


async def test_close_ends_iteration_promptly(harness: Harness) -> None:
    async with harness.device() as url:
        driver = open_driver(url, name="contract")
        received = 0

        async def consume() -> None:
            nonlocal received
            async for _ in driver:
                received += 1

        task = asyncio.create_task(consume(), name="consume")
        async with asyncio.timeout(10):
            while received == 0:
                await asyncio.sleep(0.01)
        await driver.close()
        async with asyncio.timeout(5):
            await task
    assert driver.state is DriverState.STOPPED


async def test_close_is_idempotent_and_safe_before_start(harness: Harness) -> None:
    async with harness.device() as url:
        driver = open_driver(url, name="contract")
        await driver.close()
        await driver.close()
        assert [e async for e in driver] == []


def test_unknown_scheme_is_a_config_error() -> None:
    with pytest.raises(DriverConfigError, match="no driver for scheme 'nfc'"):
        open_driver("nfc://reader")
