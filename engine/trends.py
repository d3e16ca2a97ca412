"""Lessons learned across runs: variance rate over time, recurring categories, repeat offenders.

Step 5 of the reconciliation method asks to "look for patterns, not just one-off
problems": the same category recurring in one location (a room whose moves are never
recorded), one source (an MDM that keeps stale devices) or one asset. A single run cannot
show that; comparing the variance logs of successive runs can. The aggregation is DuckDB
SQL over the runs' ``variances.parquet`` files, the same engine the run itself uses.

The variance rate is the one the run reported in its manifest (assets with a variance
over assets reviewed, so the chart agrees with the run's own report), or else the share
of register records with at least one variance; it is judged against the seed's bands:
under 5% points to strong record-keeping, over 15% to deeper register problems.
"""

from __future__ import annotations

import html
import json
from dataclasses import asdict, dataclass, field
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any, Final

import pyarrow.parquet as pq

from tagsweep.engine import sandbox
from tagsweep.engine.escaping import markdown_cell

GOOD_RATE: Final = 0.05
POOR_RATE: Final = 0.15


class TrendsError(Exception):
    """Runs that cannot be compared; the message names the folder and what is missing."""


@dataclass(frozen=True, slots=True)
class RunPoint:
    """One run on the time axis."""

    run_id: str
    run_date: str
    run_dir: str
    register_rows: int | None
    variances: int
    assets_with_variance: int
    rate: float | None
    by_type: dict[str, int]

    @property
    def band(self) -> str:
        if self.rate is None:
            return "unknown"
        if self.rate < GOOD_RATE:
            return "strong"
        return "deeper problems" if self.rate > POOR_RATE else "needs attention"


@dataclass(slots=True)
class Trends:
    """The comparison of several runs, oldest first."""

    points: list[RunPoint]
    by_location: list[dict[str, Any]] = field(default_factory=list)
    by_source: list[dict[str, Any]] = field(default_factory=list)
    repeat_offenders: list[dict[str, Any]] = field(default_factory=list)

    def as_dict(self) -> dict[str, Any]:
        return {
            "runs": [{**asdict(p), "band": p.band} for p in self.points],
            "recurring_by_location": self.by_location,
            "recurring_by_source": self.by_source,
            "repeat_offenders": self.repeat_offenders,
        }


def _run_meta(run_dir: Path) -> tuple[str, str, int | None, float | None]:
    """(run id, run date, register size, reported rate) from a run folder's manifest."""
    manifest: dict[str, Any] = {}
    path = run_dir / "manifest.json"
    if path.is_file():
        try:
            manifest = json.loads(path.read_text())
        except json.JSONDecodeError as exc:
            raise TrendsError(f"{path}: not valid JSON ({exc})") from None
    variances = run_dir / "variances.parquet"
    run_id = manifest.get("run_id")
    if not isinstance(run_id, str) or not run_id:
        ids = pq.read_table(variances, columns=["run_id"]).column("run_id").unique().to_pylist()
        if len(ids) != 1 or not ids[0]:
            raise TrendsError(f"{run_dir}: cannot tell the run id (no manifest.json run_id)")
        run_id = str(ids[0])
    run_date = None
    for key in ("run_date", "as_of", "count_date", "created", "created_at", "started"):
        raw = manifest.get(key)
        if isinstance(raw, str) and len(raw) >= 10:
            run_date = raw[:10]
            break
    if run_date is None:
        run_date = datetime.fromtimestamp(variances.stat().st_mtime, tz=UTC).date().isoformat()
    register = run_dir / "register.parquet"
    rows: int | None = None
    if register.is_file():
        rows = pq.ParquetFile(register).metadata.num_rows
    else:
        for key in ("register_rows", "register_records", "expected"):
            if isinstance(manifest.get(key), int):
                rows = int(manifest[key])
                break
    counts = manifest.get("counts")
    reported: float | None = None
    if isinstance(counts, dict):
        if isinstance(counts.get("register_assets"), int):
            rows = int(counts["register_assets"])
        if isinstance(counts.get("variance_rate_percent"), int | float):
            reported = float(counts["variance_rate_percent"]) / 100
    return run_id, run_date, rows, reported


