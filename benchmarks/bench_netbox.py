"""Pull and push of 10,000 devices against a real NetBox (the test server).

Scenario: one site, 200 racks, 10,000 devices created through the API. A count finds
every device (1 % in another rack than NetBox says, 1 % not found).

* **pull**: ``reconcile freeze --source dcim:netbox-api=URL`` — every page of
  ``/api/dcim/devices/`` (1,000 per page, fetched concurrently after the first) against
  the **baseline** of a plain client following ``next`` links at NetBox's default page
  size (50), one request after the other, measured in the same run.
* **push**: ``tagsweep netbox push`` of the run — plan (current devices, journal
  entries, audit trails) plus bulk PATCH of custom fields, journal entries and audit
  trails — against the **baseline** of one PATCH per device, sequentially, on 500
  devices (devices/s compared; the baseline is not run on all 10,000 to keep the
  benchmark short). Then the same push again, which finds nothing to change.

The NetBox server is gunicorn with 2 workers on the same 2 cores as the client, so the
figures are the server's throughput more than the client's.

Run: ``.venv/bin/python -m benchmarks.bench_netbox [--devices 10000]``. Writes
``benchmarks/results/netbox.json``.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import platform
import tempfile
import time
from pathlib import Path
from typing import Any

from tests.netbox.server import NetBoxServer
from tests.netbox.world import build_world

from tagsweep.config.engine import EngineSection
from tagsweep.engine.freeze import SourceSpec, freeze
from tagsweep.engine.netbox_plan import read_run_facts
from tagsweep.engine.netbox_push import push
from tagsweep.engine.run import reconcile
from tagsweep.netbox.client import NetBoxClient
from tagsweep.netbox.pull import pull_export

RESULTS = Path(__file__).parent / "results"
BASELINE_PUSH_DEVICES = 500


async def baseline_pull(url: str, token: str, site: str) -> int:
    """Follow ``next`` links at the default page size, one request at a time."""
    async with NetBoxClient(url, token, concurrency=1) as nb:
        page: Any = await nb.get("dcim/devices/", [("site", site)])
        n = len(page["results"])
        while page.get("next"):
            page = await nb.get(page["next"])
            n += len(page["results"])
        return n


async def baseline_push(url: str, token: str, ids: list[int]) -> None:
    """One PATCH per device, one after the other."""
    async with NetBoxClient(url, token, concurrency=1) as nb:
        for ident in ids:
            await nb.send(
                "PATCH",
                f"dcim/devices/{ident}/",
                {"custom_fields": {"last_count_location": "baseline"}},
            )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--devices", type=int, default=10_000)
    args = parser.parse_args()
    n = args.devices
    server = NetBoxServer().start()
    try:
        assert server.tokens is not None
        token = server.tokens.v1
        started = time.perf_counter()
        world = build_world(server.url, token, "BM", racks=200, devices=n, chunk=500)
        create_s = time.perf_counter() - started
        print(f"created {n:,} devices in {create_s:.1f} s", flush=True)
        work = Path(tempfile.mkdtemp(prefix="bench-netbox-"))

        started = time.perf_counter()
        pulled = pull_export(f"{server.url}/?site=bm", token, work / "dcim.json")
        pull_s = time.perf_counter() - started
        assert pulled.records == n, pulled
        started = time.perf_counter()
        assert asyncio.run(baseline_pull(server.url, token, "bm")) == n
        base_pull_s = time.perf_counter() - started
        print(f"pull: {pull_s:.1f} s ({pulled.pages} pages) vs baseline {base_pull_s:.1f} s")

        settings = EngineSection()
        freeze([SourceSpec("dcim", pulled.path, "netbox", pulled.fetched_at)],
               work / "snap", settings)  # fmt: skip
        tags = sorted(world.devices)
        rows = ["location,asset_tag"]
        for i, tag in enumerate(tags):
            if i % 100 == 1:
                continue  # not found
            device = world.devices[tag]
            rack = (device.get("rack") or {}).get("name")
            if i % 100 == 2:
                rack = "R101" if rack != "R101" else "R102"  # found in another rack
            where = f"{world.site}/Room 302" + (f"/{rack}" if rack else "")
            rows.append(f"{where},{tag}")
        sheet = work / "sheet.csv"
        sheet.write_text("\n".join(rows) + "\n", encoding="utf-8")
        reconcile(work / "snap", [sheet], settings, work / "run", scope=[world.site])
        facts = read_run_facts(work / "run")

        started = time.perf_counter()
        _plan, result = asyncio.run(push(server.url, token, facts, [], setup=True))
        push_s = time.perf_counter() - started
        assert result is not None
        assert not result.failed, result.failed
        started = time.perf_counter()
        again, _ = asyncio.run(push(server.url, token, facts, [], setup=True))
        again_s = time.perf_counter() - started
        assert again.changes == []
        ids = [world.devices[t]["id"] for t in tags[:BASELINE_PUSH_DEVICES]]
        started = time.perf_counter()
        asyncio.run(baseline_push(server.url, token, ids))
        base_push_s = time.perf_counter() - started
        push_rate = result.devices_updated / push_s
        base_rate = len(ids) / base_push_s
        print(
            f"push: {push_s:.1f} s for {result.devices_updated:,} devices, "
            f"{result.journal_entries:,} journal entries, {result.audit_trails:,} audit trails "
            f"({push_rate:.0f} devices/s) vs baseline {base_rate:.1f} devices/s "
            f"(one PATCH each); second push {again_s:.1f} s, nothing to change"
        )
        summary = {
            "benchmark": "netbox",
            "devices": n,
            "create_s": round(create_s, 2),
            "pull_s": round(pull_s, 2),
            "pull_pages": pulled.pages,
            "baseline_pull_s": round(base_pull_s, 2),
            "pull_speedup": round(base_pull_s / pull_s, 2),
            "push_s": round(push_s, 2),
            "push_devices": result.devices_updated,
            "push_journal_entries": result.journal_entries,
            "push_audit_trails": result.audit_trails,
            "push_devices_per_s": round(push_rate, 1),
            "baseline_push_devices_per_s": round(base_rate, 2),
            "push_speedup": round(push_rate / base_rate, 2),
            "second_push_s": round(again_s, 2),
            "machine": {"python": platform.python_version(), "platform": platform.platform()},
        }
        RESULTS.mkdir(exist_ok=True)
        (RESULTS / "netbox.json").write_text(json.dumps(summary, indent=2) + "\n")
    finally:
        server.stop()


if __name__ == "__main__":
    main()
