"""What ``tagsweep netbox push`` would change in NetBox, worked out before touching it.

A run folder says which register assets were counted where (``matches.parquet``) and
which variances were found (``variances.parquet``); the case store says which
corrections resolved cases accepted. Compared with NetBox's current devices, journal
entries and audit trails, that gives per device:

* the custom fields ``last_counted`` (the run's date) and ``last_count_location``;
* one journal entry per variance (kind ``warning`` for P1/P2, ``info`` otherwise), its
  comments carrying the type, the evidence and ``tagsweep run <run> variance <id>``;
* each accepted correction (location, status, serial, asset tag) as a PATCH, with a
  journal entry ``tagsweep case <case> correction <field>``;
* with the netbox-inventory plugin, an audit trail from the source ``tagsweep``.

Everything already in NetBox is left out, so a second push of the same run plans
nothing: the plan is also the ``--dry-run`` diff.
"""

from __future__ import annotations

import json
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Final

import pyarrow.parquet as pq

from tagsweep.netbox.fields import LIFECYCLE_TO_STATUS, location_path, status_value

#: The custom fields a push keeps on each counted device (created by ``--setup``).
COUNT_FIELDS: Final = {
    "last_counted": {
        "type": "date",
        "label": "Last counted",
        "description": "Date of the last physical count that found this device (tagsweep)",
    },
    "last_count_location": {
        "type": "text",
        "label": "Last count location",
        "description": "Where the last physical count found this device (tagsweep)",
    },
}
AUDIT_SOURCE: Final = {"name": "tagsweep", "slug": "tagsweep"}
NETBOX_STATUSES: Final = frozenset(
    {"offline", "active", "planned", "staged", "failed", "inventory", "decommissioning"}
)
WARNING_PRIORITIES: Final = frozenset({"P1", "P2"})
_VARIANCE_MARK = re.compile(r"tagsweep run (\S+) variance (\S+)")
_CASE_MARK = re.compile(r"tagsweep case (\S+) correction (\S+)")


class PushError(Exception):
    """The run cannot be pushed (not a run folder, NetBox not set up for it)."""


@dataclass(frozen=True, slots=True)
class Journal:
    """One journal entry to add to a device."""

    kind: str
    comments: str
    marker: str


@dataclass(slots=True)
class Correction:
    """An accepted correction of a resolved case, as a device PATCH."""

    case_id: str
    field: str
    before: str | None
    after: str
    patch: dict[str, Any]
    journal: Journal | None


@dataclass(slots=True)
class DeviceChange:
    """Everything a push changes on one device."""

    device_id: int
    device: str
    asset_key: str
    fields: dict[str, tuple[Any, Any]] = field(default_factory=dict)  # shown in the diff
    custom_fields: dict[str, str] = field(default_factory=dict)
    journal: list[Journal] = field(default_factory=list)
    corrections: list[Correction] = field(default_factory=list)
    audit_trail: bool = False

    @property
    def empty(self) -> bool:
        return not (self.custom_fields or self.journal or self.corrections or self.audit_trail)


@dataclass(slots=True)
class PushPlan:
    run_id: str
    as_of: str
    missing_fields: list[str]
    plugin: bool
    devices: list[DeviceChange]
    not_in_netbox: list[str] = field(default_factory=list)  # counted, without a device
    no_device: list[str] = field(default_factory=list)  # variances without a device
    not_applied: list[str] = field(default_factory=list)  # corrections NetBox cannot take

    @property
    def changes(self) -> list[DeviceChange]:
        return [d for d in self.devices if not d.empty]


@dataclass(frozen=True, slots=True)
class RunFacts:
    """What a push reads from a run folder."""

    run_id: str
    as_of: str
    register: dict[str, dict[str, Any]]  # asset_key → register row
    counted: dict[str, str | None]  # asset_key → found location
    variances: list[dict[str, Any]]


