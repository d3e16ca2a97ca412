"""The run summary as Markdown and as one self-contained HTML file.

Step 5 of the seed asks for a write-up "clear enough that someone new to the process
could read it": date, scope and exclusions, totals reviewed and variances found, status
per category, and the variance rate read against the rule of thumb (under 5 % strong
record-keeping, over 15 % deeper register problems). The HTML has its charts as inline
SVG and no external references, so it can be mailed or archived as one file.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import duckdb
from jinja2 import Environment
from markupsafe import Markup

from tagsweep.domain import VarianceType
from tagsweep.engine.escaping import markdown_cell, markdown_text

#: Display names as the seed's tables write them.
VARIANCE_LABELS: dict[str, str] = {
    "retired_but_active": "Retired but Active",
    "duplicate_record": "Duplicate Record",
    "missing": "Missing Asset",
    "unrecorded": "Unrecorded Asset",
    "identity_conflict": "Identity Conflict",
    "probable_match": "Probable Match",
    "custodian_mismatch": "Custodian Mismatch",
    "location_mismatch": "Location Mismatch",
    "status_condition_mismatch": "Status/Condition Mismatch",
    "source_conflict": "Source Conflict",
    "stale_record": "Stale Record",
}

BAND_STRONG = 5.0
BAND_DEEP = 15.0
REVIEW_TABLE_ROWS = 200


def band(rate_percent: float) -> str:
    if rate_percent < BAND_STRONG:
        return "under 5 %: strong record-keeping"
    if rate_percent > BAND_DEEP:
        return "over 15 %: deeper register problems"
    return "5-15 %: typical of a first-time audit"


@dataclass(slots=True)
class RunSummary:
    run_id: str
    as_of: str
    version: str
    scope: list[str]
    register_assets: int
    expected_here: int
    out_of_scope: int
    found: int
    observed_items: int
    missing: int
    unrecorded: int
    assets_reviewed: int
    assets_with_variance: int
    variances: int
    by_type: list[tuple[str, int]]
    by_priority: list[tuple[str, int]]
    by_location: list[tuple[str, int]]
    review_rows: list[tuple[str, str, str, str]]
    bad_rows: int
    warnings: list[str] = field(default_factory=list)
    sources: list[tuple[str, str, int]] = field(default_factory=list)
    counts: list[tuple[str, int]] = field(default_factory=list)
    corrections: dict[str, int] = field(default_factory=dict)
    #: values emptied because they did not parse, their records kept (bad_values.csv)
    bad_values: int = 0
    #: The case store's audit head when the run was made ("seq N sha256 H"), an anchor.
    audit_head: str | None = None

    @property
    def rate(self) -> float:
        if not self.assets_reviewed:
            return 0.0
        return 100.0 * self.assets_with_variance / self.assets_reviewed

    @property
    def band(self) -> str:
        return band(self.rate)


def collect(
    con: duckdb.DuckDBPyConnection,
    *,
    run_id: str,
    as_of: str,
    version: str,
    scope: list[str],
    bad_rows: int,
    warnings: list[str],
    sources: list[tuple[str, str, int]],
    counts: list[tuple[str, int]],
    corrections: dict[str, int],
) -> RunSummary:
    def one(sql: str) -> int:
        row = con.execute(sql).fetchall()[0]
        return int(row[0]) if row and row[0] is not None else 0

    by_type_raw = dict(
        con.execute("SELECT variance_type, count(*) FROM variances GROUP BY 1").fetchall()
    )
    by_type = [(t.value, int(by_type_raw.get(t.value, 0))) for t in VarianceType]
    by_priority = [
        (str(p), int(n))
        for p, n in con.execute(
            "SELECT priority, count(*) FROM variances GROUP BY 1 ORDER BY 1"
        ).fetchall()
    ]
    by_location = [
        (str(loc), int(n))
        for loc, n in con.execute(
            "SELECT coalesce(found_location, expected_location, '(no location)') AS loc, "
            "count(*) AS n FROM variances GROUP BY 1 ORDER BY n DESC, loc LIMIT 20"
        ).fetchall()
    ]
    review = [
        (str(a), str(f), str(e), VARIANCE_LABELS.get(str(t), str(t)))
        for a, f, e, t in con.execute(
            "SELECT coalesce(asset_tag, asset_key), coalesce(found, ''), coalesce(expected, ''), "
            "variance_type FROM variances ORDER BY priority, type_order, asset_key, variance_id "
            f"LIMIT {REVIEW_TABLE_ROWS}"
        ).fetchall()
    ]
    scoped = con.execute(
        "SELECT count(*), count(*) FILTER (WHERE expected_here), "
        "count(*) FILTER (WHERE NOT expected_here) FROM register_scoped"
    ).fetchall()[0]
    register_assets, expected_here, out_of_scope = (int(x) for x in scoped)
    unrecorded = by_type_raw.get("unrecorded", 0)
    return RunSummary(
        run_id=run_id,
        as_of=as_of,
        version=version,
        scope=scope,
        register_assets=register_assets,
        expected_here=expected_here,
        out_of_scope=out_of_scope,
        found=one("SELECT count(DISTINCT asset_key) FROM matches WHERE match_status = 'confirmed'"),
        observed_items=one("SELECT count(*) FROM matches"),
        missing=int(by_type_raw.get("missing", 0)),
        unrecorded=int(unrecorded),
        assets_reviewed=register_assets + int(unrecorded),
        assets_with_variance=one("SELECT count(DISTINCT asset_key) FROM variances"),
        variances=sum(n for _, n in by_type),
        by_type=by_type,
        by_priority=by_priority,
        by_location=by_location,
        review_rows=review,
        bad_rows=bad_rows,
        warnings=warnings,
        sources=sources,
        counts=counts,
        corrections=corrections,
    )


_MARKDOWN = """\
# Reconciliation report

