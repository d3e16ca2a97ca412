"""NetBox, live, against a real NetBox (REST API, PostgreSQL, Redis; no mocks).

The round trip: devices created through the API, frozen from the API, counted with a
count sheet, reconciled, a case resolved, pushed back, and read back through the API.
"""

from __future__ import annotations

import asyncio
import json
from pathlib import Path
from typing import Any

import pytest
from typer.testing import CliRunner

from tagsweep.cli import app
from tagsweep.engine.cases import CaseStore
from tagsweep.engine.freeze import load_snapshot
from tagsweep.engine.netbox_plan import read_run_facts
from tagsweep.engine.netbox_push import push
from tagsweep.netbox.pull import fetch_records
from tests.conftest import free_port
from tests.netbox.server import NetBoxServer
from tests.netbox.world import World, build_world, get_all

runner = CliRunner()


def cli(args: list[str], token: str, *, code: int = 0) -> str:
    result = runner.invoke(app, args, env={"NETBOX_TOKEN": token, "TAGSWEEP_CASE_STORE": ""})
    assert result.exit_code == code, result.output
    return result.output


def count_sheet(path: Path, rows: list[tuple[str, str]]) -> Path:
    path.write_text(
        "location,asset_tag\n" + "".join(f"{loc},{tag}\n" for loc, tag in rows), encoding="utf-8"
    )
    return path


def freeze_and_run(
    netbox: NetBoxServer, world: World, tmp_path: Path, counted: list[tuple[str, str]]
) -> Path:
    assert netbox.tokens is not None
    slug = world.site.removesuffix("-DC").lower()
    snap = tmp_path / "snap"
    out = cli(
        ["reconcile", "freeze", "--source", f"dcim:netbox-api={netbox.url}/?site={slug}",
         "--out", str(snap)],
        netbox.tokens.v2,
    )  # fmt: skip
    assert f"pulled {len(world.devices)} records" in out
    sheet = count_sheet(tmp_path / "sheet.csv", counted)
    run = tmp_path / "run"
    cli(
        ["reconcile", "run", "--snapshot", str(snap), "--count", str(sheet),
         "--scope", world.site, "--out", str(run)],
        netbox.tokens.v1,
    )  # fmt: skip
    return run


def where(world: World, tag: str, rack: str | None = None) -> str:
    device = world.devices[tag]
    return f"{world.site}/Room 302/{rack or device['rack']['name']}"


def devices(netbox: NetBoxServer, world: World) -> dict[str, dict[str, Any]]:
    assert netbox.tokens is not None
    slug = world.site.removesuffix("-DC").lower()
    return {
        d["asset_tag"]: d
        for d in get_all(netbox.url, netbox.tokens.v1, "dcim/devices/", [("site", slug)])
    }


def journal(netbox: NetBoxServer, world: World) -> list[dict[str, Any]]:
    assert netbox.tokens is not None
    ids = [("assigned_object_id", str(d["id"])) for d in world.devices.values()]
    return get_all(
        netbox.url,
        netbox.tokens.v1,
        "extras/journal-entries/",
        [("assigned_object_type", "dcim.device"), *ids],
    )


