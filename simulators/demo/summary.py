"""What a demo run found (:class:`DemoResult`, also what the end-to-end test checks)
and the short summary printed at its end: the count, the variances against the answer
key, the scores against the world's truth, and where everything was written."""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from rich.console import Console
from rich.table import Table

from tagsweep.daemon.sessions import ClosedSession
from tagsweep.simulators.demo.scenario import SITE
from tagsweep.simulators.world import PortalScore, PortalTraffic, TagState, WalkThrough, World
from tagsweep.simulators.world_exports import WorldExports


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
