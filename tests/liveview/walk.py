"""A simulated walk-through, cut into steps, with what each step truly saw.

The world model records which EPCs the handheld read and which barcodes the operator
scanned, and when. Replaying that script step by step (one step per location label
scan) gives, after every step, the ground truth the live view must match: an expected
asset is *not yet seen* exactly until its EPC has been read or its tag scanned.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from tagsweep.daemon.liveview.count import LiveCount
from tagsweep.daemon.location import LocationAttributor
from tagsweep.domain import ReadBatch
from tagsweep.simulators.world import WalkThrough, World, build_world, walk_through


@dataclass(frozen=True)
class Step:
    """Everything that happened from one location label scan to the next."""

    context: str
    t_us: int  # when the location label was scanned
    reads: ReadBatch  # the handheld's reads during the step
    epcs: tuple[str, ...]  # EPCs read during the step
    scanned_tags: tuple[str, ...]  # asset tags scanned as barcodes during the step


@dataclass(frozen=True)
class Scenario:
    world: World
    walk: WalkThrough
    register: Path
    scope: str
    ghost_tag: str  # in the register, not in the world: never seen
    unregistered_tag: str  # in the world, left out of the register: unexpected when read
    mislocated_tag: str  # the register puts it in another rack than where it is


def make_scenario(tmp: Path, *, seed: int = 7, with_epc_column: bool = False) -> Scenario:
    """A one-room world (2 rows of 3 racks, 12 assets each), its walk and a register file.

    The register is the world's asset list as a system of record would hold it, with
    three realistic differences: a ghost record, an asset nobody recorded, and one
    record whose rack is wrong.
    """
    world = build_world(seed, rooms=1, rows_per_room=2, racks_per_row=3, assets_per_rack=12)
    walk = walk_through(world, seed)
    tagged = [a for a in world.assets if a.epc is not None and a.epc in walk.read_epcs]
    unregistered = tagged[5]
    mislocated = tagged[20]
    other_rack = next(r.path for r in world.racks if r.path != mislocated.rack)
    rows: dict[str, list[str | None]] = {
        "asset_tag": [],
        "serial": [],
        "manufacturer": [],
        "model": [],
        "location": [],
        "slot": [],
        "status": [],
    }
    if with_epc_column:
        rows["epc"] = []
    for a in world.assets:
        if a is unregistered:
            continue
        rows["asset_tag"].append(a.asset_tag)
        rows["serial"].append(a.serial)
        rows["manufacturer"].append(a.manufacturer)
        rows["model"].append(a.model)
        rows["location"].append(other_rack if a is mislocated else a.rack)
        rows["slot"].append(a.slot)
        rows["status"].append("in_use")
        if with_epc_column:
            rows["epc"].append(a.epc)
    ghost = "AST-999901"
    for key, value in {
        "asset_tag": ghost,
        "serial": "GHOST001",
        "manufacturer": "Dell",
        "model": "PowerEdge R650",
        "location": world.racks[0].path,
        "slot": "U40",
        "status": "in_use",
        "epc": None,
    }.items():
        if key in rows:
            rows[key].append(value)
    path = tmp / "register.parquet"
    pq.write_table(pa.table(rows), path)
    return Scenario(
        world=world,
        walk=walk,
        register=path,
        scope=world.rooms[0],
        ghost_tag=ghost,
        unregistered_tag=unregistered.asset_tag,
        mislocated_tag=mislocated.asset_tag,
    )


def steps(walk: WalkThrough) -> Iterator[Step]:
    """The walk cut at each location label scan, in time order."""
    contexts = list(walk.contexts)
    read_times = walk.reads["first_seen_us"]
    for i, (t0, path) in enumerate(contexts):
        t1 = contexts[i + 1][0] if i + 1 < len(contexts) else walk.end_us + 1
        # reads taken before the first label scan (trigger held on the way in) go with it
        lo = 0 if i == 0 else int(np.searchsorted(read_times, t0, side="left"))
        hi = int(np.searchsorted(read_times, t1, side="left"))
        epcs = tuple(dict.fromkeys(e.decode() for e in walk.reads["epc"][lo:hi]))
        tags = tuple(s.line for s in walk.scans if s.kind == "asset" and t0 <= s.t_us < t1)
        yield Step(context=path, t_us=t0, reads=walk.reads[lo:hi], epcs=epcs, scanned_tags=tags)


def feed(count: LiveCount, step: Step, attributor: LocationAttributor) -> None:
    """Hand one step to the live count the way the daemon does: the label scan sets the
    location context, reads go through location attribution (cross-reads and all), and
    the current attribution of every EPC goes to the live count; asset scans count where
    the operator stands."""
    count.set_location_context(step.context)
    attributor.set_context(step.t_us, step.context)
    attributor.add_reads(step.reads)
    count.observe_attributions(attributor.attribute())
    for tag in step.scanned_tags:
        count.observe_scan(asset_tag=tag)
