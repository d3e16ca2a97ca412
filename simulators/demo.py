"""``tagsweep demo``: the whole story on one machine, with no hardware and no broker.

A simulated data centre (the world model) is counted by the *real* gateway: the
handheld and a door portal are LLRP simulators on loopback TCP, the barcode scanner is
the scanner simulator on a TCP socket, and all three replay the world on one shared
clock, ``speed`` times faster than real time. The gateway (in process: the same
:class:`~tagsweep.daemon.supervisor.Gateway` that ``tagsweep run`` starts) runs a
walk-through count session whose location context comes from the scanned rack labels,
while people carry laptops through the storage-room door. Stopping the session writes
the session file. The systems of record for the *same* world are then generated with
injected variances (:mod:`tagsweep.simulators.world_exports`), frozen, reconciled
against the session file and a paper spot check, and every variance opens a case.

Why it lives in ``simulators/``: it composes simulators, daemon and engine, and only
the simulators package may import all three (production code never imports the
simulators). Everything is seeded, so two runs with the same options find the same
assets; only wall-clock timestamps and ids differ.

The summary is scored against the world's truth (what the readers could physically
see, where every asset really is, which portal passes really happened) and against the
exports' answer key, so the demo shows how right the system is, not only what it says.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import socket
import tempfile
import time
from collections import Counter
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any, Final, TextIO, TypedDict

import pyarrow.parquet as pq
import structlog
from rich.console import Console
from rich.progress import BarColumn, Progress, TextColumn, TimeElapsedColumn
from rich.table import Column, Table

from tagsweep import signing
from tagsweep.config import TagsweepConfig, parse_config
from tagsweep.daemon.events import GatewayEvent
from tagsweep.daemon.integrations import attach_integrations
from tagsweep.daemon.sessions import ClosedSession
from tagsweep.daemon.supervisor import Gateway
from tagsweep.domain import now_us
from tagsweep.epc import giai96_for_asset_tag
from tagsweep.simulators.llrp import LlrpSimulator
from tagsweep.simulators.scanner import ScannerSimulator
from tagsweep.simulators.world import (
    PortalScore,
    PortalTraffic,
    ReplayClock,
    TagState,
    WalkThrough,
    World,
    build_world,
    portal_traffic,
    scan_lines,
    score_passes,
    tag_source,
    walk_through,
)
from tagsweep.simulators.world_exports import WorldExports, generate_for_world

if TYPE_CHECKING:
    from tagsweep.config.cases import CasesSection
    from tagsweep.engine.sshsig import KeyFileSigner

#: Replay speed of the default demo: 460 s of world time (20 racks swept one by one)
#: take ~38 s of wall clock, which keeps the whole demo under a minute on two cores.
DEFAULT_SPEED: Final = 12.0
SITE: Final = "DC1"
STORAGE_ZONE: Final = "DC1/Storage 1"
PORTAL_FIRST_ASSET: Final = 500_000


@dataclass(frozen=True, slots=True)
class DemoOptions:
    """What the demo counts and how fast; the defaults are the README's ``make demo``."""

    out: Path | None = None  # default: a new folder under the system temp directory
    assets: int = 2000
    racks: int = 20
    rooms: int = 2
    speed: float = DEFAULT_SPEED
    seed: int = 1
    per_type: int | None = None  # injected variances of each type (default: by size)
    portal_items: int | None = None  # default: one per door trip
    #: share of assets whose RFID label never answers (default: 1 %, or enough for the
    #: paper spot check to find a few look-alike serials in a small world)
    dead_labels: float | None = None
    mqtt_probe: str | None = "127.0.0.1:1883"  # publish there if a broker answers
    metrics: bool = True
    #: a (test) NetBox to hold the register: loaded, frozen from its API, pushed back
    netbox: str | None = None
    netbox_token: str | None = field(default=None, repr=False)


