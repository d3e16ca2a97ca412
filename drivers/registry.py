"""Driver registry: URL scheme → driver class, loaded lazily.

Importing tagsweep never imports a vendor library: the built-in table maps a scheme to
``"module:Class"`` and the module is imported on first use. Other distributions add
drivers through the ``tagsweep.drivers`` entry-point group (``scheme = "module:Class"``);
that is also how the in-process ``sim://`` driver of the simulators registers itself,
so production code never imports the simulators.
"""

from __future__ import annotations

import importlib
from importlib.metadata import entry_points
from typing import Any

from tagsweep.drivers.base import Driver, DriverConfigError, DriverUrl

_BUILTIN: dict[str, str] = {
    "llrp": "tagsweep.drivers.llrp:LlrpDriver",
    "llrps": "tagsweep.drivers.llrp:LlrpDriver",  # LLRP over TLS
    "serial": "tagsweep.drivers.barcode:BarcodeDriver",
    "socket": "tagsweep.drivers.barcode:BarcodeDriver",
    "rfc2217": "tagsweep.drivers.barcode:BarcodeDriver",
}

ENTRY_POINT_GROUP = "tagsweep.drivers"


def known_schemes() -> dict[str, str]:
    """Every scheme with the ``module:Class`` that serves it (entry points override)."""
    table = dict(_BUILTIN)
    for ep in entry_points(group=ENTRY_POINT_GROUP):
        table[ep.name] = ep.value
    return table


def driver_class(scheme: str) -> type[Driver]:
    """The driver class for a URL scheme; DriverConfigError if none is registered."""
    table = known_schemes()
    target = table.get(scheme.lower())
    if target is None:
        raise DriverConfigError(
            f"no driver for scheme {scheme!r}; known: {', '.join(sorted(table))}"
        )
    module_name, _, class_name = target.partition(":")
    try:
        module = importlib.import_module(module_name)
    except ImportError as exc:
        raise DriverConfigError(
            f"driver for {scheme!r} ({target}) cannot be loaded: {exc}"
        ) from exc
    cls = getattr(module, class_name, None)
    if not (isinstance(cls, type) and issubclass(cls, Driver)):
        raise DriverConfigError(f"{target} is not a tagsweep Driver")
    return cls


def open_driver(url: str, **kwargs: Any) -> Driver:
    """Create the driver for ``url`` (not yet connected: iterate it to connect)."""
    return driver_class(DriverUrl.parse(url).scheme)(url, **kwargs)