def test_round_trip_freeze_count_reconcile_resolve_push_read_back(
    netbox: NetBoxServer, tmp_path: Path
) -> None:
    assert netbox.tokens is not None
    world = build_world(netbox.url, netbox.tokens.v1, "RT", racks=3, devices=6)
    tags = sorted(world.devices)
    moved, missing = tags[1], tags[2]
    counted = [(where(world, t), t) for t in tags if t not in (moved, missing)]
    counted += [(where(world, moved, "R103"), moved), (where(world, tags[0]), "RT-999999")]
    run = freeze_and_run(netbox, world, tmp_path, counted)

    # the raw API answer is the frozen export, hashed like a file
    snapshot = load_snapshot(tmp_path / "snap")
    source = snapshot.source("dcim")
    assert source.preset == "netbox"
    assert source.rows == 6
    assert source.origin == f"{netbox.url}/api/dcim/devices/?site=rt"
    export = json.loads((tmp_path / "snap" / source.export_copy).read_text())
    assert {d["asset_tag"] for d in export["results"]} == set(tags)

    variances = {(v["variance_type"], v["asset_tag"]) for v in read_run_facts(run).variances}
    assert ("location_mismatch", moved) in variances
    assert ("missing", missing) in variances
    assert ("unrecorded", "RT-999999") in variances

    store = CaseStore(tmp_path / "cases", create=True)
    store.import_run(run, actor="olga")
    case = next(
        c
        for c in store.list_cases()
        if (c.variance_type, c.asset_tag) == ("location_mismatch", moved)
    )
    store.resolve(case.case_id, "resolved", actor="olga", reason="moved in change 42",
                  accept_found=True)  # fmt: skip

    push_args = ["netbox", "push", "--run", str(run), "--url", netbox.url,
                 "--store", str(tmp_path / "cases"), "--setup"]  # fmt: skip
    out = cli(push_args, netbox.tokens.v1)
    assert "pushed run" in out
    assert "1 correction(s)" in out
    assert "no NetBox device for variance unrecorded RT-999999" in out

    now = devices(netbox, world)
    facts = read_run_facts(run)
    for tag in tags:
        fields = now[tag]["custom_fields"]
        if tag == missing:
            assert fields["last_counted"] is None
            continue
        assert fields["last_counted"] == facts.as_of
        expected_at = where(world, tag, "R103" if tag == moved else None)
        assert fields["last_count_location"] == expected_at
    # the accepted correction moved the device, and its journal names the case
    assert now[moved]["rack"]["name"] == "R103"
    assert now[moved]["position"] is None
    entries = journal(netbox, world)
    by_device: dict[int, list[str]] = {}
    for entry in entries:
        by_device.setdefault(entry["assigned_object_id"], []).append(entry["comments"])
    assert any(case.case_id in c for c in by_device[now[moved]["id"]])
    assert any(
        "**tagsweep count: missing**" in c and f"tagsweep run {facts.run_id}" in c
        for c in by_device[now[missing]["id"]]
    )
    kinds = {e["kind"]["value"] for e in entries}
    assert kinds <= {"warning", "info"}
    # netbox-inventory's audit trail, source tagsweep, one per counted device
    trails = get_all(netbox.url, netbox.tokens.v1, "plugins/inventory/audit-trails/",
                     [("source", "tagsweep")])  # fmt: skip
    audited = {t["object_id"] for t in trails}
    assert {now[t]["id"] for t in tags if t != missing} <= audited
    assert now[missing]["id"] not in audited

    # idempotent: the same push again changes nothing
    again = cli(push_args, netbox.tokens.v2)
    assert "nothing to change: already pushed" in again
    assert len(journal(netbox, world)) == len(entries)
    assert len(get_all(netbox.url, netbox.tokens.v1, "plugins/inventory/audit-trails/",
                       [("source", "tagsweep")])) == len(trails)  # fmt: skip

    # the frozen snapshot reconciles the same, though NetBox has changed since
    rerun = tmp_path / "rerun"
    cli(["reconcile", "run", "--snapshot", str(tmp_path / "snap"), "--count",
         str(tmp_path / "sheet.csv"), "--scope", world.site, "--out", str(rerun)],
        netbox.tokens.v1)  # fmt: skip
    assert read_run_facts(rerun).run_id == facts.run_id


def test_dry_run_prints_the_diff_and_changes_nothing(netbox: NetBoxServer, tmp_path: Path) -> None:
    assert netbox.tokens is not None
    world = build_world(netbox.url, netbox.tokens.v1, "DR", racks=2, devices=4)
    tags = sorted(world.devices)
    run = freeze_and_run(netbox, world, tmp_path, [(where(world, t), t) for t in tags[:3]])
    before = devices(netbox, world)
    out = cli(["netbox", "push", "--run", str(run), "--url", netbox.url, "--dry-run"],
              netbox.tokens.read_only)  # fmt: skip
    as_of = read_run_facts(run).as_of
    for tag in tags[:3]:
        assert f"{before[tag]['name']} (#{before[tag]['id']}, {tag})" in out
    assert f"~ custom_fields.last_counted: (empty) -> {as_of}" in out
    assert "+ journal " in out
    assert "missing" in out
    assert "nothing was sent" in out
    assert devices(netbox, world) == before
    assert journal(netbox, world) == []