def read_run_facts(run_dir: Path) -> RunFacts:
    try:
        manifest = json.loads((run_dir / "manifest.json").read_text(encoding="utf-8"))
        register = pq.read_table(run_dir / "register.parquet").to_pylist()
        matches = pq.read_table(run_dir / "matches.parquet").to_pylist()
        variances = pq.read_table(run_dir / "variances.parquet").to_pylist()
    except (OSError, ValueError) as exc:
        raise PushError(
            f"{run_dir}: not a run folder of `tagsweep reconcile run` ({exc})"
        ) from None
    counted: dict[str, str | None] = {}
    for row in sorted(matches, key=lambda r: (str(r.get("asset_key")), str(r.get("obs_key")))):
        key = row.get("asset_key")
        if key is not None and key not in counted:
            counted[str(key)] = row.get("found_location")
    return RunFacts(
        run_id=str(manifest["run_id"]),
        as_of=str(manifest["as_of"])[:10],
        register={str(r["asset_key"]): r for r in register if r.get("asset_key") is not None},
        counted=counted,
        variances=variances,
    )


def _key(value: Any) -> str | None:
    text = re.sub(r"\s+", "", str(value)).upper() if value is not None else ""
    return text or None


class DeviceIndex:
    """NetBox devices by asset tag and by serial (the register's identities)."""

    def __init__(self, devices: Iterable[Mapping[str, Any]]) -> None:
        self.by_id: dict[int, Mapping[str, Any]] = {}
        self.by_tag: dict[str, int] = {}
        self.by_serial: dict[str, list[int]] = {}
        for device in devices:
            ident = int(device["id"])
            self.by_id[ident] = device
            tag = _key(device.get("asset_tag"))
            if tag:
                self.by_tag[tag] = ident
            serial = _key(device.get("serial"))
            if serial:
                self.by_serial.setdefault(serial, []).append(ident)

    def find(self, asset_key: str, row: Mapping[str, Any] | None) -> int | None:
        for tag in (_key(row.get("asset_tag")) if row else None, _key(asset_key)):
            if tag and tag in self.by_tag:
                return self.by_tag[tag]
        serial = _key(row.get("serial")) if row else None
        if serial and len(self.by_serial.get(serial, [])) == 1:
            return self.by_serial[serial][0]
        return None


def variance_journal(run_id: str, v: Mapping[str, Any]) -> Journal:
    priority = str(v.get("priority") or "")
    marker = f"tagsweep run {run_id} variance {v['variance_id']}"
    lines = [f"**tagsweep count: {v['variance_type']}** ({priority or 'no priority'})", ""]
    if v.get("detail"):
        lines += [str(v["detail"]), ""]
    for label, name in (
        ("expected", "expected"),
        ("found", "found"),
        ("expected location", "expected_location"),
        ("found location", "found_location"),
        ("source", "source"),
        ("count session", "session_id"),
        ("due", "sla_due"),
    ):
        if v.get(name) not in (None, ""):
            lines.append(f"- {label}: {v[name]}")
    if v.get("evidence"):
        lines.append(f"- evidence: `{v['evidence']}`")
    lines += ["", marker]
    kind = "warning" if priority in WARNING_PRIORITIES else "info"
    return Journal(kind=kind, comments="\n".join(lines), marker=marker)


async def resolve_location(nb: Any, path: str) -> dict[str, Any] | None:
    """``{"site", "location", "rack"}`` ids of ``Site[/Location...][/Rack]``, or None."""
    parts = [p for p in path.split("/") if p]
    if not parts:
        return None
    sites = (await nb.get("dcim/sites/", [("name", parts[0])]))["results"]
    if len(sites) != 1:
        return None
    site = int(sites[0]["id"])
    out: dict[str, Any] = {"site": site, "location": None, "rack": None}
    rest = parts[1:]
    if rest:
        racks = (await nb.get("dcim/racks/", [("site_id", str(site)), ("name", rest[-1])]))[
            "results"
        ]
        if len(racks) == 1:
            out["rack"] = int(racks[0]["id"])
            loc = racks[0].get("location")
            out["location"] = int(loc["id"]) if loc else None
            rest = rest[:-1]
    if rest:
        locations = (await nb.get("dcim/locations/", [("site_id", str(site)), ("name", rest[-1])]))[
            "results"
        ]
        if len(locations) != 1:
            return None
        if out["location"] is None:
            out["location"] = int(locations[0]["id"])
    return out