| | |
|---|---|
| Run | `{{ s.run_id }}` |
| As of | {{ s.as_of }} |
| Scope | {{ s.scope | join(", ") if s.scope else "every register location" }} |
| tagsweep | {{ s.version }} |
{% if s.audit_head %}| Audit log head | {{ s.audit_head }} |
{% endif %}
## Totals

| Measure | Count |
|---|---:|
| Register assets | {{ s.register_assets }} |
| Expected in this count | {{ s.expected_here }} |
| Found (confirmed) | {{ s.found }} |
| Missing | {{ s.missing }} |
| Unrecorded | {{ s.unrecorded }} |
| Counted items | {{ s.observed_items }} |
| Variances | {{ s.variances }} |
| Assets with a variance | {{ s.assets_with_variance }} of {{ s.assets_reviewed }} reviewed |
| Rows kept out as bad | {{ s.bad_rows }} |
| Values emptied as bad, records kept (bad_values.csv) | {{ s.bad_values }} |

**Variance rate: {{ "%.1f" | format(s.rate) }} %** ({{ s.band }}).
Rule of thumb from the method: under 5 % points to strong record-keeping, over 15 %
to deeper register problems.

## Scope and exclusions

Assets not expected in this count (out of scope, or in a status such as retired,
in transit or in repair): {{ s.out_of_scope }}. They are checked only for
retired-but-active, duplicates, source conflicts and stale records.

## Variances by type

| Variance type | Count |
|---|---:|
{% for t, n in s.by_type %}| {{ labels[t] }} | {{ n }} |
{% endfor %}
## Variances by priority

| Priority | Count |
|---|---:|
{% for p, n in s.by_priority %}| {{ p }} | {{ n }} |
{% endfor %}
## Variances by location (top {{ s.by_location | length }})

| Location | Count |
|---|---:|
{% for loc, n in s.by_location %}| {{ loc | md }} | {{ n }} |
{% endfor %}
## Variance review table
{% if s.review_rows | length >= review_limit %}
First {{ review_limit }} rows by priority; the full log is `variances.csv`.
{% endif %}
| Asset ID | Physical Count Result | System Record Result | Variance Type |
|---|---|---|---|
{% for a, f, e, t in s.review_rows %}| {{ a | md }} | {{ f | md }} | {{ e | md }} | {{ t }} |
{% endfor %}
## Proposed corrections

