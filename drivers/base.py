"""The driver base: a reader or scanner opened from a URL, read as an async iterator.

Shaped like python-can's ``BusABC``: the base owns what every driver needs once —
the connect/receive/reconnect loop with capped, jittered exponential backoff, the
reader state model, counters for metrics, and shutdown — and a subclass implements
three small hooks:

* :meth:`Driver._connect` opens the device (raise :class:`DriverError` on failure);
* :meth:`Driver._receive` yields events until the device goes away (raise
  :class:`DriverError` to ask for a reconnect, return to end the stream);
* :meth:`Driver._disconnect` releases it (must be safe to call more than once).

Events are :data:`~tagsweep.domain.ReadBatch` arrays (RFID) or
:class:`~tagsweep.domain.BarcodeScan` objects (scanners).
"""

from __future__ import annotations

import asyncio
import contextlib
import enum
import random
from abc import ABC, abstractmethod
from collections.abc import AsyncIterator, Callable, Mapping
from dataclasses import dataclass, field
from types import TracebackType
from typing import Any, ClassVar, Self
from urllib.parse import parse_qs, urlsplit

from tagsweep.domain import BarcodeScan, ReadBatch, now_us
from tagsweep.logs import get_logger

DriverEvent = ReadBatch | BarcodeScan


class DriverState(enum.StrEnum):
    """Reader state as shown in metrics, MQTT and ``tagsweep status``."""

    STOPPED = "stopped"  # not started, or closed on purpose
    CONNECTING = "connecting"
    INVENTORYING = "inventorying"  # connected and delivering (scanners: ready)
    DEGRADED = "degraded"  # connected but something is wrong (errors, missing keepalives)
    DOWN = "down"  # lost; waiting to reconnect


class DriverError(Exception):
    """A device problem the base recovers from by reconnecting."""


class DriverConfigError(ValueError):
    """The URL or options are wrong; reconnecting would not help."""


@dataclass(slots=True)
class DriverCounters:
    """Monotonic counters a driver keeps for metrics (``*_total`` in Prometheus)."""

    reads: int = 0  # tag reports delivered (RFID) or scans delivered (barcode)
    batches: int = 0
    reconnects: int = 0
    decode_errors: int = 0  # frames or lines that could not be decoded
    faults: dict[str, int] = field(default_factory=dict)  # by kind: watchdog, thread, ...
    #: well-formed vendor parameters in tag reports that nothing here uses (an Impinj
    #: reader set to report TID or GPS, say): skipped, and not a fault
    skipped_parameters: int = 0
    #: a gauge, not a counter: seconds added to the reader's own UTC stamps on the current
    #: connection because its clock is off (0 when it is right; None: no reader clock)
    clock_offset_s: float | None = None

    def fault(self, kind: str) -> None:
        self.faults[kind] = self.faults.get(kind, 0) + 1


@dataclass(frozen=True, slots=True)
class Backoff:
    """Capped exponential backoff with full jitter (AWS architecture blog style)."""

    initial_s: float = 0.2
    cap_s: float = 30.0
    factor: float = 2.0

    def delay(self, attempt: int, rng: random.Random | None = None) -> float:
        ceiling = min(self.cap_s, self.initial_s * self.factor ** max(attempt, 0))
        return (rng or random).uniform(ceiling / 2, ceiling)


@dataclass(frozen=True, slots=True)
class DriverUrl:
    """A parsed driver URL: ``scheme://host:port/path?key=value&...``."""

    raw: str
    scheme: str
    host: str
    port: int | None
    path: str
    query: Mapping[str, str]

    @classmethod
    def parse(cls, url: str) -> DriverUrl:
        parts = urlsplit(url)
        if not parts.scheme:
            raise DriverConfigError(f"driver URL {url!r} has no scheme (e.g. llrp://)")
        query: dict[str, str] = {}
        for key, values in parse_qs(parts.query, keep_blank_values=True).items():
            query[key] = values[-1]
        try:
            port = parts.port
        except ValueError as exc:
            raise DriverConfigError(f"driver URL {url!r}: {exc}") from None
        return cls(url, parts.scheme.lower(), parts.hostname or "", port, parts.path, query)

    def option(self, key: str, default: str | None = None) -> str | None:
        return self.query.get(key, default)

    def float_option(self, key: str, default: float) -> float:
        value = self.query.get(key)
        if value is None:
            return default
        try:
            return float(value)
        except ValueError:
            raise DriverConfigError(f"{self.raw}: option {key}={value!r} is not a number") from None

    def int_list_option(self, key: str) -> tuple[int, ...]:
        value = self.query.get(key, "")
        try:
            return tuple(int(v) for v in value.split(",") if v.strip())
        except ValueError:
            raise DriverConfigError(
                f"{self.raw}: option {key}={value!r} must be comma-separated integers"
            ) from None