@dataclass
class DemoResult:
    """Everything the summary prints, and what the end-to-end test checks."""

    out_dir: Path
    world: World
    walk: WalkThrough
    traffic: PortalTraffic
    session: ClosedSession
    exports: WorldExports
    run_dir: Path
    run_id: str
    manifest: dict[str, Any]
    variances: list[dict[str, Any]]
    cases_opened: int
    portal_detected: list[tuple[str, int, str]]
    portal_score: PortalScore
    location_accuracy: float
    located: int
    mqtt: str | None
    mqtt_published: int
    mqtt_unsent: int
    timings: dict[str, float] = field(default_factory=dict)
    netbox: list[str] = field(default_factory=list)  # what the NetBox mode did

    @property
    def report(self) -> Path:
        return self.run_dir / "report.html"

    def variances_by_type(self) -> Counter[str]:
        return Counter(str(v["variance_type"]) for v in self.variances)

    def key_check(self) -> dict[str, tuple[int, int, int]]:
        """Per variance type: (expected by the answer key, found by the engine, both)."""
        out: dict[str, tuple[int, int, int]] = {}
        found = {(str(v["variance_type"]), str(v["asset_key"])) for v in self.variances}
        for kind in sorted({t for t, _ in self.exports.answer_key} | {t for t, _ in found}):
            exp = {k for t, k in self.exports.answer_key if t == kind}
            got = {k for t, k in found if t == kind}
            out[kind] = (len(exp), len(got), len(exp & got))
        return out


class Layout(TypedDict):
    rooms: int
    rows_per_room: int
    racks_per_row: int
    assets_per_rack: int


def layout(assets: int, racks: int, rooms: int) -> Layout:
    """``build_world`` arguments for ``assets`` items in ``racks`` racks over ``rooms``."""
    if rooms < 1 or racks < rooms or racks % rooms:
        raise ValueError(f"racks ({racks}) must be a positive multiple of rooms ({rooms})")
    per_room = racks // rooms
    rows = 2 if per_room >= 4 and per_room % 2 == 0 else 1
    if assets < racks:
        raise ValueError(f"assets ({assets}) must be at least the number of racks ({racks})")
    return {
        "rooms": rooms,
        "rows_per_room": rows,
        "racks_per_row": per_room // rows,
        "assets_per_rack": assets // racks,
    }


def broker_answers(where: str | None, timeout_s: float = 0.3) -> bool:
    """Whether something accepts TCP connections at ``host:port`` (an MQTT broker?)."""
    if not where:
        return False
    host, _, port = where.rpartition(":")
    try:
        with socket.create_connection((host, int(port)), timeout=timeout_s):
            return True
    except (OSError, ValueError):
        return False


def _free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def gateway_config(
    work: Path,
    *,
    sock_dir: Path,
    handheld_port: int,
    portal_port: int,
    scanner_url: str,
    speed: float,
    mqtt: str | None,
    metrics_port: int | None,
) -> TagsweepConfig:
    """The generated configuration: what a site would write in its TOML file.

    The dedup window and the portal's quiet time act on the replayed (compressed)
    clock, so they shrink by ``speed`` like every other duration.
    """
    data: dict[str, Any] = {
        "gateway": {"id": "demo-gw", "site": SITE},
        "store": {"path": str(work / "gateway.duckdb"), "session_dir": str(work / "sessions")},
        "dedup": {"window_s": 2.0 / speed, "flush_interval_s": 0.1},
        "readers": [
            {
                "name": "handheld",
                "url": f"llrp://127.0.0.1:{handheld_port}?antennas=1",
                "role": "handheld",
                "keepalive_s": 1.0,
            },
            {
                "name": "store-door",
                "url": f"llrp://127.0.0.1:{portal_port}?antennas=1,2",
                "role": "portal",
                "keepalive_s": 1.0,
                "portal": {"inside_antenna": 1, "outside_antenna": 2, "zone": STORAGE_ZONE},
            },
        ],
        "scanners": [{"name": "scanner", "url": scanner_url, "asset_tag_pattern": r"^AST-\d{6}$"}],
        "metrics": {"enabled": metrics_port is not None},
        "control": {"socket": str(sock_dir / "control.sock")},
    }
    if metrics_port is not None:
        data["metrics"]["listen"] = f"127.0.0.1:{metrics_port}"
    if mqtt:
        host, _, port = mqtt.rpartition(":")
        data["mqtt"] = {"enabled": True, "host": host, "port": int(port)}
    (work / "gateway.json").write_text(json.dumps(data, indent=2) + "\n", encoding="utf-8")
    return parse_config(data)


