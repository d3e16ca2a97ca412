"""The whole demo, step by step (:func:`run_demo`): build the world, count it with the
real gateway, generate and freeze the systems of record, reconcile, open cases, and
score the result against the world's truth."""

from __future__ import annotations

import asyncio
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pyarrow.parquet as pq
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Column

from tagsweep import signing
from tagsweep.simulators.demo.case_keys import demo_signing
from tagsweep.simulators.demo.count import broker_answers, count_session, logs_to, outbox_counts
from tagsweep.simulators.demo.netbox import netbox_push, netbox_snapshot
from tagsweep.simulators.demo.scenario import (
    PORTAL_FIRST_ASSET,
    STORAGE_ZONE,
    DemoOptions,
    found_truth,
    layout,
    storage_tags,
)
from tagsweep.simulators.demo.summary import DemoResult
from tagsweep.simulators.world import build_world, portal_traffic, score_passes, walk_through
from tagsweep.simulators.world_exports import generate_for_world


def run_demo(options: DemoOptions, console: Console | None = None) -> DemoResult:
    """Run the whole demo; print progress on ``console``; return what happened."""
    from tagsweep.config.engine import EngineSection
    from tagsweep.engine.cases import CaseStore
    from tagsweep.engine.freeze import SourceSpec, freeze
    from tagsweep.engine.run import reconcile

    console = console or Console(stderr=True, emoji=False)
    started = time.monotonic()
    timings: dict[str, float] = {}
    shape = layout(options.assets, options.racks, options.rooms)  # refuse bad options early
    if options.out is not None and options.out.exists() and any(options.out.iterdir()):
        raise ValueError(f"{options.out} is not empty: the demo writes a fresh store and snapshot")
    out = (options.out or Path(tempfile.mkdtemp(prefix="tagsweep-demo-"))).resolve()
    out.mkdir(parents=True, exist_ok=True)
    mqtt = options.mqtt_probe if broker_answers(options.mqtt_probe) else None

    fixed = Column(no_wrap=True)
    columns = (
        TextColumn("[progress.description]{task.description:<9}", table_column=fixed),
        BarColumn(bar_width=24, table_column=Column(no_wrap=True, min_width=24)),
        TextColumn("{task.percentage:>3.0f}%", table_column=fixed),
        TimeElapsedColumn(table_column=fixed),
        TextColumn("{task.fields[info]}", table_column=Column(no_wrap=True, ratio=1)),
    )
    with Progress(*columns, console=console, expand=True) as progress:
        step = progress.add_task("world", total=None, info="building")
        per_type = options.per_type or min(4, max(1, options.assets // 400))
        world = build_world(
            options.seed,
            dead_tag_fraction=options.dead_labels or max(0.01, 4 * per_type / options.assets),
            **shape,
        )
        walk = walk_through(world, options.seed)
        span_s = (walk.end_us - walk.start_us) / 1e6
        trips = max(6, int(span_s / 11))  # ~11 s per trip: the door is busy all count
        traffic = portal_traffic(
            options.seed,
            trips=trips,
            items=options.portal_items or trips,
            mean_gap_s=4.0,
            zone=STORAGE_ZONE,
            first_asset_number=PORTAL_FIRST_ASSET,
        )
        progress.update(
            step,
            total=1,
            completed=1,
            info=f"{len(world.assets):,} assets in {len(world.racks)} racks, "
            f"{walk.reads.size:,} handheld reads, {len(traffic.passes)} door passes",
        )
        timings["world"] = time.monotonic() - started

        t0 = time.monotonic()
        with logs_to(out / "gateway.log"):
            closed, watch, clock = asyncio.run(
                count_session(
                    work=out,
                    walk=walk,
                    traffic=traffic,
                    options=options,
                    progress=progress,
                    mqtt=mqtt,
                )
            )
        timings["count"] = time.monotonic() - t0

        t0 = time.monotonic()
        step = progress.add_task("reconcile", total=None, info="exports, injected variances")
        exports = generate_for_world(
            out / "exports",
            world,
            found=found_truth(walk, traffic),
            storage_tags=storage_tags(traffic),
            storage_zone=STORAGE_ZONE,
            per_type=per_type,
            seed=options.seed,
            now=datetime.now(UTC),
        )
        # The engine trusts the demo gateway's signing key: its session file is verified
        # by signature, as a production engine configured with the gateway's key does.
        gateway_key = signing.load_or_create_key(out / "session-signing.key").public_key()
        settings = EngineSection.model_validate(
            {"trusted_gateways": {"demo-gw": signing.public_key_text(gateway_key)}}
        )
        progress.update(step, info="reconcile freeze")
        freeze(
            [SourceSpec(name, path, preset) for name, (preset, path) in exports.sources.items()],
            out / "snapshot",
            settings,
        )
        snapshot = out / "snapshot"
        netbox_notes: list[str] = []
        if options.netbox:
            progress.update(step, info="NetBox: load the register, freeze from the API")
            snapshot = netbox_snapshot(options, exports, out, settings, netbox_notes)
        progress.update(step, info="reconcile run")
        run = reconcile(
            snapshot,
            [closed.parquet, *exports.counts],
            settings,
            out / "run",
            on_stage=lambda s: progress.update(step, info=f"reconcile run: {s.name}"),
        )
        progress.update(step, info="cases open")
        signer, cases_settings = demo_signing(out)
        store = CaseStore(out / "cases", cases_settings, signer=signer)
        summary = store.import_run(run.out_dir)
        progress.update(step, total=1, completed=1, info=f"{len(summary.opened)} cases opened")
        timings["reconcile"] = time.monotonic() - t0
        if options.netbox:
            progress.update(step, info="NetBox: push the run back")
            netbox_notes.append(netbox_push(options, run.out_dir))

    variances: list[dict[str, Any]] = pq.read_table(run.out_dir / "variances.parquet").to_pylist()
    rows = pq.read_table(closed.parquet).to_pylist()
    located = {r["epc"]: r["location"] for r in rows if r["method"] == "rfid" and r["epc"]}
    on_racks = {e: loc for e, loc in located.items() if e in walk.truth}
    right = sum(walk.truth[e] == loc for e, loc in on_racks.items())
    detected = [(epc, clock.to_world(t), d) for epc, t, d in watch.passes]
    published, unsent = outbox_counts(out / "gateway.duckdb") if mqtt else (0, 0)
    timings["total"] = time.monotonic() - started
    return DemoResult(
        out_dir=out,
        world=world,
        walk=walk,
        traffic=traffic,
        session=closed,
        exports=exports,
        run_dir=run.out_dir,
        run_id=run.run_id,
        manifest=dict(run.manifest),
        variances=variances,
        cases_opened=len(summary.opened),
        portal_detected=detected,
        portal_score=score_passes(traffic.passes, detected, tolerance_s=3.0),
        location_accuracy=right / len(on_racks) if on_racks else 0.0,
        located=len(on_racks),
        mqtt=mqtt,
        mqtt_published=published,
        mqtt_unsent=unsent,
        timings=timings,
        netbox=netbox_notes,
    )