StateListener = Callable[["Driver", DriverState, DriverState], None]


class Driver(ABC):
    """Base of every reader and scanner driver; iterate it to receive events."""

    #: URL schemes this driver serves (informational; the registry maps schemes).
    schemes: ClassVar[tuple[str, ...]] = ()
    #: What :meth:`_receive` yields, for the contract tests.
    kind: ClassVar[str] = "rfid"  # or "barcode"

    def __init__(
        self,
        url: str,
        *,
        name: str = "reader",
        reader_id: int = 0,
        backoff: Backoff | None = None,
        options: Mapping[str, Any] | None = None,
    ) -> None:
        self.url = DriverUrl.parse(url)
        self.name = name
        self.reader_id = reader_id
        self.options: Mapping[str, Any] = dict(options or {})
        self.backoff = backoff or Backoff()
        self.counters = DriverCounters()
        self.last_event_us: int | None = None
        self.last_error: str | None = None
        self._state = DriverState.STOPPED
        self._listeners: list[StateListener] = []
        self._closing = asyncio.Event()
        self.log = get_logger("driver", reader=name)

    # -- state -------------------------------------------------------------------------
    @property
    def state(self) -> DriverState:
        return self._state

    def add_state_listener(self, listener: StateListener) -> None:
        self._listeners.append(listener)

    def _set_state(self, state: DriverState, reason: str = "") -> None:
        old, self._state = self._state, state
        if old is not state:
            self.log.info("reader_state", state=state.value, previous=old.value, reason=reason)
            for listener in self._listeners:
                listener(self, old, state)

    # -- hooks ---------------------------------------------------------------------------
    @abstractmethod
    async def _connect(self) -> None:
        """Open the device; raise DriverError if it cannot be reached."""

    @abstractmethod
    def _receive(self) -> AsyncIterator[DriverEvent]:
        """Yield events until the device is lost (raise DriverError) or closed (return)."""

    @abstractmethod
    async def _disconnect(self) -> None:
        """Release the device; idempotent, never raises for an already-closed device."""

    # -- template ------------------------------------------------------------------------
    async def events(self) -> AsyncIterator[DriverEvent]:
        """Connect, yield events, reconnect with backoff on failure, until :meth:`close`."""
        attempt = 0
        while not self._closing.is_set():
            self._set_state(DriverState.CONNECTING)
            try:
                await self._connect()
                self._set_state(DriverState.INVENTORYING)
                async for event in self._receive():
                    attempt = 0
                    self.last_event_us = now_us()
                    yield event
                    if self._closing.is_set():
                        break
                if self._closing.is_set():
                    break
                raise DriverError("device ended the stream")
            except DriverError as exc:
                self.last_error = str(exc)
                self.log.warning("reader_lost", error=str(exc), attempt=attempt)
            finally:
                await self._disconnect()
            if self._closing.is_set():
                break
            self._set_state(DriverState.DOWN, self.last_error or "")
            self.counters.reconnects += 1
            delay = self.backoff.delay(attempt)
            attempt += 1
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._closing.wait(), timeout=delay)
        self._set_state(DriverState.STOPPED, "closed")

    def __aiter__(self) -> AsyncIterator[DriverEvent]:
        return self.events()

    async def close(self) -> None:
        """Ask the driver to stop; the iterator ends after the device is released."""
        self._closing.set()
        await self._disconnect()

    @property
    def closing(self) -> bool:
        return self._closing.is_set()

    async def __aenter__(self) -> Self:
        return self

    async def __aexit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        await self.close()
