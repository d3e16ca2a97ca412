"""Acceptance: a simulated walk-through, checked through the JSON endpoints of a real
server on loopback: not-yet-seen shrinks exactly as the walk's ground truth says."""

from __future__ import annotations

from pathlib import Path
from typing import Any
from urllib.parse import urlencode

import aiohttp

from tagsweep.daemon.liveview.count import live_count_from_register_file
from tagsweep.daemon.liveview.server import LiveWebServer
from tagsweep.daemon.liveview.view import LiveView
from tagsweep.daemon.location import LocationAttributor
from tests.liveview.walk import feed, make_scenario, steps


async def get_json(http: aiohttp.ClientSession, url: str) -> Any:
    async with http.get(url) as response:
        assert response.status == 200, await response.text()
        assert response.headers["Content-Type"].startswith("application/json")
        return await response.json()


async def test_not_yet_seen_shrinks_exactly_as_ground_truth(tmp_path: Path) -> None:
    sc = make_scenario(tmp_path)
    view = LiveView()
    count = view.add(
        live_count_from_register_file("cs-walk", [sc.scope], sc.register, operator="jdoe")
    )
    # ground truth: what the register expects in the room (the unregistered asset is
    # not expected; the ghost is)
    expected = {a.asset_tag for a in sc.world.assets if a.asset_tag != sc.unregistered_tag}
    expected.add(sc.ghost_tag)
    seen: set[str] = set()
    epc_to_tag = {a.epc: a.asset_tag for a in sc.world.assets if a.epc}
    previous = len(expected)
    shrank = 0
    attributor = LocationAttributor()
    async with LiveWebServer(view, port=0) as server, aiohttp.ClientSession() as http:
        base = f"{server.url}/api/sessions/cs-walk"
        first = await get_json(http, base)
        assert first["totals"]["expected"] == len(expected)
        assert first["totals"]["not_yet_seen"] == len(expected)
        for step in steps(sc.walk):
            feed(count, step, attributor)
            seen |= {epc_to_tag[e] for e in step.epcs} | set(step.scanned_tags)
            truth = expected - seen

            listing = await get_json(http, f"{base}/not-yet-seen")
            assert {a["asset_tag"] for a in listing["assets"]} == truth
            assert listing["count"] == len(truth)
            summary = await get_json(http, base)
            assert summary["totals"]["not_yet_seen"] == len(truth)
            assert summary["location_context"] == step.context

            # the rack being counted: its own list matches the truth restricted to it
            here = await get_json(
                http, f"{base}/not-yet-seen?{urlencode({'location': step.context})}"
            )
            register_rack = {a["asset_tag"]: a["location"] for a in listing["assets"]}
            assert {a["asset_tag"] for a in here["assets"]} == {
                t for t in truth if register_rack[t] == step.context
            }
            row = next(r for r in summary["locations"] if r["location"] == step.context)
            assert row["not_yet_seen"] == here["count"]
            assert row["seen"] + row["not_yet_seen"] == row["expected"]

            assert len(truth) <= previous
            shrank += len(truth) < previous
            previous = len(truth)

        final = await get_json(http, base)
    assert shrank >= 3  # the count fell step by step, not once at the end
    # dead labels and the ghost record are what is left
    dead = {a.asset_tag for a in sc.world.assets if a.epc and a.epc not in sc.walk.read_epcs}
    assert truth == ({sc.ghost_tag} | dead) - {sc.unregistered_tag}
    unexpected = {u["asset_tag"]: u for u in final["unexpected"]}
    assert unexpected[sc.unregistered_tag]["reason"] == "not_in_register"
    assert unexpected[sc.unregistered_tag]["expected_at"] is None
    assert sc.ghost_tag not in unexpected
    # with the daemon's attribution, the item the register puts in the wrong rack is
    # flagged where it really is, and nothing else is (cross-reads are not noise)
    mislocated = next(a for a in sc.world.assets if a.asset_tag == sc.mislocated_tag)
    wrong_rack = next(r.path for r in sc.world.racks if r.path != mislocated.rack)
    assert unexpected[sc.mislocated_tag]["reason"] == "expected_elsewhere"
    assert unexpected[sc.mislocated_tag]["seen_at"] == mislocated.rack
    assert unexpected[sc.mislocated_tag]["expected_at"] == wrong_rack
    assert set(unexpected) == {sc.unregistered_tag, sc.mislocated_tag}
    assert final["totals"]["unexpected"] == len(unexpected)


async def test_register_with_epc_column_maps_reads_by_epc(tmp_path: Path) -> None:
    """With an epc column the register's own EPCs are used (no GIAI decoding needed)."""
    sc = make_scenario(tmp_path, with_epc_column=True)
    view = LiveView()
    count = view.add(
        live_count_from_register_file(
            "cs-epc", [sc.scope], sc.register, operator="jdoe", epc_scheme="mapping"
        )
    )
    all_steps = list(steps(sc.walk))
    attributor = LocationAttributor()
    for step in all_steps[:2]:
        feed(count, step, attributor)
    async with LiveWebServer(view, port=0) as server, aiohttp.ClientSession() as http:
        data = await get_json(http, f"{server.url}/api/sessions/cs-epc")
    epc_to_tag = {a.epc: a.asset_tag for a in sc.world.assets if a.epc}
    seen = {epc_to_tag[e] for s in all_steps[:2] for e in s.epcs} | {
        t for s in all_steps[:2] for t in s.scanned_tags
    }
    seen.discard(sc.unregistered_tag)
    assert data["totals"]["seen"] == len(seen) > 0
