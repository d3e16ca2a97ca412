"""One count session of the demo: the real gateway (its generated configuration, in
process) against the LLRP and scanner simulators replaying the world on one clock, with
its logs sent to a file and its progress shown; and what its MQTT outbox published."""

from __future__ import annotations

import asyncio
import contextlib
import json
import shutil
import socket
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any, TextIO

import structlog
from rich.progress import Progress

from tagsweep.config import TagsweepConfig, parse_config
from tagsweep.daemon.events import GatewayEvent
from tagsweep.daemon.integrations import attach_integrations
from tagsweep.daemon.sessions import ClosedSession
from tagsweep.daemon.supervisor import Gateway
from tagsweep.domain import now_us
from tagsweep.simulators.demo.scenario import SITE, STORAGE_ZONE, DemoOptions
from tagsweep.simulators.llrp import LlrpSimulator
from tagsweep.simulators.scanner import ScannerSimulator
from tagsweep.simulators.world import (
    PortalTraffic,
    ReplayClock,
    WalkThrough,
    scan_lines,
    tag_source,
)


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
def logs_to(path: Path) -> Iterator[TextIO]:
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


async def count_session(
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


def outbox_counts(store: Path) -> tuple[int, int]:
    """(published, still unsent) events in the gateway's MQTT outbox."""
    import duckdb

    with duckdb.connect(str(store), read_only=True) as con:
        row = con.execute(
            "SELECT count(*) FILTER (sent_us IS NOT NULL), count(*) FILTER (sent_us IS NULL) "
            "FROM mqtt_outbox"
        ).fetchone()
    return (int(row[0]), int(row[1])) if row else (0, 0)