class _Watch:
    """Event sink: the location context and the portal passes, for progress and scoring."""

    def __init__(self) -> None:
        self.location = "-"
        self.passes: list[tuple[str, int, str]] = []  # (EPC, wall µs, direction)

    async def emit(self, events: Sequence[GatewayEvent]) -> None:
        for e in events:
            kind = e.kind.value
            if kind == "location_context":
                self.location = str(e.payload["location"])
            elif kind == "portal_pass":
                self.passes.append((str(e.payload["epc"]), e.ts_us, str(e.payload["direction"])))


@contextlib.contextmanager
def _logs_to(path: Path) -> Iterator[TextIO]:
    """Send the gateway's structured logs to a file while the progress display runs,
    and give the caller's logging configuration back afterwards."""
    saved = structlog.get_config()
    with path.open("a", encoding="utf-8") as fh:
        structlog.configure(
            processors=[
                structlog.contextvars.merge_contextvars,
                structlog.processors.add_log_level,
                structlog.processors.TimeStamper(fmt="iso", utc=True),
                structlog.processors.format_exc_info,
                structlog.processors.JSONRenderer(),
            ],
            wrapper_class=structlog.make_filtering_bound_logger(20),
            logger_factory=structlog.PrintLoggerFactory(file=fh),
            cache_logger_on_first_use=False,
        )
        try:
            yield fh
        finally:
            structlog.configure(**saved)


async def _count(
    *,
    work: Path,
    walk: WalkThrough,
    traffic: PortalTraffic,
    options: DemoOptions,
    progress: Progress,
    mqtt: str | None,
) -> tuple[ClosedSession, _Watch, ReplayClock]:
    """Run the gateway against the simulators for one count session; return its file."""
    clock = ReplayClock(min(walk.start_us, traffic.start_us), options.speed)
    end_us = max(walk.end_us, traffic.end_us)
    metrics_port = _free_port() if options.metrics else None
    watch = _Watch()
    # Unix socket paths are limited to 107 bytes: a deep --out gets a short folder.
    short = None if len(str(work)) < 80 else Path(tempfile.mkdtemp(prefix="ts-demo-"))
    try:
        return await _count_in(
            work=work,
            sock_dir=short or work,
            walk=walk,
            traffic=traffic,
            options=options,
            progress=progress,
            mqtt=mqtt,
            clock=clock,
            end_us=end_us,
            metrics_port=metrics_port,
            watch=watch,
        )
    finally:
        if short is not None:
            shutil.rmtree(short, ignore_errors=True)


