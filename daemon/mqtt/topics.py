"""MQTT topics and the gateway's status payload.

Topic layout: ``<prefix>/<site>/<gateway>/<kind>`` (``kind`` is an
:class:`~tagsweep.daemon.events.EventKind` value, or ``status`` for the retained
online/offline topic). Event payloads are the events' own JSON
(:meth:`~tagsweep.daemon.events.GatewayEvent.to_json`); the status payload is here.
"""

from __future__ import annotations

import json
from typing import Any

from tagsweep import __version__
from tagsweep.daemon.events import SCHEMA_VERSION
from tagsweep.domain import now_us


def event_topic(prefix: str, site: str, gateway: str, kind: str) -> str:
    """``tagsweep/DC1/gw-01/sighting_opened``: one subtree per gateway, one leaf per kind."""
    return f"{prefix}/{site}/{gateway}/{kind}"


def status_payload(state: str, *, gateway: str, site: str) -> bytes:
    """The retained status message: ``online`` (with the time) or ``offline``."""
    body: dict[str, Any] = {
        "schema": SCHEMA_VERSION,
        "kind": "status",
        "state": state,
        "gateway": gateway,
        "site": site,
        "version": __version__,
    }
    if state == "online":
        body["ts_us"] = now_us()
    return json.dumps(body, separators=(",", ":"), sort_keys=True).encode()