def compare_runs(run_dirs: list[Path], *, top: int = 20) -> Trends:
    """Compare the variance logs of ``run_dirs`` (any order; sorted by run date)."""
    if not run_dirs:
        raise TrendsError("give at least one run folder")
    metas = []
    for given in run_dirs:
        run_dir = Path(given)
        if not (run_dir / "variances.parquet").is_file():
            raise TrendsError(
                f"{run_dir}: no variances.parquet; pass output folders of `tagsweep reconcile run`"
            )
        metas.append((run_dir, *_run_meta(run_dir)))
    ids = [m[1] for m in metas]
    if len(set(ids)) != len(ids):
        raise TrendsError(
            f"the same run is given twice: {sorted({i for i in ids if ids.count(i) > 1})}"
        )
    metas.sort(key=lambda m: (m[2], m[1]))

    con = sandbox.connect(read=[m[0] / "variances.parquet" for m in metas])
    try:
        con.execute(
            "CREATE TABLE runs (run_id VARCHAR, run_date DATE, run_no INTEGER, rows BIGINT)"
        )
        con.executemany(
            "INSERT INTO runs VALUES (?, ?, ?, ?)",
            [[m[1], date.fromisoformat(m[2]), n, m[3]] for n, m in enumerate(metas)],
        )
        files = [str(m[0] / "variances.parquet") for m in metas]
        # The run id of each row comes from its file, not its column, so a re-labelled
        # copy cannot be counted twice.
        con.execute(
            "CREATE TABLE v AS SELECT r.run_id, r.run_date, r.run_no, x.variance_type, "
            "x.asset_key, coalesce(x.found_location, x.expected_location, '(none)') AS location, "
            "x.source FROM read_parquet(?, filename = true) x "
            "JOIN (SELECT unnest(?) AS filename, unnest(?) AS file_run) f USING (filename) "
            "JOIN runs r ON r.run_id = f.file_run",
            [files, files, [m[1] for m in metas]],
        )
        points = []
        for run_id, run_date, run_no, rows in con.execute(
            "SELECT run_id, run_date, run_no, rows FROM runs ORDER BY run_no"
        ).fetchall():
            count, assets = con.execute(
                "SELECT count(*), count(DISTINCT asset_key) FROM v WHERE run_id = ?", [run_id]
            ).fetchone() or (0, 0)
            by_type = dict(
                con.execute(
                    "SELECT variance_type, count(*) FROM v WHERE run_id = ? GROUP BY 1 ORDER BY 1",
                    [run_id],
                ).fetchall()
            )
            points.append(
                RunPoint(
                    run_id=run_id,
                    run_date=run_date.isoformat(),
                    run_dir=str(metas[run_no][0]),
                    register_rows=rows,
                    variances=int(count),
                    assets_with_variance=int(assets),
                    rate=metas[run_no][4]
                    if metas[run_no][4] is not None
                    else ((assets / rows) if rows else None),
                    by_type=by_type,
                )
            )

        def table(sql: str, params: list[Any] | None = None) -> list[dict[str, Any]]:
            cursor = con.execute(sql, params or [])
            names = [d[0] for d in cursor.description or []]
            return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]

        by_location = table(
            "SELECT variance_type, location, count(DISTINCT run_id) AS runs, count(*) AS variances "
            "FROM v GROUP BY 1, 2 HAVING count(DISTINCT run_id) > 1 "
            "ORDER BY runs DESC, variances DESC, 1, 2 LIMIT ?",
            [top],
        )
        by_source = table(
            "SELECT variance_type, trim(s) AS source, count(DISTINCT run_id) AS runs, "
            "count(*) AS variances FROM (SELECT run_id, variance_type, "
            "unnest(string_split(coalesce(source, '(none)'), ',')) AS s FROM v) "
            "GROUP BY 1, 2 HAVING count(DISTINCT run_id) > 1 "
            "ORDER BY runs DESC, variances DESC, 1, 2 LIMIT ?",
            [top],
        )
        offenders = table(
            "SELECT asset_key, count(DISTINCT run_id) AS runs, count(*) AS variances, "
            "string_agg(DISTINCT variance_type, ', ' ORDER BY variance_type) AS types, "
            "max(run_date)::VARCHAR AS last_seen FROM v WHERE asset_key IS NOT NULL "
            "GROUP BY 1 HAVING count(DISTINCT run_id) > 1 "
            "ORDER BY runs DESC, variances DESC, 1 LIMIT ?",
            [top],
        )
    finally:
        con.close()
    return Trends(points, by_location, by_source, offenders)


# -- rendering -------------------------------------------------------------------------


def rate_chart_svg(points: list[RunPoint], *, width: int = 640, height: int = 240) -> str:
    """Variance rate per run as an inline SVG line chart with the seed's 5%/15% bands.

    Hand-written SVG keeps the HTML report self-contained (no script, no CDN)."""
    left, right, top, bottom = 48, 16, 16, 40
    plot_w, plot_h = width - left - right, height - top - bottom
    rates = [p.rate for p in points if p.rate is not None]
    y_max = max([0.2, *(r * 1.1 for r in rates)])

    def y(rate: float) -> float:
        return top + plot_h * (1 - rate / y_max)

    def x(i: int) -> float:
        return left + (plot_w * i / (len(points) - 1) if len(points) > 1 else plot_w / 2)

    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" viewBox="0 0 {width} {height}" '
        f'width="{width}" height="{height}" role="img" aria-label="Variance rate per run">',
        f'<rect x="{left}" y="{y(GOOD_RATE):.1f}" width="{plot_w}" '
        f'height="{y(0) - y(GOOD_RATE):.1f}" fill="#e6f4ea"/>',
        f'<rect x="{left}" y="{top}" width="{plot_w}" height="{y(POOR_RATE) - top:.1f}" '
        'fill="#fce8e6"/>',
    ]
    parts.extend(
        f'<line x1="{left}" x2="{left + plot_w}" y1="{y(tick):.1f}" y2="{y(tick):.1f}" '
        'stroke="#ccc" stroke-width="1"/>'
        f'<text x="{left - 4}" y="{y(tick) + 4:.1f}" font-size="11" text-anchor="end">'
        f"{tick:.0%}</text>"
        for tick in (0.0, GOOD_RATE, POOR_RATE, y_max)
    )
    coords = [(x(i), y(p.rate)) for i, p in enumerate(points) if p.rate is not None]
    if len(coords) > 1:
        path = " ".join(f"{cx:.1f},{cy:.1f}" for cx, cy in coords)
        parts.append(f'<polyline points="{path}" fill="none" stroke="#1a73e8" stroke-width="2"/>')
    for i, p in enumerate(points):
        label = html.escape(p.run_date)
        parts.append(
            f'<text x="{x(i):.1f}" y="{height - bottom + 16}" font-size="11" '
            f'text-anchor="middle">{label}</text>'
        )
        if p.rate is not None:
            parts.append(
                f'<circle cx="{x(i):.1f}" cy="{y(p.rate):.1f}" r="4" fill="#1a73e8">'
                f"<title>{html.escape(p.run_id)}: {p.rate:.1%} ({p.band})</title></circle>"
            )
    parts.append("</svg>")
    return "".join(parts)


