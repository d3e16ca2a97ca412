"""``tagsweep netbox push``: write a count's results back to NetBox.

The plan (:mod:`tagsweep.engine.netbox_plan`) says what differs; this applies it:
custom fields by bulk PATCH of ``/api/dcim/devices/``, journal entries and audit trails
by bulk POST, in chunks sent concurrently (bounded by the client). A chunk NetBox
refuses is retried device by device, so one bad device does not fail its neighbours
and the report names it; a chunk that gets no answer (NetBox down) fails its devices
with that reason. Accepted corrections are one PATCH each, then their journal entry.
A re-run plans only what is still missing, so it finishes what a failed push left.
"""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, Final

from tagsweep.engine.netbox_plan import (
    AUDIT_SOURCE,
    COUNT_FIELDS,
    DeviceChange,
    PushPlan,
    RunFacts,
    build_plan,
)
from tagsweep.netbox.client import NetBoxAuthError, NetBoxClient, NetBoxError, NetBoxNotFoundError

CHUNK: Final = 100

#: Called after each request that changed something: (what, device ids).
Progress = Callable[[str, Sequence[int]], Awaitable[None] | None]


@dataclass(slots=True)
class PushResult:
    """What a push did, and per device what failed."""

    custom_fields_created: list[str] = field(default_factory=list)
    devices_updated: int = 0
    journal_entries: int = 0
    corrections: int = 0
    audit_trails: int = 0
    failed: dict[int, list[str]] = field(default_factory=dict)  # device id → reasons

    def fail(self, device_id: int, reason: str) -> None:
        self.failed.setdefault(device_id, []).append(reason)


async def setup_netbox(nb: NetBoxClient, plan: PushPlan, result: PushResult) -> None:
    """Create the custom fields (and the audit trail source) the push needs."""
    for name in plan.missing_fields:
        spec = COUNT_FIELDS[name]
        await nb.send(
            "POST",
            "extras/custom-fields/",
            {
                "name": name,
                "object_types": ["dcim.device"],
                "type": spec["type"],
                "label": spec["label"],
                "description": spec["description"],
                "required": False,
                "ui_editable": "yes",
            },
        )
        result.custom_fields_created.append(name)
    plan.missing_fields = []


async def _audit_source(nb: NetBoxClient) -> int:
    found = await nb.get("plugins/inventory/audit-trail-sources/", [("slug", AUDIT_SOURCE["slug"])])
    if found["results"]:
        return int(found["results"][0]["id"])
    created = await nb.send("POST", "plugins/inventory/audit-trail-sources/", dict(AUDIT_SOURCE))
    return int(created["id"])


def _chunks(items: Sequence[Any], size: int) -> list[Sequence[Any]]:
    return [items[i : i + size] for i in range(0, len(items), size)]


@dataclass(frozen=True, slots=True)
class _Sender:
    """How bulk requests go out: the client, where results go, progress, chunk size."""

    nb: NetBoxClient
    result: PushResult
    progress: Progress | None
    chunk: int


async def _bulk(
    send: _Sender, method: str, path: str, items: Sequence[tuple[int, dict[str, Any]]], what: str
) -> int:
    """Send ``items`` (device id, body) in bulk chunks; isolate refused devices."""

    nb, result, progress = send.nb, send.result, send.progress

    async def one_chunk(part: Sequence[tuple[int, dict[str, Any]]]) -> int:
        ids = [i for i, _ in part]
        try:
            await nb.send(method, path, [body for _, body in part])
        except NetBoxAuthError:
            raise
        except NetBoxError as exc:
            if exc.status in (0, 429) or exc.status >= 500:
                for ident in ids:
                    result.fail(ident, f"{what}: {exc}")
                return 0
            if len(part) == 1:
                result.fail(ids[0], f"{what}: {exc}")
                return 0
            done = 0
            for single in part:  # find the device NetBox refuses
                done += await one_chunk([single])
            return done
        if progress is not None:
            maybe = progress(what, ids)
            if maybe is not None:
                await maybe
        return len(part)

    counts = await asyncio.gather(*(one_chunk(p) for p in _chunks(items, send.chunk)))
    return sum(counts)


async def apply_plan(
    nb: NetBoxClient,
    plan: PushPlan,
    *,
    progress: Progress | None = None,
    chunk: int = CHUNK,
) -> PushResult:
    """Apply ``plan``; 401/403 stop the push (nothing else would work either)."""
    result = PushResult()
    send = _Sender(nb, result, progress, chunk)
    if plan.missing_fields:
        await setup_netbox(nb, plan, result)
    changes = plan.changes
    updates = [
        (d.device_id, {"id": d.device_id, "custom_fields": d.custom_fields})
        for d in changes
        if d.custom_fields
    ]
    result.devices_updated = await _bulk(send, "PATCH", "dcim/devices/", updates, "custom fields")
    entries = [
        (d.device_id, _journal_body(d.device_id, j.kind, j.comments))
        for d in changes
        for j in d.journal
    ]
    result.journal_entries = await _bulk(
        send, "POST", "extras/journal-entries/", entries, "journal"
    )
    await asyncio.gather(*(_correct(nb, d, result, progress) for d in changes if d.corrections))
    trails = [d for d in changes if d.audit_trail]
    if trails and plan.plugin:
        try:
            source = await _audit_source(nb)
        except NetBoxAuthError:
            raise
        except NetBoxError as exc:
            for d in trails:
                result.fail(d.device_id, f"audit trail: {exc}")
        else:
            bodies = [
                (d.device_id, {"object_type": "dcim.device", "object_id": d.device_id,
                               "source": source})
                for d in trails
            ]  # fmt: skip
            result.audit_trails = await _bulk(
                send, "POST", "plugins/inventory/audit-trails/", bodies, "audit trail"
            )
    return result


def _journal_body(device_id: int, kind: str, comments: str) -> dict[str, Any]:
    return {
        "assigned_object_type": "dcim.device",
        "assigned_object_id": device_id,
        "kind": kind,
        "comments": comments,
    }


async def _correct(
    nb: NetBoxClient, change: DeviceChange, result: PushResult, progress: Progress | None
) -> None:
    for c in change.corrections:
        try:
            if c.patch:
                await nb.send("PATCH", f"dcim/devices/{change.device_id}/", c.patch)
            if c.journal is not None:
                await nb.send(
                    "POST",
                    "extras/journal-entries/",
                    _journal_body(change.device_id, c.journal.kind, c.journal.comments),
                )
        except NetBoxAuthError:
            raise
        except NetBoxNotFoundError as exc:
            result.fail(change.device_id, f"correction {c.case_id} {c.field}: {exc}")
            return
        except NetBoxError as exc:
            result.fail(change.device_id, f"correction {c.case_id} {c.field}: {exc}")
            continue
        result.corrections += 1
        if progress is not None:
            maybe = progress("correction", [change.device_id])
            if maybe is not None:
                await maybe


async def push(
    url: str,
    token: str,
    facts: RunFacts,
    corrections: Sequence[Mapping[str, Any]],
    *,
    dry_run: bool = False,
    setup: bool = False,
    concurrency: int = 4,
    progress: Progress | None = None,
    chunk: int = CHUNK,
    retries: int = 4,
) -> tuple[PushPlan, PushResult | None]:
    """Plan the push of a run; apply it unless ``dry_run``."""
    async with NetBoxClient(url, token, concurrency=concurrency, retries=retries) as nb:
        plan = await build_plan(nb, facts, corrections, setup=setup or dry_run)
        if dry_run:
            return plan, None
        return plan, await apply_plan(nb, plan, progress=progress, chunk=chunk)