async def _count_in(
    *,
    work: Path,
    sock_dir: Path,
    walk: WalkThrough,
    traffic: PortalTraffic,
    options: DemoOptions,
    progress: Progress,
    mqtt: str | None,
    clock: ReplayClock,
    end_us: int,
    metrics_port: int | None,
    watch: _Watch,
) -> tuple[ClosedSession, _Watch, ReplayClock]:
    async with (
        LlrpSimulator(port=0, tag_source=tag_source(walk.reads, clock, batch_s=0.05)) as hh,
        LlrpSimulator(port=0, tag_source=tag_source(traffic.reads, clock, batch_s=0.05)) as door,
        ScannerSimulator(mode="tcp", script=scan_lines(walk.scans, clock)) as scanner,
    ):
        cfg = gateway_config(
            work,
            sock_dir=sock_dir,
            handheld_port=hh.port,
            portal_port=door.port,
            scanner_url=scanner.url,
            speed=options.speed,
            mqtt=mqtt,
            metrics_port=metrics_port,
        )
        gw = Gateway(cfg, sinks=[watch])
        attach_integrations(gw, environ={})
        metrics = f", metrics http://{cfg.metrics.listen}/metrics" if cfg.metrics.enabled else ""
        progress.console.print(
            f"gateway config {work / 'gateway.json'}; while it counts: "
            f"tagsweep status --socket {cfg.control.socket}{metrics}",
            markup=False,
            highlight=False,
        )
        # The operator starts walking shortly after the session opens; anchoring the
        # shared clock ahead of time means a reader that connects in the meantime
        # still gets every read from the first one on.
        clock.start(now_us() + 2_500_000)
        async with gw:
            await gw.start_session(operator="demo", site=SITE, scope=[SITE])
            span_s = (end_us - clock.world_start_us) / 1e6
            task = progress.add_task("count", total=span_s, info="")
            total_reads = walk.reads.size + traffic.reads.size
            last_reads, quiet_since = -1, time.monotonic()
            while True:
                world_s = (clock.to_world(now_us()) - clock.world_start_us) / 1e6
                reads = gw.counters.reads
                if reads != last_reads:
                    last_reads, quiet_since = reads, time.monotonic()
                progress.update(
                    task,
                    completed=min(max(world_s, 0.0), span_s),
                    info=(
                        f"reads {reads:>7,}  scans {gw.counters.scans:>3}  "
                        f"passes {len(watch.passes):>3}  at {watch.location}"
                    ),
                )
                # Done when the world has played out and the reads have arrived (or
                # stopped arriving: a reader that dropped out is the count's problem).
                if world_s >= span_s and (
                    reads >= total_reads or time.monotonic() - quiet_since > 2.0
                ):
                    break
                await asyncio.sleep(0.25)
            await asyncio.wait_for(scanner.finished(), timeout=30)
            for _ in range(200):  # the last scan lines are still on their way
                if gw.counters.scans >= len(walk.scans):
                    break
                await asyncio.sleep(0.05)
            progress.update(task, info="closing the count session")
            closed = await gw.stop_session()
            progress.update(
                task, completed=span_s, info=f"session file: {closed.row_count:,} observations"
            )
    return closed, watch, clock


def found_truth(walk: WalkThrough, traffic: PortalTraffic) -> set[str]:
    """Asset tags the count can physically find: a label the handheld or the portal read,
    or the barcode of an unlabelled asset scanned at its rack."""
    by_epc = {a.epc: a.asset_tag for a in walk.world.assets if a.epc}
    tags = {by_epc[e] for e in walk.read_epcs if e in by_epc}
    tags |= {s.line for s in walk.scans if s.kind == "asset"}
    portal_epcs = {e.decode() for e in set(traffic.reads["epc"].tolist())}
    tags |= {t for t in storage_tags(traffic) if giai96_for_asset_tag(t) in portal_epcs}
    return tags


def storage_tags(traffic: PortalTraffic) -> list[str]:
    """Asset tags of the laptops that live behind the portal door."""
    return [f"AST-{PORTAL_FIRST_ASSET + i:06d}" for i in range(len(traffic.final_side))]


def _outbox_counts(store: Path) -> tuple[int, int]:
    """(published, still unsent) events in the gateway's MQTT outbox."""
    import duckdb

    with duckdb.connect(str(store), read_only=True) as con:
        row = con.execute(
            "SELECT count(*) FILTER (sent_us IS NOT NULL), count(*) FILTER (sent_us IS NULL) "
            "FROM mqtt_outbox"
        ).fetchone()
    return (int(row[0]), int(row[1])) if row else (0, 0)