def test_token_without_write_permission_is_refused_clearly(
    netbox: NetBoxServer, tmp_path: Path
) -> None:
    assert netbox.tokens is not None
    world = build_world(netbox.url, netbox.tokens.v1, "RO", racks=1, devices=2)
    tags = sorted(world.devices)
    run = freeze_and_run(netbox, world, tmp_path, [(where(world, t), t) for t in tags])
    out = cli(["netbox", "push", "--run", str(run), "--url", netbox.url, "--setup"],
              netbox.tokens.read_only, code=3)  # fmt: skip
    assert "403 forbidden" in out
    assert "read-only" in out
    assert netbox.tokens.read_only not in out
    assert all(
        d["custom_fields"].get("last_counted") is None for d in devices(netbox, world).values()
    )


def test_unknown_token_and_wrong_url_say_what_is_wrong(
    netbox: NetBoxServer, tmp_path: Path
) -> None:
    bogus = "0123456789abcdef0123456789abcdef01234567"
    out = cli(["reconcile", "freeze", "--source", f"dcim:netbox-api={netbox.url}",
               "--out", str(tmp_path / "s1")], bogus, code=1)  # fmt: skip
    assert "NetBox does not accept this token" in out
    assert bogus not in out
    assert netbox.tokens is not None
    out = cli(["reconcile", "freeze", "--source",
               f"dcim:netbox-api={netbox.url}/api/no-such-prefix/", "--out", str(tmp_path / "s2")],
              netbox.tokens.v1, code=1)  # fmt: skip
    assert "404 not found" in out
    out = cli(["reconcile", "freeze", "--source", f"dcim:netbox-api={netbox.url}",
               "--out", str(tmp_path / "s3")], "", code=2)  # fmt: skip
    assert "--token-file" in out
    assert "NETBOX_TOKEN" in out


def test_pull_pages_and_filters_by_site_role_tenant_tag(netbox: NetBoxServer) -> None:
    assert netbox.tokens is not None
    token = netbox.tokens.v1
    world = build_world(netbox.url, token, "PG", racks=2, devices=5)

    async def label() -> None:
        from tagsweep.netbox.client import NetBoxClient

        async with NetBoxClient(netbox.url, token) as nb:
            tag = await nb.send(
                "POST", "extras/tags/", {"name": "pg-audited", "slug": "pg-audited"}
            )
            tenant = await nb.send("POST", "tenancy/tenants/", {"name": "PG Ops", "slug": "pg-ops"})
            first, second = (world.devices[t]["id"] for t in sorted(world.devices)[:2])
            await nb.send("PATCH", f"dcim/devices/{first}/",
                          {"tags": [tag["id"]], "tenant": tenant["id"]})  # fmt: skip
            await nb.send("PATCH", f"dcim/devices/{second}/", {"tags": [tag["id"]]})

    asyncio.run(label())
    records, pages, _, _ = asyncio.run(fetch_records(f"{netbox.url}/?site=pg", token, page_size=2))
    assert (len(records), pages) == (5, 3)
    assert [r["id"] for r in records] == sorted(r["id"] for r in records)
    tagged, _, _, origin = asyncio.run(
        fetch_records(f"{netbox.url}/api/dcim/devices/?site=pg&tag=pg-audited&role=server", token)
    )
    assert len(tagged) == 2
    assert origin.endswith("?site=pg&tag=pg-audited&role=server")
    tenant, *_ = asyncio.run(fetch_records(f"{netbox.url}/?site=pg&tenant=pg-ops", token))
    assert [r["asset_tag"] for r in tenant] == [sorted(world.devices)[0]]
    assert tenant[0]["tenant"]["name"] == "PG Ops"