async def correction_patch(
    nb: Any, device: Mapping[str, Any], name: str, after: str
) -> tuple[dict[str, Any] | None, Any, str | None]:
    """(PATCH body or None if already so, current value, why it cannot be applied)."""
    if name in ("serial", "asset_tag"):
        current = device.get(name) or None
        return (None if current == after else {name: after}), current, None
    if name == "status":
        target = after if after in NETBOX_STATUSES else LIFECYCLE_TO_STATUS.get(after)
        current = status_value(device)
        if target is None:
            return None, current, f"NetBox has no device status for {after!r}"
        return (None if current == target else {"status": target}), current, None
    if name == "location":
        current = location_path(device)
        if current == after:
            return None, current, None
        ids = await resolve_location(nb, after)
        if ids is None:
            return None, current, f"no NetBox site/location/rack named {after!r}"
        rack = device.get("rack")
        if rack is None or ids["rack"] != rack.get("id"):
            ids["position"] = None  # the old rack unit means nothing in another rack
            if ids["rack"] is None:
                ids["face"] = ""
        return ids, current, None
    return None, None, f"tagsweep does not change a device's {name} in NetBox"


async def build_plan(
    nb: Any,
    facts: RunFacts,
    corrections: Sequence[Mapping[str, Any]],
    *,
    setup: bool,
) -> PushPlan:
    """Compare the run (and the accepted corrections) with NetBox as it is now."""
    present = {
        cf["name"]
        for cf in await nb.all("extras/custom-fields/", [("name", n) for n in COUNT_FIELDS])
    }
    missing = [n for n in COUNT_FIELDS if n not in present]
    if missing and not setup:
        raise PushError(
            f"NetBox has no custom field(s) {', '.join(missing)} on devices: push once with "
            "--setup to create them (needs permission to add custom fields)"
        )
    plugin = await _plugin_installed(nb)
    index = DeviceIndex(await nb.all("dcim/devices/"))
    journals = await nb.all("extras/journal-entries/", [("q", f"tagsweep run {facts.run_id}")])
    posted = {
        (int(j["assigned_object_id"]), m.group(2))
        for j in journals
        if (m := _VARIANCE_MARK.search(str(j.get("comments", "")))) and m.group(1) == facts.run_id
    }
    audited: set[int] = set()
    if plugin:
        trails = await nb.all(
            "plugins/inventory/audit-trails/",
            [("source", AUDIT_SOURCE["slug"]), ("object_type", "dcim.device"),
             ("created__gte", facts.as_of)],
        )  # fmt: skip
        audited = {int(t["object_id"]) for t in trails}
    plan = PushPlan(facts.run_id, facts.as_of, missing, plugin, [])
    changes: dict[int, DeviceChange] = {}

    def change_for(asset_key: str) -> DeviceChange | None:
        ident = index.find(asset_key, facts.register.get(asset_key))
        if ident is None:
            return None
        if ident not in changes:
            device = index.by_id[ident]
            changes[ident] = DeviceChange(ident, str(device.get("name") or ident), asset_key)
        return changes[ident]

    for asset_key, found in sorted(facts.counted.items()):
        change = change_for(asset_key)
        if change is None:
            plan.not_in_netbox.append(asset_key)
            continue
        current = index.by_id[change.device_id].get("custom_fields") or {}
        wanted = {"last_counted": facts.as_of, "last_count_location": found or ""}
        for name, value in wanted.items():
            if (current.get(name) or "") != value:
                change.custom_fields[name] = value
                change.fields[f"custom_fields.{name}"] = (current.get(name), value)
        if plugin and change.device_id not in audited:
            change.audit_trail = True
    for v in sorted(facts.variances, key=lambda r: str(r["variance_id"])):
        key = v.get("asset_key")
        change = change_for(str(key)) if key is not None else None
        if change is None:
            what = v.get("asset_tag") or v.get("serial") or v.get("epc") or key
            plan.no_device.append(f"{v['variance_type']} {what}")
            continue
        if (change.device_id, str(v["variance_id"])) not in posted:
            change.journal.append(variance_journal(facts.run_id, v))
    await _plan_corrections(nb, facts, corrections, index=index, change_for=change_for, plan=plan)
    plan.devices = [changes[k] for k in sorted(changes)]
    return plan