def demo_signing(out: Path) -> tuple[KeyFileSigner, CasesSection]:
    """A throwaway SSH key for the demo's case store, listed in ``keys/allowed_signers``,
    and ``cases.toml`` naming both, so the signed log checks with
    ``tagsweep audit verify --config OUT/cases.toml``. Never use these keys for real work."""
    from cryptography.hazmat.primitives import serialization
    from cryptography.hazmat.primitives.asymmetric import ed25519

    from tagsweep.config.cases import CasesSection
    from tagsweep.engine.sshsig import KeyFileSigner

    keys = out / "keys"
    keys.mkdir(parents=True, exist_ok=True)
    key = ed25519.Ed25519PrivateKey.generate()
    private = keys / "demo"
    private.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.OpenSSH,
            serialization.NoEncryption(),
        )
    )
    private.chmod(0o600)
    public = key.public_key().public_bytes(
        serialization.Encoding.OpenSSH, serialization.PublicFormat.OpenSSH
    )
    (keys / "demo.pub").write_bytes(public + b" demo (throwaway)\n")
    allowed = keys / "allowed_signers"
    allowed.write_text(
        "# throwaway demo key: who may sign the demo's case audit log\n"
        f'demo namespaces="tagsweep-audit" {public.decode()} throwaway\n',
        encoding="utf-8",
    )
    (out / "cases.toml").write_text(
        '[engine.cases]\nstore = "cases"\nallowed_signers = "keys/allowed_signers"\n'
        'auditors = ["demo"]\n',
        encoding="utf-8",
    )
    settings = CasesSection(allowed_signers=allowed, auditors=["demo"])
    return KeyFileSigner(private), settings


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
        with _logs_to(out / "gateway.log"):
            closed, watch, clock = asyncio.run(
                _count(
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
            snapshot = _netbox_snapshot(options, exports, out, settings, netbox_notes)
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
            netbox_notes.append(_netbox_push(options, run.out_dir))

    variances: list[dict[str, Any]] = pq.read_table(run.out_dir / "variances.parquet").to_pylist()
    rows = pq.read_table(closed.parquet).to_pylist()
    located = {r["epc"]: r["location"] for r in rows if r["method"] == "rfid" and r["epc"]}
    on_racks = {e: loc for e, loc in located.items() if e in walk.truth}
    right = sum(walk.truth[e] == loc for e, loc in on_racks.items())
    detected = [(epc, clock.to_world(t), d) for epc, t, d in watch.passes]
    published, unsent = _outbox_counts(out / "gateway.duckdb") if mqtt else (0, 0)
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


def _netbox_snapshot(
    options: DemoOptions, exports: Any, out: Path, settings: Any, notes: list[str]
) -> Path:
    """Load the ITAM export into NetBox and freeze a snapshot whose ITAM source is
    NetBox's API (the other sources stay the generated files)."""
    from tagsweep.engine.freeze import SourceSpec, freeze
    from tagsweep.netbox.pull import pull_export
    from tagsweep.simulators.netbox_demo import DEMO_TAG, load_into_netbox

    assert options.netbox is not None
    assert options.netbox_token is not None
    loaded = load_into_netbox(options.netbox, options.netbox_token, out / "snapshot", "itam")
    notes.append(
        f"NetBox {options.netbox}: {loaded.devices} devices loaded"
        + (f", {len(loaded.refused)} refused (e.g. {loaded.refused[0]})" if loaded.refused else "")
    )
    pulled = pull_export(
        f"{options.netbox}/?tag={DEMO_TAG}", options.netbox_token, out / "netbox-devices.json"
    )
    notes.append(f"froze {pulled.records} devices from {pulled.origin}")
    specs = [
        SourceSpec(name, path, preset)
        for name, (preset, path) in exports.sources.items()
        if name != "itam"
    ]
    specs.append(SourceSpec("itam", pulled.path, "netbox", pulled.fetched_at, pulled.origin))
    freeze(specs, out / "snapshot-netbox", settings)
    return out / "snapshot-netbox"


def _netbox_push(options: DemoOptions, run_dir: Path) -> str:
    from tagsweep.engine.netbox_plan import read_run_facts
    from tagsweep.engine.netbox_push import push

    assert options.netbox is not None
    assert options.netbox_token is not None
    _, result = asyncio.run(
        push(options.netbox, options.netbox_token, read_run_facts(run_dir), [], setup=True)
    )
    assert result is not None
    return (
        f"pushed: {result.devices_updated} devices updated, {result.journal_entries} journal "
        f"entries, {result.audit_trails} audit trails, {len(result.failed)} failed"
    )


def print_summary(result: DemoResult, console: Console) -> None:
    """The short printed summary: count, variances, scoring against the truth, paths."""
    from tagsweep.engine.report import VARIANCE_LABELS, band

    counts = result.manifest["counts"]
    by_type = result.variances_by_type()
    world = result.world
    dead = sum(a.tag_state is TagState.DEAD for a in world.assets)
    console.print()
    console.print(
        f"[bold]Count[/bold]  session {result.session.session_id}: "
        f"{result.session.row_count:,} observations  →  {result.session.parquet}"
    )
    console.print(
        f"  expected {counts['expected_in_count']:,}   found {counts['found']:,}   "
        f"missing {by_type.get('missing', 0)}   unrecorded {by_type.get('unrecorded', 0)}   "
        f"({dead} assets carry a dead RFID label)"
    )
    score = result.portal_score
    console.print(
        f"  portal passes {score.detected} detected / {score.true_passes} true, "
        f"{score.correct} with the right direction, {score.spurious} spurious"
    )
    console.print(
        f"  location accuracy {result.location_accuracy:.1%} of {result.located:,} "
        "RFID-counted assets at their true rack"
    )
    files = ", ".join(path.name for _, path in result.exports.sources.values())
    console.print(f"[bold]Exports[/bold]  {result.exports.directory}: {files}", markup=True)
    rate = float(counts["variance_rate_percent"])
    table = Table(title=f"Variances: {counts['variances']}, rate {rate:.1f} % ({band(rate)})")
    table.add_column("variance type")
    table.add_column("found", justify="right")
    table.add_column("answer key", justify="right")
    table.add_column("matching", justify="right")
    for kind, (exp, got, both) in result.key_check().items():
        table.add_row(VARIANCE_LABELS.get(kind, kind), str(got), str(exp), str(both))
    console.print(table)
    extra = result.key_check().get("location_mismatch", (0, 0, 0))
    if extra[1] > extra[2]:
        console.print(
            f"  {extra[1] - extra[2]} location mismatch(es) beyond the key: cross-reads the "
            "count attributed to a neighbouring rack"
        )
    console.print(
        f"  cases opened {result.cases_opened}  (store {result.out_dir / 'cases'}, signed with "
        f"the throwaway key {result.out_dir / 'keys' / 'demo'}; check it with `tagsweep audit "
        f"verify --config {result.out_dir / 'cases.toml'}`)"
    )
    if result.mqtt:
        console.print(
            f"  MQTT: {result.mqtt_published:,} events published to mqtt://{result.mqtt} "
            f"under tagsweep/{SITE}/demo-gw/# ({result.mqtt_unsent} left in the outbox)"
        )
    else:
        console.print("  MQTT: no broker on 127.0.0.1:1883, publishing skipped")
    t = result.timings
    console.print(
        f"  wall time {t['total']:.1f} s (world {t['world']:.1f} s, count {t['count']:.1f} s, "
        f"reconcile {t['reconcile']:.1f} s)"
    )
    for note in result.netbox:
        console.print(f"  {note}", markup=False)
    console.print(f"[bold]Report[/bold] {result.report}")


__all__ = [
    "DEFAULT_SPEED",
    "DemoOptions",
    "DemoResult",
    "broker_answers",
    "found_truth",
    "gateway_config",
    "layout",
    "print_summary",
    "run_demo",
]
