"""Device supervision: one task per configured reader or scanner.

Each device's task iterates its driver. The driver reconnects by itself with backoff; if
the iteration itself fails (a driver bug) the task logs it and iterates again after a
capped, jittered backoff, so one bad reader never takes the others down. A configuration
error the driver reports (:class:`~tagsweep.drivers.DriverConfigError`) stops that device
for good and is shown in status; the other devices carry on.

What a device delivers goes to callbacks the gateway wires up: read batches to the read
pipeline (:mod:`tagsweep.daemon.read_pipeline`), barcode scans to the session API
(:mod:`tagsweep.daemon.session_api`), state changes to the pipeline's event queue.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import numpy as np

from tagsweep.config.schema import ReaderSection, ScannerSection, TagsweepConfig
from tagsweep.daemon.portal import PortalTracker
from tagsweep.daemon.sessions import ReaderRole
from tagsweep.domain import BarcodeScan
from tagsweep.drivers import Backoff, Driver, DriverConfigError, DriverState, open_driver

StateListener = Callable[[Driver, DriverState, DriverState], None]
ReadsHandler = Callable[["Device", np.ndarray], None]
ScanHandler = Callable[["Device", BarcodeScan], Awaitable[None]]


@dataclass(slots=True)
class Device:
    """One configured reader or scanner, with its driver and what it contributes."""

    index: int
    name: str
    kind: str  # "reader" | "scanner"
    driver: Driver
    role: ReaderRole
    restarts: int = 0
    portal: PortalTracker | None = None
    error: str | None = None  # a configuration error that stopped it for good

    @property
    def task_name(self) -> str:
        return f"{self.kind}:{self.name}"


def build_devices(config: TagsweepConfig, on_state: StateListener) -> list[Device]:
    """The configured readers, then the scanners (a device's index is its position)."""
    devices: list[Device] = []
    for reader in config.readers:
        devices.append(_make_reader(config, len(devices), reader, on_state))
    for scanner in config.scanners:
        devices.append(_make_scanner(config, len(devices), scanner, on_state))
    return devices


def _make_reader(
    config: TagsweepConfig, index: int, reader: ReaderSection, on_state: StateListener
) -> Device:
    options: dict[str, Any] = {
        "keepalive_s": reader.keepalive_s,
        "watchdog_intervals": reader.watchdog_intervals,
    }
    if reader.tx_power_dbm is not None:
        options["tx_power_dbm"] = reader.tx_power_dbm
    driver = open_driver(reader.url, name=reader.name, reader_id=index, options=options)
    location = reader.portal.zone if reader.portal else reader.location
    device = Device(index, reader.name, "reader", driver, ReaderRole(reader.role, location))
    if reader.portal is not None:
        device.portal = PortalTracker.from_config(
            reader.name, reader.portal, reader=index, quiet_s=config.dedup.window_s
        )
    driver.add_state_listener(on_state)
    return device


def _make_scanner(
    config: TagsweepConfig, index: int, scanner: ScannerSection, on_state: StateListener
) -> Device:
    from tagsweep.drivers.barcode import scanner_options

    options = scanner_options(scanner, config.locations)
    driver = open_driver(scanner.url, name=scanner.name, reader_id=index, options=options)
    driver.add_state_listener(on_state)
    return Device(index, scanner.name, "scanner", driver, ReaderRole("scanner", scanner.location))


async def supervise_device(
    device: Device,
    *,
    stop: asyncio.Event,
    backoff: Backoff,
    on_reads: ReadsHandler,
    on_scan: ScanHandler,
    log: Any,
) -> None:
    """Task body of one device: iterate its driver until ``stop``, restarting on bugs."""
    attempt = 0
    log = log.bind(reader=device.name)
    while not stop.is_set():
        try:
            async for event in device.driver:
                if isinstance(event, BarcodeScan):
                    await on_scan(device, event)
                else:
                    on_reads(device, event)
                attempt = 0
            if stop.is_set() or device.driver.closing:
                return
            raise RuntimeError("the driver's event stream ended")
        except asyncio.CancelledError:
            raise
        except DriverConfigError as exc:
            device.error = str(exc)
            log.exception("reader_config_error", error=str(exc))
            return  # reconnecting cannot help; the other readers carry on
        except Exception as exc:
            device.restarts += 1
            delay = backoff.delay(attempt)
            attempt += 1
            log.exception("reader_task_failed", error=repr(exc), retry_in_s=round(delay, 2))
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(stop.wait(), timeout=delay)


def device_status(device: Device) -> dict[str, Any]:
    """One device as ``tagsweep status`` shows it."""
    c = device.driver.counters
    return {
        "name": device.name,
        "kind": device.kind,
        "url": device.driver.url.raw,
        "role": device.role.role,
        "location": device.role.location,
        "state": device.driver.state.value,
        "reads": c.reads,
        "reconnects": c.reconnects,
        "decode_errors": c.decode_errors,
        "restarts": device.restarts,
        "last_event_us": device.driver.last_event_us,
        "last_error": device.error or device.driver.last_error,
    }
