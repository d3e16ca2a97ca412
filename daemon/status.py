"""The gateway's own counters and the JSON picture ``tagsweep status`` shows.

Per-device counters live in the drivers; :class:`GatewayCounters` holds the gateway's
(reads folded in, sightings, store writes, sessions, refused control requests).
:func:`gateway_status` reads only state that is safe to read on the event loop at any
time: dedup figures come from the read pipeline's copy of the open sightings, never from
the dedup state a worker thread may be holding.
"""

from __future__ import annotations

import os
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tagsweep import __version__
from tagsweep.daemon.devices import device_status
from tagsweep.daemon.sessions import session_to_json
from tagsweep.domain import now_us

if TYPE_CHECKING:
    from tagsweep.daemon.supervisor import Gateway


@dataclass(slots=True)
class GatewayCounters:
    """Monotonic counters of the gateway itself (per-device ones live in the drivers)."""

    reads: int = 0
    scans: int = 0
    scans_unrecognised: int = 0
    sightings_opened: int = 0
    sightings_closed: int = 0
    dedup_flushes: int = 0
    store_writes: int = 0
    store_write_errors: int = 0
    sink_errors: int = 0
    sessions_started: int = 0
    sessions_closed: int = 0
    control_errors: int = 0
    by_reader: dict[str, int] = field(default_factory=dict)
    #: reads not counted into the open session, by reason (no_session: none was open;
    #: stamped_before_session / stamped_in_future: their time is outside its window)
    reads_outside_session: dict[str, int] = field(default_factory=dict)


def gateway_status(gateway: Gateway) -> dict[str, Any]:
    """A JSON-able picture of the gateway (``tagsweep status``)."""
    cfg = gateway.config
    store = gateway.store
    pipeline = gateway.pipeline
    session = gateway.session
    gc = gateway.counters
    return {
        "gateway": cfg.gateway.id,
        "site": cfg.gateway.site,
        "version": __version__,
        "pid": os.getpid(),
        "uptime_s": round((now_us() - gateway.started_us) / 1e6, 1),
        "devices": [device_status(d) for d in gateway.devices],
        "session": session_to_json(session) if session else None,
        "dedup": {
            "window_s": cfg.dedup.window_s,
            "open_sightings": pipeline.open_count,
            "pending_reads": pipeline.pending_count,
        },
        "store": {
            "path": str(cfg.store.path),
            "session_dir": str(cfg.store.session_dir),
            "committed_sightings": (store.committed_closed + store.committed_open) if store else 0,
            "committed_closed_sightings": store.committed_closed if store else 0,
            "committed_reads": store.committed_reads if store else 0,
            "write_error": pipeline.write_error,
            "problem": pipeline.store_problem,
        },
        "counters": {
            "reads": gc.reads,
            "scans": gc.scans,
            "scans_unrecognised": gc.scans_unrecognised,
            "sightings_opened": gc.sightings_opened,
            "sightings_closed": gc.sightings_closed,
            "store_writes": gc.store_writes,
            "store_write_errors": gc.store_write_errors,
            "sink_errors": gc.sink_errors,
            "sessions_started": gc.sessions_started,
            "sessions_closed": gc.sessions_closed,
            "control_errors": gc.control_errors,
            "reads_outside_session": dict(gc.reads_outside_session),
        },
    }