def test_server_stopped_mid_push_reports_devices_and_a_rerun_finishes(
    netbox: NetBoxServer, tmp_path: Path
) -> None:
    assert netbox.tokens is not None
    world = build_world(netbox.url, netbox.tokens.v1, "DN", racks=3, devices=12)
    tags = sorted(world.devices)
    run = freeze_and_run(netbox, world, tmp_path, [(where(world, t), t) for t in tags])
    facts = read_run_facts(run)
    port = free_port()
    front = netbox.gunicorn(port)  # a second front on the same database, stopped mid-push
    try:
        netbox.wait_ready(port, front)
        calls: list[tuple[str, list[int]]] = []

        def stop_after_first(what: str, ids: Any) -> None:
            calls.append((what, list(ids)))
            if len(calls) == 1:
                NetBoxServer.stop_process(front)

        plan, result = asyncio.run(
            push(f"http://127.0.0.1:{port}", netbox.tokens.v1, facts, [], setup=True,
                 concurrency=1, chunk=3, progress=stop_after_first, retries=1)
        )  # fmt: skip
    finally:
        NetBoxServer.stop_process(front)
    assert result is not None
    assert result.devices_updated == 3
    assert result.audit_trails == 0
    refused = {
        i for i, rs in result.failed.items() if any(r.startswith("custom fields") for r in rs)
    }
    assert len(refused) == 9
    assert not refused & set(calls[0][1])
    assert len(result.failed) == 12  # every audit trail is still to be written
    assert all("no answer" in r or "not sent" in r for rs in result.failed.values() for r in rs)
    done = {
        d["id"] for t, d in devices(netbox, world).items() if d["custom_fields"]["last_counted"]
    }
    assert done == set(calls[0][1])

    plan, result = asyncio.run(push(netbox.url, netbox.tokens.v1, facts, [], setup=True))
    assert result is not None
    assert not result.failed
    assert result.devices_updated == 9
    assert all(d["custom_fields"]["last_counted"] == facts.as_of
               for d in devices(netbox, world).values())  # fmt: skip
    plan, result = asyncio.run(push(netbox.url, netbox.tokens.v1, facts, [], setup=True))
    assert plan.changes == []


@pytest.mark.parametrize("which", ["v1", "v2"])
def test_both_token_versions_authenticate(netbox: NetBoxServer, which: str) -> None:
    assert netbox.tokens is not None
    token = getattr(netbox.tokens, which)
    assert token.startswith("nbt_") == (which == "v2")
    records, *_ = asyncio.run(fetch_records(f"{netbox.url}/?q=no-such-device", token))
    assert records == []


def test_one_device_refused_is_reported_and_the_others_are_pushed(
    netbox: NetBoxServer, tmp_path: Path
) -> None:
    from tagsweep.engine.netbox_plan import build_plan
    from tagsweep.engine.netbox_push import apply_plan
    from tagsweep.netbox.client import NetBoxClient

    assert netbox.tokens is not None
    token = netbox.tokens.v1
    world = build_world(netbox.url, token, "RF", racks=2, devices=6)
    tags = sorted(world.devices)
    facts = read_run_facts(
        freeze_and_run(netbox, world, tmp_path, [(where(world, t), t) for t in tags])
    )
    gone = world.devices[tags[3]]["id"]

    async def plan_delete_apply() -> Any:
        async with NetBoxClient(netbox.url, token) as nb:
            plan = await build_plan(nb, facts, [], setup=True)
            await nb.request("DELETE", f"dcim/devices/{gone}/")  # gone between plan and push
            return await apply_plan(nb, plan)

    result = asyncio.run(plan_delete_apply())
    assert result.devices_updated == 5
    assert set(result.failed) == {gone}
    assert any("custom fields" in r for r in result.failed[gone])
    now = devices(netbox, world)
    assert tags[3] not in now
    assert all(d["custom_fields"]["last_counted"] == facts.as_of for d in now.values())