async def _plan_corrections(
    nb: Any,
    facts: RunFacts,
    corrections: Sequence[Mapping[str, Any]],
    *,
    index: DeviceIndex,
    change_for: Any,
    plan: PushPlan,
) -> None:
    for c in corrections:
        if c.get("run_id") != facts.run_id or c.get("asset_key") is None:
            continue
        case_id, name, after = str(c["case_id"]), str(c["field"]), str(c["after"])
        change = change_for(str(c["asset_key"]))
        if change is None:
            plan.not_applied.append(f"{case_id} {name}: no NetBox device for {c['asset_key']}")
            continue
        device = index.by_id[change.device_id]
        patch, current, why = await correction_patch(nb, device, name, after)
        if why is not None:
            plan.not_applied.append(f"{case_id} {name} on {change.device}: {why}")
            continue
        marker = f"tagsweep case {case_id} correction {name}"
        existing = await nb.all("extras/journal-entries/", [("q", marker)])
        noted = any(
            (m := _CASE_MARK.search(str(j.get("comments", ""))))
            and (m.group(1), m.group(2)) == (case_id, name)
            and int(j["assigned_object_id"]) == change.device_id
            for j in existing
        )
        journal = None
        if not noted:
            journal = Journal(
                kind="info",
                comments=(
                    f"**tagsweep: {name} corrected** by case {case_id} "
                    f"({c.get('variance_type') or 'variance'}, {c.get('origin') or 'accepted'})"
                    f"\n\n- before: {current if current is not None else '(empty)'}"
                    f"\n- after: {after}\n- by: {c.get('actor') or 'unknown'} at {c.get('ts')}"
                    f"\n\n{marker} (run {facts.run_id})"
                ),
                marker=marker,
            )
        if patch is None and journal is None:
            continue
        change.corrections.append(Correction(case_id, name, current, after, patch or {}, journal))
        if patch:
            change.fields[name] = (current, after)


async def _plugin_installed(nb: Any) -> bool:
    from tagsweep.netbox.client import NetBoxNotFoundError

    try:
        await nb.get("plugins/inventory/audit-trail-sources/", [("limit", "1")])
    except NetBoxNotFoundError:
        return False
    return True


def render_plan(plan: PushPlan) -> list[str]:
    """The full diff, one line per change, as ``--dry-run`` prints it."""
    lines = [f"run {plan.run_id} counted {plan.as_of}"]
    lines += [
        f"+ custom field {name} ({COUNT_FIELDS[name]['type']}) on dcim.device"
        for name in plan.missing_fields
    ]
    for d in plan.changes:
        lines.append(f"device {d.device} (#{d.device_id}, {d.asset_key})")
        lines += [
            f"  ~ {name}: {'(empty)' if before in (None, '') else before} -> {after}"
            for name, (before, after) in d.fields.items()
        ]
        lines += [
            f"  + journal {j.kind}: {j.comments.splitlines()[0]}  [{j.marker}]" for j in d.journal
        ]
        lines += [
            f"  + journal info: {c.field} corrected by {c.case_id}"
            for c in d.corrections
            if c.journal is not None
        ]
        if d.audit_trail:
            lines.append("  + audit trail (source tagsweep)")
    lines += [
        f"! counted {key}: no NetBox device with this asset tag or serial"
        for key in plan.not_in_netbox
    ]
    lines += [f"! no NetBox device for variance {item}" for item in plan.no_device]
    lines += [f"! not applied: {item}" for item in plan.not_applied]
    return lines
