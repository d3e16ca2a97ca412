"""Classify's per-asset pass: one row per register asset with a variance of its own.

The register is joined once with what the count found (``found_assets``), what the other
sources say about retirement and loss, and what discovery (MDM) saw, and one flag per
variance type is computed for the assets any rule picks out; the variance rules
(``variance_rules``) then read those flags instead of each scanning the register.
"""

from __future__ import annotations

from datetime import timedelta

from tagsweep.engine import linking
from tagsweep.engine.stages import RunContext, lit

#: The register columns the variance rules read from ``asset_checks``: only these are
#: joined back for the flagged assets (the register row has twice as many).
REGISTER_COLUMNS_READ = (
    "asset_key", "asset_tag", "serial", "manufacturer", "model", "category", "location",
    "location_source", "status", "status_label", "status_source", "condition",
    "condition_key", "condition_source", "custodian", "custodian_key", "custodian_leaver",
    "custodian_source", "value", "last_seen", "last_seen_source", "sources",
)  # fmt: skip


def in_list(values: list[str] | tuple[str, ...]) -> str:
    """A SQL list of text literals (``(NULL)`` when empty: matches nothing)."""
    return "(" + ", ".join(lit(v) for v in values) + ")" if values else "(NULL)"


def expected_here_sql(ctx: RunContext) -> str:
    """Whether register row ``r`` should have been found by this count: a status that
    means present, at a location under the count's scope."""
    s = ctx.settings
    expected = in_list(s.expected_present_statuses)
    prefixes = [p.strip().strip("/").lower() for p in ctx.scope if p.strip().strip("/")]
    in_scope = (
        "(r.location IS NOT NULL AND ("
        + " OR ".join(
            f"lower(r.location) = {lit(p)} OR starts_with(lower(r.location), {lit(p + '/')})"
            for p in prefixes
        )
        + "))"
        if prefixes
        else "true"
    )
    return f"(r.status IN {expected} AND {in_scope})"


def _mdm_sql(ctx: RunContext, active_since: str) -> tuple[str, str]:
    """(mdm_active, mdm_user): per asset, discovery's latest check-in within the active
    window, and the user discovery reports."""
    mdm_sources = [src.name for src in ctx.sources if src.role == "mdm"]
    active_rows = (
        "FROM record_links WHERE asset_key IS NOT NULL AND role = 'mdm' "
        f"AND last_seen >= TIMESTAMPTZ '{active_since} 00:00:00+00'"
    )
    user_rows = (
        "FROM record_links "
        "WHERE asset_key IS NOT NULL AND role = 'mdm' AND custodian_key IS NOT NULL"
    )
    # No MDM source, or one that is not the register's primary: other_links keeps at
    # most one record of it per asset (a stale enrolment is superseded), so its records
    # are already one row per asset and need no million-group aggregate.
    if len(mdm_sources) == 0 or (
        len(mdm_sources) == 1 and mdm_sources[0] != linking.primary_source(ctx)
    ):
        return (
            f"SELECT asset_key, last_seen, source {active_rows}",
            f"SELECT asset_key, custodian, custodian_key, custodian_alt, source {user_rows}",
        )
    return (
        "SELECT asset_key, max(last_seen) AS last_seen, "
        f"arg_max(source, (last_seen, source)) AS source {active_rows} GROUP BY asset_key",
        f"""
    SELECT asset_key, first.custodian, first.custodian_key, first.custodian_alt, first.source
    FROM (
        -- one arg_min carrying the columns: each one compares the keys again
        SELECT asset_key,
            arg_min({{'custodian': custodian, 'custodian_key': custodian_key,
                     'custodian_alt': custodian_alt, 'source': source}}, (source, line))
                AS first
        {user_rows}
        GROUP BY asset_key
    )""",
    )


