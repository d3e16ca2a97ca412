"""World model: a data centre full of tagged assets, a person counting it, and a door portal.

Every test and the demo run on simulated hardware, so the simulated *world* must be
physical enough that the location and portal algorithms face the problems real sites
give them: a handheld swept over one rack also reads the racks beside it, the rack
across the aisle through its back lobe and the room behind the wall; tags are missed;
items go through a door in groups, people turn back at the door or walk past it. Every
scenario records its ground truth so benchmarks can score the daemon against it.

Building blocks (all seeded and deterministic: the same arguments give the same bytes):

* :func:`build_world` — site → rooms → rows → racks → slots with assets: asset tag
  ``AST-000123``, vendor serial, model, and a GIAI-96 EPC (company prefix ``0614141``,
  reference = the tag's digits, :func:`tagsweep.epc.giai96_for_asset_tag`). Some assets
  carry no RFID label (barcode only), some a dead one.
* :func:`walk_through` — an operator walks a route; at each rack they scan its location
  label (``LOC:DC1/Room 301/Rack A01``), scan the barcodes of untagged assets, and sweep
  the rack with a handheld. Returns the reads (:data:`~tagsweep.domain.READ_DTYPE`), the
  scan script and the truth (rack of every EPC).
* :func:`portal_traffic` — a storage-room door with an inside and an outside antenna;
  people carry items through it either way, singly and in groups, turn back at the
  door, walk past it; items parked on a shelf near the door keep being read. Returns
  the reads and the true passes with direction and crossing time.

Radio model (deliberately simple, but with the shape that matters): RSSI at the reader
is ``ref_rssi - 10·n·log10(d) + G(θ) + g_tag - losses + fading`` where ``G`` is the
reader antenna pattern (``cosⁿ θ`` main lobe, a flat back lobe), ``g_tag`` a per-tag
orientation gain, losses are rack panels and walls, and fading is Gaussian per read.
A tag is read in an inventory round when its instantaneous RSSI clears the reader's
sensitivity and it wins anti-collision (a fixed per-round efficiency).

Clock model
-----------
A scenario is generated in *world time*: UTC microseconds from ``start_us`` (a fixed
date by default, so output never depends on when it ran). For live replay a
:class:`ReplayClock` maps world time onto the wall clock::

    wall_us = anchor_wall_us + (world_us - world_start_us) / speed

``speed > 1`` compresses time for a demo. Reads and scan lines are *released* at their
wall time, and read timestamps are *rewritten* to that wall time, so they agree with the
timestamps the daemon gives scans when it receives them (it stamps scans on arrival).
Durations therefore shrink by ``speed`` too: at ``speed=10`` a 20 s rack sweep takes 2 s
of wall clock, and the daemon's dedup window and portal quiet time act on that
compressed clock (choose them accordingly, or keep ``speed`` modest). One clock is
shared by every source of one scenario; it is anchored the first time any of them
starts, so a reader and a scanner started a little apart stay in step. A reader that
(re)connects late misses the reads whose wall time has passed, as a real one would.

Live sources (``walk.replay(speed)`` / ``traffic.replay(speed)`` bundle them as a
:class:`Replay` on one clock)::

    replay = walk_through(build_world(1), 1).replay(speed=10)
    LlrpSimulator(port=0, tag_source=replay.tag_source)       # reads, paced
    ScannerSimulator(mode="tcp", script=replay.scan_script())  # label and asset scans

* :func:`tag_source` → ``Callable[[], AsyncIterator[ReadBatch]]`` for the LLRP
  simulator (one fresh iterator per connection);
* :func:`scan_lines` → async iterator of scan lines paced by the same clock;
  :func:`scan_delays` gives the same script as ``(delay_s, line)`` pairs.

Scoring helpers: :func:`score_locations` (EPC → location against the truth) and
:func:`score_passes` (portal passes matched by tag and time).

Where each part lives: :mod:`.site` (the site, its racks and assets, :func:`build_world`),
:mod:`.catalogue` (vendors, models and their serial formats), :mod:`.radio` (the link
budget and report aggregation), :mod:`.walk` (the walk-through count), :mod:`.portal`
(the door portal), :mod:`.replay` (the clock model and the live sources) and
:mod:`.scoring` (scores against the truth). Import them from here.
"""

from tagsweep.domain import READ_DTYPE
from tagsweep.simulators.world.catalogue import CATALOGUE
from tagsweep.simulators.world.portal import PortalParams, PortalTraffic, TruePass, portal_traffic
from tagsweep.simulators.world.radio import Radio, aggregate_reports
from tagsweep.simulators.world.replay import (
    Replay,
    ReplayClock,
    replay_batches,
    scan_delays,
    scan_lines,
    tag_source,
)
from tagsweep.simulators.world.scoring import PortalScore, score_locations, score_passes
from tagsweep.simulators.world.site import (
    DEFAULT_START_US,
    Asset,
    Rack,
    TagState,
    World,
    build_world,
)
from tagsweep.simulators.world.walk import (
    HandheldParams,
    ScriptedScan,
    WalkThrough,
    serpentine_route,
    walk_through,
)

__all__ = [
    "CATALOGUE",
    "DEFAULT_START_US",
    "READ_DTYPE",
    "Asset",
    "HandheldParams",
    "PortalParams",
    "PortalScore",
    "PortalTraffic",
    "Rack",
    "Radio",
    "Replay",
    "ReplayClock",
    "ScriptedScan",
    "TagState",
    "TruePass",
    "WalkThrough",
    "World",
    "aggregate_reports",
    "build_world",
    "portal_traffic",
    "replay_batches",
    "scan_delays",
    "scan_lines",
    "score_locations",
    "score_passes",
    "serpentine_route",
    "tag_source",
    "walk_through",
]
