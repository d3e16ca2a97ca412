"""``tagsweep demo``: the whole story on one machine, with no hardware and no broker.

A simulated data centre (the world model) is counted by the *real* gateway: the
handheld and a door portal are LLRP simulators on loopback TCP, the barcode scanner is
the scanner simulator on a TCP socket, and all three replay the world on one shared
clock, ``speed`` times faster than real time. The gateway (in process: the same
:class:`~tagsweep.daemon.supervisor.Gateway` that ``tagsweep run`` starts) runs a
walk-through count session whose location context comes from the scanned rack labels,
while people carry laptops through the storage-room door. Stopping the session writes
the session file. The systems of record for the *same* world are then generated with
injected variances (:mod:`tagsweep.simulators.world_exports`), frozen, reconciled
against the session file and a paper spot check, and every variance opens a case.

Why it lives in ``simulators/``: it composes simulators, daemon and engine, and only
the simulators package may import all three (production code never imports the
simulators). Everything is seeded, so two runs with the same options find the same
assets; only wall-clock timestamps and ids differ.

The summary is scored against the world's truth (what the readers could physically
see, where every asset really is, which portal passes really happened) and against the
exports' answer key, so the demo shows how right the system is, not only what it says.

The parts: :mod:`.scenario` (the options, the world's shape, what the count can
physically find), :mod:`.count` (the real gateway against the simulators for one count
session), :mod:`.case_keys` (the throwaway key that signs the demo's case log),
:mod:`.netbox` (the optional NetBox register), :mod:`.run` (the whole demo, step by step)
and :mod:`.summary` (what happened, and its printed summary). Import them from here.
"""

from tagsweep.simulators.demo.count import broker_answers, gateway_config
from tagsweep.simulators.demo.run import run_demo
from tagsweep.simulators.demo.scenario import (
    DEFAULT_SPEED,
    STORAGE_ZONE,
    DemoOptions,
    found_truth,
    layout,
    storage_tags,
)
from tagsweep.simulators.demo.summary import DemoResult, print_summary

__all__ = [
    "DEFAULT_SPEED",
    "STORAGE_ZONE",
    "DemoOptions",
    "DemoResult",
    "broker_answers",
    "found_truth",
    "gateway_config",
    "layout",
    "print_summary",
    "run_demo",
    "storage_tags",
]