| Source | Proposals |
|---|---:|
{% for src, n in s.corrections | dictsort %}| {{ src | md }} | {{ n }} |
{% endfor %}
{{ trends }}## Inputs

| Source | Preset | Rows |
|---|---|---:|
{% for name, preset, rows in s.sources %}| {{ name | md }} | {{ preset }} | {{ rows }} |
{% endfor %}
| Count file | Rows |
|---|---:|
{% for name, rows in s.counts %}| {{ name | md }} | {{ rows }} |
{% endfor %}{% if s.warnings %}
## Warnings

{% for w in s.warnings %}- {{ w }}
{% endfor %}{% endif %}"""

_HTML = """\
<!DOCTYPE html>
<html lang="en"><head><meta charset="utf-8">
<title>Reconciliation {{ s.run_id }}</title>
<style>
body{font-family:system-ui,sans-serif;margin:2rem;max-width:70rem;color:#222}
table{border-collapse:collapse;margin:.5rem 0 1.5rem}
td,th{border:1px solid #ccc;padding:.25rem .5rem;text-align:left}
td.n{text-align:right}.band{font-weight:bold}
svg text{font-size:12px;font-family:system-ui,sans-serif}
</style></head><body>
<h1>Reconciliation report</h1>
<p>Run <code>{{ s.run_id }}</code> as of {{ s.as_of }}; scope:
{{ s.scope | join(", ") if s.scope else "every register location" }}; tagsweep {{ s.version }}.</p>
{% if s.audit_head %}<p>Case audit log head at this run: <code>{{ s.audit_head }}</code>
(check later with <code>tagsweep audit verify --anchor</code> and this run's folder).</p>{% endif %}
<h2>Totals</h2>
{{ totals_svg }}
<h2>Variance rate</h2>
<p class="band">{{ "%.1f" | format(s.rate) }} % of {{ s.assets_reviewed }} assets reviewed:
{{ s.band }}</p>
{{ rate_svg }}
<h2>Variances by type</h2>
{{ type_svg }}
<h2>Variances by location</h2>
{{ location_svg }}
<h2>Scope and exclusions</h2>
<p>Assets not expected in this count (out of scope, or in a status such as retired, in
transit or in repair): {{ s.out_of_scope }}. Rows kept out as bad: {{ s.bad_rows }}.
Values emptied as bad, records kept (bad_values.csv): {{ s.bad_values }}.</p>
<h2>Variance review table</h2>
<table><tr><th>Asset ID</th><th>Physical Count Result</th><th>System Record Result</th>
<th>Variance Type</th></tr>
{% for a, f, e, t in s.review_rows %}<tr><td>{{ a }}</td><td>{{ f }}</td><td>{{ e }}</td>
<td>{{ t }}</td></tr>
{% endfor %}</table>
<h2>Proposed corrections</h2>
<table><tr><th>Source</th><th>Proposals</th></tr>
{% for src, n in s.corrections | dictsort %}
<tr><td>{{ src }}</td><td class="n">{{ n }}</td></tr>
{% endfor %}</table>
{{ trends | safe }}{% if s.warnings %}<h2>Warnings</h2>
<ul>{% for w in s.warnings %}<li>{{ w }}</li>{% endfor %}</ul>{% endif %}
</body></html>
"""


def _env(autoescape: bool) -> Environment:
    if autoescape:
        env = Environment(autoescape=True, keep_trailing_newline=True)
    else:
        # Markdown: every value is escaped for Markdown (engine.escaping) unless it is
        # Markup (a section rendered by our own code, already escaped); ``md`` also keeps
        # a value inside its table cell.
        env = Environment(autoescape=False, keep_trailing_newline=True, finalize=_md_finalize)  # noqa: S701 - Markdown, escaped by finalize
    env.filters["md"] = lambda value: Markup(markdown_cell(value))  # noqa: S704 - escaped
    return env


def _md_finalize(value: Any) -> Any:
    if isinstance(value, Markup | int | float):
        return value
    return markdown_text(value)


def render_markdown(summary: RunSummary, *, trends: str = "") -> str:
    """``trends``: a Markdown section (ending in a blank line) placed before the inputs."""
    template = _env(autoescape=False).from_string(_MARKDOWN)
    return template.render(
        s=summary,
        labels=VARIANCE_LABELS,
        review_limit=REVIEW_TABLE_ROWS,
        trends=Markup(trends),  # noqa: S704 - rendered by trends.render_markdown, cells escaped
    )


def _esc(text: str) -> str:
    return (
        text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace('"', "&quot;")
    )


def bar_chart(rows: list[tuple[str, int]], colour: str = "#3b6ea5") -> str:
    """Horizontal bar chart as inline SVG (labels left, values right)."""
    if not rows:
        return "<p>None.</p>"
    width, label_w, bar_h = 640, 220, 22
    peak = max((n for _, n in rows), default=0) or 1
    height = bar_h * len(rows) + 10
    parts = [
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="{height}" role="img">'
    ]
    for i, (label, n) in enumerate(rows):
        y = 5 + i * bar_h
        w = round((width - label_w - 60) * n / peak)
        parts.append(f'<text x="0" y="{y + 15}">{_esc(label)}</text>')
        parts.append(
            f'<rect x="{label_w}" y="{y + 3}" width="{w}" height="{bar_h - 6}" fill="{colour}"/>'
        )
        parts.append(f'<text x="{label_w + w + 6}" y="{y + 15}">{n}</text>')
    parts.append("</svg>")
    return "".join(parts)


def rate_chart(rate: float) -> str:
    """The variance rate on a 0-30 % scale with the method's <5 % and >15 % bands."""
    width, top = 640, 30.0
    x = 20 + min(rate, top) / top * (width - 40)

    def pos(p: float) -> float:
        return 20 + p / top * (width - 40)

    return (
        f'<svg xmlns="http://www.w3.org/2000/svg" width="{width}" height="70" role="img">'
        f'<rect x="20" y="20" width="{pos(5) - 20:.1f}" height="20" fill="#5cb85c"/>'
        f'<rect x="{pos(5):.1f}" y="20" width="{pos(15) - pos(5):.1f}" height="20" '
        f'fill="#f0ad4e"/>'
        f'<rect x="{pos(15):.1f}" y="20" width="{pos(30) - pos(15):.1f}" height="20" '
        f'fill="#d9534f"/>'
        f'<line x1="{x:.1f}" x2="{x:.1f}" y1="12" y2="48" stroke="#000" stroke-width="3"/>'
        f'<text x="{x:.1f}" y="10" text-anchor="middle">{rate:.1f} %</text>'
        f'<text x="20" y="62">0 %</text><text x="{pos(5):.1f}" y="62">5 %</text>'
        f'<text x="{pos(15):.1f}" y="62">15 %</text>'
        f'<text x="{pos(30) - 30:.1f}" y="62">30 %+</text></svg>'
    )


def render_html(summary: RunSummary, *, trends: str = "") -> str:
    """``trends``: a ready HTML section (``trends.render_html_fragment``) placed after the
    proposed corrections."""
    totals = [
        ("Register assets", summary.register_assets),
        ("Expected in count", summary.expected_here),
        ("Found", summary.found),
        ("Missing", summary.missing),
        ("Unrecorded", summary.unrecorded),
    ]
    template = _env(autoescape=True).from_string(_HTML)
    return template.render(
        s=summary,
        totals_svg=Markup(bar_chart(totals)),  # noqa: S704 - SVG built above with every label escaped
        rate_svg=Markup(rate_chart(summary.rate)),  # noqa: S704 - numbers only
        type_svg=Markup(  # noqa: S704 - labels escaped in bar_chart
            bar_chart([(VARIANCE_LABELS[t], n) for t, n in summary.by_type], "#a5533b")
        ),
        location_svg=Markup(bar_chart(summary.by_location, "#6b3ba5")),  # noqa: S704 - escaped in bar_chart
        trends=trends,
    )