def asset_checks_sql(ctx: RunContext) -> str:
    """The ``asset_checks`` stage: flagged register assets, wide, with a flag per type."""
    s = ctx.settings
    active_since = (ctx.as_of - timedelta(days=s.active_within_days)).isoformat()
    stale_before = (ctx.as_of - timedelta(days=s.stale_after_days)).isoformat()
    retired = in_list(s.retired_statuses)
    found_bad = in_list(s.found_status_mismatch)
    not_stale = in_list([*s.retired_statuses, "missing", "stolen"])
    mdm_active, mdm_user = _mdm_sql(ctx, active_since)
    # the register-centred variance types, over one row of ``joined`` below
    checks = {
        "is_retired": "ret_present AND (found OR ma_present)",
        "is_missing": "expected_here AND NOT matched" if ctx.counted else "false",
        "is_custodian": "custodian_key IS NOT NULL AND ("
        "(found_custodian_key IS NOT NULL AND found_custodian_key <> custodian_key) "
        "OR mu_differs "
        "OR custodian_leaver)",
        "is_location": "found AND location IS NOT NULL AND found_location IS NOT NULL "
        "AND NOT loc_within(location, found_location)",
        "is_status": "found AND ((found_condition_key IS NOT NULL AND condition_key IS NOT NULL "
        f"AND found_condition_key <> condition_key) OR status IN {found_bad})",
        "is_stale": f"NOT expected_here AND coalesce(status, '') NOT IN {not_stale} "
        "AND NOT matched AND (last_seen IS NULL "
        f"OR last_seen < TIMESTAMPTZ '{stale_before} 00:00:00+00')"
        if ctx.counted
        # without a count only what a source saw long ago is stale, not what none tracks
        else f"coalesce(status, '') NOT IN {not_stale} "
        f"AND last_seen < TIMESTAMPTZ '{stale_before} 00:00:00+00'",
        # reported missing or stolen, yet the MDM sees it checking in
        "is_lost_active": "NOT found AND ma_present AND lost_present",
    }
    any_check = " OR ".join(f"({c})" for c in checks.values())
    flags = ", ".join(f"coalesce({c}, false) AS {name}" for name, c in checks.items())
    expected_here = expected_here_sql(ctx)
    asset_checks = f"""
WITH ret AS (
    SELECT asset_key,
        string_agg(DISTINCT coalesce(status_label, status), ', '
                   ORDER BY coalesce(status_label, status)) AS labels,
        string_agg(DISTINCT source, ',' ORDER BY source) AS sources
    FROM record_links WHERE asset_key IS NOT NULL AND status IN {retired} GROUP BY asset_key
), lost AS (
    -- a source says missing or stolen (not necessarily the register's source of truth)
    SELECT asset_key,
        string_agg(DISTINCT coalesce(status_label, status), ', '
                   ORDER BY coalesce(status_label, status)) AS labels,
        string_agg(DISTINCT status, ', ' ORDER BY status) AS statuses,
        string_agg(DISTINCT source, ',' ORDER BY source) AS sources
    FROM record_links WHERE asset_key IS NOT NULL AND status IN ('missing', 'stolen')
    GROUP BY asset_key
), mdm_active AS ({mdm_active}
), mdm_user AS ({mdm_user}
), unconfirmed AS (
    -- the few assets matched only for review (identity conflict, probable match)
    SELECT DISTINCT asset_key FROM matches WHERE match_status <> 'confirmed'
), joined AS (
    -- narrow: only what the checks read; the wide register row is joined back below
    -- for the few assets flagged
    SELECT r.asset_key, r.status, r.location, r.custodian_key, r.custodian_leaver,
        r.condition_key, r.last_seen, f.asset_key IS NOT NULL AS found, f.epc,
        f.found_location, f.session_id,
        f.observed_serial, f.found_custodian, f.found_custodian_key, f.found_condition,
        f.found_condition_key, f.methods,
        {expected_here} AS expected_here,
        f.asset_key IS NOT NULL OR u.asset_key IS NOT NULL AS matched,
        ret.asset_key IS NOT NULL AS ret_present,
        ret.labels AS ret_labels, ret.sources AS ret_sources,
        lost.asset_key IS NOT NULL AS lost_present, lost.labels AS lost_labels,
        lost.statuses AS lost_statuses, lost.sources AS lost_sources,
        ma.asset_key IS NOT NULL AS ma_present, ma.source AS ma_source,
        ma.last_seen AS ma_last_seen,
        mu.custodian AS mu_custodian, mu.custodian_key AS mu_custodian_key,
        -- the MDM's user is another person: no key of one is a key of the other
        coalesce(mu.custodian_key IS NOT NULL AND r.custodian_key IS NOT NULL AND NOT (
            mu.custodian_key = r.custodian_key
            OR mu.custodian_key IS NOT DISTINCT FROM r.custodian_alt
            OR mu.custodian_alt IS NOT DISTINCT FROM r.custodian_key
            OR mu.custodian_alt = r.custodian_alt), false) AS mu_differs,
        mu.source AS mu_source
    FROM (
        SELECT asset_key, status, location, custodian_key, custodian_alt, custodian_leaver,
            condition_key, last_seen, custodian_source
        FROM register
    ) r
    LEFT JOIN found_assets f ON f.asset_key = r.asset_key
    LEFT JOIN unconfirmed u ON u.asset_key = r.asset_key
    LEFT JOIN ret ON ret.asset_key = r.asset_key
    LEFT JOIN lost ON lost.asset_key = r.asset_key
    LEFT JOIN mdm_active ma ON ma.asset_key = r.asset_key
    LEFT JOIN mdm_user mu ON mu.asset_key = r.asset_key AND r.custodian_source <> mu.source
), flagged AS (
    -- the conditions filter a million rows; the flags are computed for the few left
    SELECT *, {flags} FROM joined WHERE {any_check}
)
SELECT {", ".join("r." + c for c in REGISTER_COLUMNS_READ)},
    f.* EXCLUDE (asset_key, status, location, custodian_key, custodian_leaver, condition_key,
                 last_seen)
FROM flagged f JOIN register r ON r.asset_key = f.asset_key
"""
    return asset_checks
