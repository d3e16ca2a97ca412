"""Reader and scanner drivers, opened from URLs (``llrp://``, ``serial://``, ``sim://``…).

Public surface: :func:`open_driver`, :func:`driver_class`, :class:`Driver`,
:class:`DriverState`, :class:`DriverError`, :class:`DriverConfigError`, :class:`Backoff`.
"""

from tagsweep.drivers.base import (
    Backoff,
    Driver,
    DriverConfigError,
    DriverCounters,
    DriverError,
    DriverEvent,
    DriverState,
    DriverUrl,
)
from tagsweep.drivers.registry import driver_class, known_schemes, open_driver

__all__ = [
    "Backoff",
    "Driver",
    "DriverConfigError",
    "DriverCounters",
    "DriverError",
    "DriverEvent",
    "DriverState",
    "DriverUrl",
    "driver_class",
    "known_schemes",
    "open_driver",
]