def _html_table(rows: list[dict[str, Any]], empty: str) -> str:
    if not rows:
        return f"<p>{html.escape(empty)}</p>"
    head = "".join(f"<th>{html.escape(str(k))}</th>" for k in rows[0])
    body = "".join(
        "<tr>" + "".join(f"<td>{html.escape(str(v))}</td>" for v in row.values()) + "</tr>"
        for row in rows
    )
    return f"<table><thead><tr>{head}</tr></thead><tbody>{body}</tbody></table>"


def render_html_fragment(trends: Trends) -> str:
    """A ``<section>`` the summary report can embed as is."""
    runs = [
        {
            "run": p.run_id,
            "date": p.run_date,
            "register": p.register_rows if p.register_rows is not None else "?",
            "variances": p.variances,
            "assets with variance": p.assets_with_variance,
            "rate": "?" if p.rate is None else f"{p.rate:.1%}",
            "band": p.band,
        }
        for p in trends.points
    ]
    return (
        '<section class="trends"><h2>Trends across runs</h2>'
        + rate_chart_svg(trends.points)
        + "<h3>Runs</h3>"
        + _html_table(runs, "no runs")
        + "<h3>Recurring categories by location</h3>"
        + _html_table(trends.by_location, "no category recurs in the same location")
        + "<h3>Recurring categories by source</h3>"
        + _html_table(trends.by_source, "no category recurs in the same source")
        + "<h3>Repeat offenders</h3>"
        + _html_table(trends.repeat_offenders, "no asset has variances in more than one run")
        + "</section>"
    )


def render_markdown(trends: Trends) -> str:
    def md(rows: list[dict[str, Any]], empty: str) -> str:
        if not rows:
            return f"_{empty}_\n"
        keys = list(rows[0])
        lines = ["| " + " | ".join(keys) + " |", "|" + "---|" * len(keys)]
        lines += ["| " + " | ".join(markdown_cell(r[k]) for k in keys) + " |" for r in rows]
        return "\n".join(lines) + "\n"

    runs = [
        {
            "run": p.run_id,
            "date": p.run_date,
            "variances": p.variances,
            "rate": "?" if p.rate is None else f"{p.rate:.1%}",
            "band": p.band,
        }
        for p in trends.points
    ]
    return (
        "# Trends across runs\n\n"
        + md(runs, "no runs")
        + "\n## Recurring categories by location\n\n"
        + md(trends.by_location, "no category recurs in the same location")
        + "\n## Recurring categories by source\n\n"
        + md(trends.by_source, "no category recurs in the same source")
        + "\n## Repeat offenders\n\n"
        + md(trends.repeat_offenders, "no asset has variances in more than one run")
    )


def write_trends(trends: Trends, out: Path) -> dict[str, Path]:
    """Write ``trends.html`` (standalone page around the fragment), ``trends.md``,
    ``trends.svg`` and ``trends.json`` into ``out``."""
    out.mkdir(parents=True, exist_ok=True)
    paths = {
        "html": out / "trends.html",
        "md": out / "trends.md",
        "svg": out / "trends.svg",
        "json": out / "trends.json",
    }
    paths["html"].write_text(
        '<!doctype html><html lang="en"><head><meta charset="utf-8">'
        "<title>tagsweep trends</title><style>body{font-family:sans-serif;margin:2em}"
        "table{border-collapse:collapse}td,th{border:1px solid #ccc;padding:2px 6px}"
        "</style></head><body>" + render_html_fragment(trends) + "</body></html>\n"
    )
    paths["md"].write_text(render_markdown(trends))
    paths["svg"].write_text(rate_chart_svg(trends.points) + "\n")
    paths["json"].write_text(json.dumps(trends.as_dict(), indent=2, default=str) + "\n")
    return paths
